"""The storage ports, one per aggregate; ``Store`` (in ``base``) is all of them together.

A service that needs only part of the store is typed against the port it uses, so a test can
hand it a small fake, and a reader sees at once what the service can touch.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import Any

from .records import (
    ApiToken,
    Event,
    ImageRecord,
    Job,
    JobState,
    LabelSource,
    NewImage,
    NewObservation,
    NewPrediction,
    Observation,
    Prediction,
    SpeciesCount,
    User,
)


class Lifecycle(ABC):
    """The connection itself."""

    @abstractmethod
    def ping(self) -> bool:
        """True when the database answers; never raises."""

    @abstractmethod
    def close(self) -> None: ...


class UserRepository(ABC):
    """Accounts and their API tokens."""

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

    @abstractmethod
    def add_token(self, username: str, name: str, token_hash: str, expires_at: datetime | None = None) -> ApiToken:
        """Raises Conflict when the hash is taken."""

    @abstractmethod
    def get_token_by_hash(self, token_hash: str) -> ApiToken | None: ...

    @abstractmethod
    def list_tokens(self, username: str) -> list[ApiToken]:
        """Newest first."""

    @abstractmethod
    def revoke_token(self, username: str, token_id: str) -> bool:
        """False when the user has no such token."""


class ImageRepository(ABC):
    """Images kept for training, stored once by SHA-256."""

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
        """The ``limit`` images to train on: confirmed first, then imported, then predicted,
        most recent first within each."""

    @abstractmethod
    def species_counts(self) -> list[SpeciesCount]:
        """Per label of the stored images, by name: how many are confirmed, predicted, imported."""


class PredictionRepository(ABC):
    """Every prediction served, and the experts' feedback on them."""

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
    def recent_predictions(self, limit: int, username: str | None = None) -> list[Prediction]:
        """Newest first."""

    @abstractmethod
    def set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        """Raises NotFound for an unknown prediction."""

    @abstractmethod
    def record_feedback(
        self, prediction_id: str, species: str, username: str, image: NewImage | None = None
    ) -> Prediction:
        """An expert's answer, written at once: the prediction's image gets ``species`` as a
        CONFIRMED label (stored from ``image`` when it is not stored yet) and the prediction
        its feedback.

        ``image``, when given, must be the prediction's image (same SHA-256, else ValueError);
        its label and source are replaced by the confirmed ones. Raises NotFound, changing
        nothing, for an unknown prediction, or when its image is neither stored nor given.
        """

    @abstractmethod
    def count_predictions(self) -> int: ...


class ObservationRepository(ABC):
    """Finds identified from several photos at once."""

    @abstractmethod
    def add_observation(self, observation: NewObservation) -> Observation: ...

    @abstractmethod
    def get_observation(self, observation_id: str) -> Observation | None:
        """None also for an id this backend could never have made."""

    @abstractmethod
    def recent_observations(self, limit: int, username: str | None = None) -> list[Observation]:
        """Newest first; only ``username``'s when given."""


class ParameterRepository(ABC):
    """Named string values that outlive a process (e.g. when the serving model was promoted)."""

    @abstractmethod
    def get_parameter(self, name: str) -> str | None: ...

    @abstractmethod
    def set_parameter(self, name: str, value: str) -> None: ...


class JobRepository(ABC):
    """Background jobs, and the append-only events (promotions, monitor checks)."""

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
        every update refreshes heartbeat_at (see ``rules.job_update``). Raises NotFound for an
        unknown job."""

    @abstractmethod
    def get_job(self, job_id: str) -> Job | None: ...

    @abstractmethod
    def list_jobs(self, limit: int = 50, state: JobState | None = None) -> list[Job]:
        """Most recent first."""

    @abstractmethod
    def add_event(self, kind: str, payload: dict[str, Any]) -> Event: ...

    @abstractmethod
    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        """Most recent first."""
