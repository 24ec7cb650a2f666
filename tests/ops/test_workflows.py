"""The monitor workflow reads the original project's repository variables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

WORKFLOW = Path(__file__).resolve().parents[2] / ".github" / "workflows" / "model-perf-tracker.yml"


def targets_step_script() -> str:
    steps = yaml.safe_load(WORKFLOW.read_text())["jobs"]["monitor"]["steps"]
    [step] = [s for s in steps if s.get("name", "").startswith("Targets from the original")]
    return step["run"]


def run_step(tmp_path: Path, **variables: str) -> dict[str, str]:
    github_env = tmp_path / "github_env"
    github_env.write_text("")
    env = {"PATH": os.environ["PATH"], "GITHUB_ENV": str(github_env), **variables}
    subprocess.run(["bash", "-eo", "pipefail", "-c", targets_step_script()], env=env, check=True)
    return dict(line.split("=", 1) for line in github_env.read_text().splitlines() if line)


@pytest.mark.parametrize(("percent", "fraction"), [("70", "0.7"), ("82.5", "0.825")])
def test_the_originals_percent_target_becomes_our_fraction(tmp_path, percent, fraction):
    assert run_step(tmp_path, TARGET_ACCURACY=percent, TARGET_NEW_IMAGES="300") == {
        "CHAMPIPY_TARGET_ACCURACY": fraction,
        "CHAMPIPY_TARGET_NEW_IMAGES": "300",
    }


def test_unset_variables_leave_our_settings_alone(tmp_path):
    assert run_step(tmp_path, TARGET_ACCURACY="", TARGET_NEW_IMAGES="") == {}
