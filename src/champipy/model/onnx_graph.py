"""Graph passes on the exported ONNX model, applied before it is checked and registered.

TensorFlow "SAME" padding (model/backbone.py) is asymmetric for stride 2, so torch exports a
separate zero ``Pad`` before 17 of the convolutions, and ONNX Runtime runs each as its own
memory pass. An ONNX ``Conv`` takes asymmetric ``pads`` itself, so those pads can live in the
convolution. Two steps:

1. ONNX Runtime's basic optimisations (constant folding and other semantics-preserving,
   standard-ONNX rewrites) turn the exported shape arithmetic that computes each pad into a
   constant;
2. every zero, spatial-only ``Pad`` whose one consumer is a ``Conv`` is folded into it.

The export's parity check then runs on the folded graph, so a wrong fold cannot be registered.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper


def basic_optimised(path: Path) -> onnx.ModelProto:
    """The model after ONNX Runtime's basic (portable, standard-ONNX) graph optimisations."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    with tempfile.TemporaryDirectory() as tmp:
        options.optimized_model_filepath = str(Path(tmp) / "basic.onnx")
        ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        return onnx.load(options.optimized_model_filepath)


def _attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return default


def _zero_spatial_pads(pad: onnx.NodeProto, constants: dict[str, np.ndarray]) -> list[int] | None:
    """(top, left, bottom, right) of an NCHW zero Pad that leaves N and C alone, else None."""
    if _attribute(pad, "mode", b"constant") not in (b"constant", "constant") or pad.input[1] not in constants:
        return None
    if len(pad.input) > 2 and pad.input[2]:
        value = constants.get(pad.input[2])
        if value is None or np.any(value != 0):
            return None
    if len(pad.input) > 3 and pad.input[3]:  # axes: only the plain 8-value form is folded
        return None
    pads = [int(v) for v in constants[pad.input[1]].reshape(-1)]
    if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or any(v < 0 for v in pads):
        return None
    return [pads[2], pads[3], pads[6], pads[7]]


def fold_pads_into_convs(model: onnx.ModelProto) -> int:
    """Fold each foldable Pad into the Conv it feeds, in place; returns how many were folded."""
    graph = model.graph
    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {output.name for output in graph.output}
    folded: list[onnx.NodeProto] = []
    for pad in [node for node in graph.node if node.op_type == "Pad"]:
        users = consumers.get(pad.output[0], [])
        if len(users) != 1 or users[0].op_type != "Conv" or pad.output[0] in outputs:
            continue
        conv, extra = users[0], _zero_spatial_pads(pad, constants)
        if extra is None or conv.input[0] != pad.output[0]:
            continue
        if _attribute(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            continue
        own = [int(v) for v in _attribute(conv, "pads", None) or (0, 0, 0, 0)]
        merged = [a + b for a, b in zip(own, extra, strict=True)]
        kept = [a for a in conv.attribute if a.name != "pads"]
        del conv.attribute[:]
        conv.attribute.extend([*kept, helper.make_attribute("pads", merged)])
        conv.input[0] = pad.input[0]
        folded.append(pad)
    for pad in folded:
        graph.node.remove(pad)
    used = {name for node in graph.node for name in node.input}
    unused = [init for init in graph.initializer if init.name not in used]
    for init in unused:
        graph.initializer.remove(init)
    return len(folded)


def fold_padding(path: Path) -> int:
    """Rewrite the ONNX file at ``path`` with its pads folded; returns how many were."""
    model = basic_optimised(path)
    count = fold_pads_into_convs(model)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return count
