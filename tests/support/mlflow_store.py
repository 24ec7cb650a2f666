"""An empty MLflow store, migrated once per test session and copied into each service's data
directory.

A service on the embedded defaults opens ``<data_dir>/mlflow.db`` (its model poller asks for
the production alias as it starts); the first open of a new file runs all of MLflow's
migrations, ~3 s each time on this machine. A copy of a database that MLflow migrated itself,
made by the same MLflow from the same working directory, is the same empty store and takes a
millisecond. Only a missing or empty (just created, 0600) ``mlflow.db`` is seeded: a store a
test wrote stays as it is, and a configured ``mlflow_uri`` is never touched.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
from pathlib import Path

from champipy.settings import Settings

_lock = threading.Lock()
_template: Path | None = None


def empty_mlflow_db() -> Path:
    """This session's migrated, empty MLflow database (made on first use, removed at exit)."""
    global _template
    with _lock:
        if _template is None or not _template.is_file():
            from mlflow import MlflowClient

            folder = Path(tempfile.mkdtemp(prefix="champipy-empty-mlflow-"))
            atexit.register(shutil.rmtree, folder, True)
            database = folder / "mlflow.db"
            uri = f"sqlite:///{database}"
            client = MlflowClient(tracking_uri=uri, registry_uri=uri)
            client.search_experiments()  # the tracking store: creates and migrates every table
            client.search_registered_models()  # the registry store: checks the schema
            _template = database
        return _template


def seed_mlflow_store(settings: Settings) -> Settings:
    """Give ``settings``' data directory the session's empty MLflow store, when it uses the
    embedded one and has none yet. Returns ``settings``."""
    if settings.mlflow_uri:
        return settings
    target = settings.data_dir / "mlflow.db"
    if target.is_file() and target.stat().st_size > 0:
        return settings
    template = empty_mlflow_db()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    os.chmod(target, 0o600)  # as Settings.ensure_data_dir makes it
    return settings
