"""Which predicted labels are clean enough to train on: the lowest top probability at which a
version's held-out photos were right at least ``target`` of the time.

The service stores a photo under its predicted species above ``CHAMPIPY_STORE_THRESHOLD``
(0.70, the original's rule); measured, 4.8% of those labels are wrong (2.3% above 0.90).
Retraining admits a predicted label only at or above this version's ``min_probability`` (and
only when the photo was recognised by the open-set check), so the labels it learns from meet
the precision target on photos the version never trained on.

NumPy only: the numbers are computed in training and read back from the version's metrics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..intervals import Rate, wilson


@dataclass(frozen=True)
class KeptLabelRule:
    min_probability: float  # 1.0 with nothing admitted: no threshold met the target
    precision: Rate  # of the held-out photos admitted at that threshold
    admitted: float  # share of the held-out photos admitted

    def metrics(self) -> dict[str, float]:
        return {
            "kept_label_min_probability": self.min_probability,
            "kept_label_precision": self.precision.rate,
            "kept_label_precision_low": self.precision.low,
            "kept_label_admitted": self.admitted,
        }


def kept_label_rule(
    probabilities: np.ndarray, targets: np.ndarray, recognised: np.ndarray | None, target_precision: float
) -> KeptLabelRule:
    """``probabilities`` (N, C) calibrated, of held-out photos with true classes ``targets``;
    ``recognised`` their open-set verdicts (None: no open-set check, all count)."""
    n = len(targets)
    if n == 0:
        return KeptLabelRule(1.0, wilson(0, 0), 0.0)
    top = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == targets
    candidate = np.ones(n, dtype=bool) if recognised is None else np.asarray(recognised, dtype=bool)
    order = np.argsort(-top, kind="stable")
    order = order[candidate[order]]
    hits = np.cumsum(right[order])
    admitted = np.arange(1, len(order) + 1)
    precision = hits / admitted
    # The largest prefix (lowest threshold) whose precision meets the target; ties in
    # probability are admitted or refused together.
    meets = np.flatnonzero(precision >= target_precision)
    for end in meets[::-1]:
        if end + 1 == len(order) or top[order[end + 1]] < top[order[end]]:
            count = int(end + 1)
            return KeptLabelRule(float(top[order[end]]), wilson(int(hits[end]), count), count / n)
    return KeptLabelRule(1.0, wilson(0, 0), 0.0)
