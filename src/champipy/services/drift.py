"""Signals of live traffic, each against a reference fixed when the serving version was
trained (its held-out photos), each with a threshold and one sentence when it crosses it.

1. ``expert_accuracy``: the share of expert feedback that confirms the top species (Wilson
   interval); alerts when its upper bound is below the target accuracy.
2. ``rejected_share``: answers the open-set check rejected, against the share of held-out
   photos it rejected; alerts on a one-sided binomial test.
3. ``score_drift``: the distribution of open-set scores, against the held-out photos'. The
   score is the larger of the max-logit and the cosine distance of the photo's backbone
   features to the nearest training photo: a one-dimensional summary of the features that
   every prediction already stores, so input drift needs no new storage. Two-sample KS test.
4. ``confidence_drift``: the distribution of top probabilities, KS against the held-out
   photos'; cheap and, alone, weak (blurred photos stay confident).

The window is the most recent ``drift_window`` distinct images the serving version computed
(cached repeats of one image would weigh it twice). SciPy's tests (``binomtest``,
``ks_2samp``) fit the serving footprint; alibi-detect and Evidently pull in torch or pandas
stacks that serving does not carry, and two tests do not need them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..intervals import wilson
from ..model.predictor import DriftReference
from ..settings import Settings
from ..store.records import Prediction


@dataclass(frozen=True)
class Signal:
    name: str
    value: float | None  # None: not measurable (see ``note``)
    threshold: float
    alert: bool
    sentence: str  # what it says, in one sentence
    n: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def window(predictions: Sequence[Prediction], version: str, size: int) -> list[Prediction]:
    """The most recent ``size`` distinct images computed by ``version``, newest first."""
    seen: set[str] = set()
    found: list[Prediction] = []
    for prediction in predictions:
        if prediction.model_version != version or prediction.image_sha256 in seen:
            continue
        seen.add(prediction.image_sha256)
        found.append(prediction)
        if len(found) == size:
            break
    return found


def live_signals(
    recent: Sequence[Prediction], feedback: Sequence[Prediction], reference: DriftReference | None, settings: Settings
) -> list[Signal]:
    """``recent``: the window; ``feedback``: recent predictions with expert feedback."""
    signals = [expert_accuracy(feedback, settings.target_accuracy, settings.drift_min_feedback)]
    if reference is None:
        missing = "the serving version was trained before drift references were stored: retrain to measure it"
        for name in ("rejected_share", "score_drift", "confidence_drift"):
            signals.append(Signal(name, None, 0.0, False, f"{name.replace('_', ' ')} not measured: {missing}."))
        return signals
    signals.append(rejected_share(recent, reference, settings.drift_alpha, settings.drift_min_window))
    scores = [p.open_set.score for p in recent if p.open_set is not None]
    signals.append(
        ks_signal(
            "score_drift",
            "open-set scores (distance to the training photos)",
            np.asarray(scores),
            reference.open_set_scores,
            settings,
        )
    )
    tops = [p.results[0].probability for p in recent if p.results]
    signals.append(
        ks_signal("confidence_drift", "top probabilities", np.asarray(tops), reference.top_probabilities, settings)
    )
    return signals


def expert_accuracy(feedback: Sequence[Prediction], target: float, min_feedback: int) -> Signal:
    answered = [p for p in feedback if p.feedback_species and p.results]
    right = sum(p.results[0].species == p.feedback_species for p in answered)
    rate = wilson(right, len(answered))
    if len(answered) < min_feedback:
        return Signal(
            "expert_accuracy",
            rate.rate if answered else None,
            target,
            False,
            f"expert accuracy not judged: {len(answered)} feedback answers, {min_feedback} needed.",
            len(answered),
        )
    per_species: dict[str, dict[str, float]] = {}
    for species in sorted({p.feedback_species for p in answered if p.feedback_species}):
        mine = [p for p in answered if p.feedback_species == species]
        if len(mine) >= 10:
            species_rate = wilson(sum(p.results[0].species == species for p in mine), len(mine))
            per_species[species] = {"rate": species_rate.rate, "low": species_rate.low, "n": len(mine)}
    alert = rate.high < target
    sentence = (
        f"expert accuracy {rate.rate:.2f} (95% CI {rate.low:.2f}-{rate.high:.2f}, {len(answered)} answers) "
        + ("is below" if alert else "is not below")
        + f" the target {target:.2f}."
    )
    return Signal(
        "expert_accuracy",
        rate.rate,
        target,
        alert,
        sentence,
        len(answered),
        {"low": rate.low, "high": rate.high, "per_species": per_species},
    )


def rejected_share(recent: Sequence[Prediction], reference: DriftReference, alpha: float, min_window: int) -> Signal:
    from scipy.stats import binomtest

    scored = [p for p in recent if p.open_set is not None]
    expected = reference.rejected_share
    if expected is None or len(scored) < min_window:
        reason = (
            "the version has no open-set check" if expected is None else f"{len(scored)} answers, {min_window} needed"
        )
        return Signal("rejected_share", None, alpha, False, f"rejected share not judged: {reason}.", len(scored))
    rejected = sum(not p.open_set.recognised for p in scored if p.open_set is not None)
    p_value = float(binomtest(rejected, len(scored), max(expected, 1e-3), alternative="greater").pvalue)
    share = rejected / len(scored)
    alert = p_value < alpha
    sentence = (
        f"{share:.0%} of the last {len(scored)} photos were not recognised, against {expected:.0%} of the "
        f"version's held-out photos (p = {p_value:.2g}"
        + (f" < {alpha:g}): the traffic holds species or photos the model does not know." if alert else ").")
    )
    return Signal(
        "rejected_share", share, alpha, alert, sentence, len(scored), {"p_value": p_value, "expected": expected}
    )


def ks_signal(name: str, what: str, live: np.ndarray, reference: np.ndarray | None, settings: Settings) -> Signal:
    """Alerts when the KS distance is at least ``drift_ks_threshold`` and significant at
    ``drift_alpha``: the distance bounds the effect, the test the chance of a fluke."""
    from scipy.stats import ks_2samp

    threshold = settings.drift_ks_threshold
    if reference is None or len(reference) == 0:
        return Signal(name, None, threshold, False, f"{name.replace('_', ' ')} not measured: no reference.", len(live))
    if len(live) < settings.drift_min_window:
        return Signal(
            name,
            None,
            threshold,
            False,
            f"{name.replace('_', ' ')} not judged: {len(live)} photos, {settings.drift_min_window} needed.",
            len(live),
        )
    test = ks_2samp(live, reference)
    statistic, p_value = float(test.statistic), float(test.pvalue)
    alert = statistic >= threshold and p_value < settings.drift_alpha
    direction = "higher" if np.median(live) > np.median(reference) else "lower"
    sentence = f"the {what} of the last {len(live)} photos " + (
        f"moved away from the held-out photos' ({direction}; KS {statistic:.2f} >= {threshold:.2f})."
        if alert
        else f"match the held-out photos' (KS {statistic:.2f} < {threshold:.2f} or not significant)."
    )
    return Signal(
        name, statistic, threshold, alert, sentence, len(live), {"p_value": p_value, "median": float(np.median(live))}
    )
