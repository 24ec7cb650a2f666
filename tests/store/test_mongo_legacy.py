"""A MongoDB database written by the original ChampiPy keeps working with MongoStore.

The documents below are written with plain pymongo in the original layout (database
``champipy_db``, bcrypt hashes, roles in ``access``, images in GridFS without a hash), then
read and changed through the store.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

import bcrypt
import pytest
from gridfs import GridFSBucket
from pymongo import MongoClient
from pymongo.database import Database

from champipy.store.base import LabelSource, NewImage, NewPrediction, SpeciesScore
from champipy.store.mongo import DEFAULT_DATABASE, MongoStore

PHOTO = b"\xff\xd8\xff\xe0 an original amanita photo" * 50
OTHER_PHOTO = b"\xff\xd8\xff\xe0 an original bolete photo" * 50
PREDICTED_AT = datetime(2023, 5, 1, 12, 30)  # the original stored naive UTC times


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
    db.predictions.insert_one(
        {
            "user": "member",
            "url": "https://images.mushroomobserver.org/640/123.jpg",
            "filename": "123.jpg",
            "datetime": PREDICTED_AT,
            "results": [
                {"name": "Amanita muscaria", "proba": 0.91},
                {"name": "Boletus edulis", "proba": 0.09},
            ],
        }
    )
    db.parameters.insert_many(
        [
            {"param_name": "production_date", "param_value": "2023-05-01"},
            {"param_name": "last_count", "param_value": 42},
        ]
    )
    bucket = GridFSBucket(db, bucket_name="img_store")
    for filename, data, classname in [
        ("123.jpg", PHOTO, "Amanita muscaria"),
        ("456.jpg", OTHER_PHOTO, "Boletus edulis"),
        # The original cached by file name, so the same photo could be stored twice.
        ("copy-of-123.jpg", PHOTO, "Amanita muscaria"),
    ]:
        bucket.upload_from_stream(
            filename,
            data,
            metadata={"filename": filename, "classname": classname, "user": "member"},
        )


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


def test_original_predictions_are_readable_and_take_feedback(store: MongoStore):
    [prediction] = store.recent_predictions(10)
    assert prediction.username == "member"
    assert prediction.source_url == "https://images.mushroomobserver.org/640/123.jpg"
    assert prediction.filename == "123.jpg"
    assert prediction.results == (
        SpeciesScore("Amanita muscaria", 0.91),
        SpeciesScore("Boletus edulis", 0.09),
    )
    assert prediction.created_at == PREDICTED_AT.replace(tzinfo=UTC)
    assert (prediction.image_sha256, prediction.model_version, prediction.cached) == ("", "", False)
    assert store.get_prediction(prediction.id) == prediction
    assert store.recent_predictions(10, username="member") == [prediction]
    assert store.count_predictions() == 1

    corrected = store.set_feedback(prediction.id, "Amanita pantherina", "expert")
    assert corrected.feedback_species == "Amanita pantherina"
    # Without a hash the original's prediction cannot be reused as a cached answer.
    url = "https://images.mushroomobserver.org/640/123.jpg"
    assert store.find_recent_url_image(url, PREDICTED_AT - timedelta(days=1)) is None


def test_original_parameters_are_read_and_overwritten_in_place(store: MongoStore, original_db: Database):
    assert store.get_parameter("production_date") == "2023-05-01"
    assert store.get_parameter("last_count") == "42"
    store.set_parameter("production_date", "2024-02-02")
    assert store.get_parameter("production_date") == "2024-02-02"
    assert original_db.parameters.count_documents({"param_name": "production_date"}) == 1


def test_original_images_get_their_hash_and_join_the_training_set(store: MongoStore):
    assert store.count_images() == 3  # every file in img_store counts, duplicates included
    record = store.get_image(sha256_of(PHOTO))
    assert record is not None
    assert (record.label, record.label_source) == ("Amanita muscaria", LabelSource.PREDICTED)
    assert (record.username, record.size) == ("member", len(PHOTO))
    assert record.filename in ("123.jpg", "copy-of-123.jpg")
    assert store.get_image_bytes(sha256_of(PHOTO)) == PHOTO
    assert store.get_image_bytes(sha256_of(OTHER_PHOTO)) == OTHER_PHOTO

    training = store.training_images(10)
    assert sorted(r.sha256 for r in training) == sorted([sha256_of(PHOTO), sha256_of(OTHER_PHOTO)])


def test_original_images_are_not_stored_again(store: MongoStore):
    again = NewImage(sha256_of(PHOTO), PHOTO, "Boletus edulis", LabelSource.PREDICTED)
    assert store.add_image(again) is False
    assert store.get_image(sha256_of(PHOTO)).label == "Amanita muscaria"

    store.set_image_label(sha256_of(PHOTO), "Amanita pantherina", LabelSource.CONFIRMED)
    assert store.training_images(1)[0].label == "Amanita pantherina"


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

    store.set_parameter("threshold", "0.7")
    assert original_db.parameters.find_one({"param_name": "threshold"})["param_value"] == "0.7"


def test_unique_indexes_back_the_uniqueness_promises(store: MongoStore, original_db: Database):
    def unique_keys(collection: str) -> list[list[str]]:
        indexes = original_db[collection].index_information().values()
        return [[field for field, _ in index["key"]] for index in indexes if index.get("unique")]

    assert ["username"] in unique_keys("users")
    assert ["token_hash"] in unique_keys("api_tokens")
    assert ["metadata.sha256"] in unique_keys("img_store.files")
