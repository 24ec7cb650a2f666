"""What serving and evaluation need of a classifier: ``Classifier`` (ONNX Runtime) has it,
and so do the unit tests' stubs. NumPy only, like everything serving imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class OpenSetThreshold:
    """A version's open-set method and the score above which an image is not recognised."""

    method: str
    threshold: float
    keep_rate: float


@dataclass(frozen=True)
class DriftReference:
    """What live traffic is compared with: the version's held-out photos of its own species,
    as training saw them (their calibrated top probabilities and open-set scores)."""

    top_probabilities: np.ndarray
    open_set_scores: np.ndarray | None  # None: the version has no open-set score
    rejected_share: float | None  # of those photos above the open-set threshold

    @classmethod
    def from_meta(cls, meta: dict[str, object]) -> DriftReference | None:
        stored = meta.get("drift_reference")
        if not isinstance(stored, dict) or not stored.get("top_probabilities"):
            return None
        scores = stored.get("open_set_scores")
        open_set = meta.get("open_set")
        rejected = open_set.get("validation_rejected") if isinstance(open_set, dict) else None
        return cls(
            np.asarray(stored["top_probabilities"], dtype=np.float64),
            np.asarray(scores, dtype=np.float64) if scores else None,
            float(rejected) if rejected is not None else None,
        )


@dataclass(frozen=True)
class ScoredBatch:
    probabilities: np.ndarray  # (N, n_species)
    open_set_scores: np.ndarray | None  # (N,); None: the version has no open-set score


class ClassifierLike(Protocol):
    labels: list[str]
    image_size: int
    open_set: OpenSetThreshold | None  # None: this version answers without an open-set verdict
    drift_reference: DriftReference | None  # None: trained before the monitor compared traffic

    @property
    def version(self) -> str | None:
        """The registry version, when the model came from the registry."""

    def preprocess(self, image: Image.Image) -> np.ndarray: ...

    def predict_batch(self, batch: np.ndarray) -> np.ndarray: ...

    def predict_scored(self, batch: np.ndarray) -> ScoredBatch: ...
