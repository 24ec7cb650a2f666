"""The records the store reads and writes: plain frozen dataclasses, no database types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def utcnow() -> datetime:
    return datetime.now(UTC)


class LabelSource(StrEnum):
    IMPORTED = "imported"
    PREDICTED = "predicted"
    CONFIRMED = "confirmed"


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
    # A predicted label's probability under the version that predicted it; None otherwise.
    label_probability: float | None = None


@dataclass(frozen=True)
class ImageRecord:
    """An image's metadata; its bytes come from ``ImageRepository.get_image_bytes``."""

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
    label_probability: float | None = None  # predicted labels only: how sure the model was


@dataclass(frozen=True)
class SpeciesCount:
    """How many stored photos carry a label, by where the label came from."""

    species: str
    confirmed: int = 0
    predicted: int = 0
    imported: int = 0

    @property
    def curated(self) -> int:
        """Photos whose label a person gave: an expert's feedback or an imported folder."""
        return self.confirmed + self.imported


@dataclass(frozen=True)
class SpeciesScore:
    species: str
    probability: float


@dataclass(frozen=True)
class OpenSetVerdict:
    """The open-set score of one image under one model version, and that version's threshold:
    above it, the image is not one of the species the model knows."""

    score: float
    threshold: float

    @property
    def recognised(self) -> bool:
        return self.score <= self.threshold


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
    open_set: OpenSetVerdict | None = None  # None: the version has no open-set score


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


@dataclass(frozen=True)
class NewObservation:
    """One find seen in several photos: its photos' predictions and their combined answer."""

    username: str
    prediction_ids: tuple[str, ...]  # one per photo, in the order given
    results: tuple[SpeciesScore, ...]  # combined, every species, most probable first
    model_name: str
    model_version: str
    recognised: bool | None = None  # any photo recognised; None: the version has no open-set score
    mo_observation_id: int | None = None
    mo_consensus: str | None = None  # the Mushroom Observer community's name, when MO gave one


@dataclass(frozen=True)
class Observation(NewObservation):
    id: str = ""
    created_at: datetime = field(default_factory=utcnow)
