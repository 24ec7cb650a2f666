"""The served graph of a model whose backbone is INT8 (model/quantise.py).

Training fitted the head on the features of one quantised graph; serving must run exactly that
graph, so the served ONNX file is built around it rather than exported again from torch:

    image -> [image, its mirror] -> the INT8 feature graph -> mean over the mirror -> float head
          -> softmax(logits / T), and the open-set score of (features, logits)

The two float ends are exported from torch (``MirrorBatch``, ``ServingHead``) and joined to the
feature graph with ``onnx.compose``. The check runs the feature graph alone, then the head in
torch, and must match the joined file to within the export's tolerance: it proves the joining,
while the quantisation itself was measured once (bench/bench_int8.py) and is what training saw.
"""

from __future__ import annotations

import io

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import compose
from torch import nn

from .backbone import SpeciesNet
from .open_set import OpenSetScore
from .torch_export import export_onnx

FEATURES = "features"


class MirrorBatch(nn.Module):
    """(N, 3, H, W) -> (2N, 3, H, W): the images, then their mirrors."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.cat([image, image.flip(-1)], dim=0)


class ServingHead(nn.Module):
    """Features -> calibrated probabilities (and the open-set score); with ``flip_tta`` the
    features are (2N, D), the images' then their mirrors', and are averaged first."""

    def __init__(self, model: SpeciesNet, temperature: float, flip_tta: bool, open_set: OpenSetScore | None):
        super().__init__()
        self.head = model.head
        self.flip_tta = flip_tta
        self.open_set = open_set
        self.register_buffer("inverse_temperature", torch.tensor(1.0 / temperature, dtype=torch.float32))

    def forward(self, features: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        if self.flip_tta:
            features = features.reshape(2, -1, features.shape[-1]).mean(dim=0)
        logits = self.head(features)
        probabilities = torch.softmax(logits * self.inverse_temperature, dim=-1)
        if self.open_set is None:
            return probabilities
        return probabilities, self.open_set(features, logits)


def _to_onnx(
    module: nn.Module, example: torch.Tensor, inputs: list[str], outputs: list[str], opset: int
) -> onnx.ModelProto:
    buffer = io.BytesIO()
    export_onnx(module.eval(), example, buffer, inputs, outputs, opset)
    return onnx.load_from_string(buffer.getvalue())


def _opset(model: onnx.ModelProto) -> int:
    return next(entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx"))


def join(
    int8_features: bytes, head: ServingHead, image_size: int, input_name: str, output_names: list[str]
) -> onnx.ModelProto:
    """The served model: [mirror batching ->] the INT8 feature graph -> ``head``. Each part's
    inner names get a prefix (torch names its constants alike in every export)."""
    backbone = onnx.load_from_string(int8_features)
    opset = _opset(backbone)
    tail = compose.add_prefix(
        _to_onnx(head, torch.zeros(2, head.head.in_features), [FEATURES], output_names, opset),
        "head/",
        rename_inputs=False,
        rename_outputs=False,
    )
    if head.flip_tta:
        front = compose.add_prefix(
            _to_onnx(MirrorBatch(), torch.zeros(1, 3, image_size, image_size), [input_name], ["mirrored"], opset),
            "mirror/",
            rename_inputs=False,
            rename_outputs=False,
        )
        body = compose.merge_models(
            front, compose.add_prefix(backbone, "backbone/"), io_map=[("mirrored", "backbone/image")]
        )
    else:
        body = compose.add_prefix(backbone, "backbone/", rename_inputs=False)  # its input is the model's
    joined = compose.merge_models(body, tail, io_map=[(f"backbone/{FEATURES}", FEATURES)])
    onnx.checker.check_model(joined)
    return joined


def reference_outputs(int8_features: bytes, head: ServingHead, sample: np.ndarray) -> list[np.ndarray]:
    """What the joined graph must answer for ``sample``: the feature graph alone on the images
    (and their mirrors), then the head in torch."""
    session = ort.InferenceSession(int8_features, providers=["CPUExecutionProvider"])
    views = [sample, np.ascontiguousarray(sample[..., ::-1])] if head.flip_tta else [sample]
    features = np.concatenate([session.run(None, {"image": view})[0] for view in views])
    with torch.no_grad():
        found = head(torch.from_numpy(features))
    return [t.numpy() for t in found] if isinstance(found, tuple) else [found.numpy()]
