"""The serving process must never import torch."""

from __future__ import annotations

import subprocess
import sys

SERVING_MODULES = (
    "champipy.model.classifier",
    "champipy.model.evaluate",
    "champipy.model.preprocess",
    "champipy.model.calibrate",
    "champipy.model.data",
    "champipy.registry",
)


def test_serving_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in SERVING_MODULES)
        + "loaded = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        + "assert not loaded, loaded\n"
        + "assert 'mlflow' not in sys.modules, 'mlflow should load on first use'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
