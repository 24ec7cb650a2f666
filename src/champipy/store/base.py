"""The storage port: one facade over six repositories, four backends (SQLite, PostgreSQL,
MongoDB+GridFS, and an in-memory fake for unit tests).

Services see ``Store`` (or only the repository port they use, from ``ports``) and the records
below. Backends raise ``StoreUnavailable`` when the database cannot be reached and
``Conflict`` on duplicate keys.
"""

from __future__ import annotations

from .ports import (
    ImageRepository,
    JobRepository,
    Lifecycle,
    ObservationRepository,
    ParameterRepository,
    PredictionRepository,
    UserRepository,
)
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
    OpenSetVerdict,
    Prediction,
    Role,
    SpeciesCount,
    SpeciesScore,
    User,
    utcnow,
)
from .rules import LABEL_PRIORITY

__all__ = [
    "LABEL_PRIORITY",
    "ApiToken",
    "Event",
    "ImageRecord",
    "ImageRepository",
    "Job",
    "JobRepository",
    "JobState",
    "LabelSource",
    "Lifecycle",
    "NewImage",
    "NewObservation",
    "NewPrediction",
    "Observation",
    "ObservationRepository",
    "OpenSetVerdict",
    "ParameterRepository",
    "Prediction",
    "PredictionRepository",
    "Role",
    "SpeciesCount",
    "SpeciesScore",
    "Store",
    "User",
    "UserRepository",
    "utcnow",
]


class Store(
    Lifecycle,
    UserRepository,
    ImageRepository,
    PredictionRepository,
    ObservationRepository,
    ParameterRepository,
    JobRepository,
):
    """Everything ChampiPy persists: every repository port, over one database."""
