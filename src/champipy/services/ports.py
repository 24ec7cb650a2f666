"""The small interfaces services are given instead of the whole container."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from ..store.base import Job, Prediction

if TYPE_CHECKING:
    from ..fetch import FetchedImage


class JobSubmitter(Protocol):
    """Queues a background job (``jobs.JobRunner``); the job runs in a consumer, maybe elsewhere."""

    def submit(self, kind: str, params: dict[str, Any] | None = None, username: str | None = None) -> Job: ...


class ImageFetcher(Protocol):
    """Downloads an image by URL within the service's limits (``fetch.SafeFetcher``)."""

    def fetch(self, url: str) -> FetchedImage: ...


class PredictionObserver(Protocol):
    """Told of every answered prediction (the API's Prometheus metrics)."""

    def on_prediction(self, prediction: Prediction) -> None: ...


class AlertSender(Protocol):
    """Delivers an alert; best effort, True when it was delivered."""

    def __call__(self, payload: dict[str, Any]) -> bool: ...
