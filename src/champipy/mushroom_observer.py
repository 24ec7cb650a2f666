"""Photos of named species from the Mushroom Observer API (api2), with their licences.

Assumed response of ``GET {base}/api2/images?name=...&detail=high&format=json&page=N``
(MO's api2 JSON views): ``{"number_of_records", "number_of_pages", "page_number",
"results": [{"id", "license" (a display name such as "Creative Commons Wikipedia Compatible
v3.0"), "copyright_holder", "ok_for_export", "original_url", "files": [URLs by size]}],
"errors": [{"code", "details", "fatal"}]}``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

import httpx

from . import __version__
from .errors import ChampipyError, InvalidInput, RemoteFailed, RemoteTimeout
from .fetch import SafeFetcher
from .images import decode_image, sha256_hex
from .mo_links import pick_file_url
from .settings import Settings
from .store.base import LabelSource, NewImage
from .store.ports import ImageRepository

logger = logging.getLogger(__name__)

REUSABLE_LICENSE_WORDS = ("creative commons", "public domain")
FAILURES_LISTED = 20


@dataclass(frozen=True)
class MoImage:
    id: int
    url: str
    license: str
    copyright_holder: str
    ok_for_export: bool

    @property
    def reusable(self) -> bool:
        """Exportable and under a Creative Commons or public-domain licence."""
        license = self.license.lower()
        return self.ok_for_export and any(word in license for word in REUSABLE_LICENSE_WORDS)


class RateLimiter:
    """At least ``interval`` seconds between the starts of two requests, from any thread."""

    def __init__(self, interval: float):
        self.interval = interval
        self._last: float | None = None
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            if self._last is not None:
                remaining = self._last + self.interval - time.monotonic()
                if remaining > 0:
                    time.sleep(remaining)
            self._last = time.monotonic()


class MushroomObserverClient:
    def __init__(
        self,
        fetcher: SafeFetcher,
        *,
        api_url: str = "https://mushroomobserver.org",
        request_interval: float = 1.0,
        timeout: float = 30.0,
    ):
        self.api_url = api_url.rstrip("/") + "/"
        self._fetcher = fetcher
        self._owns_fetcher = False
        self._limiter = RateLimiter(request_interval)
        self._http = httpx.Client(timeout=timeout, headers={"User-Agent": f"ChampiPy/{__version__} (dataset builder)"})

    @classmethod
    def from_settings(cls, settings: Settings) -> MushroomObserverClient:
        client = cls(
            SafeFetcher(settings),
            api_url=settings.mo_api_url,
            request_interval=settings.mo_request_interval,
            timeout=settings.mo_timeout,
        )
        client._owns_fetcher = True
        return client

    def close(self) -> None:
        self._http.close()
        if self._owns_fetcher:
            self._fetcher.close()

    def __enter__(self) -> MushroomObserverClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def images(self, name: str) -> Iterator[MoImage]:
        """Every image MO lists for observations of ``name``, page after page."""
        page, pages = 1, 1
        while page <= pages:
            body = self._get_json("api2/images", {"name": name, "detail": "high", "format": "json", "page": page})
            pages = int(body.get("number_of_pages") or 1)
            for record in body.get("results") or []:
                image = self._parse_image(record)
                if image is not None:
                    yield image
            page += 1

    def download(self, image: MoImage) -> bytes:
        self._limiter.wait()
        return self._fetcher.fetch(image.url).data

    def _get_json(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        self._limiter.wait()
        url = urljoin(self.api_url, path)
        try:
            response = self._http.get(url, params=params)
        except httpx.TimeoutException as exc:
            raise RemoteTimeout(f"Mushroom Observer did not answer in time ({url}).") from exc
        except httpx.HTTPError as exc:
            raise RemoteFailed(f"Mushroom Observer cannot be reached: {exc}") from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise RemoteFailed(f"Mushroom Observer answered {response.status_code} without a JSON object.")
        fatal = [e for e in body.get("errors") or [] if str(e.get("fatal")).lower() == "true"]
        if fatal or response.status_code >= 400:
            details = "; ".join(str(e.get("details", e.get("code", ""))) for e in fatal)[:300]
            raise RemoteFailed(f"Mushroom Observer refused the query ({response.status_code}): {details}")
        return body

    def _parse_image(self, record: Any) -> MoImage | None:
        if not isinstance(record, dict) or "id" not in record:
            return None
        url = pick_file_url(record)
        if not url:
            return None
        return MoImage(
            id=int(record["id"]),
            url=urljoin(self.api_url, url),
            license=str(record.get("license") or ""),
            copyright_holder=str(record.get("copyright_holder") or "").strip(),
            ok_for_export=record.get("ok_for_export") in (True, "true", 1),
        )


@dataclass
class SpeciesFetch:
    added: int = 0
    duplicates: int = 0
    not_reusable: int = 0
    failed: int = 0

    @property
    def kept(self) -> int:
        return self.added + self.duplicates


@dataclass
class FetchSummary:
    species: dict[str, SpeciesFetch] = field(default_factory=dict)
    failures: list[dict[str, str]] = field(default_factory=list)

    def totals(self) -> dict[str, int]:
        return {
            name: sum(getattr(s, name) for s in self.species.values())
            for name in ("added", "duplicates", "not_reusable", "failed")
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.totals(),
            "species": {name: vars(counts) for name, counts in self.species.items()},
            "failures": self.failures,
        }


Progress = Callable[[str, FetchSummary], None]


def fetch_species(
    store: ImageRepository,
    settings: Settings,
    client: MushroomObserverClient,
    species: list[str],
    *,
    limit: int = 100,
    username: str | None = None,
    on_progress: Progress | None = None,
) -> FetchSummary:
    """Store up to ``limit`` reusable photos per species (already stored ones count)."""
    names = [name.strip() for name in species if name.strip()]
    if not names:
        raise InvalidInput("Give at least one species name.")
    if limit < 1:
        raise InvalidInput("The limit must be at least 1.")
    summary = FetchSummary()
    for name in names:
        counts = summary.species.setdefault(name, SpeciesFetch())
        for image in client.images(name):
            if not image.reusable:
                counts.not_reusable += 1
            else:
                _store_one(store, settings, client, image, name, username, counts, summary)
            if on_progress:
                on_progress(name, summary)
            if counts.kept >= limit:
                break
    return summary


def _store_one(
    store: ImageRepository,
    settings: Settings,
    client: MushroomObserverClient,
    image: MoImage,
    label: str,
    username: str | None,
    counts: SpeciesFetch,
    summary: FetchSummary,
) -> None:
    try:
        data = client.download(image)
        decoded = decode_image(data, settings.image_limits)
    except ChampipyError as exc:
        counts.failed += 1
        if len(summary.failures) < FAILURES_LISTED:
            summary.failures.append({"url": image.url, "reason": exc.detail})
        logger.info("Skipped MO image %s: %s", image.id, exc.detail)
        return
    stored = store.add_image(
        NewImage(
            sha256=sha256_hex(data),
            data=data,
            label=label,
            label_source=LabelSource.IMPORTED,
            source_url=image.url,
            filename=f"mo-{image.id}.{decoded.format.lower()}",
            username=username,
            license=image.license,
            copyright=image.copyright_holder or None,
        )
    )
    if stored:
        counts.added += 1
    else:
        counts.duplicates += 1
