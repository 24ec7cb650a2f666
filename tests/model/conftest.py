"""Fixtures for the model tests: the dataset folders come from the settings
(CHAMPIPY_DATASET_DIR, CHAMPIPY_EVAL_DIR; the Makefile sets them), never from the repo."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from champipy.settings import Settings

TINY_SPECIES = 3
TINY_PER_SPECIES = 6


def dataset_folders() -> tuple[Path, Path]:
    settings = Settings()
    if settings.dataset_dir is None or settings.eval_dir is None:
        pytest.fail(
            "Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR (the Makefile does) to run the model tests.", pytrace=False
        )
    return Path(settings.dataset_dir), Path(settings.eval_dir)


@pytest.fixture(scope="session")
def train_dir() -> Path:
    return dataset_folders()[0]


@pytest.fixture(scope="session")
def eval_dir() -> Path:
    return dataset_folders()[1]


@pytest.fixture(scope="session")
def tiny_examples(train_dir: Path) -> list:
    """3 species x 6 photos of the training folder."""
    from champipy.model.data import examples_from_folder

    by_label = defaultdict(list)
    for example in examples_from_folder(train_dir):
        by_label[example.label].append(example)
    return [e for label in sorted(by_label)[:TINY_SPECIES] for e in by_label[label][:TINY_PER_SPECIES]]


@pytest.fixture(scope="session")
def tiny_eval_dir(eval_dir: Path, tiny_examples: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small evaluation folder (links to 4 eval photos of each tiny species) outside the repo."""
    root = tmp_path_factory.mktemp("tiny-eval")
    for label in sorted({e.label for e in tiny_examples}):
        (root / label).mkdir()
        for photo in sorted((eval_dir / label).iterdir())[:4]:
            (root / label / photo.name).symlink_to(photo)
    return root


@pytest.fixture(scope="session")
def tiny_ood_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three images that are not mushrooms: two of noise in a category folder, a gradient at the top."""
    from PIL import Image

    root = tmp_path_factory.mktemp("tiny-ood")
    (root / "noise").mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)).save(root / "noise" / f"{i}.png")
    gradient = np.broadcast_to(np.linspace(0, 255, 320, dtype=np.uint8)[None, :, None], (240, 320, 3))
    Image.fromarray(np.ascontiguousarray(gradient)).save(root / "gradient.png")
    return root


@pytest.fixture(scope="session")
def full_model(train_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """The fast path (lite0 frozen features) trained on the whole training folder, exported,
    with 3 cross-fitted folds (fewer than the default 5, for time) for the temperature and the
    open-set threshold.

    Returns (trained, classifier)."""
    from champipy.model.classifier import Classifier
    from champipy.model.data import examples_from_folder
    from champipy.model.export import export_serving_model
    from champipy.model.train import TrainConfig, train_model

    config = TrainConfig(backbone="lite0", flip_features=False, calibration_folds=3, seed=0)
    trained = train_model(examples_from_folder(train_dir), config)
    directory = export_serving_model(trained, tmp_path_factory.mktemp("full-model"))
    return trained, Classifier.load(directory)
