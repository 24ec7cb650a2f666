"""Open-set verdicts in the prediction service: the stub scores how grey a photo is, so a grey
photo is "not one of the known species" and a saturated one is recognised."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from champipy.images import sha256_hex
from champipy.model.predictor import ScoredBatch
from champipy.services.predict import PredictionService
from champipy.services.serving import ModelProvider
from champipy.services.spool import ImageSpool
from champipy.services.verdict import answer_species, is_rejected, verdict_sentence
from champipy.store.base import Store, User

from .conftest import make_settings
from .fakes import GREY_THRESHOLD, RED, FakeFetcher, FakeRegistry, StubClassifier, StubLoader, image_bytes

GREYISH = (140, 120, 120)  # amanita at 0.37, channel spread 0.08: not recognised
GREY_PHOTO = image_bytes(GREYISH)


def build_service(tmp_path: Path, store: Store, classifier: StubClassifier) -> tuple[PredictionService, ImageSpool]:
    registry = FakeRegistry()
    registry.add_version("1")
    registry.promote("1")
    provider = ModelProvider(
        registry, StubLoader(**{"1": classifier}), model_name="champipy", alias="production", poll_seconds=60
    )
    assert provider.refresh()
    # store_threshold below the grey photo's top probability: only the verdict keeps it out
    settings = make_settings(tmp_path, store_threshold=0.3)
    spool = ImageSpool(tmp_path / "spool", max_files=50, max_bytes=10 * 1024 * 1024)
    return PredictionService(settings, store, provider, FakeFetcher(), spool), spool


@pytest.fixture
def open_set_service(tmp_path: Path, memory_store: Store) -> tuple[PredictionService, ImageSpool]:
    return build_service(tmp_path, memory_store, StubClassifier(version="1", open_set=True))


def test_the_stub_scores_fall_where_the_tests_need_them() -> None:
    batch = np.ones((1, 3, 16, 16), dtype=np.float32) * np.array(GREYISH, dtype=np.float32)[None, :, None, None]
    scores = StubClassifier(open_set=True).predict_scored(batch)
    assert scores.open_set_scores is not None and scores.open_set_scores[0] > GREY_THRESHOLD
    assert scores.probabilities.max() > 0.3


def test_a_recognised_photo_names_its_species(open_set_service, alice: User) -> None:
    service, _ = open_set_service
    prediction = service.predict_upload(image_bytes(RED), "red.png", top_k=3, user=alice).prediction
    assert prediction.open_set is not None and prediction.open_set.recognised
    assert answer_species(prediction) == "amanita" and not is_rejected(prediction)
    assert verdict_sentence(prediction).startswith("Most likely amanita (99%)")


def test_an_unrecognised_photo_keeps_its_ranking_but_names_no_species(open_set_service, alice: User) -> None:
    service, _ = open_set_service
    outcome = service.predict_upload(GREY_PHOTO, "grey.png", top_k=3, user=alice)
    verdict = outcome.prediction.open_set
    assert verdict is not None and not verdict.recognised and verdict.threshold == GREY_THRESHOLD
    assert is_rejected(outcome.prediction) and answer_species(outcome.prediction) is None
    assert [s.species for s in outcome.results][0] == "amanita"  # still ranked for the expert
    assert verdict_sentence(outcome.prediction).startswith("Not one of the 3 species ChampiPy knows")


def test_reject_false_presents_the_top_species_and_still_reports_the_verdict(open_set_service, alice: User) -> None:
    service, _ = open_set_service
    prediction = service.predict_upload(GREY_PHOTO, "grey.png", top_k=3, user=alice).prediction
    assert answer_species(prediction, reject=False) == "amanita" and not is_rejected(prediction, reject=False)
    assert prediction.open_set is not None and not prediction.open_set.recognised
    assert "Rejection is off" in verdict_sentence(prediction, reject=False)


def test_an_unrecognised_photo_is_never_kept_under_its_predicted_label(
    open_set_service, memory_store: Store, alice: User
) -> None:
    service, spool = open_set_service
    for name in ("grey.png", "grey-again.png"):
        outcome = service.predict_upload(GREY_PHOTO, name, top_k=1, user=alice)
        assert outcome.prediction.results[0].probability > service.settings.store_threshold
        assert not outcome.kept_for_training
    sha = sha256_hex(GREY_PHOTO)
    assert memory_store.get_image(sha) is None
    assert spool.get(sha) is not None  # an expert can still label it


def test_the_cache_returns_the_same_verdict_without_the_classifier(
    open_set_service, memory_store: Store, alice: User
) -> None:
    service, _ = open_set_service
    first = service.predict_upload(GREY_PHOTO, "a.png", top_k=3, user=alice)
    service.recent = type(service.recent)()  # forget the in-process memory: the store must hold the verdict
    again = service.predict_upload(GREY_PHOTO, "b.png", top_k=3, user=alice)
    assert again.prediction.cached and again.prediction.open_set == first.prediction.open_set
    assert is_rejected(again.prediction)


def test_a_version_without_an_open_set_score_answers_without_a_verdict(
    tmp_path: Path, memory_store: Store, alice: User
) -> None:
    service, _ = build_service(tmp_path, memory_store, StubClassifier(version="1"))
    outcome = service.predict_upload(GREY_PHOTO, "grey.png", top_k=3, user=alice)
    prediction = outcome.prediction
    assert prediction.open_set is None and not is_rejected(prediction) and answer_species(prediction) == "amanita"
    assert "no open-set check" in verdict_sentence(prediction)
    assert outcome.kept_for_training  # as before the open-set score existed


class _ScoreMissing(StubClassifier):
    def predict_scored(self, batch: np.ndarray) -> ScoredBatch:
        return ScoredBatch(self.predict_batch(batch), None)


def test_the_warm_up_refuses_a_version_whose_promised_score_is_missing() -> None:
    registry = FakeRegistry()
    registry.add_version("1")
    registry.promote("1")
    loader = StubLoader(**{"1": _ScoreMissing(open_set=True)})
    provider = ModelProvider(registry, loader, model_name="champipy", alias="production", poll_seconds=60)
    assert not provider.refresh()
    assert provider.serving is None and "failed to load" in (provider.last_error or "")
