"""The periodic check inside the service starts a retrain job once enough new images arrived
(CHAMPIPY_RETRAIN_ON_NEW_IMAGES), and that job trains, registers and promotes only if better."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from champipy.container import build_server_container
from champipy.services.dataset_import import import_folder

from .helpers import wait_for


def copy_photos(dataset: Path, target: Path, per_species: int) -> Path:
    for species in sorted(p for p in dataset.iterdir() if p.is_dir()):
        (target / species.name).mkdir(parents=True)
        for photo in sorted(species.iterdir())[:per_species]:
            shutil.copy(photo, target / species.name / photo.name)
    return target


@pytest.mark.slow
def test_crossing_the_new_image_threshold_starts_a_retrain_that_promotes_only_if_better(tmp_path, trained_registry):
    settings = trained_registry.settings_for(
        tmp_path / "data", retrain_on_new_images=True, target_new_images=20, backbone="lite0"
    )
    container = build_server_container(settings)
    container.start()
    try:
        photos = copy_photos(trained_registry.dataset_dir, tmp_path / "photos", per_species=3)
        assert import_folder(container.store, photos, settings).added == 30

        result = container.monitor.run_check()
        assert result.ok is False and result.nb_new_img == 30
        [job] = [j for j in container.store.list_jobs(limit=10) if j.kind == "retrain"]
        assert job.params == {"promote_if_better": True, "reason": "new images"}

        done = wait_for(container.store, job.id, timeout=300)
        assert done.state.value == "succeeded", done.error
        assert done.result["images"] == 30
        new, base = (
            container.registry.get_version(done.result["version"]),
            container.registry.get_version(trained_registry.version),
        )
        better = new.metrics["eval_top1"] > base.metrics["eval_top1"]
        assert done.result["promoted"] is better
        assert container.registry.alias_version() == (new.version if better else base.version)
    finally:
        container.close()
