"""A registered version remembers which photos it trained on, so a fine-tune can validate on others."""

from __future__ import annotations

from champipy.model.data import examples_from_folder
from champipy.registry import Registry
from support.registry_edits import register_corrupt_version
from support.trained_model import PER_SPECIES


def test_a_version_knows_the_photos_it_trained_on(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path)
    registry = Registry(settings)
    per_species: dict[str, list[str]] = {}
    for example in examples_from_folder(trained_registry.dataset_dir):
        per_species.setdefault(example.label, []).append(example.sha256)
    expected = {sha for hashes in per_species.values() for sha in hashes[:PER_SPECIES]}
    assert registry.trained_image_hashes(trained_registry.version) == expected


def test_a_version_without_a_manifest_knows_no_photos(tmp_path, trained_registry):
    settings = trained_registry.settings_for(tmp_path)
    corrupt = register_corrupt_version(settings, trained_registry.version)
    assert Registry(settings).trained_image_hashes(corrupt) == set()
