"""A retrain on a MongoDB database the original ChampiPy wrote, end to end: real photos put
into GridFS the way the original put them (``fs.put(data, filename=<URL basename>,
classname=<species>, user=<name>)``: top-level fields, no hash, no metadata), then the retrain
job's body trains, evaluates and registers a model from them. It must learn the original's
classes by their real names, and nothing from a photo without a class."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from gridfs import GridFS
from pymongo import MongoClient

from champipy.container import build_container
from champipy.services.lifecycle import labels_of
from champipy.store.mongo import DEFAULT_DATABASE

SPECIES = ("Amanita muscaria", "Coprinus comatus", "Lycogala epidendrum")
PER_SPECIES = 8

pytestmark = pytest.mark.slow


@pytest.fixture
def original_photos(mongo_admin: MongoClient, trained_registry) -> Iterator[dict[str, list[Path]]]:
    mongo_admin.drop_database(DEFAULT_DATABASE)
    fs = GridFS(mongo_admin[DEFAULT_DATABASE], "img_store")
    put: dict[str, list[Path]] = {}
    for species in SPECIES:
        photos = sorted((trained_registry.dataset_dir / species).iterdir())[-PER_SPECIES:]
        for photo in photos:
            fs.put(photo.read_bytes(), filename=photo.name, classname=species, user="member")
        put[species] = photos
    unlabelled = sorted((trained_registry.dataset_dir / SPECIES[0]).iterdir())[0]
    fs.put(unlabelled.read_bytes(), filename="by-hand.jpg")  # no class: nothing to learn from
    yield put
    mongo_admin.drop_database(DEFAULT_DATABASE)


def test_a_retrain_learns_the_original_classes_from_its_gridfs_photos(
    tmp_path, trained_registry, mongo_server_url, original_photos
):
    eval_subset = tmp_path / "eval"
    for species in SPECIES:  # evaluated on the species it can know
        (eval_subset / species).mkdir(parents=True)
        for photo in sorted((Path(trained_registry.eval_dir) / species).iterdir()):
            (eval_subset / species / photo.name).symlink_to(photo.resolve())
    settings = trained_registry.settings_for(
        tmp_path / "data",
        database_url=urlunsplit(urlsplit(mongo_server_url)._replace(path=f"/{DEFAULT_DATABASE}")),
        eval_dir=eval_subset,
        backbone="lite0",
        retrain_species_floor=0,
    )
    container = build_container(settings, serving=True)
    try:
        assert container.lifecycle is not None and container.registry is not None
        events: list[dict] = []
        result = container.lifecycle.retrain({"promote_if_better": False}, events.append)
        assert sorted(result["species"]) == sorted(SPECIES)  # no '' class from the unlabelled photo
        assert result["images"] == len(SPECIES) * PER_SPECIES
        version = container.registry.get_version(result["version"])
        assert sorted(labels_of(version)) == sorted(SPECIES)
        assert version.metrics["eval_top1"] > 1 / len(SPECIES)  # it learnt something from those photos
        assert any(event.get("stage") == "training" for event in events)
    finally:
        container.close()
