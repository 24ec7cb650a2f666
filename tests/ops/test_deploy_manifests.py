"""The deployment files name only what the code has: every CHAMPIPY_* variable is a setting,
every probe path a route, every command a CLI command. ``make lint`` checks their schemas
(kubernetes-validate, the compose spec); this checks what a schema cannot know."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from champipy.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "deploy" / "kubernetes").glob("*.yaml"))
SETTINGS = {f"CHAMPIPY_{name.upper()}" for name in Settings.model_fields}


def documents() -> list[dict]:
    return [doc for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]


def containers() -> list[dict]:
    found = []
    for doc in documents():
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or spec.get("jobTemplate", {}).get("spec", {}).get(
            "template", {}
        ).get("spec")
        if pod:
            found.extend(pod["containers"])
    return found


def test_there_are_manifests_for_each_part():
    kinds = {(doc["kind"], doc["metadata"]["name"]) for doc in documents()}
    for expected in [
        ("Deployment", "champipy-api"),
        ("Deployment", "champipy-worker"),
        ("CronJob", "champipy-monitor"),
        ("HorizontalPodAutoscaler", "champipy-api"),
        ("ConfigMap", "champipy"),
        ("Secret", "champipy"),
    ]:
        assert expected in kinds


@pytest.mark.parametrize("path", [*MANIFESTS, ROOT / "compose.yaml"], ids=lambda p: p.name)
def test_every_champipy_variable_is_a_setting(path):
    named = set(re.findall(r"\bCHAMPIPY_[A-Z0-9_]+\b", path.read_text()))
    assert named - SETTINGS == set()


def test_probes_ask_routes_the_api_has(tmp_path):
    from champipy.api.app import create_app

    app = create_app(Settings(data_dir=tmp_path, bootstrap_model=False))
    routes = set(app.openapi()["paths"])
    probes = [
        c[probe]["httpGet"]["path"]
        for c in containers()
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
        if probe in c and c["name"] == "api"
    ]
    assert "/status?ready=true" in probes
    assert {path.split("?")[0] for path in probes} <= routes


def test_commands_are_cli_commands():
    from typer.main import get_command

    from champipy.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    used = {c["command"][1] for c in containers() if c["command"][0] == "champipy"}
    assert used and used <= commands
