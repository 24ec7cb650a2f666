"""What serving and evaluation need of a classifier: ``Classifier`` (ONNX Runtime) has it,
and so do the unit tests' stubs. NumPy only, like everything serving imports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np
from PIL import Image

if TYPE_CHECKING:
    from .classifier import OpenSetThreshold, ScoredBatch


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
