"""Every form of Mushroom Observer (MO) URL an expert may copy, read without asking MO.

From MO's config/routes.rb: observation pages ``/123456``, ``/obs/123456`` and
``/observations/123456``; image pages ``/images/123456``; image files
``/images/{thumb|320|640|960|1280|orig}/123456.jpg``, also served from
``images.mushroomobserver.org/{size}/123456.jpg``. A bare number is an observation id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlsplit

# The size the model needs: 640 px is plenty for a 224-260 px model (never the original,
# which can be a 20-megapixel file, unless MO lists nothing else).
WANTED_SIZE = "640"
SIZES_BY_PREFERENCE = ("640", "960", "1280", "320", "thumb", "orig", "full_size")
DEFAULT_HOSTS = ("mushroomobserver.org", "www.mushroomobserver.org", "images.mushroomobserver.org")

_OBSERVATION_PATH = re.compile(r"/(?:obs/|observations/)?(\d{1,10})/?")
_IMAGE_PAGE_PATH = re.compile(r"/images/(\d{1,10})/?")
_FILE_PATH = re.compile(r"(/images)?/(thumb|320|640|960|1280|orig|full_size)/(\d{1,10})\.jpe?g")


class MoKind(StrEnum):
    OBSERVATION = "observation"
    IMAGE_PAGE = "image"
    IMAGE_FILE = "file"


@dataclass(frozen=True)
class MoLink:
    kind: MoKind
    id: int
    url: str = ""  # what was given (a bare id: empty)
    size: str | None = None  # image files only

    def wanted_file_url(self) -> str:
        """An image file's URL at the size the model needs, on the host it was given."""
        if self.kind is not MoKind.IMAGE_FILE or self.size is None:
            raise ValueError("only an image file link has a file URL")
        if self.size == WANTED_SIZE:
            return self.url
        parts = urlsplit(self.url)
        prefix = "/images" if parts.path.startswith("/images/") else ""
        return f"{parts.scheme}://{parts.netloc}{prefix}/{WANTED_SIZE}/{self.id}.jpg"


def mo_hosts(api_url: str) -> frozenset[str]:
    """The hosts whose URLs are read as MO links: the configured API's, and MO's own."""
    configured = urlsplit(api_url).netloc.lower()
    return frozenset({*DEFAULT_HOSTS, configured} - {""})


def parse_mo_link(text: str, hosts: frozenset[str], bare_id_is_observation: bool = False) -> MoLink | None:
    """The MO link in ``text``, or None when it is not one (any other URL: fetched as a file)."""
    text = text.strip()
    if bare_id_is_observation and text.isdigit() and len(text) <= 10:
        return MoLink(MoKind.OBSERVATION, int(text))
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or parts.netloc.lower() not in hosts:
        return None
    path = parts.path
    if match := _FILE_PATH.fullmatch(path):
        return MoLink(MoKind.IMAGE_FILE, int(match.group(3)), text, match.group(2))
    if match := _IMAGE_PAGE_PATH.fullmatch(path):
        return MoLink(MoKind.IMAGE_PAGE, int(match.group(1)), text)
    if match := _OBSERVATION_PATH.fullmatch(path):
        return MoLink(MoKind.OBSERVATION, int(match.group(1)), text)
    return None


def pick_file_url(record: dict[str, object]) -> str | None:
    """From an api2 image record (detail=high: ``files``, one URL per size, smallest first,
    original last), the URL of the size the model needs, or the nearest one MO lists."""
    files = [f for f in record.get("files") or [] if isinstance(f, str)]  # type: ignore[attr-defined]
    for size in SIZES_BY_PREFERENCE:
        for url in files:
            if f"/{size}/" in url:
                return url
    original = record.get("original_url")
    return str(original) if original else (files[-1] if files else None)
