"""The serving classifier: an ONNX Runtime session, its species and its preprocessing.

No torch here (the serving process never imports it). The ONNX graph already outputs
calibrated probabilities and, for versions trained with one, the open-set score (a second
output; its threshold is in the metadata). ``predict_*`` may be called from several threads at
once: ORT sessions are thread-safe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from ..artifacts import META_FILE, MODEL_FILE
from ..errors import InvalidInput, ModelLoadFailed
from .predictor import DriftReference, OpenSetThreshold, ScoredBatch
from .preprocess import preprocess_image, preprocess_images


class Classifier:
    def __init__(self, session: ort.InferenceSession, meta: dict[str, Any]):
        self._session = session
        self.meta = meta
        self.labels: list[str] = list(meta["labels"])
        self.image_size: int = int(meta["image_size"])
        self._input = session.get_inputs()[0].name
        outputs = [output.name for output in session.get_outputs()]
        open_set = meta.get("open_set")
        self.open_set: OpenSetThreshold | None = None
        self._outputs = outputs[:1]  # the probabilities, then the open-set score when there is one
        if open_set and open_set.get("output") in outputs:
            self.open_set = OpenSetThreshold(open_set["method"], float(open_set["threshold"]), open_set["keep_rate"])
            self._outputs.append(open_set["output"])
        self.drift_reference = DriftReference.from_meta(meta)

    @property
    def version(self) -> str | None:
        """The registry version, when the model came from the registry."""
        return self.meta.get("version")

    @classmethod
    def load(cls, directory: Path | str, threads: int = 0, spinning: bool = True) -> Classifier:
        """Load ``model.onnx`` + ``champipy_model.json`` from ``directory``; ``threads`` is ORT's
        intra-op thread count (0: ORT decides), ``spinning`` whether its idle threads busy-wait
        for work (ORT's default). Raises ModelLoadFailed."""
        directory = Path(directory)
        try:
            meta = json.loads((directory / META_FILE).read_text())
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            session = ort.InferenceSession(
                str(directory / MODEL_FILE), sess_options=options, providers=["CPUExecutionProvider"]
            )
            classifier = cls(session, meta)
        except Exception as exc:  # ORT raises its own pybind classes; any failure means "not loadable"
            raise ModelLoadFailed(f"Cannot load the model in {directory}: {exc}") from exc
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(classifier.labels):
            raise ModelLoadFailed(f"The model outputs {n_out} classes but its metadata lists {len(classifier.labels)}.")
        return classifier

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """RGB Pillow image -> float32 (3, H, W), exactly as in training."""
        return preprocess_image(image, self.image_size)

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, 3, H, W) -> calibrated probabilities (N, n_species)."""
        return self.predict_scored(batch).probabilities

    def predict_scored(self, batch: np.ndarray) -> ScoredBatch:
        """float32 (N, 3, H, W) -> probabilities and open-set scores, in one run."""
        batch = np.asarray(batch, dtype=np.float32)
        expected = (3, self.image_size, self.image_size)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise InvalidInput(f"Expected a batch of shape (N, {', '.join(map(str, expected))}), got {batch.shape}.")
        if batch.shape[0] == 0:
            empty = np.zeros(0, dtype=np.float32) if self.open_set else None
            return ScoredBatch(np.zeros((0, len(self.labels)), dtype=np.float32), empty)
        outputs = self._session.run(self._outputs, {self._input: batch})
        return ScoredBatch(outputs[0], outputs[1] if self.open_set else None)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.predict_batch(preprocess_images(images, self.image_size))
