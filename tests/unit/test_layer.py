"""The unit layer stays fast: what it imports loads no torch, ONNX Runtime or MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent.parent
HEAVY = ("torch", "onnxruntime", "mlflow", "uvicorn")


def test_the_services_and_fakes_load_nothing_heavy() -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(TESTS_DIR)!r})\n"
        "import champipy.services.predict, champipy.services.serving, champipy.services.monitor\n"
        "import champipy.services.lifecycle, champipy.store.memory, champipy.model.evaluate, unit.fakes\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "assert not loaded, loaded\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
