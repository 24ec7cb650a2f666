"""Folding the "SAME" pads into the convolutions leaves the exported graph's outputs as they
were, removes every zero Pad before a Conv, and leaves any other Pad alone."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torch.nn.functional as F
from torch import nn

from champipy.model.backbone import SameConv2d
from champipy.model.onnx_graph import fold_padding


class Padded(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = SameConv2d(3, 8, 3, 2, 32)  # stride 2 on an even size: pads (0, 1)
        self.depthwise = SameConv2d(8, 8, 5, 1, 16, groups=8)  # symmetric (2, 2)
        self.pointwise = SameConv2d(8, 4, 1, 1, 16)  # no padding at all

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pointwise(self.depthwise(self.stem(x)))
        return F.pad(x, (1, 1, 1, 1), mode="reflect")  # not zeros, feeds no Conv: stays


def export(module: nn.Module, path) -> None:
    torch.onnx.export(
        module,
        (torch.zeros(2, 3, 32, 32),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["image"],
        output_names=["out"],
        dynamic_axes={"image": {0: "batch"}, "out": {0: "batch"}},
    )


def ops(path) -> list[str]:
    return [node.op_type for node in onnx.load(str(path)).graph.node]


def run(path, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": x})[0]


def test_zero_pads_fold_into_their_convolutions_and_outputs_do_not_change(tmp_path):
    module = Padded().eval()
    path = tmp_path / "model.onnx"
    export(module, path)
    assert ops(path).count("Pad") == 3
    x = np.random.default_rng(0).normal(size=(3, 3, 32, 32)).astype(np.float32)
    before = run(path, x)

    assert fold_padding(path) == 2
    assert ops(path).count("Pad") == 1  # the reflect pad
    after = run(path, x)
    with torch.no_grad():
        expected = module(torch.from_numpy(x)).numpy()
    assert np.abs(after - before).max() < 1e-5 and np.abs(after - expected).max() < 1e-5
    pads = {
        node.name: [a.ints for a in node.attribute if a.name == "pads"]
        for node in onnx.load(str(path)).graph.node
        if node.op_type == "Conv"
    }
    assert [[0, 0, 1, 1]] in pads.values() and [[2, 2, 2, 2]] in pads.values()
