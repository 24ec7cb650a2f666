"""The periodic check watches live traffic, with a real model over HTTP: traffic replayed from
unseen eval photos raises no drift alert; traffic of degraded and non-mushroom photos does,
through the webhook, in one sentence per signal; /drift and /metrics show the signals; a
version registered before drift references existed still monitors what it can."""

from __future__ import annotations

from pathlib import Path

import pytest

from champipy.api.app import create_app
from champipy.replay import replay
from champipy.settings import Settings
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import client, live_server
from support.ood_images import write_ood_set
from support.registry_edits import register_version_without_open_set, set_alias
from support.webhook import Webhook

pytestmark = pytest.mark.slow

DRIFT_SETTINGS = {"drift_window": 80, "drift_min_window": 40, "drift_min_feedback": 10}


@pytest.fixture
def watched(tmp_path, trained_registry):
    webhook = Webhook()
    settings = trained_registry.settings_for(tmp_path / "data", alert_webhook_url=webhook.url, **DRIFT_SETTINGS)
    store = open_store(settings.resolved_database_url)
    user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
    try:
        with live_server(create_app(settings)) as url:
            yield {"url": url, "user": user, "admin": admin, "webhook": webhook, "settings": settings}
    finally:
        store.close()
        webhook.close()


def _all_eval_photos() -> Path:
    eval_dir = Settings().eval_dir
    assert eval_dir is not None, "CHAMPIPY_EVAL_DIR"
    return Path(eval_dir)


def _drift_alerts(check: dict) -> list[dict]:
    return [s for s in check["signals"] if s["alert"]]


def test_clean_traffic_is_quiet_and_drifted_traffic_alerts_through_the_webhook(watched, tmp_path):
    with client(watched["url"], auth=watched["user"].auth) as c:
        clean = replay(c, _all_eval_photos(), feedback_share=0.3, seed=0, limit=100)
    assert clean.failed == 0 and clean.sent == 100 and clean.feedback > 10
    with client(watched["url"], auth=watched["admin"].auth) as admin:
        quiet = admin.post("/monitor").json()
    signals = {s["name"]: s for s in quiet["signals"]}
    assert set(signals) == {"expert_accuracy", "rejected_share", "score_drift", "confidence_drift"}
    assert all(s["value"] is not None for s in signals.values()), signals
    assert _drift_alerts(quiet) == [], [s["sentence"] for s in quiet["signals"]]
    assert watched["webhook"].received == []

    drifted_dir = tmp_path / "drifted"
    write_ood_set(drifted_dir, mushrooms=_all_eval_photos())
    with client(watched["url"], auth=watched["user"].auth) as c:
        drifted = replay(c, drifted_dir, seed=1, limit=100)
    assert drifted.sent == 100 and drifted.unrecognised > 50
    with client(watched["url"], auth=watched["admin"].auth) as admin:
        alarm = admin.post("/monitor").json()
        drift = admin.get("/drift").json()
        metrics = admin.get("/metrics").text
    raised = {s["name"] for s in _drift_alerts(alarm)}
    assert {"rejected_share", "score_drift"} <= raised, [s["sentence"] for s in alarm["signals"]]
    assert alarm["ok"] is False and any("not recognised" in a for a in alarm["alerts"])
    [posted] = watched["webhook"].received
    assert posted["event"] == "model_check_failed" and posted["alerts"] == alarm["alerts"]
    assert {s["name"] for s in drift["current"] if s["alert"]} >= {"rejected_share", "score_drift"}
    assert [h["checked_at"] for h in drift["history"]] == [alarm["checked_at"], quiet["checked_at"]]
    assert 'champipy_drift_alert{signal="score_drift"} 1.0' in metrics


def test_a_version_without_a_drift_reference_monitors_what_it_can(watched):
    settings = watched["settings"]
    with client(watched["url"], auth=watched["admin"].auth) as admin:
        current = admin.get("/status").json()["model"]["version"]
        old = register_version_without_open_set(settings, current)  # metadata as before this wave
        set_alias(settings, old)
        admin.post(f"/models/{old}/promote")
        assert admin.get("/status").json()["model"]["version"] == old
    with client(watched["url"], auth=watched["user"].auth) as c:
        replay(c, _all_eval_photos(), feedback_share=0.5, seed=2, limit=40)
    with client(watched["url"], auth=watched["admin"].auth) as admin:
        check = admin.post("/monitor").json()
    signals = {s["name"]: s for s in check["signals"]}
    assert signals["expert_accuracy"]["value"] is not None
    for name in ("rejected_share", "score_drift", "confidence_drift"):
        assert signals[name]["value"] is None and "trained before drift references" in signals[name]["sentence"]
    assert _drift_alerts(check) == []
