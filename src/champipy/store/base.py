"""The storage port: one interface, three backends (SQLite, PostgreSQL, MongoDB+GridFS).

Services only ever see ``Store`` and the records below. Backends raise ``StoreUnavailable``
when the database cannot be reached and ``Conflict`` on duplicate keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class LabelSource(StrEnum):
    IMPORTED = "imported"
    PREDICTED = "predicted"
    CONFIRMED = "confirmed"


# Retraining takes confirmed labels first, then predicted, then imported.
LABEL_PRIORITY = {LabelSource.CONFIRMED: 0, LabelSource.PREDICTED: 1, LabelSource.IMPORTED: 2}


class Role(StrEnum):
    USER = "user"
    ADMIN = "admin"


@dataclass(frozen=True)
class User:
    username: str
    password_hash: str
    roles: tuple[str, ...]
    disabled: bool = False
    created_at: datetime = field(default_factory=utcnow)

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles


@dataclass(frozen=True)
class ApiToken:
    id: str
    username: str
    name: str
    token_hash: str  # SHA-256 hex of the secret; the secret itself is never stored
    created_at: datetime
    revoked: bool = False
    expires_at: datetime | None = None  # None: until revoked

    def is_expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class NewImage:
    sha256: str
    data: bytes
    label: str
    label_source: LabelSource
    source_url: str | None = None
    filename: str | None = None
    username: str | None = None
    license: str | None = None
    copyright: str | None = None


@dataclass(frozen=True)
class ImageRecord:
    """An image's metadata; its bytes come from ``Store.get_image_bytes``."""

    sha256: str
    label: str
    label_source: LabelSource
    source_url: str | None
    filename: str | None
    username: str | None
    created_at: datetime
    size: int
    license: str | None = None
    copyright: str | None = None


@dataclass(frozen=True)
class SpeciesScore:
    species: str
    probability: float


@dataclass(frozen=True)
class NewPrediction:
    username: str
    image_sha256: str
    model_name: str
    model_version: str
    results: tuple[SpeciesScore, ...]  # every species, most probable first
    source_url: str | None = None
    filename: str | None = None
    cached: bool = False
    latency_ms: float | None = None


@dataclass(frozen=True)
class Prediction(NewPrediction):
    id: str = ""
    created_at: datetime = field(default_factory=utcnow)
    feedback_species: str | None = None
    feedback_username: str | None = None
    feedback_at: datetime | None = None


@dataclass(frozen=True)
class Event:
    """An append-only record: model promotions, monitor checks."""

    kind: str
    payload: dict[str, Any]
    created_at: datetime


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Job:
    """A background job (fine-tune, retrain, evaluation, monitor) as users see it."""

    id: str
    kind: str
    params: dict[str, Any]
    state: JobState
    username: str | None
    created_at: datetime
    progress: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None  # a running job whose heartbeat stops was killed


class Store(ABC):
    """Everything ChampiPy persists."""

    # --- lifecycle -------------------------------------------------------------------
    @abstractmethod
    def ping(self) -> bool:
        """True when the database answers; never raises."""

    @abstractmethod
    def close(self) -> None: ...

    # --- users -----------------------------------------------------------------------
    @abstractmethod
    def add_user(self, username: str, password_hash: str, roles: tuple[str, ...]) -> User:
        """Raises Conflict when the name is taken."""

    @abstractmethod
    def get_user(self, username: str) -> User | None: ...

    @abstractmethod
    def list_users(self) -> list[User]: ...

    @abstractmethod
    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        roles: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> User:
        """Raises NotFound for an unknown user."""

    # --- API tokens ------------------------------------------------------------------
    @abstractmethod
    def add_token(self, username: str, name: str, token_hash: str,
                  expires_at: datetime | None = None) -> ApiToken: ...

    @abstractmethod
    def get_token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    @abstractmethod
    def list_tokens(self, username: str) -> list[ApiToken]: ...

    @abstractmethod
    def revoke_token(self, username: str, token_id: str) -> bool:
        """False when the user has no such token."""

    # --- images ----------------------------------------------------------------------
    @abstractmethod
    def add_image(self, image: NewImage) -> bool:
        """Store once by SHA-256; False (and nothing changed) when already stored."""

    @abstractmethod
    def get_image(self, sha256: str) -> ImageRecord | None: ...

    @abstractmethod
    def get_image_bytes(self, sha256: str) -> bytes | None: ...

    @abstractmethod
    def set_image_label(self, sha256: str, label: str, source: LabelSource) -> None:
        """Raises NotFound when the image is not stored."""

    @abstractmethod
    def count_images(self, since: datetime | None = None) -> int: ...

    @abstractmethod
    def training_images(self, limit: int) -> list[ImageRecord]:
        """The ``limit`` images to train on: confirmed first, then predicted, then imported,
        most recent first within each."""

    # --- predictions -----------------------------------------------------------------
    @abstractmethod
    def add_prediction(self, prediction: NewPrediction) -> Prediction: ...

    @abstractmethod
    def get_prediction(self, prediction_id: str) -> Prediction | None:
        """None for unknown or malformed ids."""

    @abstractmethod
    def find_computed_prediction(self, image_sha256: str, model_version: str) -> Prediction | None:
        """The prediction computed (not served from cache) for this image and model version."""

    @abstractmethod
    def find_recent_url_image(self, source_url: str, since: datetime) -> str | None:
        """SHA-256 of the image last fetched from this URL after ``since``."""

    @abstractmethod
    def recent_predictions(self, limit: int, username: str | None = None) -> list[Prediction]: ...

    @abstractmethod
    def set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        """Raises NotFound for an unknown prediction."""

    @abstractmethod
    def count_predictions(self) -> int: ...

    # --- parameters and events ---------------------------------------------------------
    @abstractmethod
    def get_parameter(self, name: str) -> str | None: ...

    @abstractmethod
    def set_parameter(self, name: str, value: str) -> None: ...

    @abstractmethod
    def add_event(self, kind: str, payload: dict[str, Any]) -> Event: ...

    @abstractmethod
    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        """Most recent first."""

    # --- jobs ------------------------------------------------------------------------
    @abstractmethod
    def add_job(self, kind: str, params: dict[str, Any], username: str | None) -> Job:
        """A new job in state QUEUED with a fresh id."""

    @abstractmethod
    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        progress: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job:
        """Sets what is given; RUNNING sets started_at, SUCCEEDED/FAILED set finished_at, and
        every update refreshes heartbeat_at. Raises NotFound for an unknown job."""

    @abstractmethod
    def get_job(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def list_jobs(self, limit: int = 50, state: JobState | None = None) -> list[Job]:
        """Most recent first."""
