"""PredictionService, the hot path: real service, in-memory store, stub classifier and fetcher."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta

import pytest

import champipy.services.predict as predict_module
from champipy.errors import (
    Busy,
    InvalidInput,
    NotAnImage,
    NotFound,
    QuotaExceeded,
    TooManyFetches,
)
from champipy.images import sha256_hex
from champipy.services.login_throttle import throttle_storage
from champipy.services.predict import PredictionService
from champipy.services.quota import DailyQuota
from champipy.services.spool import ImageSpool
from champipy.store.base import LabelSource, Role

from .conftest import make_settings
from .fakes import (
    BLUE,
    GREEN,
    LABELS,
    RED,
    StubClassifier,
    image_bytes,
    top_probability,
)

CONFIDENT = RED  # amanita at 0.99: above store_threshold (0.70)
MIDDLING = (150, 50, 50)  # amanita at 0.60: answered, not kept, not uncertain
DOUBTFUL = (100, 80, 80)  # amanita at 0.38: below uncertain_threshold (0.50)


def test_the_stub_colours_fall_where_the_tests_need_them():
    assert top_probability(CONFIDENT) > 0.70
    assert 0.50 < top_probability(MIDDLING) < 0.70
    assert top_probability(DOUBTFUL) < 0.50


# --- a computed prediction -----------------------------------------------------------------
def test_a_computed_prediction_is_stored_with_every_species_most_probable_first(service, memory_store, alice):
    data = image_bytes(GREEN)
    outcome = service.predict_upload(data, "green.png", top_k=1, user=alice)

    stored = memory_store.get_prediction(outcome.prediction.id)
    assert stored is not None
    assert stored.results[0].species == "boletus"
    assert sorted(s.species for s in stored.results) == sorted(LABELS)
    probabilities = [s.probability for s in stored.results]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert stored.image_sha256 == sha256_hex(data)
    assert (stored.username, stored.model_name, stored.model_version) == ("alice", "champipy", "1")
    assert stored.cached is False and stored.filename == "green.png" and stored.source_url is None
    assert [s.species for s in outcome.results] == ["boletus"]  # top_k of them in the answer


def test_the_same_image_again_is_served_from_the_cache_without_the_classifier(service, memory_store, loader, alice):
    data = image_bytes(BLUE)
    first = service.predict_upload(data, "a.png", top_k=3, user=alice)
    classifier = loader.by_version["1"]
    predicted = classifier.images_predicted

    again = service.predict_upload(data, "b.png", top_k=3, user=alice)

    assert classifier.images_predicted == predicted
    assert again.prediction.cached is True and first.prediction.cached is False
    assert again.prediction.id != first.prediction.id  # every request is stored
    assert again.prediction.results == first.prediction.results
    assert memory_store.count_predictions() == 2


def test_a_repeated_image_is_answered_from_memory_without_reading_the_store(service, memory_store, alice, monkeypatch):
    data = image_bytes(BLUE)
    service.predict_upload(data, None, top_k=1, user=alice)
    monkeypatch.setattr(memory_store, "find_computed_prediction", lambda *a: pytest.fail("read the store"))

    assert service.predict_upload(data, None, top_k=1, user=alice).prediction.cached is True


def test_the_store_cache_serves_a_new_process_without_the_classifier(
    settings, memory_store, provider, loader, fetcher, tmp_path, alice, service
):
    data = image_bytes(BLUE)
    service.predict_upload(data, None, top_k=1, user=alice)
    predicted = loader.by_version["1"].images_predicted
    restarted = PredictionService(settings, memory_store, provider, fetcher, ImageSpool(tmp_path / "spool2"))
    outcome = restarted.predict_upload(data, None, top_k=1, user=alice)

    assert outcome.prediction.cached is True
    assert loader.by_version["1"].images_predicted == predicted


def test_a_new_model_version_computes_again(service, registry, loader, provider, alice):
    data = image_bytes(BLUE)
    service.predict_upload(data, None, top_k=1, user=alice)
    registry.add_version("2")
    loader.set("2", StubClassifier(version="2"))
    registry.promote("2")
    assert provider.refresh()

    outcome = service.predict_upload(data, None, top_k=1, user=alice)

    assert outcome.prediction.cached is False
    assert outcome.prediction.model_version == "2"
    # warm-up (1 image) and this prediction (1 image)
    assert loader.by_version["2"].images_predicted == 2


# --- kept for training, uncertain ------------------------------------------------------------
def test_a_confident_image_is_kept_for_training_with_the_predicted_label(service, memory_store, alice):
    data = image_bytes(CONFIDENT)
    outcome = service.predict_upload(data, "red.png", top_k=1, user=alice)

    assert outcome.kept_for_training is True
    image = memory_store.get_image(sha256_hex(data))
    assert image is not None
    assert (image.label, image.label_source) == ("amanita", LabelSource.PREDICTED)
    assert image.label_probability == pytest.approx(outcome.prediction.results[0].probability)
    assert image.username == "alice" and image.filename == "red.png"
    assert memory_store.get_image_bytes(image.sha256) == data


def test_an_image_under_the_store_threshold_is_not_kept(service, memory_store, alice):
    data = image_bytes(MIDDLING)
    outcome = service.predict_upload(data, None, top_k=1, user=alice)

    assert outcome.kept_for_training is False
    assert memory_store.get_image(sha256_hex(data)) is None
    assert memory_store.count_images() == 0


def test_a_cached_answer_says_whether_the_image_was_kept(service, alice):
    kept = image_bytes(CONFIDENT)
    service.predict_upload(kept, None, top_k=1, user=alice)
    assert service.predict_upload(kept, None, top_k=1, user=alice).kept_for_training is True
    not_kept = image_bytes(MIDDLING)
    service.predict_upload(not_kept, None, top_k=1, user=alice)
    assert service.predict_upload(not_kept, None, top_k=1, user=alice).kept_for_training is False


@pytest.mark.parametrize(("colour", "uncertain"), [(CONFIDENT, False), (MIDDLING, False), (DOUBTFUL, True)])
def test_uncertain_below_the_uncertain_threshold(service, alice, colour, uncertain):
    outcome = service.predict_upload(image_bytes(colour), None, top_k=1, user=alice)
    assert outcome.uncertain is uncertain
    assert outcome.results[0].probability == pytest.approx(top_probability(colour), abs=1e-4)


# --- refused inputs --------------------------------------------------------------------------
@pytest.mark.parametrize("top_k", [0, -1, len(LABELS) + 1])
def test_top_k_outside_one_to_the_number_of_species_is_refused(service, memory_store, alice, top_k):
    with pytest.raises(InvalidInput, match="top_k"):
        service.predict_upload(image_bytes(RED), None, top_k=top_k, user=alice)
    assert memory_store.count_predictions() == 0


def test_top_k_equal_to_the_number_of_species_answers_them_all(service, alice):
    outcome = service.predict_upload(image_bytes(RED), None, top_k=len(LABELS), user=alice)
    assert len(outcome.results) == len(LABELS)


def test_an_empty_upload_is_refused(service, memory_store, alice):
    with pytest.raises(InvalidInput, match="empty"):
        service.predict_upload(b"", "empty.png", top_k=1, user=alice)
    assert memory_store.count_predictions() == 0


def test_bytes_that_are_not_an_image_give_the_typed_error_and_store_nothing(service, memory_store, observer, alice):
    with pytest.raises(NotAnImage):
        service.predict_upload(b"%PDF-1.4 certainly not a mushroom", "x.png", top_k=1, user=alice)
    assert memory_store.count_predictions() == 0
    assert observer.predictions == []


@contextmanager
def every_slot_taken(service: PredictionService) -> Iterator[None]:
    """As if ``max_pending_predictions`` other requests were computing right now."""
    with ExitStack() as stack:
        for _ in range(service.admission.limit):
            stack.enter_context(service.admission.slot())
        yield


def test_a_full_admission_gate_answers_busy(service, memory_store, alice):
    with every_slot_taken(service), pytest.raises(Busy):
        service.predict_upload(image_bytes(RED), None, top_k=1, user=alice)
    assert memory_store.count_predictions() == 0
    assert service.predict_upload(image_bytes(RED), None, top_k=1, user=alice).prediction.cached is False


def test_an_answer_from_the_cache_needs_no_admission_slot(service, alice):
    data = image_bytes(RED)
    service.predict_upload(data, None, top_k=1, user=alice)
    with every_slot_taken(service):
        assert service.predict_upload(data, None, top_k=1, user=alice).prediction.cached is True


def test_the_daily_quota_counts_every_request(settings, memory_store, provider, fetcher, tmp_path, alice, bob):
    quota = DailyQuota(throttle_storage(""), per_day=2)
    service = PredictionService(settings, memory_store, provider, fetcher, ImageSpool(tmp_path / "s"), quota)
    data = image_bytes(RED)
    service.predict_upload(data, None, top_k=1, user=alice)
    service.predict_upload(data, None, top_k=1, user=alice)  # from the cache: counts too
    with pytest.raises(QuotaExceeded):
        service.predict_upload(data, None, top_k=1, user=alice)
    assert service.predict_upload(data, None, top_k=1, user=bob).prediction.cached is True


# --- by URL ----------------------------------------------------------------------------------
URL = "https://photos.example/shrooms/cep.png?size=large"


def test_predict_url_downloads_through_the_fetcher(service, fetcher, memory_store, alice):
    data = image_bytes(GREEN)
    fetcher.images[URL] = data

    outcome = service.predict_url(f"  {URL} ", top_k=2, user=alice)

    assert fetcher.fetched == [URL]  # stripped
    assert outcome.prediction.source_url == URL
    assert outcome.prediction.filename == "cep.png"
    assert outcome.prediction.image_sha256 == sha256_hex(data)
    assert outcome.results[0].species == "boletus"
    assert memory_store.get_image(sha256_hex(data)).source_url == URL  # kept, with where it came from


def test_a_url_seen_within_the_ttl_is_not_downloaded_again(service, fetcher, alice):
    fetcher.images[URL] = image_bytes(GREEN)
    first = service.predict_url(URL, top_k=1, user=alice)

    again = service.predict_url(URL, top_k=1, user=alice)

    assert fetcher.fetched == [URL]
    assert again.prediction.cached is True
    assert again.prediction.results == first.prediction.results
    assert again.prediction.source_url == URL


def test_a_url_seen_longer_ago_than_the_ttl_is_downloaded_again(service, fetcher, settings, alice, monkeypatch):
    fetcher.images[URL] = image_bytes(GREEN)
    service.predict_url(URL, top_k=1, user=alice)
    real_now = predict_module.utcnow
    later = timedelta(seconds=settings.url_cache_ttl_seconds + 60)
    monkeypatch.setattr(predict_module, "utcnow", lambda: real_now() + later)

    again = service.predict_url(URL, top_k=1, user=alice)

    assert fetcher.fetched == [URL, URL]
    assert again.prediction.cached is True  # same bytes, same model: still no computation


def test_a_ttl_of_zero_downloads_every_time(tmp_path, memory_store, provider, fetcher, alice):
    service = PredictionService(
        make_settings(tmp_path, url_cache_ttl_seconds=0), memory_store, provider, fetcher, ImageSpool(tmp_path / "s")
    )
    fetcher.images[URL] = image_bytes(GREEN)
    service.predict_url(URL, top_k=1, user=alice)
    service.predict_url(URL, top_k=1, user=alice)
    assert fetcher.fetched == [URL, URL]


def test_the_per_user_download_limit_refuses_one_more_in_flight(service, fetcher, settings, alice, bob):
    assert settings.fetch_per_user == 2
    second, third, bobs = f"{URL}&2", f"{URL}&3", f"{URL}&bob"
    for n, url in enumerate((URL, second, third, bobs)):
        fetcher.images[url] = image_bytes((0, 200 + n, 0))
    answered = []

    def while_downloading(url: str) -> None:
        if url == URL:
            service.predict_url(second, top_k=1, user=alice)  # alice's second download
        elif url == second:
            with pytest.raises(TooManyFetches):
                service.predict_url(third, top_k=1, user=alice)  # her third, while two run
            answered.append(service.predict_url(bobs, top_k=1, user=bob))  # bob has his own limit

    fetcher.during_fetch = while_downloading
    service.predict_url(URL, top_k=1, user=alice)

    assert fetcher.fetched == [URL, second, bobs]
    assert answered[0].prediction.username == "bob"
    service.predict_url(third, top_k=1, user=alice)  # the slots were given back
    assert fetcher.fetched[-1] == third


# --- feedback --------------------------------------------------------------------------------
def test_feedback_on_a_kept_image_confirms_its_label(service, memory_store, alice):
    data = image_bytes(CONFIDENT)
    outcome = service.predict_upload(data, None, top_k=1, user=alice)

    updated = service.feedback(outcome.prediction.id, "chanterelle", alice)

    assert (updated.feedback_species, updated.feedback_username) == ("chanterelle", "alice")
    assert memory_store.get_prediction(outcome.prediction.id).feedback_species == "chanterelle"
    image = memory_store.get_image(sha256_hex(data))
    assert (image.label, image.label_source) == ("chanterelle", LabelSource.CONFIRMED)


def test_feedback_on_an_image_not_kept_stores_it_confirmed_from_the_spool(service, memory_store, alice):
    data = image_bytes(DOUBTFUL)
    outcome = service.predict_upload(data, "doubt.png", top_k=1, user=alice)
    assert memory_store.get_image(sha256_hex(data)) is None

    service.feedback(outcome.prediction.id, "boletus", alice)

    image = memory_store.get_image(sha256_hex(data))
    assert image is not None
    assert (image.label, image.label_source, image.filename) == ("boletus", LabelSource.CONFIRMED, "doubt.png")
    assert memory_store.get_image_bytes(image.sha256) == data
    # the image is now known as kept: the next answer says so
    assert service.predict_upload(data, None, top_k=1, user=alice).kept_for_training is True


def test_feedback_goes_through_record_feedback_as_one_write(service, memory_store, alice, monkeypatch):
    outcome = service.predict_upload(image_bytes(DOUBTFUL), None, top_k=1, user=alice)
    calls = []
    real = memory_store.record_feedback

    def spy(prediction_id, species, username, image=None):
        calls.append((prediction_id, species, username, image))
        return real(prediction_id, species, username, image)

    monkeypatch.setattr(memory_store, "record_feedback", spy)
    monkeypatch.setattr(memory_store, "set_feedback", lambda *a, **k: pytest.fail("two writes"))
    monkeypatch.setattr(memory_store, "add_image", lambda *a, **k: pytest.fail("two writes"))

    service.feedback(outcome.prediction.id, "amanita", alice)

    assert len(calls) == 1
    prediction_id, species, username, image = calls[0]
    assert (prediction_id, species, username) == (outcome.prediction.id, "amanita", "alice")
    assert image is not None and image.label_source == LabelSource.CONFIRMED


def test_feedback_on_another_users_prediction_is_not_found(service, memory_store, alice, bob):
    outcome = service.predict_upload(image_bytes(CONFIDENT), None, top_k=1, user=alice)

    with pytest.raises(NotFound):
        service.feedback(outcome.prediction.id, "boletus", bob)

    assert memory_store.get_prediction(outcome.prediction.id).feedback_species is None
    assert memory_store.get_image(outcome.prediction.image_sha256).label_source == LabelSource.PREDICTED


def test_an_admin_may_give_feedback_on_anyones_prediction(service, memory_store, alice):
    admin = memory_store.add_user("root", "not-a-real-hash", (Role.ADMIN,))
    outcome = service.predict_upload(image_bytes(CONFIDENT), None, top_k=1, user=alice)
    assert service.feedback(outcome.prediction.id, "boletus", admin).feedback_username == "root"


def test_feedback_on_an_unknown_prediction_is_not_found(service, alice):
    with pytest.raises(NotFound):
        service.feedback("no-such-prediction", "amanita", alice)


def test_feedback_names_a_species_the_model_does_not_know_and_it_is_stored_normalised(service, memory_store, alice):
    outcome = service.predict_upload(image_bytes(CONFIDENT), None, top_k=1, user=alice)

    updated = service.feedback(outcome.prediction.id, "boletus  EDULIS ", alice)

    assert updated.feedback_species == "Boletus edulis"
    image = memory_store.get_image(outcome.prediction.image_sha256)
    assert (image.label, image.label_source) == ("Boletus edulis", LabelSource.CONFIRMED)


def test_feedback_keeps_the_spelling_of_a_species_the_store_knows(service, memory_store, alice):
    first = service.predict_upload(image_bytes(CONFIDENT), None, top_k=1, user=alice)
    service.feedback(first.prediction.id, "Boletus edulis", alice)
    second = service.predict_upload(image_bytes(RED), None, top_k=1, user=alice)
    assert service.feedback(second.prediction.id, "BOLETUS edulis", alice).feedback_species == "Boletus edulis"
    third = service.predict_upload(image_bytes(BLUE), None, top_k=1, user=alice)
    assert service.feedback(third.prediction.id, "Chanterelle", alice).feedback_species == "chanterelle"


@pytest.mark.parametrize(
    ("given", "stored"), [("Not a mushroom", "not a mushroom"), ("unknown-species", "unknown species")]
)
def test_the_special_answers_are_stored_as_such(service, memory_store, alice, given, stored):
    outcome = service.predict_upload(image_bytes(CONFIDENT), None, top_k=1, user=alice)
    assert service.feedback(outcome.prediction.id, given, alice).feedback_species == stored
    assert memory_store.get_image(outcome.prediction.image_sha256).label == stored


def test_feedback_with_something_that_is_not_a_species_name_is_refused(service, memory_store, alice):
    outcome = service.predict_upload(image_bytes(CONFIDENT), None, top_k=1, user=alice)

    with pytest.raises(InvalidInput, match="not a species name"):
        service.feedback(outcome.prediction.id, "death cap 42", alice)

    assert memory_store.get_prediction(outcome.prediction.id).feedback_species is None


# --- the observer ----------------------------------------------------------------------------
def test_the_observer_hears_each_answered_prediction(service, fetcher, observer, alice):
    data = image_bytes(RED)
    fetcher.images[URL] = image_bytes(BLUE)
    answers = [
        service.predict_upload(data, None, top_k=1, user=alice),
        service.predict_upload(data, None, top_k=1, user=alice),  # cached
        service.predict_url(URL, top_k=1, user=alice),
        service.predict_url(URL, top_k=1, user=alice),  # URL cache
    ]
    with pytest.raises(InvalidInput):
        service.predict_upload(b"", None, top_k=1, user=alice)

    assert [p.id for p in observer.predictions] == [a.prediction.id for a in answers]
    assert [p.cached for p in observer.predictions] == [False, True, False, True]
