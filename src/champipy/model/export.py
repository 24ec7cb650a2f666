"""Export a trained model to one self-contained ONNX file that outputs calibrated
probabilities (temperature and mirror averaging inside the graph), plus its metadata.

The export is checked: ONNX Runtime must reproduce torch's probabilities to within 1e-4,
otherwise ``ExportMismatch`` is raised and nothing should be registered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..artifacts import META_FILE, MODEL_FILE
from ..errors import ChampipyError
from .backbone import SpeciesNet
from .classifier import Classifier
from .onnx_warnings import known_export_warnings_silenced
from .preprocess import PREPROCESSING
from .train import TrainedModel

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
PARITY_TOLERANCE = 1e-4


class ExportMismatch(ChampipyError):
    code, status = "export_mismatch", 500


class CalibratedProbabilities(nn.Module):
    """logits -> (mean over the image and its mirror) -> softmax(logits / T)."""

    def __init__(self, model: SpeciesNet, temperature: float, flip_tta: bool):
        super().__init__()
        self.model = model
        self.flip_tta = flip_tta
        self.register_buffer("inverse_temperature", torch.tensor(1.0 / temperature, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if self.flip_tta:
            logits = self.model(torch.cat([image, image.flip(-1)], dim=0))
            # rows [0, n) are the images, [n, 2n) their mirrors; n is dynamic in the graph
            logits = logits.reshape(2, -1, logits.shape[-1]).mean(dim=0)
        else:
            logits = self.model(image)
        return torch.softmax(logits * self.inverse_temperature, dim=-1)


def serving_module(trained: TrainedModel) -> CalibratedProbabilities:
    return CalibratedProbabilities(trained.model, trained.temperature, trained.config.flip_tta).eval()


def metadata(trained: TrainedModel) -> dict[str, Any]:
    return {
        "labels": list(trained.labels),
        "image_size": trained.image_size,
        "backbone": trained.backbone,
        "temperature": trained.temperature,
        "flip_tta": trained.config.flip_tta,
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "opset": OPSET,
        "preprocessing": {**PREPROCESSING, "image_size": trained.image_size, "mean": 127.5, "std": 127.5},
        "champipy_version": __version__,
        "metrics": {k: v for k, v in trained.metrics.items() if k.startswith("val_")},
    }


def export_serving_model(trained: TrainedModel, directory: Path | str, sample: np.ndarray | None = None) -> Path:
    """Write ``model.onnx`` and ``champipy_model.json`` into ``directory`` and check parity
    on ``sample`` (N, 3, H, W) inputs (random ones when not given). Returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    module = serving_module(trained)
    size = trained.image_size
    example = torch.zeros(2, 3, size, size)
    with torch.no_grad(), known_export_warnings_silenced():
        torch.onnx.export(
            module,
            (example,),
            str(directory / MODEL_FILE),
            dynamo=False,
            opset_version=OPSET,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    (directory / META_FILE).write_text(json.dumps(metadata(trained), indent=2))
    check_parity(module, directory, sample)
    return directory


def check_parity(module: nn.Module, directory: Path, sample: np.ndarray | None = None) -> float:
    """Max |p_onnx - p_torch| over the sample; raises ExportMismatch above the tolerance."""
    classifier = Classifier.load(directory)
    if sample is None:
        rng = np.random.default_rng(0)
        size = classifier.image_size
        sample = rng.uniform(-1, 1, size=(3, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = module(torch.from_numpy(sample)).numpy()
    got = classifier.predict_batch(sample)
    difference = float(np.abs(expected - got).max())
    if not difference < PARITY_TOLERANCE:
        raise ExportMismatch(f"ONNX Runtime and torch disagree by {difference:.2e} (tolerance {PARITY_TOLERANCE:g}).")
    return difference
