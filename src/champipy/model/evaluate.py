"""Accuracy reports from predicted probabilities: top-1/top-3, per species, confusion, ECE.

NumPy only at import: the serving process uses this for GET /accuracy. Pillow and matplotlib
are imported inside the functions that need them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .open_set_report import OpenSetReport
    from .predictor import ClassifierLike

log = logging.getLogger(__name__)

ECE_BINS = 15
_OUTCOMES_PER_CHUNK = 1_000_000


def top_k_hits(probabilities: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Boolean per row: is the target among the k most probable classes (target -1: never)."""
    k = min(k, probabilities.shape[1])
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
    return (top == targets[:, None]).any(axis=1)


def expected_calibration_error(probabilities: np.ndarray, targets: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| of the top-1 prediction over equal-width confidence bins,
    weighted by the share of predictions in each bin."""
    if len(targets) == 0:
        return 0.0
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == targets
    return float(_ece_rows(_bin_matrix(confidence, bins), confidence, correct[None, :])[0])


def _bin_matrix(confidence: np.ndarray, bins: int) -> np.ndarray:
    """N x bins: a 1 in the equal-width confidence bin of each prediction."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return np.eye(bins, dtype=np.float64)[index]


def _ece_rows(in_bin: np.ndarray, confidence: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """ECE of each row of ``correct`` (rows x N booleans) for the same N confidences:
    sum over bins of |hits in the bin - confidence summed over the bin| / N."""
    hits = correct.astype(np.float64) @ in_bin  # rows x bins
    return np.abs(hits - confidence @ in_bin).sum(axis=1) / len(confidence)


@dataclass(frozen=True)
class CalibrationCheck:
    """What an ECE measured on few photos means. A model whose top-1 is right exactly as often
    as it says also shows an ECE above 0 on a finite set, from chance alone (consistency
    resampling, Bröcker & Smith 2007): ``if_calibrated`` is the median ECE of such a model with
    these very confidences, ``p_value`` the share of its draws at least as far off as measured.
    A small p-value is evidence of miscalibration; an ECE near ``if_calibrated`` is not."""

    if_calibrated: float
    p_value: float


def calibration_check(
    probabilities: np.ndarray, targets: np.ndarray, draws: int = 2000, seed: int = 0, bins: int = ECE_BINS
) -> CalibrationCheck:
    # No library found for this (uncertainty-calibration, the closest, last released in 2022 and
    # pulls test-only packages); it is a few lines of NumPy over the same binning as the ECE.
    if len(targets) == 0:
        return CalibrationCheck(0.0, 1.0)
    confidence = probabilities.max(axis=1)
    in_bin = _bin_matrix(confidence, bins)
    measured = _ece_rows(in_bin, confidence, (probabilities.argmax(axis=1) == targets)[None, :])[0]
    rng = np.random.default_rng(seed)
    # Draws in chunks of about a million outcomes: the memory stays bounded for any N.
    chunk = max(1, _OUTCOMES_PER_CHUNK // len(confidence))
    simulated = np.concatenate(
        [
            _ece_rows(in_bin, confidence, rng.random((min(chunk, draws - done), len(confidence))) < confidence)
            for done in range(0, draws, chunk)
        ]
    )
    # >= with a small tolerance: a draw that equals the measured ECE up to rounding counts.
    p_value = float((simulated >= measured - 1e-12).mean())
    return CalibrationCheck(if_calibrated=float(np.median(simulated)), p_value=p_value)


@dataclass
class EvaluationReport:
    labels: list[str]  # the model's species: columns of the confusion matrix
    true_labels: list[str]  # rows: the model's species, then species it does not know
    n: int
    top1: float
    top3: float
    ece: float
    ece_check: CalibrationCheck
    per_species: dict[str, dict[str, float | int]]
    confusion: list[list[int]]
    mean_confidence: float
    model_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    open_set: OpenSetReport | None = None  # None: the version has no open-set score

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "n": self.n,
            "top1": self.top1,
            "top3": self.top3,
            "ece": self.ece,
            "ece_if_calibrated": self.ece_check.if_calibrated,
            "ece_calibration_p": self.ece_check.p_value,
            "mean_confidence": self.mean_confidence,
            "per_species": self.per_species,
            "confusion_matrix": {"labels": self.labels, "true_labels": self.true_labels, "matrix": self.confusion},
            **self.extra,
            "open_set": self.open_set.to_dict() if self.open_set else None,
        }

    def confusion_png(self, path: Path | str) -> Path:
        return render_confusion_png(self.confusion, self.true_labels, self.labels, Path(path))


def evaluate_probabilities(
    probabilities: np.ndarray, true_labels: Sequence[str], labels: Sequence[str]
) -> EvaluationReport:
    """``probabilities`` (N, len(labels)); ``true_labels`` N species names. Images of a species
    the model does not know count as errors and get their own confusion-matrix row."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = list(labels)
    if probabilities.ndim != 2 or probabilities.shape != (len(true_labels), len(labels)):
        raise ValueError(f"probabilities has shape {probabilities.shape}, expected ({len(true_labels)}, {len(labels)})")
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({label for label in true_labels if label not in index})
    rows = labels + unknown
    row_index = {label: i for i, label in enumerate(rows)}
    targets = np.array([index.get(label, -1) for label in true_labels], dtype=np.int64)
    predicted = probabilities.argmax(axis=1) if len(targets) else np.zeros(0, dtype=np.int64)

    confusion = np.zeros((len(rows), len(labels)), dtype=np.int64)
    for label, guess in zip(true_labels, predicted, strict=True):
        confusion[row_index[label], guess] += 1
    per_species: dict[str, dict[str, float | int]] = {}
    for i, label in enumerate(rows):
        n_true = int(confusion[i].sum())
        hits = int(confusion[i, i]) if i < len(labels) else 0
        n_predicted = int(confusion[:, i].sum()) if i < len(labels) else 0
        per_species[label] = {
            "precision": hits / n_predicted if n_predicted else 0.0,
            "recall": hits / n_true if n_true else 0.0,
            "n": n_true,
        }
    n = len(targets)
    return EvaluationReport(
        labels=labels,
        true_labels=rows,
        n=n,
        top1=float(top_k_hits(probabilities, targets, 1).mean()) if n else 0.0,
        top3=float(top_k_hits(probabilities, targets, 3).mean()) if n else 0.0,
        ece=expected_calibration_error(probabilities, targets),
        ece_check=calibration_check(probabilities, targets),
        per_species=per_species,
        confusion=confusion.tolist(),
        mean_confidence=float(probabilities.max(axis=1).mean()) if n else 0.0,
        extra={"unknown_species_images": int((targets < 0).sum())} if unknown else {},
    )


def evaluate_folder(
    classifier: ClassifierLike,
    folder: Path | str,
    batch_size: int = 32,
    max_pixels: int = 40_000_000,
    ood: Path | str | None = None,
) -> EvaluationReport:
    """Predict every image in ``folder``'s species sub-folders; unreadable files are skipped.

    When the version has an open-set score, the report says how many of these photos it
    rejects and, given ``ood`` (photos of anything else, at its top or in category
    sub-folders), how well the score tells them apart."""
    from ..errors import InvalidInput

    root = Path(folder)
    if not root.is_dir():
        raise InvalidInput(f"{root} is not a folder of species sub-folders.")
    if ood is not None and not Path(ood).is_dir():
        raise InvalidInput(f"{ood} is not a folder of out-of-distribution images.")
    paths = sorted(path for species_dir in _sub_folders(root) for path in species_dir.iterdir() if _is_image(path))
    kept, probabilities, scores = _predict_paths(classifier, paths, batch_size, max_pixels)
    true_labels = [path.parent.name for path in kept]
    report = evaluate_probabilities(probabilities, true_labels, classifier.labels)
    report.model_version = classifier.version
    if classifier.open_set is not None and scores is not None:
        report.open_set = _open_set_report(classifier, probabilities, true_labels, scores, ood, batch_size, max_pixels)
    return report


def _open_set_report(
    classifier: ClassifierLike,
    probabilities: np.ndarray,
    true_labels: list[str],
    scores: np.ndarray,
    ood: Path | str | None,
    batch_size: int,
    max_pixels: int,
) -> OpenSetReport:
    from .open_set_report import open_set_report

    assert classifier.open_set is not None
    labels = np.array(classifier.labels)
    correct = labels[probabilities.argmax(axis=1)] == np.array(true_labels) if len(true_labels) else np.zeros(0, bool)
    ood_scores = ood_categories = None
    if ood is not None:
        ood_root = Path(ood)
        ood_paths = sorted(
            [path for path in ood_root.iterdir() if _is_image(path)]
            + [path for sub in _sub_folders(ood_root) for path in sub.iterdir() if _is_image(path)]
        )
        kept, _, ood_scores = _predict_paths(classifier, ood_paths, batch_size, max_pixels)
        ood_categories = ["" if path.parent == ood_root else path.parent.name for path in kept]
    return open_set_report(
        classifier.open_set.method,
        classifier.open_set.threshold,
        classifier.open_set.keep_rate,
        scores,
        correct,
        ood_scores,
        ood_categories,
    )


def _sub_folders(root: Path) -> list[Path]:
    return [path for path in root.iterdir() if path.is_dir() and not path.name.startswith(".")]


def _is_image(path: Path) -> bool:
    from .data import IMAGE_SUFFIXES

    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _predict_paths(
    classifier: ClassifierLike, paths: Sequence[Path], batch_size: int, max_pixels: int
) -> tuple[list[Path], np.ndarray, np.ndarray | None]:
    """The paths that decoded, their probabilities and open-set scores (None: no score)."""
    from ..errors import ChampipyError
    from ..images import ImageLimits, decode_image

    kept: list[Path] = []
    probabilities: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    batch: list[np.ndarray] = []

    def flush() -> None:
        if batch:
            scored = classifier.predict_scored(np.stack(batch))
            probabilities.append(scored.probabilities)
            if scored.open_set_scores is not None:
                scores.append(scored.open_set_scores)
            batch.clear()

    for path in paths:
        try:
            image = decode_image(path.read_bytes(), ImageLimits(max_pixels=max_pixels)).image
        except ChampipyError as exc:
            log.warning("Skipping %s: %s", path, exc)
            continue
        batch.append(classifier.preprocess(image))
        kept.append(path)
        if len(batch) == batch_size:
            flush()
    flush()
    all_probabilities = np.concatenate(probabilities) if probabilities else np.zeros((0, len(classifier.labels)))
    if classifier.open_set is None:
        return kept, all_probabilities, None
    return kept, all_probabilities, np.concatenate(scores) if scores else np.zeros(0)


def render_confusion_png(
    confusion: Sequence[Sequence[int]], rows: Sequence[str], columns: Sequence[str], path: Path
) -> Path:
    """Draw the confusion matrix (counts) without touching pyplot's global state."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    matrix = np.asarray(confusion)
    side = 1.6 + 0.55 * max(len(rows), len(columns))
    figure = Figure(figsize=(side + 1.5, side))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    shown = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(shown, ax=axes, fraction=0.046, pad=0.04)
    axes.set_xticks(range(len(columns)), labels=columns, rotation=60, ha="right", fontsize=8)
    axes.set_yticks(range(len(rows)), labels=rows, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (i, j), value in np.ndenumerate(matrix):
        if value:
            axes.text(
                j, i, str(value), ha="center", va="center", fontsize=7, color="white" if value > threshold else "black"
            )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
