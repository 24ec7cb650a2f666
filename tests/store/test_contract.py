"""The storage contract: every test runs on SQLite, PostgreSQL, MongoDB and the in-memory fake
alike; the tests of a real database's own behaviour (migrations, reconnection, reopening) run on
the real ones only."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit, urlunsplit

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from champipy.errors import Conflict, NotFound, StoreUnavailable
from champipy.store import Store, open_store
from champipy.store.base import (
    JobState,
    LabelSource,
    NewImage,
    NewObservation,
    NewPrediction,
    OpenSetVerdict,
    Role,
    SpeciesScore,
)
from champipy.store.sql import engine_url
from champipy.store.sql_models import Base

# Enough to tell "newest first" apart on MongoDB, whose clock ticks in milliseconds.
TICK = 0.005
UNKNOWN_IDS = ["", "nope", "0" * 24, "f" * 32, uuid.uuid4().hex, "65f0c0ffee0123456789abcd"]


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def an_image(
    data: bytes | None = None,
    label: str = "Amanita muscaria",
    source: LabelSource = LabelSource.PREDICTED,
    **extra: object,
) -> NewImage:
    data = data if data is not None else uuid.uuid4().bytes * 16
    return NewImage(sha256=sha256_of(data), data=data, label=label, label_source=source, **extra)  # type: ignore[arg-type]


def a_prediction(**overrides: object) -> NewPrediction:
    fields: dict[str, object] = dict(
        username="alice",
        image_sha256=sha256_of(uuid.uuid4().bytes),
        model_name="champipy",
        model_version="3",
        results=(
            SpeciesScore("Amanita muscaria", 0.8125),
            SpeciesScore("Boletus edulis", 0.1875),
        ),
        source_url="https://images.example.org/1.jpg",
        filename="1.jpg",
        cached=False,
        latency_ms=12.5,
        open_set=OpenSetVerdict(score=-0.375, threshold=0.25),
    )
    fields.update(overrides)
    return NewPrediction(**fields)  # type: ignore[arg-type]


def assert_utc(moment: datetime | None) -> None:
    assert moment is not None
    assert moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


def assert_recent(moment: datetime) -> None:
    assert_utc(moment)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


# --- lifecycle -------------------------------------------------------------------------------
def test_open_store_picks_the_backend_from_the_url(request, store: Store):
    expected = {
        "sqlite": "SqlStore",
        "postgresql": "SqlStore",
        "mongodb": "MongoStore",
        "memory": "MemoryStore",
    }
    assert type(store).__name__ == expected[request.node.callspec.params["store"]]


def test_ping_answers_true_on_a_live_database(store: Store):
    assert store.ping() is True


# --- users -----------------------------------------------------------------------------------
def test_added_user_reads_back_the_same(store: Store):
    added = store.add_user("alice", "$argon2id$hash", (Role.USER,))
    assert added.username == "alice"
    assert added.password_hash == "$argon2id$hash"
    assert added.roles == ("user",)
    assert added.disabled is False
    assert_recent(added.created_at)
    assert store.get_user("alice") == added


def test_a_taken_username_is_a_conflict_and_keeps_the_first_user(store: Store):
    store.add_user("alice", "first", (Role.USER,))
    with pytest.raises(Conflict):
        store.add_user("alice", "second", (Role.ADMIN,))
    user = store.get_user("alice")
    assert user is not None and user.password_hash == "first" and not user.is_admin


def test_unknown_user_is_none(store: Store):
    assert store.get_user("nobody") is None


def test_users_are_listed_by_name(store: Store):
    for name in ("carol", "alice", "bob"):
        store.add_user(name, "h", (Role.USER,))
    assert [u.username for u in store.list_users()] == ["alice", "bob", "carol"]


def test_update_user_changes_only_what_is_given(store: Store):
    created = store.add_user("alice", "old", (Role.USER,))

    updated = store.update_user("alice", roles=(Role.USER, Role.ADMIN))
    assert updated.roles == ("user", "admin") and updated.is_admin
    assert updated.password_hash == "old" and updated.disabled is False
    assert updated.created_at == created.created_at

    updated = store.update_user("alice", password_hash="new", disabled=True)
    assert (updated.password_hash, updated.disabled) == ("new", True)
    assert updated.roles == ("user", "admin")
    assert store.get_user("alice") == updated
    assert store.update_user("alice") == updated


def test_updating_an_unknown_user_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.update_user("nobody", disabled=True)


# --- API tokens ------------------------------------------------------------------------------
def test_token_is_found_by_its_hash(store: Store):
    token = store.add_token("alice", "laptop", "a" * 64)
    assert token.id and token.username == "alice" and token.name == "laptop"
    assert token.revoked is False
    assert_recent(token.created_at)
    assert store.get_token_by_hash("a" * 64) == token
    assert store.get_token_by_hash("b" * 64) is None


def test_a_token_keeps_its_expiry_and_none_means_until_revoked(store: Store):
    expiry = datetime(2031, 5, 17, 8, 30, tzinfo=UTC)
    expiring = store.add_token("alice", "ci", "c" * 64, expires_at=expiry)
    lasting = store.add_token("alice", "laptop", "d" * 64)
    assert store.get_token_by_hash("c" * 64).expires_at == expiry
    assert store.get_token_by_hash("d" * 64).expires_at is None
    assert expiring.is_expired(expiry) and not expiring.is_expired(expiry - timedelta(seconds=1))
    assert not lasting.is_expired(expiry)


def test_a_token_hash_is_unique(store: Store):
    store.add_token("alice", "laptop", "a" * 64)
    with pytest.raises(Conflict):
        store.add_token("bob", "phone", "a" * 64)


def test_tokens_are_listed_per_user_newest_first(store: Store):
    first = store.add_token("alice", "one", "1" * 64)
    time.sleep(TICK)
    second = store.add_token("alice", "two", "2" * 64)
    store.add_token("bob", "other", "3" * 64)
    assert store.list_tokens("alice") == [second, first]
    assert store.list_tokens("nobody") == []


def test_revoking_a_token_needs_its_owner(store: Store):
    token = store.add_token("alice", "laptop", "a" * 64)
    assert store.revoke_token("bob", token.id) is False
    assert store.get_token_by_hash("a" * 64).revoked is False

    assert store.revoke_token("alice", token.id) is True
    assert store.get_token_by_hash("a" * 64).revoked is True
    assert store.list_tokens("alice")[0].revoked is True


def test_revoking_an_unknown_token_is_false(store: Store):
    store.add_token("alice", "laptop", "a" * 64)
    for token_id in UNKNOWN_IDS:
        assert store.revoke_token("alice", token_id) is False, token_id


# --- images ----------------------------------------------------------------------------------
def test_image_metadata_and_bytes_round_trip(store: Store):
    # Every byte value, and more than one GridFS chunk (255 KiB).
    data = bytes(range(256)) * 2400
    image = an_image(
        data,
        label="Boletus edulis",
        source=LabelSource.IMPORTED,
        source_url="https://images.example.org/9.jpg",
        filename="9.jpg",
        username="alice",
        license="CC BY-SA 3.0",
        copyright="Jane Doe",
    )
    assert store.add_image(image) is True

    record = store.get_image(image.sha256)
    assert record is not None
    assert (record.sha256, record.label, record.label_source) == (
        image.sha256,
        "Boletus edulis",
        LabelSource.IMPORTED,
    )
    assert (record.source_url, record.filename, record.username) == (
        "https://images.example.org/9.jpg",
        "9.jpg",
        "alice",
    )
    assert (record.license, record.copyright) == ("CC BY-SA 3.0", "Jane Doe")
    assert record.size == len(data)
    assert_recent(record.created_at)
    assert store.get_image_bytes(image.sha256) == data


def test_optional_image_fields_may_be_absent(store: Store):
    image = an_image()
    store.add_image(image)
    record = store.get_image(image.sha256)
    assert record is not None
    assert (record.source_url, record.filename, record.username) == (None, None, None)
    assert (record.license, record.copyright) == (None, None)


def test_an_image_is_stored_once_by_hash(store: Store):
    data = b"the same bytes" * 100
    assert store.add_image(an_image(data, label="Amanita muscaria")) is True
    second = an_image(data, label="Boletus edulis", source=LabelSource.CONFIRMED)
    assert store.add_image(second) is False

    record = store.get_image(sha256_of(data))
    assert record is not None
    assert (record.label, record.label_source) == ("Amanita muscaria", LabelSource.PREDICTED)
    assert store.get_image_bytes(sha256_of(data)) == data
    assert store.count_images() == 1


def test_unknown_image_is_none(store: Store):
    assert store.get_image("0" * 64) is None
    assert store.get_image_bytes("0" * 64) is None


def test_an_image_label_can_be_corrected(store: Store):
    image = an_image(label="Amanita muscaria", label_probability=0.8125)
    store.add_image(image)
    assert store.get_image(image.sha256).label_probability == 0.8125
    store.set_image_label(image.sha256, "Amanita pantherina", LabelSource.CONFIRMED)
    record = store.get_image(image.sha256)
    assert record is not None
    assert (record.label, record.label_source) == ("Amanita pantherina", LabelSource.CONFIRMED)
    assert record.label_probability is None, "a person's label has no model probability"


def test_species_are_counted_by_label_source(store: Store):
    for label, source in [
        ("Amanita muscaria", LabelSource.CONFIRMED),
        ("Amanita muscaria", LabelSource.PREDICTED),
        ("Amanita muscaria", LabelSource.PREDICTED),
        ("Boletus edulis", LabelSource.IMPORTED),
        ("not a mushroom", LabelSource.CONFIRMED),
    ]:
        store.add_image(an_image(label=label, source=source))
    counts = {c.species: (c.confirmed, c.predicted, c.imported) for c in store.species_counts()}
    assert counts == {"Amanita muscaria": (1, 2, 0), "Boletus edulis": (0, 0, 1), "not a mushroom": (1, 0, 0)}
    assert [c.species for c in store.species_counts()] == sorted(counts)


def test_labelling_an_unknown_image_is_not_found(store: Store):
    with pytest.raises(NotFound):
        store.set_image_label("0" * 64, "Boletus edulis", LabelSource.CONFIRMED)


def test_images_are_counted_since_a_moment(store: Store):
    assert store.count_images() == 0
    store.add_image(an_image())
    store.add_image(an_image())
    time.sleep(TICK)
    cutoff = datetime.now(UTC)
    time.sleep(TICK)
    store.add_image(an_image())

    assert store.count_images() == 3
    assert store.count_images(since=cutoff) == 1
    assert store.count_images(since=cutoff - timedelta(days=1)) == 3
    assert store.count_images(since=cutoff + timedelta(days=1)) == 0


def test_training_images_come_confirmed_then_imported_then_predicted_newest_first(store: Store):
    order = [
        ("imported-1", LabelSource.IMPORTED),
        ("predicted-1", LabelSource.PREDICTED),
        ("confirmed-1", LabelSource.CONFIRMED),
        ("imported-2", LabelSource.IMPORTED),
        ("predicted-2", LabelSource.PREDICTED),
        ("confirmed-2", LabelSource.CONFIRMED),
    ]
    sha_of_label = {}
    for label, source in order:
        image = an_image(label=label, source=source)
        sha_of_label[label] = image.sha256
        store.add_image(image)
        time.sleep(TICK)

    labels = [r.label for r in store.training_images(10)]
    assert labels == [
        "confirmed-2",
        "confirmed-1",
        "imported-2",
        "imported-1",
        "predicted-2",
        "predicted-1",
    ]
    first_three = [r.label for r in store.training_images(3)]
    assert first_three == ["confirmed-2", "confirmed-1", "imported-2"]
    assert store.training_images(0) == []

    # A confirmation moves the oldest image up, yet it stays ordered by when it was stored.
    store.set_image_label(sha_of_label["imported-1"], "confirmed-0", LabelSource.CONFIRMED)
    assert [r.label for r in store.training_images(4)] == [
        "confirmed-2",
        "confirmed-1",
        "confirmed-0",
        "imported-2",
    ]


# --- predictions -----------------------------------------------------------------------------
def test_prediction_reads_back_the_same(store: Store):
    new = a_prediction()
    added = store.add_prediction(new)
    assert added.id
    assert_recent(added.created_at)
    for field in (
        "username",
        "image_sha256",
        "model_name",
        "model_version",
        "results",
        "source_url",
        "filename",
        "cached",
        "latency_ms",
        "open_set",
    ):
        assert getattr(added, field) == getattr(new, field), field
    assert added.feedback_species is added.feedback_username is added.feedback_at is None
    assert store.get_prediction(added.id) == added


def test_a_prediction_from_an_upload_has_no_url(store: Store):
    added = store.add_prediction(a_prediction(source_url=None, filename=None, latency_ms=None))
    assert store.get_prediction(added.id) == added


def test_a_prediction_without_an_open_set_score_reads_back_without_one(store: Store):
    added = store.add_prediction(a_prediction(open_set=None))
    assert store.get_prediction(added.id) == added
    assert store.recent_predictions(1)[0].open_set is None


def test_the_open_set_verdict_is_found_with_the_computed_prediction(store: Store):
    image = sha256_of(b"a face")
    verdict = OpenSetVerdict(score=1.5, threshold=0.25)
    store.add_prediction(a_prediction(image_sha256=image, open_set=verdict))
    found = store.find_computed_prediction(image, "3")
    assert found is not None and found.open_set == verdict and not found.open_set.recognised
    assert store.recent_predictions(1)[0].open_set == verdict


def test_unknown_or_malformed_prediction_ids_are_none(store: Store):
    store.add_prediction(a_prediction())
    for prediction_id in UNKNOWN_IDS:
        assert store.get_prediction(prediction_id) is None, prediction_id


def test_find_computed_prediction_skips_cached_answers_and_other_versions(store: Store):
    image = sha256_of(b"one photo")
    computed = store.add_prediction(a_prediction(image_sha256=image, model_version="3"))
    time.sleep(TICK)
    store.add_prediction(a_prediction(image_sha256=image, model_version="4"))
    store.add_prediction(a_prediction(image_sha256=image, model_version="3", cached=True))
    store.add_prediction(a_prediction(model_version="3"))

    assert store.find_computed_prediction(image, "3") == computed
    assert store.find_computed_prediction(image, "5") is None
    assert store.find_computed_prediction(sha256_of(b"unknown"), "3") is None


def test_only_cached_answers_are_not_a_computed_prediction(store: Store):
    image = sha256_of(b"one photo")
    store.add_prediction(a_prediction(image_sha256=image, cached=True))
    assert store.find_computed_prediction(image, "3") is None


def test_find_recent_url_image_gives_the_last_image_fetched_since(store: Store):
    url = "https://images.example.org/7.jpg"
    before = datetime.now(UTC) - timedelta(hours=1)
    store.add_prediction(a_prediction(source_url=url, image_sha256="a" * 64))
    time.sleep(TICK)
    cutoff = datetime.now(UTC)
    time.sleep(TICK)
    store.add_prediction(a_prediction(source_url=url, image_sha256="b" * 64))
    elsewhere = "https://elsewhere.example/7.jpg"
    store.add_prediction(a_prediction(source_url=elsewhere, image_sha256="c" * 64))

    assert store.find_recent_url_image(url, before) == "b" * 64
    assert store.find_recent_url_image(url, cutoff) == "b" * 64
    a_second_ahead = datetime.now(UTC) + timedelta(seconds=1)
    assert store.find_recent_url_image(url, a_second_ahead) is None
    assert store.find_recent_url_image("https://never.example/x.jpg", before) is None


def test_find_recent_url_image_ignores_fetches_before_since(store: Store):
    url = "https://images.example.org/8.jpg"
    store.add_prediction(a_prediction(source_url=url, image_sha256="a" * 64))
    time.sleep(TICK)
    assert store.find_recent_url_image(url, datetime.now(UTC)) is None


def test_recent_predictions_are_newest_first_and_per_user(store: Store):
    added = []
    for user in ("alice", "bob", "alice", "bob", "alice"):
        added.append(store.add_prediction(a_prediction(username=user)))
        time.sleep(TICK)

    assert [p.id for p in store.recent_predictions(10)] == [p.id for p in reversed(added)]
    assert [p.id for p in store.recent_predictions(2)] == [added[4].id, added[3].id]
    alice = store.recent_predictions(10, username="alice")
    assert [p.id for p in alice] == [added[4].id, added[2].id, added[0].id]
    assert [p.id for p in store.recent_predictions(1, username="bob")] == [added[3].id]
    assert store.recent_predictions(10, username="nobody") == []


def test_feedback_is_recorded_on_the_prediction(store: Store):
    added = store.add_prediction(a_prediction())
    updated = store.set_feedback(added.id, "Amanita pantherina", "expert")
    assert (updated.feedback_species, updated.feedback_username) == ("Amanita pantherina", "expert")
    assert_recent(updated.feedback_at)
    assert updated.results == added.results and updated.created_at == added.created_at
    assert store.get_prediction(added.id) == updated


def test_feedback_on_an_unknown_prediction_is_not_found(store: Store):
    for prediction_id in UNKNOWN_IDS:
        with pytest.raises(NotFound):
            store.set_feedback(prediction_id, "Boletus edulis", "expert")


# --- feedback in one write ---------------------------------------------------------------------
def a_feedback_image(prediction_sha256: str, data: bytes) -> NewImage:
    """The image a service hands over with feedback: before the store confirms its label."""
    return NewImage(
        sha256=prediction_sha256,
        data=data,
        label="Amanita muscaria",
        label_source=LabelSource.PREDICTED,
        source_url="https://images.example.org/1.jpg",
        filename="1.jpg",
        username="expert",
    )


def test_record_feedback_confirms_the_stored_image_and_sets_the_feedback(store: Store):
    image = an_image(label="Amanita muscaria", source=LabelSource.PREDICTED)
    store.add_image(image)
    added = store.add_prediction(a_prediction(image_sha256=image.sha256))

    updated = store.record_feedback(added.id, "Amanita pantherina", "expert")

    assert (updated.feedback_species, updated.feedback_username) == ("Amanita pantherina", "expert")
    assert_recent(updated.feedback_at)
    assert updated.results == added.results and updated.created_at == added.created_at
    assert store.get_prediction(added.id) == updated
    record = store.get_image(image.sha256)
    assert record is not None
    assert (record.label, record.label_source) == ("Amanita pantherina", LabelSource.CONFIRMED)
    assert store.get_image_bytes(image.sha256) == image.data
    assert store.count_images() == 1


def test_record_feedback_stores_the_given_image_confirmed(store: Store):
    data = uuid.uuid4().bytes * 64
    added = store.add_prediction(a_prediction(image_sha256=sha256_of(data)))

    updated = store.record_feedback(added.id, "Boletus edulis", "expert", a_feedback_image(added.image_sha256, data))

    assert updated.feedback_species == "Boletus edulis"
    assert store.get_prediction(added.id) == updated
    record = store.get_image(added.image_sha256)
    assert record is not None
    assert (record.label, record.label_source) == ("Boletus edulis", LabelSource.CONFIRMED)
    assert (record.source_url, record.filename, record.username) == (
        "https://images.example.org/1.jpg",
        "1.jpg",
        "expert",
    )
    assert record.size == len(data)
    assert store.get_image_bytes(added.image_sha256) == data


def test_record_feedback_labels_an_image_stored_already_and_keeps_its_bytes(store: Store):
    image = an_image(label="Amanita muscaria", source=LabelSource.IMPORTED, filename="first.jpg")
    store.add_image(image)
    added = store.add_prediction(a_prediction(image_sha256=image.sha256))

    given = replace(a_feedback_image(image.sha256, image.data), filename="second.jpg")
    store.record_feedback(added.id, "Boletus edulis", "expert", given)

    record = store.get_image(image.sha256)
    assert record is not None
    assert (record.label, record.label_source) == ("Boletus edulis", LabelSource.CONFIRMED)
    assert record.filename == "first.jpg"
    assert store.count_images() == 1


def test_record_feedback_on_an_unknown_prediction_changes_nothing(store: Store):
    other = store.add_prediction(a_prediction())
    data = uuid.uuid4().bytes * 64
    for prediction_id in UNKNOWN_IDS:
        with pytest.raises(NotFound):
            store.record_feedback(prediction_id, "Boletus edulis", "expert", a_feedback_image(sha256_of(data), data))
        with pytest.raises(NotFound):
            store.record_feedback(prediction_id, "Boletus edulis", "expert")
    assert store.count_images() == 0
    assert store.get_image(sha256_of(data)) is None
    assert store.get_prediction(other.id) == other


def test_record_feedback_without_the_image_anywhere_is_not_found_and_changes_nothing(store: Store):
    added = store.add_prediction(a_prediction())
    with pytest.raises(NotFound):
        store.record_feedback(added.id, "Boletus edulis", "expert")
    assert store.get_prediction(added.id) == added
    assert store.count_images() == 0


def test_record_feedback_refuses_another_image_than_the_predictions(store: Store):
    added = store.add_prediction(a_prediction())
    data = b"some other photo" * 100
    with pytest.raises(ValueError):
        store.record_feedback(added.id, "Boletus edulis", "expert", a_feedback_image(sha256_of(data), data))
    assert store.get_prediction(added.id) == added
    assert store.count_images() == 0


def test_concurrent_feedback_on_one_image_stores_it_once(store: Store):
    data = b"a popular photo" * 1000
    sha256 = sha256_of(data)
    predictions = [store.add_prediction(a_prediction(image_sha256=sha256)) for _ in range(6)]
    barrier = threading.Barrier(len(predictions))

    def confirm(prediction_id: str) -> str | None:
        barrier.wait()
        given = a_feedback_image(sha256, data)
        updated = store.record_feedback(prediction_id, "Boletus edulis", "expert", given)
        return updated.feedback_species

    with ThreadPoolExecutor(len(predictions)) as pool:
        outcomes = list(pool.map(confirm, [p.id for p in predictions]))

    assert outcomes == ["Boletus edulis"] * len(predictions)
    assert store.count_images() == 1
    assert store.get_image_bytes(sha256) == data
    record = store.get_image(sha256)
    assert record is not None and record.label_source is LabelSource.CONFIRMED
    for prediction in predictions:
        assert store.get_prediction(prediction.id).feedback_species == "Boletus edulis"


def test_predictions_are_counted(store: Store):
    assert store.count_predictions() == 0
    for _ in range(3):
        store.add_prediction(a_prediction())
    assert store.count_predictions() == 3


# --- parameters and events -------------------------------------------------------------------
# --- observations ------------------------------------------------------------------------------
def an_observation(**overrides: object) -> NewObservation:
    fields: dict[str, object] = dict(
        username="alice",
        prediction_ids=("p1", "p2", "p3"),
        results=(SpeciesScore("Amanita muscaria", 0.875), SpeciesScore("Boletus edulis", 0.125)),
        model_name="champipy",
        model_version="3",
        recognised=True,
        mo_observation_id=548203,
        mo_consensus="Amanita muscaria",
    )
    fields.update(overrides)
    return NewObservation(**fields)  # type: ignore[arg-type]


def test_an_observation_reads_back_the_same(store: Store):
    new = an_observation()
    added = store.add_observation(new)
    assert added.id
    assert_recent(added.created_at)
    assert {k: v for k, v in vars(added).items() if k not in ("id", "created_at")} == vars(new)
    assert store.get_observation(added.id) == added


def test_an_observation_without_mo_or_verdict_reads_back_the_same(store: Store):
    added = store.add_observation(an_observation(mo_observation_id=None, mo_consensus=None, recognised=None))
    assert store.get_observation(added.id) == added


def test_unknown_or_malformed_observation_ids_are_none(store: Store):
    store.add_observation(an_observation())
    for observation_id in UNKNOWN_IDS:
        assert store.get_observation(observation_id) is None, observation_id


def test_recent_observations_are_newest_first_and_per_user(store: Store):
    first = store.add_observation(an_observation(username="alice"))
    time.sleep(TICK)
    second = store.add_observation(an_observation(username="bob"))
    time.sleep(TICK)
    third = store.add_observation(an_observation(username="alice"))
    assert [o.id for o in store.recent_observations(10)] == [third.id, second.id, first.id]
    assert [o.id for o in store.recent_observations(10, username="alice")] == [third.id, first.id]
    assert [o.id for o in store.recent_observations(1)] == [third.id]


def test_parameters_are_set_and_overwritten(store: Store):
    assert store.get_parameter("production_since") is None
    store.set_parameter("production_since", "2024-01-01T00:00:00+00:00")
    store.set_parameter("other", "x")
    store.set_parameter("production_since", "2024-06-01T00:00:00+00:00")
    assert store.get_parameter("production_since") == "2024-06-01T00:00:00+00:00"
    assert store.get_parameter("other") == "x"


def test_events_are_listed_by_kind_newest_first(store: Store):
    payloads = [{"version": "1"}, {"version": "2", "nested": {"accuracy": 0.75, "ok": True}}]
    added = []
    for payload in payloads:
        added.append(store.add_event("promotion", payload))
        time.sleep(TICK)
    store.add_event("monitor", {"accuracy": 0.8})

    assert added[0].kind == "promotion" and added[0].payload == {"version": "1"}
    assert_recent(added[0].created_at)
    assert store.list_events("promotion") == list(reversed(added))
    assert store.list_events("promotion", limit=1) == [added[1]]
    assert [e.payload for e in store.list_events("monitor")] == [{"accuracy": 0.8}]
    assert store.list_events("unknown") == []


# --- jobs ------------------------------------------------------------------------------------
def test_a_new_job_is_queued(store: Store):
    job = store.add_job("finetune", {"epochs": 3, "layers": [1, 2]}, "admin")
    assert job.id and job.kind == "finetune"
    assert job.params == {"epochs": 3, "layers": [1, 2]}
    assert (job.state, job.username, job.progress, job.result, job.error) == (
        JobState.QUEUED,
        "admin",
        {},
        None,
        None,
    )
    assert (job.started_at, job.finished_at, job.heartbeat_at) == (None, None, None)
    assert_recent(job.created_at)
    assert store.get_job(job.id) == job


def test_job_lifecycle_sets_its_timestamps(store: Store):
    job = store.add_job("retrain", {}, None)

    running = store.update_job(job.id, state=JobState.RUNNING)
    assert running.state is JobState.RUNNING
    assert_recent(running.started_at)
    assert running.heartbeat_at is not None and running.finished_at is None

    time.sleep(TICK)
    progressing = store.update_job(job.id, progress={"epoch": 1, "of": 3})
    assert progressing.progress == {"epoch": 1, "of": 3}
    assert progressing.state is JobState.RUNNING
    assert progressing.started_at == running.started_at
    assert progressing.heartbeat_at > running.heartbeat_at

    time.sleep(TICK)
    again = store.update_job(job.id, state=JobState.RUNNING)
    assert again.started_at == running.started_at  # only the first start counts

    done = store.update_job(job.id, state=JobState.SUCCEEDED, result={"version": "4"})
    assert done.state is JobState.SUCCEEDED and done.result == {"version": "4"}
    assert_recent(done.finished_at)
    assert done.finished_at >= done.started_at
    assert done.progress == {"epoch": 1, "of": 3}
    assert store.get_job(job.id) == done


def test_a_failed_job_keeps_its_error(store: Store):
    job = store.add_job("evaluate", {}, "admin")
    failed = store.update_job(job.id, state=JobState.FAILED, error="out of memory")
    assert failed.state is JobState.FAILED and failed.error == "out of memory"
    assert failed.started_at is None
    assert_utc(failed.finished_at)
    assert_utc(failed.heartbeat_at)


def test_unknown_jobs_are_none_and_not_found(store: Store):
    store.add_job("evaluate", {}, None)
    for job_id in UNKNOWN_IDS:
        assert store.get_job(job_id) is None, job_id
        with pytest.raises(NotFound):
            store.update_job(job_id, state=JobState.RUNNING)


def test_jobs_are_listed_newest_first_and_by_state(store: Store):
    jobs = []
    for kind in ("finetune", "retrain", "evaluate"):
        jobs.append(store.add_job(kind, {}, None))
        time.sleep(TICK)
    store.update_job(jobs[1].id, state=JobState.RUNNING)

    assert [j.id for j in store.list_jobs()] == [jobs[2].id, jobs[1].id, jobs[0].id]
    assert [j.id for j in store.list_jobs(limit=1)] == [jobs[2].id]
    assert [j.id for j in store.list_jobs(state=JobState.QUEUED)] == [jobs[2].id, jobs[0].id]
    assert [j.id for j in store.list_jobs(state=JobState.RUNNING)] == [jobs[1].id]
    assert store.list_jobs(state=JobState.FAILED) == []


# --- time and concurrency --------------------------------------------------------------------
def test_every_returned_time_is_utc(store: Store):
    image = an_image()
    store.add_image(image)
    prediction = store.add_prediction(a_prediction())
    job = store.add_job("retrain", {}, None)
    store.update_job(job.id, state=JobState.RUNNING)
    store.update_job(job.id, state=JobState.SUCCEEDED)
    store.add_user("alice", "h", (Role.USER,))
    store.add_token("alice", "laptop", "a" * 64)
    store.add_event("promotion", {})

    finished = store.get_job(job.id)
    moments = [
        store.get_user("alice").created_at,
        store.get_token_by_hash("a" * 64).created_at,
        store.get_image(image.sha256).created_at,
        store.get_prediction(prediction.id).created_at,
        store.set_feedback(prediction.id, "x", "expert").feedback_at,
        store.list_events("promotion")[0].created_at,
        finished.created_at,
        finished.started_at,
        finished.finished_at,
        finished.heartbeat_at,
    ]
    for moment in moments:
        assert_recent(moment)


def test_times_in_another_zone_compare_as_the_same_instant(store: Store):
    store.add_image(an_image())
    paris = timezone(timedelta(hours=2))
    an_hour_ago_in_paris = (datetime.now(UTC) - timedelta(hours=1)).astimezone(paris)
    in_an_hour_in_paris = (datetime.now(UTC) + timedelta(hours=1)).astimezone(paris)
    assert store.count_images(since=an_hour_ago_in_paris) == 1
    assert store.count_images(since=in_an_hour_in_paris) == 0


def test_concurrent_writers_lose_nothing(store: Store):
    threads, per_thread = 8, 10

    def work(worker: int) -> list[str]:
        ids = []
        for n in range(per_thread):
            ids.append(store.add_prediction(a_prediction(username=f"user{worker}")).id)
            store.recent_predictions(5, username=f"user{worker}")
            store.set_parameter(f"last_{worker}", str(n))
        return ids

    with ThreadPoolExecutor(threads) as pool:
        ids = [i for batch in pool.map(work, range(threads)) for i in batch]

    assert len(set(ids)) == threads * per_thread
    assert store.count_predictions() == threads * per_thread
    assert store.get_parameter("last_3") == str(per_thread - 1)


def test_concurrent_adds_of_one_image_store_it_once(store: Store):
    data = b"popular photo" * 1000
    barrier = threading.Barrier(6)

    def add(label: str) -> bool:
        barrier.wait()
        return store.add_image(an_image(data, label=label))

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(add, [f"label-{n}" for n in range(6)]))

    assert outcomes.count(True) == 1
    assert store.count_images() == 1
    assert store.get_image_bytes(sha256_of(data)) == data


# --- an unreachable database -----------------------------------------------------------------
class TcpForwarder:
    """Forwards a local port to a database so that a test can cut it off or freeze it."""

    def __init__(self, target_host: str, target_port: int):
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._frozen = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _track(self, *sockets: socket.socket) -> None:
        with self._lock:
            self._sockets.extend(sockets)

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            self._track(client)
            if self._frozen.is_set():
                continue  # accepted and never answered, like a hung server
            try:
                upstream = socket.create_connection(self._target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            self._track(upstream)
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if not self._frozen.is_set():
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            self._shut(source)
            self._shut(sink)

    @staticmethod
    def _shut(sock: socket.socket) -> None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def freeze(self) -> None:
        """Keep every connection open but stop answering."""
        self._frozen.set()

    def close(self) -> None:
        """Refuse new connections and cut the open ones."""
        self._shut(self._listener)  # wakes the accept() blocked in the other thread
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                self._shut(sock)
                sock.close()


def through_port(url: str, port: int) -> str:
    if url.startswith("postgresql"):
        return make_url(url).set(port=port).render_as_string(hide_password=False)
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"127.0.0.1:{port}"))


def target_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 0


NETWORKED = ["postgresql", "mongodb"]


@pytest.fixture
def forwarded_store(request, database_url_for) -> Iterator[tuple[Store, TcpForwarder]]:
    url = database_url_for(request.param)
    forwarder = TcpForwarder(*target_of(url))
    opened = open_store(through_port(url, forwarder.port))
    yield opened, forwarder
    opened.close()
    forwarder.close()


def a_closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return listener.getsockname()[1]


@pytest.mark.parametrize("forwarded_store", NETWORKED, indirect=True)
def test_ping_is_false_soon_after_the_database_goes_away(forwarded_store):
    store, forwarder = forwarded_store
    assert store.ping() is True
    forwarder.close()
    started = time.monotonic()
    assert store.ping() is False
    assert time.monotonic() - started < 4.5


@pytest.mark.parametrize("forwarded_store", NETWORKED, indirect=True)
def test_ping_is_false_within_seconds_when_the_database_hangs(forwarded_store):
    store, forwarder = forwarded_store
    forwarder.freeze()
    started = time.monotonic()
    assert store.ping() is False
    assert time.monotonic() - started < 4.5


@pytest.mark.parametrize("backend", NETWORKED)
def test_calls_fail_as_store_unavailable_once_the_database_is_gone(database_url_for, backend):
    url = database_url_for(backend)
    if backend == "mongodb":
        # Options in the URL win over the store's defaults.
        url += ("&" if "?" in url else "?") + "serverSelectionTimeoutMS=500"
    forwarder = TcpForwarder(*target_of(url))
    store = open_store(through_port(url, forwarder.port))
    try:
        store.add_user("alice", "h", (Role.USER,))
        forwarder.close()
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.get_user("alice")
        with pytest.raises(StoreUnavailable):
            store.add_prediction(a_prediction())
        assert time.monotonic() - started < 4.5
    finally:
        store.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://root@127.0.0.1:{port}/test",
        "mongodb://127.0.0.1:{port}/champipy_test?serverSelectionTimeoutMS=500",
        "sqlite:////nonexistent-directory-{port}/champipy.db",
    ],
    ids=["postgresql", "mongodb", "sqlite"],
)
def test_opening_an_unreachable_database_is_store_unavailable(url: str):
    started = time.monotonic()
    with pytest.raises(StoreUnavailable):
        open_store(url.format(port=a_closed_port()))
    assert time.monotonic() - started < 4.5


# --- SQL backend: schema and URLs ------------------------------------------------------------
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_migrations_build_exactly_the_models(database_url_for, backend):
    url = database_url_for(backend)
    open_store(url).close()
    engine = create_engine(engine_url(url))
    try:
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    assert differences == []


def test_the_schema_revision_a_store_trusts_is_the_newest_migration():
    from alembic.script import ScriptDirectory

    from champipy.store.sql import alembic_config
    from champipy.store.sql.engine import SCHEMA_REVISION

    assert ScriptDirectory.from_config(alembic_config("sqlite://")).get_heads() == [SCHEMA_REVISION]


def test_a_migrated_database_reopens_without_loading_alembic(database_url_for):
    url = database_url_for("sqlite")
    open_store(url).close()
    code = (
        "import sys; from champipy.store import open_store; "
        f"open_store({url!r}).close(); print('alembic' in sys.modules)"
    )
    answer = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert answer.stdout.strip() == "False"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mongodb"])
def test_reopening_a_store_keeps_its_data(database_url_for, backend):
    url = database_url_for(backend)
    first = open_store(url)
    first.add_user("alice", "h", (Role.USER,))
    first.close()
    second = open_store(url)
    try:
        assert second.get_user("alice") is not None
    finally:
        second.close()


def test_postgresql_urls_use_psycopg_3():
    assert engine_url("postgresql://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert engine_url("sqlite:///x.db").drivername == "sqlite"
