"""ModelProvider: follows the registry alias, warms up, hot-swaps, survives bad versions."""

from __future__ import annotations

import numpy as np
import pytest

from champipy.errors import ModelLoadFailed, NoModel
from champipy.services.serving import ModelProvider

from .fakes import FakeRegistry, StubClassifier, StubLoader, WrongShapeClassifier


def new_provider(registry: FakeRegistry, loader: StubLoader) -> ModelProvider:
    return ModelProvider(registry, loader, model_name="champipy", alias="production", poll_seconds=60)


@pytest.fixture
def empty_registry() -> FakeRegistry:
    return FakeRegistry()


def test_no_model_before_any_version(empty_registry):
    provider = new_provider(empty_registry, StubLoader())

    assert provider.refresh() is False
    with pytest.raises(NoModel):
        provider.current()
    assert provider.serving is None
    assert provider.status() == {"loaded": False, "last_error": None}


def test_a_registered_version_without_the_alias_is_not_served(empty_registry):
    empty_registry.add_version("1")
    provider = new_provider(empty_registry, StubLoader(**{"1": StubClassifier()}))

    assert provider.refresh() is False
    with pytest.raises(NoModel):
        provider.current()


def test_the_first_refresh_loads_warms_up_and_serves(registry, loader):
    provider = new_provider(registry, loader)

    assert provider.refresh() is True

    serving = provider.current()
    assert (serving.name, serving.version) == ("champipy", "1")
    assert serving.classifier is loader.by_version["1"]
    assert loader.by_version["1"].batches == [1]  # the warm-up batch
    assert registry.downloads == ["1"]
    status = provider.status()
    assert status["loaded"] is True and status["version"] == "1" and status["last_error"] is None


def test_an_unchanged_alias_loads_nothing(provider, registry, loader):
    assert provider.refresh() is False
    assert registry.downloads == ["1"] and loader.loaded == ["1"]


def test_moving_the_alias_hot_swaps_and_the_old_reference_stays_valid(provider, registry, loader):
    old = provider.current()
    registry.add_version("2")
    loader.set("2", StubClassifier(version="2"))
    registry.promote("2")

    assert provider.refresh() is True

    assert provider.current().version == "2"
    assert provider.current().classifier is loader.by_version["2"]
    # A request that took the old model before the swap finishes with it.
    assert old.version == "1"
    size = old.classifier.image_size
    assert old.classifier.predict_batch(np.zeros((2, 3, size, size), np.float32)).shape == (2, 3)
    assert provider.status()["version"] == "2"


def test_moving_the_alias_back_serves_the_earlier_version_again(provider, registry, loader):
    registry.add_version("2")
    loader.set("2", StubClassifier(version="2"))
    registry.promote("2")
    provider.refresh()

    registry.promote("1")

    assert provider.refresh() is True
    assert provider.current().version == "1"


def _assert_failed_version_kept_out(provider, registry, loader, version="2"):
    assert provider.refresh() is False
    assert provider.current().version == "1"  # the old model keeps serving
    status = provider.status()
    assert status["loaded"] is True and status["version"] == "1"
    assert f"version {version} failed to load" in status["last_error"]

    assert provider.refresh() is False  # not retried
    assert loader.loaded.count(version) == 1
    assert provider.current().version == "1"
    assert f"version {version}" in provider.status()["last_error"]


def test_a_version_whose_loader_raises_is_remembered_and_the_old_one_serves(provider, registry, loader):
    registry.add_version("2")
    loader.set("2", ModelLoadFailed("Cannot load the model in /models/2: truncated file"))
    registry.promote("2")

    _assert_failed_version_kept_out(provider, registry, loader)
    assert "truncated file" not in provider.status()["last_error"]  # details go to the log only


def test_a_classifier_with_the_wrong_output_shape_fails_warm_up_the_same_way(provider, registry, loader):
    registry.add_version("2")
    loader.set("2", WrongShapeClassifier(version="2"))
    registry.promote("2")

    _assert_failed_version_kept_out(provider, registry, loader)
    assert "ValueError" in provider.status()["last_error"]


def test_a_classifier_answering_nan_fails_warm_up(provider, registry, loader):
    class NanClassifier(StubClassifier):
        def _columns(self, probabilities):
            return np.full_like(probabilities, np.nan)

    registry.add_version("2")
    loader.set("2", NanClassifier(version="2"))
    registry.promote("2")

    _assert_failed_version_kept_out(provider, registry, loader)


def test_a_good_version_after_a_failed_one_is_served_and_clears_the_error(provider, registry, loader):
    registry.add_version("2")
    loader.set("2", RuntimeError("broken"))
    registry.promote("2")
    provider.refresh()
    registry.add_version("3")
    loader.set("3", StubClassifier(version="3"))
    registry.promote("3")

    assert provider.refresh() is True

    assert provider.current().version == "3"
    assert provider.status()["last_error"] is None


def test_a_failed_first_version_leaves_no_model_and_says_why(empty_registry):
    empty_registry.add_version("1")
    empty_registry.promote("1")
    provider = new_provider(empty_registry, StubLoader(**{"1": RuntimeError("no onnx file")}))

    assert provider.refresh() is False

    with pytest.raises(NoModel, match="version 1 failed to load"):
        provider.current()
    assert provider.status() == {"loaded": False, "last_error": provider.last_error}
    assert "version 1 failed to load" in provider.last_error


def test_an_unreachable_registry_keeps_the_serving_model_until_it_answers_again(provider, registry, loader):
    registry.unreachable = ConnectionError("mlflow.internal.example:5000 refused the connection")

    assert provider.refresh() is False

    assert provider.current().version == "1"
    error = provider.status()["last_error"]
    assert error.startswith("cannot read the registry")
    assert "mlflow.internal.example" not in error  # /status is public
    assert "ConnectionError" in error

    registry.unreachable = None
    assert provider.refresh() is False  # the same version: nothing to load
    assert provider.status()["last_error"] is None
    assert provider.current().version == "1"


def _fail_version_2_then_lose_the_registry_once(provider, registry, loader):
    registry.add_version("2")
    loader.set("2", RuntimeError("broken"))
    registry.promote("2")
    provider.refresh()
    registry.unreachable = OSError("down")
    provider.refresh()
    registry.unreachable = None
    provider.refresh()


def test_a_failed_version_is_not_retried_after_a_registry_outage(provider, registry, loader):
    _fail_version_2_then_lose_the_registry_once(provider, registry, loader)

    assert loader.loaded.count("2") == 1
    assert provider.current().version == "1"


def test_status_still_shows_the_load_error_after_a_registry_outage(provider, registry, loader):
    _fail_version_2_then_lose_the_registry_once(provider, registry, loader)

    assert "version 2 failed to load" in (provider.status()["last_error"] or "")
