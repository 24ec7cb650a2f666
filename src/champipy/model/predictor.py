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
class ScoredBatch:
    probabilities: np.ndarray  # (N, n_species)
    open_set_scores: np.ndarray | None  # (N,); None: the version has no open-set score


class ClassifierLike(Protocol):
    labels: list[str]
    image_size: int
    open_set: OpenSetThreshold | None  # None: this version answers without an open-set verdict

    @property
    def version(self) -> str | None:
        """The registry version, when the model came from the registry."""

    def preprocess(self, image: Image.Image) -> np.ndarray: ...

    def predict_batch(self, batch: np.ndarray) -> np.ndarray: ...

    def predict_scored(self, batch: np.ndarray) -> ScoredBatch: ...
