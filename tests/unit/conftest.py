"""The unit layer's parts: the in-memory store, the fakes of ``fakes.py``, the real services.

No server, no training, no torch, no MLflow, no network, no database: each test builds what it
needs in milliseconds. The root conftest's database fixtures are never requested here.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from champipy.services.predict import PredictionService
from champipy.services.serving import ModelProvider
from champipy.services.spool import ImageSpool
from champipy.settings import Settings
from champipy.store import Store, open_store
from champipy.store.base import Role, User

from .fakes import (
    FakeFetcher,
    FakeRegistry,
    RecordingObserver,
    StubClassifier,
    StubLoader,
)


def make_settings(tmp_path: Path, **overrides) -> Settings:
    """Settings with every value a test relies on given, so no CHAMPIPY_* variable leaks in."""
    values = {
        "data_dir": tmp_path / "data",
        "database_url": "memory://",
        "mlflow_uri": "",
        "redis_url": "",
        "dataset_dir": None,
        "eval_dir": None,
        "registered_model": "champipy",
        "production_alias": "production",
        "store_threshold": 0.70,
        "uncertain_threshold": 0.50,
        "url_cache_ttl_seconds": 3600,
        "max_pending_predictions": 4,
        "fetch_per_user": 2,
        "kept_image_max_side": 1024,
        "target_accuracy": 0.70,
        "target_new_images": 500,
        "retrain_on_new_images": False,
    }
    return Settings(**(values | overrides))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def memory_store() -> Iterator[Store]:
    store = open_store("memory://")
    yield store
    store.close()


@pytest.fixture
def alice(memory_store: Store) -> User:
    return memory_store.add_user("alice", "not-a-real-hash", (Role.USER,))


@pytest.fixture
def bob(memory_store: Store) -> User:
    return memory_store.add_user("bob", "not-a-real-hash", (Role.USER,))


@pytest.fixture
def registry() -> FakeRegistry:
    """Version 1 registered and at the production alias."""
    registry = FakeRegistry()
    registry.add_version("1")
    registry.promote("1")
    return registry


@pytest.fixture
def loader() -> StubLoader:
    return StubLoader(**{"1": StubClassifier(version="1")})


@pytest.fixture
def provider(registry: FakeRegistry, loader: StubLoader) -> ModelProvider:
    """Serving version 1 (refreshed once, warm-up done)."""
    provider = ModelProvider(registry, loader, model_name="champipy", alias="production", poll_seconds=60)
    assert provider.refresh()
    return provider


@pytest.fixture
def fetcher() -> FakeFetcher:
    return FakeFetcher()


@pytest.fixture
def observer() -> RecordingObserver:
    return RecordingObserver()


@pytest.fixture
def service(
    settings: Settings,
    memory_store: Store,
    provider: ModelProvider,
    fetcher: FakeFetcher,
    observer: RecordingObserver,
    tmp_path: Path,
) -> PredictionService:
    spool = ImageSpool(tmp_path / "spool", max_files=50, max_bytes=10 * 1024 * 1024)
    return PredictionService(settings, memory_store, provider, fetcher, spool, observer=observer)
