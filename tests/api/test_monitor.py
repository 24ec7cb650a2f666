"""The periodic check from the command line, as the weekly workflow runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from support.webhook import Webhook


def run_monitor(settings, eval_dir: Path, webhook_url: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "CHAMPIPY_DATA_DIR": str(settings.data_dir),
        "CHAMPIPY_MLFLOW_URI": settings.mlflow_uri,
        "CHAMPIPY_EVAL_DIR": str(eval_dir),
        "CHAMPIPY_ALERT_WEBHOOK_URL": webhook_url,
        "CHAMPIPY_TARGET_ACCURACY": "0.70",
        "CHAMPIPY_TARGET_NEW_IMAGES": "500",
    }
    return subprocess.run(
        [sys.executable, "-m", "champipy", "monitor", "--json"], capture_output=True, text=True, env=env, timeout=300
    )


def shuffled_copy(eval_dir: Path, target: Path) -> Path:
    """The same photos, each species' photos filed under the next species: labels all wrong."""
    species = sorted(p.name for p in eval_dir.iterdir() if p.is_dir())
    for i, name in enumerate(species):
        wrong = target / species[(i + 1) % len(species)]
        wrong.mkdir(parents=True, exist_ok=True)
        for photo in (eval_dir / name).iterdir():
            (wrong / photo.name).symlink_to(photo.resolve())
    return target


def test_monitor_passes_on_the_real_eval_set_and_alerts_on_shuffled_labels(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path / "data")
    webhook = Webhook()
    try:
        real = run_monitor(settings, trained_registry.eval_dir, webhook.url)
        shuffled = run_monitor(settings, shuffled_copy(trained_registry.eval_dir, tmp_path / "shuffled"), webhook.url)
    finally:
        webhook.close()

    assert real.returncode == 0, real.stdout + real.stderr
    ok = json.loads(real.stdout)
    assert ok["ok"] is True and ok["accuracy"] >= 0.70 and ok["alerts"] == []

    assert shuffled.returncode == 1, shuffled.stdout + shuffled.stderr
    alarm = json.loads(shuffled.stdout)
    assert alarm["ok"] is False and alarm["accuracy"] < 0.70
    assert any("below the target" in a for a in alarm["alerts"])
    assert len(webhook.received) == 1, "only the failing check alerts"
    assert webhook.received[0]["event"] == "model_check_failed"
    assert webhook.received[0]["accuracy"] == alarm["accuracy"]


def test_post_monitor_alerts_like_the_cli(tmp_path, trained_registry):
    """POST /monitor (and the dashboard's "Check now") used a path that sent no alert."""
    from champipy.api.app import create_app
    from champipy.store import open_store
    from support.accounts import make_account
    from support.live_server import client, live_server

    webhook = Webhook()
    shuffled = shuffled_copy(trained_registry.eval_dir, tmp_path / "shuffled")
    try:
        for eval_dir, name in ((trained_registry.eval_dir, "real"), (shuffled, "shuffled")):
            settings = trained_registry.settings_for(tmp_path / name, eval_dir=eval_dir, alert_webhook_url=webhook.url)
            store = open_store(settings.resolved_database_url)
            admin = make_account(store, admin=True, prefix="admin")
            with live_server(create_app(settings)) as url, client(url, auth=admin.auth) as c:
                answer = c.post("/monitor")
                history = c.get("/monitor/history").json()
            store.close()
            assert answer.status_code == 200, answer.text
            assert answer.json()["ok"] is (name == "real")
            assert history[0]["accuracy"] == answer.json()["accuracy"]
    finally:
        webhook.close()
    assert len(webhook.received) == 1, "only the failing check alerts"
    assert webhook.received[0]["event"] == "model_check_failed" and webhook.received[0]["accuracy"] < 0.70
