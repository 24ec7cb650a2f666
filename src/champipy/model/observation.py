"""One answer for several photos of one find: how per-photo probabilities combine.

The rule is chosen by measurement (bench/bench_observations.py, groups of eval photos of one
species; lite2): top-1 0.939 for 1 photo, 0.990 for 2, 0.999 for 3 with the product or the
geometric mean (the same ranking: one is the other tempered); the mean ranks as well (0.992)
but is badly underconfident (ECE 0.11). The product is calibrated on those groups (ECE 0.007)
because they are photos of *different* finds; an observation's photos show one specimen and
repeat each other, and the product of near-duplicates would claim evidence it does not have.
The geometric mean of a photo repeated is that photo, so it is the default (ECE 0.039, on the
modest side). The others stay here so the benchmark compares them on the same code.

The open-set verdict combines apart: an observation is recognised when any of its photos is
(a habitat or microscope shot may not look like the training photos while the cap shot
does), so it is one more output, not a change to the probabilities.

NumPy only: serving imports it.
"""

from __future__ import annotations

import numpy as np

RULES = ("mean", "product", "geometric", "most_confident")
DEFAULT_RULE = "geometric"
_FLOOR = 1e-12  # a probability of exactly 0 would veto a species for every other photo


def combine(probabilities: np.ndarray, rule: str = DEFAULT_RULE) -> np.ndarray:
    """(k photos, n species) calibrated probabilities -> (n species,) summing to 1."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError("expected (k, n) probabilities for at least one photo")
    if rule == "mean":
        combined = p.mean(axis=0)
    elif rule in ("product", "geometric"):
        log_p = np.log(np.maximum(p, _FLOOR)).sum(axis=0)
        if rule == "geometric":
            log_p /= len(p)
        combined = np.exp(log_p - log_p.max())
    elif rule == "most_confident":
        combined = p[int(p.max(axis=1).argmax())]
    else:
        raise ValueError(f"unknown rule {rule!r}; one of {', '.join(RULES)}")
    return combined / combined.sum()
