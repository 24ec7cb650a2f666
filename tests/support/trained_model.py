"""A real model, trained once per test session on a small part of the dataset and promoted.

Each test that changes the registry gets its own copy of the MLflow database (artifacts are
shared read-only), so tests cannot see each other's versions or aliases.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from champipy.settings import Settings

PER_SPECIES = 12
EVAL_PER_SPECIES = 4  # keeps each service's first /accuracy call short
# lite0: the default (lite0+lite2) is more accurate but slower, and tests need speed
BACKBONE = "lite0"


@dataclass(frozen=True)
class TrainedRegistry:
    mlflow_db: Path
    version: str
    dataset_dir: Path
    eval_dir: Path

    def settings_for(self, data_dir: Path, **overrides) -> Settings:
        """Settings for a fresh service whose MLflow registry is a private copy of this one."""
        data_dir.mkdir(parents=True, exist_ok=True)
        db = data_dir / "mlflow-copy.db"
        shutil.copyfile(self.mlflow_db, db)
        values = dict(
            data_dir=data_dir,
            mlflow_uri=f"sqlite:///{db}",
            dataset_dir=self.dataset_dir,
            eval_dir=self.eval_dir,
            bootstrap_model=False,
            model_poll_seconds=0.5,
        )
        return Settings(**(values | overrides))


def train_small_registry(root: Path) -> TrainedRegistry:
    from champipy.model.data import examples_from_folder
    from champipy.model.pipeline import train_and_register
    from champipy.model.train import TrainConfig
    from champipy.registry import Registry

    base = Settings()
    if base.dataset_dir is None or base.eval_dir is None:
        raise RuntimeError("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR (the Makefile does) to run these tests.")
    eval_subset = root / "eval-subset"
    for species_dir in sorted(p for p in Path(base.eval_dir).iterdir() if p.is_dir()):
        (eval_subset / species_dir.name).mkdir(parents=True)
        for photo in sorted(species_dir.iterdir())[:EVAL_PER_SPECIES]:
            (eval_subset / species_dir.name / photo.name).symlink_to(photo)
    settings = Settings(data_dir=root, dataset_dir=base.dataset_dir, eval_dir=eval_subset)
    settings.ensure_data_dir()
    per_label: dict[str, list] = {}
    for example in examples_from_folder(base.dataset_dir):
        per_label.setdefault(example.label, []).append(example)
    subset = [e for examples in per_label.values() for e in examples[:PER_SPECIES]]
    outcome = train_and_register(settings, subset, TrainConfig(backbone=BACKBONE, seed=0))
    version = str(outcome.version.version)
    Registry(settings).promote(version)
    return TrainedRegistry(root / "mlflow.db", version, Path(base.dataset_dir), eval_subset)
