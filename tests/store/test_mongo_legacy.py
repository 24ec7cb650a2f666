"""A MongoDB database written by the original ChampiPy keeps working with MongoStore.

The documents below are written with plain pymongo exactly as the original wrote them
(app/database/database.py): database ``champipy_db``, bcrypt hashes, roles in ``access``,
``proba`` in percent, images put with ``fs.put(data, filename=<URL basename>, classname=...,
user=...)`` (top-level fields, no metadata, no hash) and linked to predictions by file name
only. They are then read and changed through the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import bcrypt
import pytest
from gridfs import GridFS
from pymongo import MongoClient
from pymongo.database import Database

from champipy.store.base import LabelSource, NewImage, NewPrediction, SpeciesScore
from champipy.store.mongo import DEFAULT_DATABASE, MongoStore

PHOTO = b"\xff\xd8\xff\xe0 an original amanita photo" * 50
OTHER_PHOTO = b"\xff\xd8\xff\xe0 an original bolete photo" * 50
UNLABELLED_PHOTO = b"\xff\xd8\xff\xe0 a photo put without a class" * 50
PREDICTED_AT = datetime(2023, 5, 1, 12, 30)  # the original stored naive UTC times
URL = "https://images.mushroomobserver.org/640/123.jpg"


def without_database(mongo_url: str) -> str:
    return urlunsplit(urlsplit(mongo_url)._replace(path="/"))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_original_documents(db: Database) -> None:
    db.users.insert_many(
        [
            {
                "username": "expert",
                "hashed_password": bcrypt.hashpw(b"secret", bcrypt.gensalt(rounds=4)).decode(),
                "access": ["user", "admin"],
            },
            # bcrypt.hashpw gives bytes: stored as they were, they come back as BSON binary.
            {
                "username": "member",
                "hashed_password": bcrypt.hashpw(b"hunter2", bcrypt.gensalt(rounds=4)),
                "access": ["user"],
            },
        ]
    )
    # The original's results are percents (preds * 100, rounded to 2 places).
    db.predictions.insert_many(
        [
            {
                "user": "member",
                "url": URL,
                "filename": "123.jpg",
                "datetime": PREDICTED_AT,
                "results": [
                    {"name": "Amanita muscaria", "proba": 97.31},
                    {"name": "Boletus edulis", "proba": 2.69},
                ],
            },
            # Under 70 %: the original did not store the image.
            {
                "user": "member",
                "url": "https://images.mushroomobserver.org/640/999.jpg",
                "filename": "999.jpg",
                "datetime": PREDICTED_AT - timedelta(hours=1),
                "results": [
                    {"name": "Boletus edulis", "proba": 55.0},
                    {"name": "Amanita muscaria", "proba": 45.0},
                ],
            },
        ]
    )
    db.parameters.insert_many(
        [
            {"param_name": "production_date", "param_value": "2023-05-01"},
            {"param_name": "last_count", "param_value": 42},
        ]
    )
    fs = GridFS(db, "img_store")
    for filename, data, classname in [
        ("123.jpg", PHOTO, "Amanita muscaria"),
        ("456.jpg", OTHER_PHOTO, "Boletus edulis"),
        # The original cached by file name, so the same photo could be stored twice.
        ("copy-of-123.jpg", PHOTO, "Amanita muscaria"),
    ]:
        fs.put(data, filename=filename, classname=classname, user="member")
    # A file put by hand, without a class: it is stored but has nothing to teach.
    fs.put(UNLABELLED_PHOTO, filename="unlabelled.jpg")


@pytest.fixture
def original_db(mongo_admin: MongoClient) -> Iterator[Database]:
    mongo_admin.drop_database(DEFAULT_DATABASE)
    db = mongo_admin[DEFAULT_DATABASE]
    write_original_documents(db)
    yield db
    mongo_admin.drop_database(DEFAULT_DATABASE)


@pytest.fixture
def store(mongo_server_url: str, original_db: Database) -> Iterator[MongoStore]:
    # No database in the URL: the original's champipy_db is the default.
    opened = MongoStore(without_database(mongo_server_url))
    yield opened
    opened.close()


def test_original_users_keep_their_bcrypt_hash_and_roles(store: MongoStore):
    expert = store.get_user("expert")
    assert expert is not None
    assert bcrypt.checkpw(b"secret", expert.password_hash.encode())
    assert expert.roles == ("user", "admin") and expert.is_admin
    assert expert.disabled is False
    assert expert.created_at.utcoffset() == timedelta(0)

    member = store.get_user("member")
    assert member is not None and not member.is_admin
    assert bcrypt.checkpw(b"hunter2", member.password_hash.encode())
    assert [u.username for u in store.list_users()] == ["expert", "member"]


def test_original_users_can_be_updated(store: MongoStore, original_db: Database):
    store.update_user("member", roles=("user", "admin"), disabled=True)
    raw = original_db.users.find_one({"username": "member"})
    assert raw["access"] == ["user", "admin"] and raw["disabled"] is True
    assert bcrypt.checkpw(b"hunter2", store.get_user("member").password_hash.encode())


def test_original_predictions_are_readable_with_their_percents_as_fractions(store: MongoStore):
    prediction, unstored = store.recent_predictions(10)
    assert prediction.username == "member"
    assert prediction.source_url == URL
    assert prediction.filename == "123.jpg"
    assert [r.species for r in prediction.results] == ["Amanita muscaria", "Boletus edulis"]
    assert [r.probability for r in prediction.results] == [pytest.approx(0.9731), pytest.approx(0.0269)]
    assert [r.probability for r in unstored.results] == [pytest.approx(0.55), pytest.approx(0.45)]
    assert prediction.created_at == PREDICTED_AT.replace(tzinfo=UTC)
    assert (prediction.model_version, prediction.cached) == ("", False)
    assert store.get_prediction(prediction.id) == prediction
    assert store.recent_predictions(10, username="member") == [prediction, unstored]
    assert store.count_predictions() == 2
    # Without a hash of its own the original's prediction cannot be reused as a cached answer.
    assert store.find_recent_url_image(URL, PREDICTED_AT - timedelta(days=1)) is None


def test_original_predictions_find_their_image_by_file_name(store: MongoStore):
    prediction, unstored = store.recent_predictions(10)
    assert prediction.image_sha256 == sha256_of(PHOTO)
    # What PredictionService.feedback checks before it answers 409 "no longer available".
    assert store.get_image(prediction.image_sha256) is not None
    assert unstored.image_sha256 == ""


def test_feedback_on_an_original_prediction_confirms_its_stored_image(store: MongoStore, original_db: Database):
    [prediction] = [p for p in store.recent_predictions(10) if p.filename == "123.jpg"]
    corrected = store.record_feedback(prediction.id, "Amanita pantherina", "expert")
    assert (corrected.feedback_species, corrected.feedback_username) == ("Amanita pantherina", "expert")
    assert corrected.image_sha256 == sha256_of(PHOTO)
    image = store.get_image(sha256_of(PHOTO))
    assert (image.label, image.label_source) == ("Amanita pantherina", LabelSource.CONFIRMED)
    # The original's fine-tune reads grid_out.classname: it sees the correction too.
    raw = original_db["img_store.files"].find_one({"filename": "123.jpg"})
    assert raw["classname"] == "Amanita pantherina"
    # The original's document keeps its own shape: its percents are not rewritten.
    stored = original_db.predictions.find_one({"filename": "123.jpg"})
    assert stored["results"][0]["proba"] == 97.31 and "image_sha256" not in stored

    corrected_again = store.set_feedback(prediction.id, "Amanita muscaria", "expert")
    assert corrected_again.feedback_species == "Amanita muscaria"


def test_original_parameters_are_read_and_overwritten_in_place(store: MongoStore, original_db: Database):
    assert store.get_parameter("production_date") == "2023-05-01"
    assert store.get_parameter("last_count") == "42"
    store.set_parameter("production_date", "2024-02-02")
    assert store.get_parameter("production_date") == "2024-02-02"
    assert original_db.parameters.count_documents({"param_name": "production_date"}) == 1


def test_original_images_get_their_hash_and_join_the_training_set(store: MongoStore):
    assert store.count_images() == 4  # every file in img_store counts, duplicates included
    record = store.get_image(sha256_of(PHOTO))
    assert record is not None
    assert (record.label, record.label_source) == ("Amanita muscaria", LabelSource.PREDICTED)
    assert (record.username, record.size) == ("member", len(PHOTO))
    assert record.filename in ("123.jpg", "copy-of-123.jpg")
    assert store.get_image_bytes(sha256_of(PHOTO)) == PHOTO
    assert store.get_image_bytes(sha256_of(OTHER_PHOTO)) == OTHER_PHOTO

    other = store.get_image(sha256_of(OTHER_PHOTO))
    assert (other.label, other.username, other.filename) == ("Boletus edulis", "member", "456.jpg")

    training = store.training_images(10)
    assert sorted(r.sha256 for r in training) == sorted([sha256_of(PHOTO), sha256_of(OTHER_PHOTO)])
    assert all(r.label for r in training)


def test_a_relabel_reaches_every_copy_the_original_stored_of_those_bytes(store: MongoStore, original_db: Database):
    store.set_image_label(sha256_of(PHOTO), "Amanita pantherina", LabelSource.CONFIRMED)
    copies = list(original_db["img_store.files"].find({"filename": {"$in": ["123.jpg", "copy-of-123.jpg"]}}))
    assert len(copies) == 2
    assert [c["classname"] for c in copies] == ["Amanita pantherina", "Amanita pantherina"]
    assert store.get_image(sha256_of(PHOTO)).label == "Amanita pantherina"


def test_a_retrain_reads_the_original_photos_with_their_labels_and_bytes(store: MongoStore):
    from champipy.services.lifecycle import stored_examples

    examples = {e.sha256: e for e in stored_examples(store, limit=10)}
    assert {e.label for e in examples.values()} == {"Amanita muscaria", "Boletus edulis"}
    assert examples[sha256_of(PHOTO)].read() == PHOTO
    assert examples[sha256_of(OTHER_PHOTO)].read() == OTHER_PHOTO

    # The retrain's selection keeps them: the original's predicted labels carry no probability.
    from champipy.services.training_set import select_training_images

    # (One photo per species here: too few to train, so count what the precision rule refused.)
    kept = select_training_images(store.training_images(100), 1000, [], 20, 0, 0.99)
    strict = select_training_images(store.training_images(100), 1000, [], 20, 0, 0.99, unscored_predictions=False)
    assert kept.predicted_refused == 0 and strict.predicted_refused == 2


def test_an_original_image_without_a_class_never_trains(store: MongoStore):
    unlabelled = store.get_image(sha256_of(UNLABELLED_PHOTO))
    assert unlabelled is not None and unlabelled.label == ""
    assert sha256_of(UNLABELLED_PHOTO) not in {r.sha256 for r in store.training_images(10)}

    # Once an expert names it, it does.
    store.set_image_label(sha256_of(UNLABELLED_PHOTO), "Boletus edulis", LabelSource.CONFIRMED)
    assert store.training_images(1)[0].sha256 == sha256_of(UNLABELLED_PHOTO)


def test_original_images_are_not_stored_again(store: MongoStore, original_db: Database):
    again = NewImage(sha256_of(PHOTO), PHOTO, "Boletus edulis", LabelSource.PREDICTED)
    assert store.add_image(again) is False
    assert store.get_image(sha256_of(PHOTO)).label == "Amanita muscaria"

    store.set_image_label(sha256_of(PHOTO), "Amanita pantherina", LabelSource.CONFIRMED)
    assert store.training_images(1)[0].label == "Amanita pantherina"
    raw = original_db["img_store.files"].find_one({"metadata.sha256": sha256_of(PHOTO)})
    assert (raw["classname"], raw["metadata"]["classname"]) == ("Amanita pantherina", "Amanita pantherina")


def test_reopening_leaves_the_hashed_images_alone(store: MongoStore, mongo_server_url: str, original_db: Database):
    files = original_db["img_store.files"]
    before = list(files.find({}, {"metadata": 1}).sort("_id", 1))
    MongoStore(without_database(mongo_server_url)).close()
    assert list(files.find({}, {"metadata": 1}).sort("_id", 1)) == before
    duplicates = [f for f in before if "duplicate_of" in f["metadata"]]
    assert [d["metadata"]["duplicate_of"] for d in duplicates] == [sha256_of(PHOTO)]


def test_new_documents_use_the_original_field_names(store: MongoStore, original_db: Database):
    store.add_user("newcomer", "$2b$12$hash", ("user",))
    assert original_db.users.find_one({"username": "newcomer"})["access"] == ["user"]
    assert original_db.users.find_one({"username": "newcomer"})["hashed_password"] == "$2b$12$hash"

    prediction = store.add_prediction(
        NewPrediction(
            username="newcomer",
            image_sha256="a" * 64,
            model_name="champipy",
            model_version="7",
            results=(SpeciesScore("Boletus edulis", 0.75),),
            source_url="https://images.mushroomobserver.org/640/789.jpg",
            filename="789.jpg",
        )
    )
    raw = original_db.predictions.find_one({"model_version": "7"})
    assert str(raw["_id"]) == prediction.id
    assert (raw["user"], raw["url"], raw["filename"]) == (
        "newcomer",
        "https://images.mushroomobserver.org/640/789.jpg",
        "789.jpg",
    )
    assert raw["results"] == [{"name": "Boletus edulis", "proba": 0.75}]
    assert isinstance(raw["datetime"], datetime)
    # ChampiPy's own fractions are read as they are, not taken for percents.
    assert store.get_prediction(prediction.id).results == (SpeciesScore("Boletus edulis", 0.75),)

    data = b"a new photo" * 10
    store.add_image(
        NewImage(
            sha256_of(data),
            data,
            "Boletus edulis",
            LabelSource.PREDICTED,
            filename="789.jpg",
            username="newcomer",
        )
    )
    stored = original_db["img_store.files"].find_one({"metadata.sha256": sha256_of(data)})
    metadata = stored["metadata"]
    assert (metadata["filename"], metadata["classname"], metadata["user"]) == (
        "789.jpg",
        "Boletus edulis",
        "newcomer",
    )
    # Where the original's fs.put wrote them, so its fine-tune can use ChampiPy's images.
    assert (stored["filename"], stored["classname"], stored["user"]) == ("789.jpg", "Boletus edulis", "newcomer")

    store.set_parameter("threshold", "0.7")
    assert original_db.parameters.find_one({"param_name": "threshold"})["param_value"] == "0.7"


def test_unique_indexes_back_the_uniqueness_promises(store: MongoStore, original_db: Database):
    def unique_keys(collection: str) -> list[list[str]]:
        indexes = original_db[collection].index_information().values()
        return [[field for field, _ in index["key"]] for index in indexes if index.get("unique")]

    assert ["username"] in unique_keys("users")
    assert ["token_hash"] in unique_keys("api_tokens")
    assert ["metadata.sha256"] in unique_keys("img_store.files")
