"""torch's legacy (TorchScript) ONNX exporter warns on every export about things that do not
concern our graphs; silenced here by message, so any other warning still shows."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Slices of the pooled features with a step other than 1 are left unfolded: harmless, and the
# parity check compares the exported model with torch anyway.
_CONSTANT_FOLDING = r"Constant folding - Only steps=1 can be constant folded"
# We pin dynamo=False on purpose: the new exporter needs onnxscript and changes the graph.
_LEGACY_EXPORTER = r"You are using the legacy TorchScript-based ONNX export"


@contextmanager
def known_export_warnings_silenced() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=_CONSTANT_FOLDING, category=UserWarning)
        warnings.filterwarnings("ignore", message=_LEGACY_EXPORTER, category=DeprecationWarning)
        yield
