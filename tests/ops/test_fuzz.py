"""Fuzz: schemathesis over the OpenAPI schema, signed in, against the trained model: no 5xx.

Run with ``make fuzz``. CHAMPIPY_FUZZ_EXAMPLES sets the cases per operation (default 50).
The server's fetcher resolves nothing but 127.0.0.1, so fuzzed image URLs never leave this
machine (not even as DNS queries).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .serving import serve

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("CHAMPIPY_FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("CHAMPIPY_FUZZ_SEED", "20261127"))
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ops"


def run_schemathesis(base_url: str, account, name: str, *extra: str) -> dict:
    """HTTP Basic, not a token: the fuzzer may revoke tokens it finds, never a password."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    report_path = ARTIFACTS / f"fuzz-{name}.json"
    st = Path(sys.executable).with_name("st")
    command = [
        str(st),
        "run",
        f"{base_url}/openapi.json",
        "--auth",
        f"{account.username}:{account.password}",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        str(EXAMPLES),
        "--seed",
        str(SEED),
        "--workers",
        "2",
        "--request-timeout",
        "60",
        "--suppress-health-check",
        "all",
        "--report",
        "json",
        "--report-json-path",
        str(report_path),
        *extra,
    ]
    # In test-artifacts/ (ignored by git), where schemathesis also keeps its .schemathesis cache.
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, cwd=ARTIFACTS, env={**os.environ, "NO_COLOR": "1"}
    )
    (ARTIFACTS / f"fuzz-{name}.log").write_text(done.stdout + done.stderr)
    assert report_path.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    cases = report["test_cases"]
    print(
        f"\nFUZZ ({name}): {cases['generated']} cases over {report['operations']['tested']} operations "
        f"in {report['running_time']:.0f} s; failures: {report['failures'] or 'none'}"
    )
    assert not report["failures"] and not report["errors"], done.stdout[-6000:]
    assert report["operations"]["tested"] >= 15 and cases["generated"] > 10 * report["operations"]["tested"]
    with httpx.Client(base_url=base_url, auth=account.auth, trust_env=False) as c:
        assert c.get("/user").status_code == 200, "the fuzzer's account stopped working: the run proves little"
    return report


def test_no_server_error_as_a_user(tmp_path, trained_registry):
    with serve(trained_registry, tmp_path / "data") as served:
        run_schemathesis(served.url, served.user, "user")
        with served.client() as c:
            assert c.get("/status").json()["model"]["loaded"] is True


def test_no_server_error_as_an_admin(tmp_path, trained_registry):
    """Every admin route too, but /finetune and /v0/finetune, which would start training jobs
    (the second one waits for its job)."""
    with serve(trained_registry, tmp_path / "data") as served:
        with httpx.Client(base_url=served.url, auth=served.admin.auth, timeout=600, trust_env=False) as c:
            # The first evaluation of a version runs the whole evaluation set inside the
            # request (cached afterwards): done once here, timed, so fuzzing sees the cache.
            started = time.monotonic()
            assert c.get("/accuracy").status_code == 200
            print(f"\nFUZZ (admin): first GET /accuracy took {time.monotonic() - started:.0f} s")
        run_schemathesis(
            served.url, served.admin, "admin", "--exclude-path", "/finetune", "--exclude-path", "/v0/finetune"
        )
        with served.client() as c:
            assert c.get("/status").json()["model"]["loaded"] is True
