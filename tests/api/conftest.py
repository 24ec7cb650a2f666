from __future__ import annotations

import pytest

from champipy.api.app import create_app
from champipy.settings import Settings
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import client, live_server
from support.mlflow_store import seed_mlflow_store


@pytest.fixture
def api_settings(tmp_path) -> Settings:
    """No model; an empty MLflow store copied in (migrating a new one costs ~3 s a test)."""
    settings = Settings(data_dir=tmp_path / "data", bootstrap_model=False, model_poll_seconds=0.5)
    return seed_mlflow_store(settings)


@pytest.fixture
def accounts(api_settings):
    api_settings.ensure_data_dir()
    store = open_store(api_settings.resolved_database_url)
    try:
        yield {"user": make_account(store), "admin": make_account(store, admin=True, prefix="admin")}
    finally:
        store.close()


@pytest.fixture
def api(api_settings, accounts):
    """Base URL of a live server on a fresh SQLite database with one user and one admin."""
    with live_server(create_app(api_settings)) as base_url:
        yield base_url


@pytest.fixture
def http(api):
    with client(api) as c:
        yield c
