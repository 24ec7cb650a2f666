"""Back-pressure over HTTP: with every computation slot taken, a new photo is refused with 503
and Retry-After, nothing of it is stored, and cached answers and /status still come."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import client, live_server


def eval_photos(settings, count: int) -> list[bytes]:
    folder = sorted(p for p in Path(settings.eval_dir).iterdir() if p.is_dir())[0]
    return [path.read_bytes() for path in sorted(folder.iterdir())[:count]]


def upload(c, data: bytes):
    return c.post("/predictions", files={"file": ("photo.jpg", data, "image/jpeg")})


def metric(text: str, name: str) -> float:
    return float(next(line for line in text.splitlines() if line.startswith(name + " ")).split()[1])


@pytest.fixture
def served(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data", max_pending_predictions=2)
    store = open_store(settings.resolved_database_url)
    user = make_account(store)
    app = create_app(settings)
    with live_server(app) as base_url, client(base_url, auth=user.auth) as c:
        yield c, app.state.container.predictor.admission, store, settings
    store.close()


def test_a_full_service_refuses_new_photos_cleanly_and_still_answers_cached_ones(served):
    c, gate, store, settings = served
    known, new = eval_photos(settings, 2)
    assert upload(c, known).status_code == 200
    stored_before = len(store.recent_predictions(100))
    with ExitStack() as held:
        for _ in range(gate.limit):
            held.enter_context(gate.slot())
        refused = upload(c, new)
        cached = upload(c, known)
        status = c.get("/status")
        metrics = c.get("/metrics").text
    assert refused.status_code == 503 and refused.json()["error"] == "busy"
    assert int(refused.headers["retry-after"]) >= 1
    assert cached.status_code == 200 and cached.json()["cached"] is True
    assert status.status_code == 200
    assert len(store.recent_predictions(100)) == stored_before + 1, "the refused photo left no row"
    assert metric(metrics, "champipy_predictions_refused_busy_total") == 1
    assert metric(metrics, "champipy_predictions_pending") == 2
    assert metric(metrics, "champipy_predictions_pending_limit") == 2
    # The slots this test holds compute nothing: they count as admitted and waiting.
    assert metric(metrics, "champipy_inferences_in_flight") == 0
    assert metric(metrics, "champipy_inferences_queued") == 2
    assert metric(metrics, "champipy_downloads_in_flight") == 0
    accepted = upload(c, new)
    assert accepted.status_code == 200 and accepted.json()["cached"] is False
