"""Open-set score: how unlike the training photos an image is (higher = less familiar).

The score is a torch module over what the model already computes (pooled backbone features
and species logits), so training sets its threshold with the very computation the ONNX
export then carries as a second output; serving runs it in ONNX Runtime with no torch.

Methods (bench/bench_open_set.py measures them side by side):
- ``msp``: minus the maximum softmax probability (the closed-set baseline);
- ``maxlogit``: minus the largest logit;
- ``energy``: minus log-sum-exp of the calibrated logits;
- ``mahalanobis``: the smallest Mahalanobis distance to a species mean, with one shared
  covariance (Ledoit-Wolf shrinkage: 1,280 dimensions from ~1,000 photos is singular);
- ``knn``: one minus the cosine similarity to the k-th nearest training photo;
- ``knn+maxlogit`` (the default), ``knn+msp``: the larger of the two, each standardised on the
  held-out in-set scores, so that "not a mushroom" (far from every training photo) and
  "another mushroom" (no species' logit stands out) each raise it on its own. Measured, the
  larger rejects every non-mushroom test image where the sum lets 3% through, for the same
  near-OOD ranking.

The threshold is the ``keep_rate`` quantile of held-out in-set scores: that share of photos of
known species is recognised.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

METHODS = ("msp", "maxlogit", "energy", "mahalanobis", "knn", "knn+msp", "knn+maxlogit")
DEFAULT_METHOD = "knn+maxlogit"
DEFAULT_KEEP_RATE = 0.98
DEFAULT_K = 1


def components(method: str) -> tuple[str, ...]:
    if method not in METHODS:
        raise ValueError(f"unknown open-set method {method!r}; expected one of {', '.join(METHODS)}")
    return tuple(method.split("+"))


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


class OpenSetScore(nn.Module):
    """(features (N, D), logits (N, C)) -> score (N,). Every statistic is a buffer, so the
    ONNX export stores them as initialisers of the same graph."""

    inverse_temperature: torch.Tensor
    bank: torch.Tensor
    means: torch.Tensor
    precision: torch.Tensor
    centre: torch.Tensor
    scale: torch.Tensor

    def __init__(
        self,
        method: str,
        temperature: float,
        bank: np.ndarray | None = None,
        k: int = DEFAULT_K,
        means: np.ndarray | None = None,
        precision: np.ndarray | None = None,
    ):
        super().__init__()
        self.method = method
        self.components = components(method)
        self.k = k
        self.register_buffer("inverse_temperature", torch.tensor(1.0 / temperature, dtype=torch.float32))
        if "knn" in self.components:
            if bank is None or len(bank) < k:
                raise ValueError(f"knn needs at least {k} training features")
            self.register_buffer("bank", _unit(torch.as_tensor(bank, dtype=torch.float32)))
        if "mahalanobis" in self.components:
            if means is None or precision is None:
                raise ValueError("mahalanobis needs the species means and a precision matrix")
            self.register_buffer("means", torch.as_tensor(means, dtype=torch.float32))
            self.register_buffer("precision", torch.as_tensor(precision, dtype=torch.float32))
        # standardisation of each part: set by ``standardise`` from held-out in-set scores
        self.register_buffer("centre", torch.zeros(len(self.components)))
        self.register_buffer("scale", torch.ones(len(self.components)))

    def part_scores(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        columns = []
        for part in self.components:
            if part == "msp":
                columns.append(-torch.softmax(logits * self.inverse_temperature, dim=1).max(dim=1).values)
            elif part == "maxlogit":
                columns.append(-logits.max(dim=1).values)
            elif part == "energy":
                columns.append(-torch.logsumexp(logits * self.inverse_temperature, dim=1))
            elif part == "knn":
                similarity = _unit(features) @ self.bank.T
                columns.append(1 - torch.topk(similarity, self.k, dim=1).values[:, -1])
            else:  # mahalanobis
                centred = features[:, None, :] - self.means[None, :, :]  # (N, C, D)
                distance = ((centred @ self.precision) * centred).sum(dim=-1)
                columns.append(distance.min(dim=1).values)
        return torch.stack(columns, dim=1)

    def forward(self, features: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self._combined(self.part_scores(features, logits))

    def _combined(self, parts: torch.Tensor) -> torch.Tensor:
        return ((parts - self.centre) / self.scale).max(dim=1).values

    @torch.no_grad()
    def parts(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """The raw part scores (N, parts), before standardisation."""
        return self.part_scores(_tensor(features), _tensor(logits)).double().numpy()

    @torch.no_grad()
    def standardise(self, held_out_parts: np.ndarray) -> None:
        """Centre and scale each part on held-out in-set part scores; a single part is left as
        is, so a one-method score keeps its own units."""
        if len(self.components) < 2:
            return
        self.centre.copy_(_tensor(held_out_parts.mean(axis=0)))
        self.scale.copy_(_tensor(np.maximum(held_out_parts.std(axis=0), 1e-6)))

    @torch.no_grad()
    def combine(self, parts: np.ndarray) -> np.ndarray:
        """Part scores (N, parts) -> the score, exactly as ``forward`` combines them."""
        return self._combined(_tensor(parts)).double().numpy()

    @torch.no_grad()
    def score(self, features: np.ndarray, logits: np.ndarray) -> np.ndarray:
        return self(_tensor(features), _tensor(logits)).double().numpy()


def _tensor(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


def fit_open_set_score(
    method: str, features: np.ndarray, targets: np.ndarray, temperature: float, k: int = DEFAULT_K
) -> OpenSetScore:
    """The score's statistics from training features (N, D) and their species indices."""
    parts = components(method)
    means = precision = None
    if "mahalanobis" in parts:
        from sklearn.covariance import LedoitWolf

        classes = np.unique(targets)
        means = np.stack([features[targets == c].mean(axis=0) for c in classes])
        centred = features - means[np.searchsorted(classes, targets)]
        precision = LedoitWolf(assume_centered=True).fit(centred).precision_
    return OpenSetScore(
        method, temperature, bank=features if "knn" in parts else None, k=k, means=means, precision=precision
    )


@dataclass(frozen=True)
class OpenSetFit:
    """What a version stores about its score: the method, its parameters, the threshold and
    what the threshold does on the held-out in-set photos it was set on."""

    method: str
    k: int
    keep_rate: float
    threshold: float
    n_validation: int
    validation_rejected: float  # share of held-out in-set photos above the threshold

    def to_meta(self) -> dict[str, Any]:
        return asdict(self)


def threshold_for(scores: np.ndarray, keep_rate: float) -> float:
    """The score below which ``keep_rate`` of held-out in-set photos fall (inclusive)."""
    return float(np.quantile(np.asarray(scores, dtype=np.float64), keep_rate, method="higher"))


def set_threshold(score: OpenSetScore, held_out_scores: np.ndarray, keep_rate: float) -> OpenSetFit:
    threshold = threshold_for(held_out_scores, keep_rate)
    return OpenSetFit(
        method=score.method,
        k=score.k,
        keep_rate=keep_rate,
        threshold=threshold,
        n_validation=len(held_out_scores),
        validation_rejected=float((np.asarray(held_out_scores) > threshold).mean()),
    )


def fit_with_held_out_threshold(
    method: str,
    features: np.ndarray,
    targets: np.ndarray,
    temperature: float,
    folds: list[tuple[np.ndarray, np.ndarray]],
    held_out_logits: list[np.ndarray],
    keep_rate: float,
    final_rows: np.ndarray | None = None,
    k: int = DEFAULT_K,
) -> tuple[OpenSetScore, OpenSetFit, np.ndarray]:
    """Cross-fitted like the head: for each fold (training rows, held-out rows) a score fitted
    on the training rows scores the held-out photos (with that fold's head's logits), so no
    photo is ever its own nearest neighbour. The served score is fitted on ``final_rows``
    (default: every photo), standardised on the held-out part scores, and its threshold keeps
    ``keep_rate`` of them. Returns the score, its fit and the held-out scores."""
    parts = []
    for (train_rows, held_rows), logits in zip(folds, held_out_logits, strict=True):
        fold_score = fit_open_set_score(method, features[train_rows], targets[train_rows], temperature, k)
        parts.append(fold_score.parts(features[held_rows], logits))
    held_out_parts = np.concatenate(parts)
    rows = np.arange(len(features)) if final_rows is None else final_rows
    final = fit_open_set_score(method, features[rows], targets[rows], temperature, k)
    final.standardise(held_out_parts)
    held_out_scores = final.combine(held_out_parts)
    return final, set_threshold(final, held_out_scores, keep_rate), held_out_scores
