"""INT8 backbones: the frozen feature graph quantised once, before the head is fitted.

The fast path never changes the backbone, so it can quantise it first and fit the head, the
temperature and the open-set score on the quantised features: the head learns the features
serving will compute, and the served graph is that same quantised graph followed by the float
head (model/export.py joins them). Measured on the 1,000 training photos (bench/bench_int8.py,
3 seeds x 5 folds, lite0+lite2): CV top-1 0.9060 against 0.9083 in float (-0.23 points, paired
95% interval [-0.73, +0.17]), 2.15x faster (18.9 ms against 40.5 per photo and its mirror).

ONNX Runtime's static quantisation, QDQ format: weights int8 per output channel, activations
uint8 with MinMax ranges over the calibration photos (MinMax merges each few batches' ranges as
it goes, so its memory does not grow with the photos; the histogram calibrations keep every
activation and measured no better).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from .preprocess import scale_pixels

CALIBRATION_PHOTOS = 200  # a seeded sample of the training photos
# Calibration runs the graph with every tensor as an output (~100 MB a photo for lite0+lite2 at
# 260 px) and holds a few batches of them at a time: small batches bound that memory.
_BATCH = 2


class _Batches(CalibrationDataReader):
    def __init__(self, crops: np.ndarray):
        self._batches: Iterator[np.ndarray] = (
            scale_pixels(crops[start : start + _BATCH]) for start in range(0, len(crops), _BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {"image": batch}


def calibration_crops(
    crops: list[np.ndarray], seed: int, mirrored: bool, photos: int = CALIBRATION_PHOTOS
) -> np.ndarray:
    """uint8 (N, H, W, 3): a seeded sample of the training crops, with their mirror images when
    serving averages over the mirror (every input the served backbone sees)."""
    rng = np.random.default_rng(seed)
    chosen = [crops[i] for i in sorted(rng.choice(len(crops), min(photos, len(crops)), replace=False))]
    if mirrored:
        chosen += [np.ascontiguousarray(crop[:, ::-1]) for crop in chosen]
    return np.stack(chosen)


def quantise_feature_graph(
    float_graph: Path, out: Path, calibration: np.ndarray, method: CalibrationMethod = CalibrationMethod.MinMax
) -> Path:
    """Write the INT8 version of ``float_graph`` (input ``image``) to ``out``, its activation
    ranges taken from ``calibration`` (uint8 crops, N x H x W x 3) by ``method`` (the product
    uses MinMax; bench/bench_int8.py measures the others)."""
    with tempfile.TemporaryDirectory(prefix="champipy-quantise-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_graph), str(prepared))  # shapes and fused ops, as ORT advises
        quantize_static(
            str(prepared),
            str(out),
            _Batches(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=method,
            extra_options={"CalibMaxIntermediateOutputs": _merge_every(-(-len(calibration) // _BATCH))},
        )
    return out


def _merge_every(batches: int) -> int:
    """How many calibration batches MinMax holds before merging them into its ranges: a few, but
    never a divisor of ``batches`` (ORT then ends on an empty set and raises "No data is
    collected")."""
    return next((k for k in (2, 3, 5, 7) if batches % k), batches + 1)
