"""Runs the SSRF refusal tests in a fresh network namespace that has only loopback.

Fails (never skips) when namespaces are unavailable: those refusals must be checked, and
only that namespace makes it safe to name addresses off this machine.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

from .netns import ip_command, loopback_only_namespace, run_in_namespace

INNER = Path(__file__).with_name("test_fetch_netns_inner.py")
ROOT = Path(__file__).resolve().parents[2]


def test_ssrf_refusals_in_a_loopback_only_namespace(tmp_path: Path) -> None:
    report = tmp_path / "inner.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-m",
        "netns",
        f"--junitxml={report}",
        "--rootdir",
        str(ROOT),
        str(INNER),
    ]
    with loopback_only_namespace() as name:
        done = run_in_namespace(name, command, cwd=ROOT, env={"PYTHONDONTWRITEBYTECODE": "1"})
    output = done.stdout + done.stderr
    assert done.returncode == 0, output

    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert suite is not None, output
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "failures", "errors", "skipped")}
    assert counts["failures"] == counts["errors"] == counts["skipped"] == 0, output
    assert counts["tests"] >= 50, output

    listed = subprocess.run([ip_command(), "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert name not in listed
