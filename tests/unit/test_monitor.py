"""Monitor: the periodic check and the numbers Bob watches, on a tiny evaluation folder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from champipy.errors import InvalidInput, NotFound
from champipy.images import sha256_hex
from champipy.jobs.kinds import JobKind
from champipy.services.lifecycle import PROMOTION, ModelLifecycle
from champipy.services.monitor import MONITOR, Monitor, accuracy_cache_key
from champipy.services.serving import ModelProvider
from champipy.settings import Settings
from champipy.store import Store, open_store
from champipy.store.base import LabelSource, NewImage, NewPrediction, SpeciesScore

from .conftest import make_settings
from .fakes import (
    BLUE,
    GREEN,
    RED,
    FakeJobSubmitter,
    FakeRegistry,
    RecordingAlert,
    StubClassifier,
    StubLoader,
    image_bytes,
)

SPECIES_COLOUR = {"amanita": RED, "boletus": GREEN, "chanterelle": BLUE}


def write_eval_dir(root: Path, wrong: int = 0) -> Path:
    """One correctly predicted photo per species, and ``wrong`` green photos filed as amanita:
    the stub classifier's top-1 accuracy is 3 / (3 + wrong)."""
    for species, colour in SPECIES_COLOUR.items():
        (root / species).mkdir(parents=True, exist_ok=True)
        (root / species / "right.png").write_bytes(image_bytes(colour))
    for n in range(wrong):
        (root / "amanita" / f"wrong-{n}.jpg").write_bytes(image_bytes((0, 250 - n, 0), fmt="JPEG"))
    (root / "amanita" / "notes.txt").write_text("not a photo")  # not an image suffix: ignored
    return root


@dataclass
class Parts:
    settings: Settings
    store: Store
    registry: FakeRegistry
    loader: StubLoader
    provider: ModelProvider
    lifecycle: ModelLifecycle
    jobs: FakeJobSubmitter
    alert: RecordingAlert
    monitor: Monitor

    def add_images(self, n: int, start: int = 0) -> None:
        for i in range(start, start + n):
            data = image_bytes((i % 256, i // 256, 200))
            self.store.add_image(
                NewImage(sha256=sha256_hex(data), data=data, label="chanterelle", label_source=LabelSource.PREDICTED)
            )


def build(
    tmp_path: Path,
    store: Store,
    *,
    wrong: int = 0,
    with_jobs: bool = True,
    promote: bool = True,
    classifier: StubClassifier | None = None,
    **overrides,
) -> Parts:
    overrides.setdefault("eval_dir", write_eval_dir(tmp_path / "eval", wrong))
    settings = make_settings(tmp_path, **overrides)
    registry = FakeRegistry()
    registry.add_version("1")
    loader = StubLoader(**{"1": classifier or StubClassifier(version="1")})
    provider = ModelProvider(registry, loader, model_name="champipy", alias="production", poll_seconds=60)
    jobs = FakeJobSubmitter(store)
    lifecycle = ModelLifecycle(settings, store, registry, provider, jobs if with_jobs else None)
    alert = RecordingAlert()
    monitor = Monitor(settings, store, provider, registry, lifecycle, alert)
    if promote:
        lifecycle.promote_version("1", by="bob")  # records the promotion and serves it
    return Parts(settings, store, registry, loader, provider, lifecycle, jobs, alert, monitor)


# --- the check -----------------------------------------------------------------------------
def test_within_the_targets_the_check_is_ok_and_sends_no_alert(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, target_accuracy=0.7, target_new_images=5)
    parts.add_images(4)

    result = parts.monitor.run_check()

    assert result.ok is True and result.alerts == []
    assert (result.accuracy, result.nb_new_img, result.model_version) == (1.0, 4, "1")
    assert parts.alert.payloads == []
    [event] = memory_store.list_events(MONITOR)
    assert event.payload == result.to_dict()
    assert parts.registry.logged_metrics == [("1", {"monitor_accuracy": 1.0, "monitor_new_images": 4.0})]
    assert parts.jobs.jobs == []


def test_accuracy_below_the_target_fails_the_check_and_alerts(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, wrong=3, target_accuracy=0.7, target_new_images=5)

    result = parts.monitor.run_check()

    assert result.ok is False
    assert result.accuracy == pytest.approx(0.5)
    assert len(result.alerts) == 1 and "accuracy 0.500 is below the target 0.70" in result.alerts[0]
    assert parts.alert.payloads == [{"service": "champipy", "event": "model_check_failed", **result.to_dict()}]
    [event] = memory_store.list_events(MONITOR)
    assert event.payload["ok"] is False and event.payload["alerts"] == result.alerts


def test_new_images_at_the_target_fail_the_check_and_alert(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, target_accuracy=0.7, target_new_images=3)
    parts.add_images(3)

    result = parts.monitor.run_check()

    assert result.ok is False and result.nb_new_img == 3
    assert len(result.alerts) == 1 and result.alerts[0].startswith("3 new images since promotion (threshold 3)")
    assert len(parts.alert.payloads) == 1 and parts.alert.payloads[0]["alerts"] == result.alerts


def test_both_targets_crossed_give_two_alerts_in_one_message(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, wrong=3, target_accuracy=0.7, target_new_images=2)
    parts.add_images(2)

    result = parts.monitor.run_check()

    assert result.ok is False and len(result.alerts) == 2
    assert len(parts.alert.payloads) == 1 and parts.alert.payloads[0]["alerts"] == result.alerts


def test_an_undelivered_alert_does_not_change_the_result(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, wrong=3)
    parts.alert.delivered = False

    result = parts.monitor.run_check()

    assert result.ok is False and len(parts.alert.payloads) == 1
    assert len(memory_store.list_events(MONITOR)) == 1


def test_no_model_in_production_is_an_alert(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, promote=False)

    result = parts.monitor.run_check()

    assert result.ok is False
    assert result.alerts == ["no model is in production"]
    assert (result.model_version, result.accuracy, result.nb_new_img) == (None, None, None)
    assert parts.registry.logged_metrics == []
    assert len(parts.alert.payloads) == 1


@pytest.mark.parametrize("wrong", [0, 3])
def test_mlflow_logging_failing_does_not_change_the_result(tmp_path, memory_store, wrong):
    other_store = open_store("memory://")
    logging_ok = build(tmp_path / "ok", other_store, wrong=wrong).monitor.run_check()
    other_store.close()
    parts = build(tmp_path / "failing", memory_store, wrong=wrong)
    parts.registry.failing_metrics = RuntimeError("MLflow tracking server returned 503")

    result = parts.monitor.run_check()

    assert _verdict(result) == _verdict(logging_ok)
    assert parts.registry.logged_metrics == []
    assert [e.payload["ok"] for e in memory_store.list_events(MONITOR)] == [result.ok]
    assert len(parts.alert.payloads) == (0 if result.ok else 1)


def _verdict(result):
    return result.ok, result.accuracy, result.nb_new_img, result.model_version, result.alerts


# --- retraining on new images ---------------------------------------------------------------
def test_crossing_the_new_image_target_submits_a_retrain_when_asked_to(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, target_new_images=3, retrain_on_new_images=True)
    parts.add_images(3)

    parts.monitor.run_check()

    [job] = parts.jobs.jobs
    assert job.kind == JobKind.RETRAIN
    assert job.params == {"promote_if_better": True, "reason": "new images"}
    assert memory_store.get_job(job.id) is not None


def test_no_retrain_without_retrain_on_new_images(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, target_new_images=3, retrain_on_new_images=False)
    parts.add_images(3)

    result = parts.monitor.run_check()

    assert result.ok is False and parts.jobs.jobs == []


def test_no_retrain_under_the_new_image_target(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, wrong=3, target_new_images=3, retrain_on_new_images=True)
    parts.add_images(2)

    result = parts.monitor.run_check()

    assert result.ok is False  # the accuracy alert alone
    assert parts.jobs.jobs == []


def test_no_retrain_in_a_process_without_a_job_queue(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, with_jobs=False, target_new_images=1, retrain_on_new_images=True)
    parts.add_images(1)

    result = parts.monitor.run_check()

    assert result.ok is False and parts.jobs.jobs == []


def test_without_an_evaluation_set_the_check_still_counts_new_images_and_retrains(tmp_path, memory_store):
    parts = build(
        tmp_path, memory_store, eval_dir=tmp_path / "missing", target_new_images=3, retrain_on_new_images=True
    )
    parts.add_images(3)

    result = parts.monitor.run_check()

    assert result.ok is False and result.accuracy is None and result.nb_new_img == 3
    assert result.alerts[0].startswith("accuracy not checked: No evaluation set")
    assert [job.kind for job in parts.jobs.jobs] == [JobKind.RETRAIN]
    assert [e.payload for e in memory_store.list_events(MONITOR)] == [result.to_dict()]


# --- the numbers ---------------------------------------------------------------------------
def test_production_accuracy_is_evaluated_once_per_version(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, wrong=1)
    classifier = parts.loader.by_version["1"]
    before = classifier.images_predicted

    first = parts.monitor.production_accuracy()

    assert first["cached"] is False
    assert (first["model_version"], first["model_name"], first["n"]) == ("1", "champipy", 4)
    assert first["top1"] == pytest.approx(0.75)
    assert classifier.images_predicted == before + 4
    stored = memory_store.get_parameter(accuracy_cache_key("1", parts.settings.eval_dir))
    assert json.loads(stored)["top1"] == pytest.approx(0.75)

    second = parts.monitor.production_accuracy()

    assert second["cached"] is True
    assert classifier.images_predicted == before + 4
    assert {k: v for k, v in second.items() if k != "cached"} == {k: v for k, v in first.items() if k != "cached"}


def test_production_accuracy_measures_the_open_set_verdict_against_the_ood_folder(tmp_path, memory_store):
    ood = tmp_path / "ood" / "grey"
    ood.mkdir(parents=True)
    for i, grey in enumerate((90, 128, 200)):
        (ood / f"{i}.png").write_bytes(image_bytes((grey, grey, grey)))
    parts = build(tmp_path, memory_store, ood_dir=ood.parent, classifier=StubClassifier(version="1", open_set=True))

    report = parts.monitor.production_accuracy()

    assert report["open_set"]["ood_n"] == 3
    assert report["open_set"]["categories"]["grey"]["recognised"]["k"] == 0
    assert memory_store.get_parameter(accuracy_cache_key("1", parts.settings.eval_dir, ood.parent))


def test_a_new_version_is_evaluated_again(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, wrong=1)
    parts.monitor.production_accuracy()
    parts.registry.add_version("2")
    parts.loader.set("2", StubClassifier(version="2"))
    parts.lifecycle.promote_version("2")

    report = parts.monitor.production_accuracy()

    assert report["cached"] is False and report["model_version"] == "2"
    assert parts.loader.by_version["2"].images_predicted == 1 + 4  # warm-up, then the evaluation


def test_production_accuracy_needs_an_evaluation_folder(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, eval_dir=tmp_path / "missing")

    with pytest.raises(InvalidInput, match="CHAMPIPY_EVAL_DIR"):
        parts.monitor.production_accuracy()


def test_past_prediction_accuracy_numbers(tmp_path, memory_store):
    parts = build(tmp_path, memory_store)
    assert parts.monitor.past_prediction_accuracy(10) == {
        "n": 0,
        "mean_probability": None,
        "n_feedback": 0,
        "feedback_accuracy": None,
    }
    made = []
    for top, probability, feedback in [
        ("amanita", 0.9, "amanita"),
        ("boletus", 0.6, "amanita"),
        ("amanita", 0.8, None),
        ("chanterelle", 0.5, None),
    ]:
        prediction = memory_store.add_prediction(
            NewPrediction(
                username="alice",
                image_sha256=f"{len(made):064x}",
                model_name="champipy",
                model_version="1",
                results=(SpeciesScore(top, probability), SpeciesScore("other", 1 - probability)),
            )
        )
        if feedback:
            memory_store.set_feedback(prediction.id, feedback, "bob")
        made.append(prediction)

    numbers = parts.monitor.past_prediction_accuracy(10)

    assert numbers["n"] == 4 and numbers["n_feedback"] == 2
    assert numbers["mean_probability"] == pytest.approx((0.9 + 0.6 + 0.8 + 0.5) / 4)
    assert numbers["feedback_accuracy"] == pytest.approx(0.5)
    latest_two = parts.monitor.past_prediction_accuracy(2)  # the most recent two: no feedback
    assert latest_two["n"] == 2 and latest_two["n_feedback"] == 0
    assert latest_two["mean_probability"] == pytest.approx((0.8 + 0.5) / 2)
    with pytest.raises(InvalidInput):
        parts.monitor.past_prediction_accuracy(0)


def test_new_images_since_promotion_counts_from_the_recorded_promotion(tmp_path, memory_store):
    parts = build(tmp_path, memory_store, promote=False)
    parts.add_images(2)  # before the promotion
    parts.lifecycle.promote_version("1", by="bob")
    parts.add_images(3, start=10)

    counted = parts.monitor.new_images_since_promotion("champipy", "Production")

    [promotion] = memory_store.list_events(PROMOTION)
    assert counted == {
        "model_name": "champipy",
        "stage": "production",
        "version": "1",
        "promoted_at": promotion.created_at.isoformat(),
        "nb_new_img": 3,
    }


def test_new_images_of_another_model_is_not_found(tmp_path, memory_store):
    parts = build(tmp_path, memory_store)
    with pytest.raises(NotFound):
        parts.monitor.new_images_since_promotion("someone-elses-model", None)


def test_new_images_for_an_alias_nobody_has_is_not_found(tmp_path, memory_store):
    parts = build(tmp_path, memory_store)
    with pytest.raises(NotFound):
        parts.monitor.new_images_since_promotion("champipy", "staging")
