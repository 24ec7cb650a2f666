"""One way to turn a torch module into ONNX, for every graph ChampiPy exports: the legacy
exporter (dynamo=False, see onnx_warnings.py), named inputs and outputs, a dynamic batch axis."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from .onnx_warnings import known_export_warnings_silenced


def export_onnx(
    module: nn.Module,
    example: torch.Tensor,
    destination: Path | io.BytesIO,
    inputs: list[str],
    outputs: list[str],
    opset: int,
) -> None:
    """Trace ``module`` (already in eval mode) on ``example`` into ``destination``."""
    with torch.no_grad(), known_export_warnings_silenced():
        torch.onnx.export(
            module,
            (example,),
            destination if isinstance(destination, io.BytesIO) else str(destination),  # type: ignore[arg-type]
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes={name: {0: "batch"} for name in inputs + outputs},
        )
