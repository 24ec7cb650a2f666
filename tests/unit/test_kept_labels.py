"""The precision rule for predicted labels, on held-out probabilities made by hand."""

from __future__ import annotations

import numpy as np
import pytest

from champipy.model.kept_labels import kept_label_rule


def _probabilities(tops: list[float]) -> np.ndarray:
    """Two classes; each row's top probability on class 0."""
    return np.array([[p, 1 - p] for p in tops])


def test_the_threshold_is_the_lowest_probability_that_still_meets_the_target():
    tops = [0.99, 0.97, 0.95, 0.90, 0.80, 0.75]
    targets = np.array([0, 0, 0, 0, 1, 0])  # the 0.80 one is wrong
    rule = kept_label_rule(_probabilities(tops), targets, None, target_precision=0.98)
    assert rule.min_probability == pytest.approx(0.90)
    assert (rule.precision.k, rule.precision.n) == (4, 4) and rule.admitted == pytest.approx(4 / 6)
    looser = kept_label_rule(_probabilities(tops), targets, None, target_precision=0.8)
    assert looser.min_probability == pytest.approx(0.75) and looser.precision.rate == pytest.approx(5 / 6)


def test_photos_the_open_set_check_rejected_are_never_admitted():
    tops = [0.99, 0.95, 0.90]
    targets = np.array([1, 0, 0])  # the most confident is wrong, and was rejected
    rule = kept_label_rule(_probabilities(tops), targets, np.array([False, True, True]), 0.98)
    assert rule.min_probability == pytest.approx(0.90) and rule.precision.n == 2


def test_when_no_threshold_meets_the_target_nothing_is_admitted():
    rule = kept_label_rule(_probabilities([0.99, 0.9]), np.array([1, 1]), None, 0.98)
    assert rule.min_probability == 1.0 and rule.admitted == 0.0
    assert kept_label_rule(np.zeros((0, 2)), np.zeros(0, dtype=int), None, 0.98).admitted == 0.0


def test_equal_probabilities_are_admitted_or_refused_together():
    rule = kept_label_rule(_probabilities([0.9, 0.9, 0.8]), np.array([0, 1, 0]), None, 0.98)
    assert rule.min_probability == 1.0, "admitting one of the two 0.9s is not a threshold"
