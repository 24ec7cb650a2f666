"""Metrics from probabilities, calibration, and the report's rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from champipy.model import evaluate
from champipy.model.calibrate import fit_temperature, softmax
from champipy.model.evaluate import calibration_check, evaluate_probabilities, expected_calibration_error

LABELS = ["a", "b", "c", "d"]


def test_top_k_per_species_and_confusion() -> None:
    probabilities = np.array(
        [
            [0.7, 0.2, 0.05, 0.05],  # a -> a
            [0.1, 0.6, 0.2, 0.1],  # a -> b (a is 3rd: top-3 hit)
            [0.1, 0.8, 0.05, 0.05],  # b -> b
            [0.5, 0.3, 0.15, 0.05],  # d -> a (d is 4th: top-3 miss)
        ]
    )
    report = evaluate_probabilities(probabilities, ["a", "a", "b", "d"], LABELS)
    assert report.n == 4
    assert report.top1 == pytest.approx(0.5)
    assert report.top3 == pytest.approx(0.75)
    assert report.per_species["a"] == {"precision": 0.5, "recall": 0.5, "n": 2}
    assert report.per_species["b"] == {"precision": 0.5, "recall": 1.0, "n": 1}
    assert report.per_species["c"] == {"precision": 0.0, "recall": 0.0, "n": 0}
    assert report.confusion[0] == [1, 1, 0, 0] and report.confusion[3] == [1, 0, 0, 0]
    data = report.to_dict()
    assert {"top1", "top3", "n", "per_species", "ece", "confusion_matrix", "model_version"} <= set(data)


def test_unknown_species_count_as_errors() -> None:
    probabilities = np.array([[0.9, 0.05, 0.03, 0.02], [0.9, 0.05, 0.03, 0.02]])
    report = evaluate_probabilities(probabilities, ["a", "zzz"], LABELS)
    assert report.top1 == 0.5 and report.top3 == 0.5
    assert report.true_labels[-1] == "zzz" and report.per_species["zzz"]["recall"] == 0.0
    assert report.to_dict()["unknown_species_images"] == 1


def test_ece_of_perfectly_calibrated_and_overconfident() -> None:
    targets = np.array([0] * 8 + [1] * 2)
    calibrated = np.tile([0.8, 0.2], (10, 1))  # 80% confident, 80% right
    assert expected_calibration_error(calibrated, targets) == pytest.approx(0.0)
    overconfident = np.tile([0.99, 0.01], (10, 1))
    assert expected_calibration_error(overconfident, targets) == pytest.approx(0.19)


def _top1_right_with_probability(confidence: np.ndarray, truth: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """Two-class probabilities stating ``confidence`` for class 0, whose top-1 is in fact right
    with probability ``truth`` x the stated confidence."""
    probabilities = np.stack([confidence, 1 - confidence], axis=1)
    right = rng.random(len(confidence)) < confidence * truth
    return probabilities, np.where(right, 0, 1)


def test_the_ece_of_a_calibrated_model_on_few_photos_is_chance() -> None:
    rng = np.random.default_rng(1)
    confidence = rng.uniform(0.6, 1.0, 222)
    probabilities, targets = _top1_right_with_probability(confidence, 1.0, rng)
    check = calibration_check(probabilities, targets)
    # 222 photos: an honest model's ECE is well above 0, and the check says it is chance.
    assert 0.02 < check.if_calibrated < 0.06
    assert check.p_value > 0.05
    assert abs(expected_calibration_error(probabilities, targets) - check.if_calibrated) < 0.03


def test_an_overconfident_model_is_told_apart_from_chance() -> None:
    rng = np.random.default_rng(2)
    confidence = rng.uniform(0.6, 1.0, 222)
    probabilities, targets = _top1_right_with_probability(confidence, 0.8, rng)
    check = calibration_check(probabilities, targets)
    assert expected_calibration_error(probabilities, targets) > 2 * check.if_calibrated
    assert check.p_value < 0.01


def test_the_calibration_check_is_seeded_and_the_same_in_small_chunks(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    probabilities, targets = _top1_right_with_probability(rng.uniform(0.5, 1.0, 50), 1.0, rng)
    whole = calibration_check(probabilities, targets)
    assert calibration_check(probabilities, targets) == whole
    monkeypatch.setattr(evaluate, "_OUTCOMES_PER_CHUNK", 120)  # 2 draws of 50 photos a chunk
    assert calibration_check(probabilities, targets) == whole
    report = evaluate_probabilities(probabilities, [LABELS[t] for t in targets], LABELS[:2]).to_dict()
    assert report["ece_if_calibrated"] > 0 and 0 <= report["ece_calibration_p"] <= 1
    empty = calibration_check(np.zeros((0, 2)), np.zeros(0, dtype=int))
    assert empty.if_calibrated == 0.0 and empty.p_value == 1.0


@pytest.mark.parametrize("criterion", ["brier", "nll"])
def test_temperature_is_recovered_and_lowers_ece(criterion: str) -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 10))
    true_temperature = 2.5
    targets = np.array([rng.choice(10, p=p) for p in softmax(logits, true_temperature)])
    calibration = fit_temperature(logits, targets, criterion)
    assert calibration.temperature == pytest.approx(true_temperature, rel=0.1)
    assert calibration.ece_after < calibration.ece_before
    assert calibration.nll_after <= calibration.nll_before
    assert fit_temperature(logits[:0], targets[:0]).temperature == 1.0


def test_confusion_png(tmp_path: Path) -> None:
    probabilities = np.eye(4)[[0, 1, 2, 3, 0]]
    report = evaluate_probabilities(probabilities, ["a", "b", "c", "d", "b"], LABELS)
    path = report.confusion_png(tmp_path / "cm.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
