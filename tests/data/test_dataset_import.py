"""``data import``: a folder of species sub-folders into the store."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from champipy.errors import InvalidInput
from champipy.images import sha256_hex
from champipy.services.dataset_import import import_folder
from champipy.settings import Settings
from champipy.store import open_store
from champipy.store.base import LabelSource

from .helpers import jpeg


@pytest.fixture
def settings(tmp_path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", database_url=f"sqlite:///{tmp_path}/t.db")
    settings.ensure_data_dir()
    return settings


@pytest.fixture
def store(settings):
    store = open_store(settings.database_url)
    yield store
    store.close()


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "dataset"
    files = {
        "Amanita muscaria/a.jpg": jpeg(1),
        "Amanita muscaria/b.jpg": jpeg(2),
        "Amanita muscaria/nested/c.jpg": jpeg(3),
        "Boletus edulis/d.jpg": jpeg(4),
        "Boletus edulis/copy-of-a.jpg": jpeg(1),
        "Boletus edulis/readme.txt": b"field notes",
        "Boletus edulis/.DS_Store": b"\0\0",
        "loose.jpg": jpeg(5),
    }
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_each_image_is_stored_once_with_its_folder_as_label(settings, store, dataset):
    seen = []
    summary = import_folder(store, dataset, settings, on_progress=lambda s: seen.append(s.done))

    assert (summary.total, summary.added, summary.duplicates, summary.rejected) == (7, 4, 1, 2)
    assert dict(summary.added_per_species) == {"Amanita muscaria": 3, "Boletus edulis": 1}
    assert {r["path"]: r["reason"] for r in summary.rejected_files}.keys() == {"Boletus edulis/readme.txt", "loose.jpg"}
    assert "species folder" in next(r["reason"] for r in summary.rejected_files if r["path"] == "loose.jpg")
    assert seen == list(range(8))

    nested = store.get_image(sha256_hex(jpeg(3)))
    assert (nested.label, nested.label_source, nested.filename) == ("Amanita muscaria", LabelSource.IMPORTED, "c.jpg")
    assert store.count_images() == 4


def test_importing_again_adds_nothing(settings, store, dataset):
    import_folder(store, dataset, settings)
    again = import_folder(store, dataset, settings)
    assert (again.added, again.duplicates, again.rejected) == (0, 5, 2)


def test_a_missing_folder_is_invalid_input(settings, store, tmp_path):
    with pytest.raises(InvalidInput):
        import_folder(store, tmp_path / "nowhere", settings)


def test_the_cli_imports_and_prints_a_summary(settings, store, dataset):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
    env.update(CHAMPIPY_DATA_DIR=str(settings.data_dir), CHAMPIPY_DATABASE_URL=settings.database_url)
    done = subprocess.run(
        [sys.executable, "-m", "champipy", "data", "import", str(dataset)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "4 added, 1 already stored, 2 skipped, 7 files" in done.stdout
    assert "readme.txt" in done.stdout
    assert store.count_images() == 4
