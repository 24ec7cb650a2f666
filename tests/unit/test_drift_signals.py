"""Each live-traffic signal on small fixed inputs, and the monitor that reports them."""

from __future__ import annotations

import numpy as np
import pytest

from champipy.model.predictor import DriftReference
from champipy.services.drift import expert_accuracy, ks_signal, live_signals, rejected_share, window
from champipy.store.base import OpenSetVerdict, Prediction, SpeciesScore

from .conftest import make_settings

REFERENCE = DriftReference(
    top_probabilities=np.linspace(0.5, 1.0, 200),
    open_set_scores=np.linspace(-2.0, 1.0, 200),
    rejected_share=0.02,
)


def answer(
    i: int,
    top: float = 0.9,
    score: float = 0.0,
    feedback: str | None = None,
    version: str = "1",
    sha: str | None = None,
) -> Prediction:
    return Prediction(
        username="alice",
        image_sha256=sha or f"{i:064x}",
        model_name="champipy",
        model_version=version,
        results=(SpeciesScore("amanita", top), SpeciesScore("boletus", 1 - top)),
        open_set=OpenSetVerdict(score=score, threshold=1.0),
        feedback_species=feedback,
        id=str(i),
    )


def test_the_window_holds_distinct_images_of_the_serving_version_newest_first():
    recent = [answer(0), answer(1, sha="a" * 64), answer(2, sha="a" * 64), answer(3, version="2"), answer(4)]
    assert [p.id for p in window(recent, "1", 10)] == ["0", "1", "4"]
    assert [p.id for p in window(recent, "1", 2)] == ["0", "1"]


def test_expert_accuracy_alerts_only_when_confidently_below_the_target():
    right = [answer(i, feedback="amanita") for i in range(6)]
    wrong = [answer(i, feedback="boletus") for i in range(14)]
    low = expert_accuracy(right + wrong, target=0.7, min_feedback=20)
    assert low.value == pytest.approx(0.3) and low.alert and "below the target 0.70" in low.sentence
    few = expert_accuracy(wrong[:5], target=0.7, min_feedback=20)
    assert not few.alert and few.sentence.startswith("expert accuracy not judged")
    near = expert_accuracy([answer(i, feedback="amanita") for i in range(13)] + wrong[:7], 0.7, 20)
    assert near.value == pytest.approx(0.65) and not near.alert, "0.65 of 20 is not confidently below 0.70"


def test_the_rejected_share_alerts_when_far_above_the_held_out_share():
    recognised = [answer(i, score=0.0) for i in range(97)]
    rejected = [answer(100 + i, score=2.0) for i in range(10)]
    drifted = rejected_share(recognised[:90] + rejected, REFERENCE, alpha=0.001, min_window=50)
    assert drifted.value == pytest.approx(0.10) and drifted.alert and "not recognised" in drifted.sentence
    usual = rejected_share(recognised[:97] + rejected[:3], REFERENCE, alpha=0.001, min_window=50)
    assert usual.value == pytest.approx(0.03) and not usual.alert
    assert not rejected_share(rejected, REFERENCE, 0.001, min_window=50).alert, "10 answers are not judged"


def test_ks_signals_alert_on_a_shifted_distribution_only():
    settings = make_settings_for_drift()
    same = ks_signal("score_drift", "scores", np.linspace(-2.0, 1.0, 100), REFERENCE.open_set_scores, settings)
    shifted = ks_signal("score_drift", "scores", np.linspace(-0.5, 2.5, 100), REFERENCE.open_set_scores, settings)
    assert not same.alert and same.value < 0.05
    assert shifted.alert and shifted.value == pytest.approx(0.5, abs=0.02) and "higher" in shifted.sentence
    short = ks_signal("score_drift", "scores", np.linspace(-0.5, 2.5, 10), REFERENCE.open_set_scores, settings)
    assert not short.alert and short.value is None


def test_a_version_without_a_reference_still_reports_expert_accuracy_and_says_what_it_cannot():
    settings = make_settings_for_drift()
    signals = live_signals([answer(i) for i in range(60)], [], None, settings)
    assert [s.name for s in signals] == ["expert_accuracy", "rejected_share", "score_drift", "confidence_drift"]
    assert all(s.value is None and not s.alert for s in signals[1:])
    assert "trained before drift references" in signals[2].sentence


def make_settings_for_drift():
    from pathlib import Path

    return make_settings(Path("/nonexistent"), drift_min_window=50)


def test_clean_traffic_drawn_from_the_reference_itself_raises_nothing():
    rng = np.random.default_rng(0)
    settings = make_settings_for_drift()
    tops = rng.choice(REFERENCE.top_probabilities, 200)
    scores = rng.choice(REFERENCE.open_set_scores, 200)
    recent = [answer(i, top=float(t), score=float(s)) for i, (t, s) in enumerate(zip(tops, scores, strict=True))]
    assert not any(s.alert for s in live_signals(recent, [], REFERENCE, settings))
