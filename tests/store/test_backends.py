"""One table says which backend serves which URL scheme: open_store and the settings read it."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from champipy.settings import Settings
from champipy.store import BACKENDS, open_store
from champipy.store.base import Store
from champipy.store.memory import MemoryStore
from champipy.store.ports import (
    ImageRepository,
    JobRepository,
    Lifecycle,
    ObservationRepository,
    ParameterRepository,
    PredictionRepository,
    UserRepository,
)


def test_the_store_is_every_port_together():
    ports = (
        Lifecycle,
        UserRepository,
        ImageRepository,
        PredictionRepository,
        ObservationRepository,
        ParameterRepository,
        JobRepository,
    )
    assert all(issubclass(Store, port) for port in ports)
    assert set(Store.__abstractmethods__) == {name for port in ports for name in port.__abstractmethods__}


@pytest.mark.parametrize("scheme", sorted(BACKENDS))
def test_every_scheme_open_store_knows_is_a_valid_setting(scheme: str):
    assert Settings(database_url=f"{scheme}://host/db").database_url == f"{scheme}://host/db"


@pytest.mark.parametrize("url", ["redis://127.0.0.1/0", "mysql://u@h/db", "champipy.db"])
def test_a_scheme_no_backend_serves_is_refused_by_both(url: str):
    with pytest.raises(ValidationError, match="must start with sqlite:///"):
        Settings(database_url=url)
    with pytest.raises(ValueError, match="Unsupported database URL scheme"):
        open_store(url)


def test_memory_urls_open_a_new_empty_store_each_time():
    first = open_store("memory://")
    first.add_user("alice", "h", ("user",))
    second = open_store("memory://")
    assert isinstance(first, MemoryStore) and isinstance(second, MemoryStore)
    assert second.get_user("alice") is None


def test_reading_the_settings_loads_no_database_driver():
    code = (
        "import sys, champipy.settings as s; s.Settings(database_url='memory://'); "
        "print(sorted(m for m in ('sqlalchemy', 'pymongo', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
