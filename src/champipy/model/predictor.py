"""What serving and evaluation need of a classifier: ``Classifier`` (ONNX Runtime) has it,
and so do the unit tests' stubs. NumPy only, like everything serving imports."""

from __future__ import annotations

from typing import Protocol

import numpy as np
from PIL import Image


class ClassifierLike(Protocol):
    labels: list[str]
    image_size: int

    @property
    def version(self) -> str | None:
        """The registry version, when the model came from the registry."""

    def preprocess(self, image: Image.Image) -> np.ndarray: ...

    def predict_batch(self, batch: np.ndarray) -> np.ndarray: ...
