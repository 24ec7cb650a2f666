"""Combining the photos of one observation."""

from __future__ import annotations

import numpy as np
import pytest

from champipy.model.observation import RULES, combine


def test_two_photos_that_agree_are_surer_than_either_and_one_photo_is_itself():
    p = np.array([[0.6, 0.3, 0.1], [0.7, 0.2, 0.1]])
    assert combine(p, "product")[0] > 0.7 and combine(p, "geometric")[0] > 0.6
    for rule in RULES:
        assert combine(p[:1], rule) == pytest.approx(p[0])
        assert combine(p, rule).sum() == pytest.approx(1.0)


def test_the_geometric_mean_of_a_photo_repeated_is_that_photo():
    p = np.array([[0.6, 0.3, 0.1]] * 3)
    assert combine(p, "geometric") == pytest.approx(p[0])  # near-duplicate photos add no evidence
    assert combine(p, "product")[0] > 0.85


def test_a_zero_probability_does_not_veto_a_species_forever():
    p = np.array([[0.0, 1.0], [0.9, 0.1], [0.9, 0.1]])
    assert np.isfinite(combine(p, "product")).all()


def test_bad_input_is_refused():
    with pytest.raises(ValueError):
        combine(np.zeros((0, 3)))
    with pytest.raises(ValueError):
        combine(np.ones((1, 3)) / 3, "vote")
