"""Fixtures of the operations tests: an app without a model (fast) for metrics and logs.

The long runs carry their own markers and are left out unless asked for by marker, so that
``pytest`` (``make test``) skips them and ``make check-load`` / ``make fuzz`` run them:
- ``load``: 16 clients for 60 s (``pytest -m load``);
- ``fuzz``: schemathesis over the OpenAPI schema (``pytest -m fuzz``).
"""

from __future__ import annotations

import io
import json
import logging

import pytest

from champipy.api.app import create_app
from champipy.container import build_container
from champipy.logs import QUIET_LOGGERS, JsonFormatter
from champipy.settings import Settings
from support.accounts import make_account
from support.live_server import client, live_server

OPT_IN_MARKERS = {
    "load": "a minute of concurrent traffic against a live server (make check-load)",
    "fuzz": "schemathesis over the OpenAPI schema against a live server (make fuzz)",
    "audit": "hostile inputs replayed against a live server (make audit)",
    "replicas": "two API replicas and two workers sharing PostgreSQL, Redis, MLflow and S3 (make check-replicas)",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    asked = config.getoption("markexpr") or ""
    keep, left_out = [], []
    for item in items:
        opt_in = [name for name in OPT_IN_MARKERS if item.get_closest_marker(name)]
        (left_out if opt_in and not any(name in asked for name in opt_in) else keep).append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = keep


@pytest.fixture
def plain_settings(tmp_path) -> Settings:
    return Settings(data_dir=tmp_path / "data", bootstrap_model=False)


@pytest.fixture
def plain_container(plain_settings):
    """Store and auth only: no model provider, so no trained model is needed."""
    container = build_container(plain_settings)
    yield container
    container.close()


@pytest.fixture
def plain_account(plain_container):
    return make_account(plain_container.store)


@pytest.fixture
def plain_app(plain_settings, plain_container):
    return create_app(plain_settings, container=plain_container)


@pytest.fixture
def plain_api(plain_app):
    with live_server(plain_app) as base_url:
        yield base_url


@pytest.fixture
def plain_http(plain_api):
    with client(plain_api) as c:
        yield c


class JsonLines:
    """The JSON lines written through the root logger while the fixture is active."""

    def __init__(self, stream: io.StringIO):
        self._stream = stream

    @property
    def text(self) -> str:
        return self._stream.getvalue()

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.text.splitlines() if line.strip()]

    def access(self) -> list[dict]:
        return [r for r in self.records() if r["logger"] == "champipy.access"]


@pytest.fixture
def json_log():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    for name in quiet:  # as configure_logging does
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        yield JsonLines(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        for name, level in quiet.items():
            logging.getLogger(name).setLevel(level)
