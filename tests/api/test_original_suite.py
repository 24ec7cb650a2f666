"""The original ChampiPy's own API tests, run against ChampiPy's /v0 routes.

``test/api_test.py`` (5 tests) and ``test/api_test_perf.py`` (4, what the original's weekly
"Model perf tracker" Action runs) are read from a local copy of the original's repository
(CHAMPIPY_ORIGINAL_REPO: a work tree or a bare git directory; the Makefile names this
machine's mirror) and run by pytest in a child process. Nothing of them is stored here. The
only changes are the harness ones, each checked to apply exactly where expected:

- httpx 0.28 dropped ``AsyncClient(app=...)``: it becomes ``transport=ASGITransport(app=...)``;
- the one remote image (a Mushroom Observer URL) is served by a local server: its host only
  is replaced.

``app.api.main`` is tests/support/original_app.py. The database holds what the original's
tests sign in with (admin/admin, an original-style account) and the Action's targets are the
original's README values (70 % accuracy, 500 new images).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from champipy.passwords import hash_password
from champipy.services.users import roles_for
from champipy.store import open_store
from support.image_server import ImageServer

ORIGINAL_TESTS = ("test/api_test.py", "test/api_test_perf.py")
MO_HOST = "https://images.mushroomobserver.org"
MO_PHOTO = ("Amanita muscaria", "1536252.jpg")  # the photo behind the original's test URL
TESTS_DIR = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def original_repo() -> Path:
    configured = os.environ.get("CHAMPIPY_ORIGINAL_REPO", "").strip()
    if not configured or not Path(configured).exists():
        pytest.skip(
            "the original ChampiPy's repository is not on this machine: set CHAMPIPY_ORIGINAL_REPO "
            "to a clone of bbastien1/MLOps_ChampiPy (a work tree or a bare git directory)"
        )
    return Path(configured)


def read_original(repo: Path, path: str) -> str:
    if (repo / path).exists():
        return (repo / path).read_text()
    shown = subprocess.run(
        ["git", f"--git-dir={repo}", "show", f"HEAD:{path}"], capture_output=True, text=True, check=True
    )
    return shown.stdout


def adapt_harness(source: str, image_host: str) -> str:
    """The two harness changes, and nothing else: each must match where the original has it."""
    clients = source.count('AsyncClient(app=api, base_url="http://test")')
    assert clients >= 4 and source.count("AsyncClient(") == clients, "every client is built the same way"
    assert source.count("from httpx import AsyncClient, BasicAuth") == 1
    source = source.replace(
        'AsyncClient(app=api, base_url="http://test")',
        'AsyncClient(transport=ASGITransport(app=api), base_url="http://test")',
    )
    source = source.replace(
        "from httpx import AsyncClient, BasicAuth", "from httpx import ASGITransport, AsyncClient, BasicAuth"
    )
    assert source.count(MO_HOST) <= 1
    return source.replace(MO_HOST, f"http://{image_host}")


def test_the_originals_own_api_tests_pass_against_v0(tmp_path, trained_registry):
    repo = original_repo()
    probe = trained_registry.settings_for(tmp_path / "probe")
    species, name = MO_PHOTO
    photo = (Path(probe.dataset_dir) / species / name).read_bytes()
    with ImageServer({f"/320/{name}": (200, photo, "image/jpeg")}) as images:
        settings = trained_registry.settings_for(tmp_path / "data", fetch_allow_hosts=images.host)
        store = open_store(settings.resolved_database_url)
        # The original's account, as its database holds it (its password policy allowed "admin").
        store.add_user("admin", hash_password("admin"), roles_for(True))
        store.close()

        project = tmp_path / "original"
        (project / "test").mkdir(parents=True)
        (project / "app" / "api").mkdir(parents=True)
        for package in ("app", "app/api"):
            (project / package / "__init__.py").write_text("")
        (project / "app" / "api" / "main.py").write_text("from support.original_app import api  # noqa: F401\n")
        for path in ORIGINAL_TESTS:
            (project / path).write_text(adapt_harness(read_original(repo, path), images.host))

        env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
        for field, value in settings.model_dump().items():
            if value is not None:
                env[f"CHAMPIPY_{field.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        env.update(PYTHONPATH=str(TESTS_DIR), target_accuracy="70", target_new_images="500")
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=", *ORIGINAL_TESTS],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    report = run.stdout[-3000:] + run.stderr[-2000:]
    assert run.returncode == 0 and "9 passed" in run.stdout, report
    assert images.hits[f"/320/{name}"] >= 1  # the prediction test fetched the photo over HTTP
    log = (project / "model_perf_tracker.log").read_text()  # what the Action archives
    assert log.startswith("Accuracy: ") and "New images: " in log
    print(f"\nthe original's tests: {run.stdout.strip().splitlines()[-1]}; {log.strip()!r}")
