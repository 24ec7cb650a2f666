"""Mushroom Observer links to image file URLs, through MO's api2 and the safe fetcher.

An image file link is rewritten to the size the model needs without asking MO. An image
page asks ``/api2/images?id=N&detail=high``; an observation ``/api2/observations?id=N&
detail=high``, whose record holds ``primary_image`` and ``images`` (image records with
``files``, one URL per size) and ``consensus`` (a name record: the community's current name).
Every request goes through the service's ``ImageFetcher``, so the SSRF rules hold for MO's
answers too, and requests to MO are spaced by ``mo_request_interval``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

from ..errors import InvalidInput, NotFound, RemoteFailed, RemoteNotFound
from ..mo_links import MoKind, MoLink, mo_hosts, parse_mo_link, pick_file_url
from ..mushroom_observer import RateLimiter
from ..settings import Settings
from .ports import ImageFetcher

MAX_OBSERVATION_PHOTOS = 5


@dataclass(frozen=True)
class MoObservation:
    id: int
    consensus: str | None  # the community's current name, when MO gave one
    photo_urls: list[str]  # primary image first, at most MAX_OBSERVATION_PHOTOS


class MoResolver:
    def __init__(self, settings: Settings, fetcher: ImageFetcher):
        self.api_url = settings.mo_api_url.rstrip("/") + "/"
        self.hosts = mo_hosts(settings.mo_api_url)
        self.fetcher = fetcher
        self._limiter = RateLimiter(settings.mo_request_interval)  # polite to MO, shared by threads

    def link(self, text: str, bare_id_is_observation: bool = False) -> MoLink | None:
        return parse_mo_link(text, self.hosts, bare_id_is_observation)

    def photo_url(self, link: MoLink) -> str:
        """The one image file a link stands for (an observation: its primary photo)."""
        if link.kind is MoKind.IMAGE_FILE:
            return link.wanted_file_url()
        if link.kind is MoKind.IMAGE_PAGE:
            return self._image_file(self._record("images", link.id), link.id)
        return self.observation(link).photo_urls[0]

    def observation(self, link: MoLink) -> MoObservation:
        if link.kind is not MoKind.OBSERVATION:
            raise InvalidInput("This Mushroom Observer link is not an observation.")
        record = self._record("observations", link.id)
        images = [record.get("primary_image"), *(record.get("images") or [])]
        urls: list[str] = []
        seen: set[object] = set()
        for image in images:
            if not isinstance(image, dict) or image.get("id") in seen:
                continue
            seen.add(image.get("id"))
            url = pick_file_url(image)
            if url:
                urls.append(urljoin(self.api_url, url))
        if not urls:
            raise NotFound(f"Mushroom Observer observation {link.id} has no photo.")
        consensus = record.get("consensus")
        name = consensus.get("name") if isinstance(consensus, dict) else None
        return MoObservation(link.id, str(name) if name else None, urls[:MAX_OBSERVATION_PHOTOS])

    # --- api2 ----------------------------------------------------------------------------
    def _image_file(self, record: dict[str, Any], image_id: int) -> str:
        url = pick_file_url(record)
        if not url:
            raise NotFound(f"Mushroom Observer image {image_id} has no file.")
        return urljoin(self.api_url, url)

    def _record(self, kind: str, record_id: int) -> dict[str, Any]:
        query = urlencode({"id": record_id, "detail": "high", "format": "json"})
        body = self._get_json(urljoin(self.api_url, f"api2/{kind}?{query}"))
        results = body.get("results") or []
        if not results or not isinstance(results[0], dict):
            raise NotFound(f"Mushroom Observer has no {kind[:-1]} {record_id}.")
        return results[0]

    def _get_json(self, url: str) -> dict[str, Any]:
        self._limiter.wait()
        try:
            data = self.fetcher.fetch(url).data
        except RemoteNotFound as exc:
            raise NotFound(f"Mushroom Observer does not know this record ({exc.detail})") from exc
        try:
            body = json.loads(data)
        except ValueError as exc:
            raise RemoteFailed("Mushroom Observer answered without JSON.") from exc
        if not isinstance(body, dict):
            raise RemoteFailed("Mushroom Observer answered without a JSON object.")
        errors = [e for e in body.get("errors") or [] if isinstance(e, dict)]
        fatal = [e for e in errors if str(e.get("fatal")).lower() == "true"]
        if fatal:
            details = "; ".join(str(e.get("details") or e.get("code") or "") for e in fatal)[:300]
            if any("NotFound" in str(e.get("code", "")) for e in fatal):
                raise NotFound(f"Mushroom Observer: {details}")
            raise RemoteFailed(f"Mushroom Observer refused the query: {details}")
        return body
