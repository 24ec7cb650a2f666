"""How well a version's open-set verdict separates its species from everything else.

In-set photos (a labelled evaluation folder) should be recognised, photos from an
out-of-distribution folder should not. Rates carry a Wilson 95% interval because the sets
are small (222 eval photos: one photo is 0.45 pt).

NumPy at import, like everything serving imports (GET /accuracy); scikit-learn (AUROC) is
imported when a report is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..intervals import Rate, wilson


@dataclass(frozen=True)
class OodCategory:
    n: int
    recognised: Rate  # out-of-distribution photos answered with a species: should be low
    auroc: float | None  # against every in-set photo; None without in-set photos


@dataclass
class OpenSetReport:
    method: str
    threshold: float
    keep_rate: float  # the share of held-out in-set photos the threshold was set to keep
    in_set_rejected: Rate
    top1_recognised: Rate  # top-1 among the in-set photos that were recognised
    ood_n: int = 0
    ood_auroc: float | None = None
    ood_recognised: Rate | None = None  # at the version's threshold
    # At the threshold that keeps ``keep_rate`` of *these* in-set photos, as papers report.
    ood_fpr_at_keep_rate: float | None = None
    categories: dict[str, OodCategory] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow."""
        found = {
            "eval_open_set_rejected": self.in_set_rejected.rate,
            "eval_top1_recognised": self.top1_recognised.rate,
        }
        if self.ood_recognised is not None:
            found["ood_recognised"] = self.ood_recognised.rate
        if self.ood_auroc is not None:
            found["ood_auroc"] = self.ood_auroc
        if self.ood_fpr_at_keep_rate is not None:
            found["ood_fpr_at_keep_rate"] = self.ood_fpr_at_keep_rate
        return found


def auroc(in_set_scores: np.ndarray, ood_scores: np.ndarray) -> float | None:
    """Probability that an out-of-distribution photo scores above an in-set one."""
    from sklearn.metrics import roc_auc_score

    if len(in_set_scores) == 0 or len(ood_scores) == 0:
        return None
    truth = np.concatenate([np.zeros(len(in_set_scores)), np.ones(len(ood_scores))])
    return float(roc_auc_score(truth, np.concatenate([in_set_scores, ood_scores])))


def open_set_report(
    method: str,
    threshold: float,
    keep_rate: float,
    in_set_scores: np.ndarray,
    in_set_correct: np.ndarray,
    ood_scores: np.ndarray | None = None,
    ood_categories: Sequence[str] | None = None,
) -> OpenSetReport:
    """Scores are the version's open-set output (higher: less like its species);
    ``in_set_correct`` says per in-set photo whether its top species was right."""
    in_set_scores = np.asarray(in_set_scores, dtype=np.float64)
    in_set_correct = np.asarray(in_set_correct, dtype=bool)
    recognised = in_set_scores <= threshold
    report = OpenSetReport(
        method=method,
        threshold=threshold,
        keep_rate=keep_rate,
        in_set_rejected=wilson(int((~recognised).sum()), len(in_set_scores)),
        top1_recognised=wilson(int((in_set_correct & recognised).sum()), int(recognised.sum())),
    )
    if ood_scores is None or len(ood_scores) == 0:
        return report
    ood_scores = np.asarray(ood_scores, dtype=np.float64)
    categories = np.asarray(ood_categories if ood_categories is not None else [""] * len(ood_scores))
    report.ood_n = len(ood_scores)
    report.ood_auroc = auroc(in_set_scores, ood_scores)
    report.ood_recognised = wilson(int((ood_scores <= threshold).sum()), len(ood_scores))
    if len(in_set_scores):
        own_threshold = float(np.quantile(in_set_scores, keep_rate))
        report.ood_fpr_at_keep_rate = float((ood_scores <= own_threshold).mean())
    for name in sorted(set(categories.tolist())):
        scores = ood_scores[categories == name]
        report.categories[name or "(top folder)"] = OodCategory(
            n=len(scores),
            recognised=wilson(int((scores <= threshold).sum()), len(scores)),
            auroc=auroc(in_set_scores, scores),
        )
    return report
