"""Export a trained model to one self-contained ONNX file that outputs calibrated
probabilities (temperature and mirror averaging inside the graph) and, when the model has one,
its open-set score (a second output, its statistics stored as initialisers), plus metadata.

The export is checked: ONNX Runtime must reproduce torch's outputs to within 1e-4 (relative,
for the score), otherwise ``ExportMismatch`` is raised and nothing should be registered. A model
whose backbone is INT8 (model/quantise.py) serves the quantised feature graph its head was
fitted on (model/int8_export.py), checked against that graph followed by torch's head.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from .. import __version__
from ..artifacts import META_FILE, MODEL_FILE
from ..errors import ChampipyError
from . import onnx_graph
from .backbone import SpeciesNet
from .classifier import Classifier
from .int8_export import ServingHead, join, reference_outputs
from .open_set import OpenSetScore
from .preprocess import PREPROCESSING
from .torch_export import export_onnx
from .train import TrainedModel

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
OPEN_SET_OUTPUT = "open_set_score"
PARITY_TOLERANCE = 1e-4


class ExportMismatch(ChampipyError):
    code, status = "export_mismatch", 500


class ServingGraph(nn.Module):
    """image -> features (mean over the image and its mirror) -> logits -> softmax(logits / T),
    and the open-set score of (features, logits) when the model has one."""

    def __init__(self, model: SpeciesNet, temperature: float, flip_tta: bool, open_set: OpenSetScore | None = None):
        super().__init__()
        self.model = model
        self.flip_tta = flip_tta
        self.open_set = open_set
        self.register_buffer("inverse_temperature", torch.tensor(1.0 / temperature, dtype=torch.float32))

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.flip_tta:
            features = self.model.features(torch.cat([image, image.flip(-1)], dim=0))
            # rows [0, n) are the images, [n, 2n) their mirrors; n is dynamic in the graph. The
            # head is linear, so its logits of the mean features are the mean of the logits.
            features = features.reshape(2, -1, features.shape[-1]).mean(dim=0)
        else:
            features = self.model.features(image)
        logits = self.model.head(features)
        probabilities = torch.softmax(logits * self.inverse_temperature, dim=-1)
        if self.open_set is None:
            return probabilities
        return probabilities, self.open_set(features, logits)


def serving_module(trained: TrainedModel) -> ServingGraph:
    return ServingGraph(trained.model, trained.temperature, trained.config.flip_tta, trained.open_set).eval()


def metadata(trained: TrainedModel) -> dict[str, Any]:
    return {
        "labels": list(trained.labels),
        "image_size": trained.image_size,
        "backbone": trained.backbone,
        "temperature": trained.temperature,
        "flip_tta": trained.config.flip_tta,
        "int8": trained.int8_features is not None,  # the backbone quantised (model/quantise.py)
        "input": INPUT_NAME,
        "output": OUTPUT_NAME,
        "opset": OPSET,
        "preprocessing": {**PREPROCESSING, "image_size": trained.image_size, "mean": 127.5, "std": 127.5},
        "champipy_version": __version__,
        "metrics": {k: v for k, v in trained.metrics.items() if k.startswith("val_")},
        "open_set": (
            {**trained.open_set_fit.to_meta(), "output": OPEN_SET_OUTPUT} if trained.open_set_fit is not None else None
        ),
        "drift_reference": trained.reference,
    }


def export_serving_model(
    trained: TrainedModel, directory: Path | str, sample: np.ndarray | None = None, *, fold_padding: bool = True
) -> Path:
    """Write ``model.onnx`` and ``champipy_model.json`` into ``directory`` and check parity
    on ``sample`` (N, 3, H, W) inputs (random ones when not given). Returns the directory.

    ``fold_padding`` (model/onnx_graph.py) puts the "SAME" pads into the convolutions;
    off only to measure what that saves (bench/bench_inference.py)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if trained.int8_features is not None:
        return _export_int8(trained, directory, sample)
    module = serving_module(trained)
    size = trained.image_size
    example = torch.zeros(2, 3, size, size)
    outputs = [OUTPUT_NAME] + ([OPEN_SET_OUTPUT] if trained.open_set is not None else [])
    export_onnx(module, example, directory / MODEL_FILE, [INPUT_NAME], outputs, OPSET)
    if fold_padding:
        onnx_graph.fold_padding(directory / MODEL_FILE)
    (directory / META_FILE).write_text(json.dumps(metadata(trained), indent=2))
    check_parity(module, directory, sample)
    return directory


def _export_int8(trained: TrainedModel, directory: Path, sample: np.ndarray | None) -> Path:
    """The INT8 feature graph the head was fitted on, joined to the float head
    (model/int8_export.py), checked against that graph followed by torch's head."""
    assert trained.int8_features is not None
    head = ServingHead(trained.model, trained.temperature, trained.config.flip_tta, trained.open_set).eval()
    outputs = [OUTPUT_NAME] + ([OPEN_SET_OUTPUT] if trained.open_set is not None else [])
    onnx.save(join(trained.int8_features, head, trained.image_size, INPUT_NAME, outputs), str(directory / MODEL_FILE))
    (directory / META_FILE).write_text(json.dumps(metadata(trained), indent=2))
    sample = _parity_sample(trained.image_size) if sample is None else sample
    expected = reference_outputs(trained.int8_features, head, sample)
    compare(Classifier.load(directory), sample, expected, "the INT8 feature graph and torch's head")
    return directory


def _parity_sample(size: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, size=(3, 3, size, size)).astype(np.float32)


def check_parity(module: ServingGraph, directory: Path, sample: np.ndarray | None = None) -> float:
    """Max |onnx - torch| over the sample (the open-set score relative to its magnitude);
    raises ExportMismatch above the tolerance."""
    classifier = Classifier.load(directory)
    sample = _parity_sample(classifier.image_size) if sample is None else sample
    with torch.no_grad():
        expected = module(torch.from_numpy(sample))
    return compare(
        classifier, sample, [t.numpy() for t in expected] if isinstance(expected, tuple) else [expected.numpy()]
    )


def compare(classifier: Classifier, sample: np.ndarray, expected: list[np.ndarray], reference: str = "torch") -> float:
    """Max difference between what ``classifier`` answers for ``sample`` and ``expected`` (the
    probabilities, then the open-set scores when there are any), the scores relative to their
    magnitude; raises ExportMismatch above the tolerance."""
    expected_probabilities, expected_scores = expected[0], (expected[1] if len(expected) > 1 else None)
    got = classifier.predict_scored(sample)
    difference = float(np.abs(expected_probabilities - got.probabilities).max())
    if (expected_scores is None) != (got.open_set_scores is None):
        raise ExportMismatch(f"The exported model and {reference} disagree on having an open-set score.")
    if expected_scores is not None and got.open_set_scores is not None:
        relative = np.abs(expected_scores - got.open_set_scores) / np.maximum(np.abs(expected_scores), 1.0)
        difference = max(difference, float(relative.max()))
    if not difference < PARITY_TOLERANCE:
        raise ExportMismatch(
            f"ONNX Runtime and {reference} disagree by {difference:.2e} (tolerance {PARITY_TOLERANCE:g})."
        )
    return difference
