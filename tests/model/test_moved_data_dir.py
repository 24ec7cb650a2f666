"""A data directory that was copied elsewhere (a restored backup, a volume mounted at another
path) is self-contained: its registry reads and writes the artifacts inside the copy, never
at the place it was copied from."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from champipy.artifacts import MODEL_FILE
from champipy.model.classifier import Classifier
from champipy.model.pipeline import load_weights, train_and_register
from champipy.model.train import TrainConfig
from champipy.registry import Registry, follow_moved_data_dir
from champipy.settings import Settings

pytestmark = pytest.mark.slow

QUICK = TrainConfig(backbone="lite0", flip_features=False, calibration_folds=0, seed=0)


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root``: (size, mtime) of files, (-1, -1) for folders."""
    found: dict[str, tuple[int, int]] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            found[os.path.relpath(os.path.join(folder, name), root)] = (-1, -1)
        for name in files:
            stat = os.lstat(os.path.join(folder, name))
            found[os.path.relpath(os.path.join(folder, name), root)] = (stat.st_size, stat.st_mtime_ns)
    return found


def test_a_copied_data_dir_serves_and_trains_inside_the_copy(trained_registry, tiny_examples, tmp_path) -> None:
    original = trained_registry.mlflow_db.parent  # the data dir the session's model was trained in
    before = snapshot(original)
    copy = tmp_path / "restored" / "data"
    shutil.copytree(original, copy, symlinks=True)
    shutil.rmtree(copy / "models", ignore_errors=True)  # no cached download: read the artifacts
    # The original is moved away for the test (tests run one at a time; it comes back below):
    # any read at the old place fails, and any write there re-creates it.
    away = original.with_name(original.name + "-away")
    original.rename(away)
    try:
        settings = Settings(
            data_dir=copy, mlflow_uri="", dataset_dir=trained_registry.dataset_dir, eval_dir=None, bootstrap_model=False
        )
        registry = Registry(settings)
        production = registry.version_for_alias()
        assert production is not None and production.version == trained_registry.version
        served = registry.download_serving_model(production.version)
        assert served.is_relative_to(copy) and (served / MODEL_FILE).is_file()
        assert Classifier.load(served).version == production.version
        assert load_weights(registry.download_torch_weights(production.version))["backbone"] == "lite0"
        assert Path(production.source.removeprefix("file://")).is_relative_to(settings.mlflow_artifacts_dir)

        outcome = train_and_register(settings, tiny_examples, QUICK)
        run = registry.client.get_run(outcome.version.run_id)
        run_dir = Path(run.info.artifact_uri.removeprefix("file://"))
        assert run_dir.is_relative_to(settings.mlflow_artifacts_dir) and (run_dir / "serving" / MODEL_FILE).is_file()
        assert Path(outcome.version.source.removeprefix("file://")).is_relative_to(settings.mlflow_artifacts_dir)
        assert registry.version_for_alias().version == trained_registry.version  # not promoted
        assert not original.exists(), "the copy wrote at the original's place"
        assert follow_moved_data_dir(settings) == 0, "moved once, then left alone"
    finally:
        away.rename(original)
    assert snapshot(original) == before
