"""Training a species model (torch): a fast path on frozen features, or fine-tuning.

Fast path (``variables == 0``, the default): pooled features of the frozen ImageNet
backbone(s) are computed once per image (ONNX Runtime), a multinomial logistic regression
(L2, L-BFGS) is cross-fitted on 5 stratified folds, the temperature is fitted on the
out-of-fold logits (every image is validation once: a stable estimate), and the final head is
fitted on all images. Fine-tune path (``variables > 0``): the last ``variables`` blocks of each backbone
and the head are trained with AdamW on augmented crops, cosine schedule, early stopping on
validation. Both are seeded and reproducible for a given seed and thread count.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import math
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InvalidInput
from ..settings import Settings
from .backbone import FEATURE_DIM, SpeciesNet, default_image_size, parse_backbone
from .calibrate import Calibration, fit_temperature, softmax
from .data import (
    Example,
    LoadedExample,
    Split,
    augment,
    augment_rng,
    cross_validation_folds,
    label_names,
    load_examples,
    manifest,
    stratified_split,
)
from .evaluate import EvaluationReport, evaluate_probabilities
from .kept_labels import kept_label_rule
from .onnx_graph import fold_padding
from .open_set import (
    DEFAULT_K,
    DEFAULT_KEEP_RATE,
    DEFAULT_METHOD,
    METHODS,
    OpenSetFit,
    OpenSetScore,
    fit_with_held_out_threshold,
)
from .preprocess import scale_pixels
from .quantise import CALIBRATION_PHOTOS, calibration_crops, quantise_feature_graph
from .torch_export import export_onnx

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]

DEFAULT_FINE_TUNE_BLOCKS = 5
DEFAULT_FINE_TUNE_EPOCHS = 12
_LBFGS_MAX_ITERATIONS = 300
_FEATURE_BATCH = 32


@dataclass(frozen=True)
class TrainConfig:
    """The defaults are the recipe chosen by cross-validation (bench/bench_recipes.py): lite0
    and lite2 frozen features side by side, logistic regression, mirror averaging, temperature,
    refit on all images."""

    backbone: str = "lite0+lite2"  # one backbone, or an ensemble joined by "+"
    variables: int = 0  # blocks fine-tuned per backbone; 0 = frozen features (fast path)
    epochs: int | None = None  # fine-tune epochs; None = the default
    seed: int = 0
    val_fraction: float = 0.2  # fine-tune path: the held-out share
    image_size: int | None = None  # None: the (largest) backbone's own resolution
    flip_tta: bool = True  # average the logits of the image and its mirror (also when serving)
    # fast path
    head_l2: float = 1e-2
    # weigh species by 1 / photo count: a new species learned from 20 photos next to 100 of
    # each other went from 0.667 to 0.758 top-1, the old ones unchanged (bench_species_growth)
    balanced_head: bool = True
    flip_features: bool = False  # also train the head on mirrored crops
    # fast path: the frozen backbone quantised to INT8 before the head is fitted on its features
    # (model/quantise.py): 2.15x faster inference for -0.23 points of CV top-1 (bench_int8.py)
    int8: bool = True
    feature_views: int = 0  # random augmented crops per image added to the head's training set
    calibration_folds: int = 5  # cross-fitted folds for the temperature and validation metrics
    # open-set score (model/open_set.py): "none" trains a closed-set model
    open_set_method: str = DEFAULT_METHOD
    open_set_keep_rate: float = DEFAULT_KEEP_RATE  # share of held-out photos of known species recognised
    open_set_k: int = DEFAULT_K
    # predicted labels a retrain may learn from must be right this often on held-out photos
    kept_label_precision: float = 0.98
    # fine-tune path
    batch_size: int = 32
    lr_head: float = 1e-3
    lr_body: float = 3e-4
    weight_decay: float = 0.02
    label_smoothing: float = 0.1
    warmup_epochs: float = 0.5
    patience: int = 3
    threads: int | None = None  # torch intra-op threads; None keeps torch's default

    def __post_init__(self) -> None:
        parse_backbone(self.backbone)
        if self.variables < 0:
            raise InvalidInput("variables must be >= 0")
        if self.epochs is not None and self.epochs < 1:
            raise InvalidInput("epochs must be >= 1")
        if self.open_set_method not in (*METHODS, "none"):
            raise InvalidInput(f"open_set_method must be one of {', '.join(METHODS)} or none")
        if not 0.5 <= self.open_set_keep_rate < 1:
            raise InvalidInput("open_set_keep_rate must be in [0.5, 1)")

    @property
    def fine_tune(self) -> bool:
        return self.variables > 0

    @property
    def resolved_epochs(self) -> int:
        """Fine-tune epochs; for the fast path, the progress steps (one per fold, then the
        final fit)."""
        if not self.fine_tune:
            return max(self.calibration_folds, 0) + 1
        return self.epochs if self.epochs is not None else DEFAULT_FINE_TUNE_EPOCHS

    @property
    def resolved_image_size(self) -> int:
        return self.image_size or default_image_size(self.backbone)

    def to_params(self) -> dict[str, Any]:
        params = asdict(self)
        params.update(
            mode="fine_tune" if self.fine_tune else "frozen_features",
            epochs=self.resolved_epochs,
            image_size=self.resolved_image_size,
        )
        return params


def config_for(settings: Settings) -> TrainConfig:
    """The default recipe with what a deployment sets: its backbone, mirror averaging, INT8,
    open-set keep rate and the precision of kept labels."""
    return TrainConfig(
        backbone=settings.backbone,
        flip_tta=settings.mirror_averaging,
        int8=settings.int8,
        open_set_keep_rate=settings.open_set_keep_rate,
        kept_label_precision=settings.kept_label_precision,
    )


def config_from_options(
    epochs: int | None = None,
    variables: int | None = None,
    backbone: str | None = None,
    seed: int | None = None,
    base: TrainConfig | None = None,
) -> TrainConfig:
    """What the CLI and the jobs pass: giving ``epochs`` or ``variables`` selects fine-tuning
    (the other one taking its fine-tune default); neither keeps the default fast path."""
    config = base or TrainConfig()
    changes: dict[str, Any] = {}
    if backbone:
        changes["backbone"] = backbone
    if seed is not None:
        changes["seed"] = seed
    if epochs is not None or variables is not None:
        changes["variables"] = DEFAULT_FINE_TUNE_BLOCKS if variables is None else variables
        changes["epochs"] = epochs
    return replace(config, **changes)


@dataclass(frozen=True)
class HeldOutPredictions:
    """The calibrated probabilities (N, species) of each photo a head did not train on (the
    out-of-fold photos on the fast path, the validation split when fine-tuning), with the
    photo's SHA-256 and species index."""

    sha256: list[str]
    targets: np.ndarray
    probabilities: np.ndarray

    def top1_hits(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1) == self.targets


@dataclass
class TrainedModel:
    model: SpeciesNet  # eval mode; outputs logits (temperature and TTA are applied at export)
    labels: list[str]
    config: TrainConfig
    calibration: Calibration
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    manifest: list[dict[str, str]]
    val_report: EvaluationReport | None
    open_set: OpenSetScore | None = None  # None: no held-out photos to set its threshold on
    open_set_fit: OpenSetFit | None = None
    # held-out photos' top probabilities and open-set scores: what the monitor compares live
    # traffic with (None: no held-out photos)
    reference: dict[str, list[float]] | None = None
    # every held-out photo's calibrated probabilities: recipes are compared photo by photo
    held_out_predictions: HeldOutPredictions | None = None
    # the INT8 feature graph (ONNX) the head was fitted on, which the export serves; None: float
    int8_features: bytes | None = None

    @property
    def temperature(self) -> float:
        return self.calibration.temperature

    @property
    def image_size(self) -> int:
        return self.model.image_size

    @property
    def backbone(self) -> str:
        return self.model.backbone

    def weights(self) -> dict[str, Any]:
        """What a later fine-tune starts from (``torch.save`` it; loads with weights_only)."""
        return {
            "state_dict": self.model.state_dict(),
            "labels": list(self.labels),
            "backbone": self.backbone,
            "image_size": self.image_size,
            "temperature": self.temperature,
        }


def use_fast_malloc() -> None:
    """glibc's default malloc returns freed activations to the OS and maps them back on every
    batch (sys time = user time, ~2x slower here). Same effect as MALLOC_MMAP_MAX_=0 and a
    huge MALLOC_TRIM_THRESHOLD_ in the environment, for processes started without them."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_max = -1, -4
    libc.mallopt(m_mmap_max, 0)
    libc.mallopt(m_trim_threshold, 2**31 - 1)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def train_model(
    examples: Sequence[Example],
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    initial_weights: dict[str, Any] | None = None,
    max_pixels: int = 40_000_000,
    seen_by_base: Collection[str] = frozenset(),
) -> TrainedModel:
    """Train on ``examples`` (split 80/20 by species, seeded). ``initial_weights`` (from
    ``TrainedModel.weights()``) starts from a previous model: its backbone and image size are
    used, and its head too when the species are the same. ``seen_by_base``: hashes of the images
    that model trained on, kept out of validation where possible (the metric
    ``val_seen_by_base`` says what share could not be)."""
    config = config or TrainConfig()
    if initial_weights is not None:
        config = replace(config, backbone=initial_weights["backbone"], image_size=initial_weights["image_size"])
    report = progress or (lambda _: None)
    started = time.perf_counter()
    use_fast_malloc()
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)

    size = config.resolved_image_size
    report({"stage": "loading", "done": 0, "total": len(examples)})
    keep_images = config.fine_tune or config.feature_views > 0  # only augmentation needs them
    items = load_examples(examples, size, max_pixels, keep_images=keep_images)
    labels = label_names(items)
    if len(labels) < 2:
        raise InvalidInput("Training needs images of at least two species.")
    targets = {label: i for i, label in enumerate(labels)}

    model = SpeciesNet(config.backbone, len(labels), size, pretrained=initial_weights is None)
    if initial_weights is not None:
        _load_initial_weights(model, initial_weights, labels)
    model.eval()

    int8_features = None  # the fine-tuned backbone serves in float: its head learnt float features
    if config.fine_tune:
        split = stratified_split(items, config.val_fraction, config.seed, seen=seen_by_base)
        train_y = np.array([targets[item.label] for item in split.train], dtype=np.int64)
        val_y = np.array([targets[item.label] for item in split.val], dtype=np.int64)
        history, val_logits = _fine_tune(model, split.train, train_y, split.val, val_y, config, report)
        held_out = _fine_tuned_held_out(model, split.train, train_y, split.val, val_y, config, report)
        val_hashes = [item.sha256 for item in split.val]
        rows = manifest(split)
        counts: dict[str, float] = {
            "n_train": len(split.train),
            "n_val": len(split.val),
            "duplicates_removed_from_val": split.duplicates_removed,
        }
        if seen_by_base:
            counts["val_seen_by_base"] = sum(item.sha256 in seen_by_base for item in split.val) / max(1, len(split.val))
    else:
        folds = (
            cross_validation_folds(items, config.calibration_folds, config.seed)
            if config.calibration_folds >= 2
            else []
        )
        crops = None
        if config.int8:
            report({"stage": "quantising", "photos": min(len(items), CALIBRATION_PHOTOS)})
            crops = calibration_crops([item.centre for item in items], config.seed, config.flip_tta)
        extract = OnnxFeatureExtractor(model, int8_calibration=crops)
        int8_features = extract.int8_graph
        history, held_out = _fit_head_on_features(model, extract, items, folds, targets, config, report)
        val_logits, val_y = held_out.logits(), held_out.targets()
        val_hashes = [items[row].sha256 for _, fold_rows in held_out.folds for row in fold_rows]
        rows = manifest(Split(list(items), [], 0), folds)
        counts = {
            "n_train": len(items),
            "n_val": len(val_y),
            "duplicates_removed_from_val": sum(fold.duplicates_removed for fold in folds),
        }
    calibration = fit_temperature(val_logits, val_y)
    model.eval()
    open_set, open_set_fit, held_out_scores = _fit_open_set(held_out, calibration.temperature, config)

    val_report = None
    held_out_predictions = None
    reference: dict[str, list[float]] | None = None
    metrics: dict[str, float] = {
        **counts,
        "n_species": len(labels),
        "epochs_run": len(history),
        **calibration.as_metrics(),
    }
    if len(val_y):
        val_report = evaluate_probabilities(
            softmax(val_logits, calibration.temperature), [labels[i] for i in val_y], labels
        )
        metrics.update(val_top1=val_report.top1, val_top3=val_report.top3, val_ece=val_report.ece)
    if open_set_fit is not None:
        metrics.update(
            val_open_set_rejected=open_set_fit.validation_rejected, open_set_threshold=open_set_fit.threshold
        )
    if len(val_y):
        recognised = None
        if open_set_fit is not None and held_out_scores is not None and len(held_out_scores) == len(val_y):
            recognised = held_out_scores <= open_set_fit.threshold
        val_probabilities = softmax(val_logits, calibration.temperature)
        held_out_predictions = HeldOutPredictions(val_hashes, val_y, val_probabilities)
        rule = kept_label_rule(val_probabilities, val_y, recognised, config.kept_label_precision)
        metrics.update(rule.metrics())
        reference = drift_reference(val_probabilities.max(axis=1), held_out_scores if recognised is not None else None)
    metrics["train_seconds"] = time.perf_counter() - started
    return TrainedModel(
        model,
        labels,
        config,
        calibration,
        history,
        metrics,
        rows,
        val_report,
        open_set,
        open_set_fit,
        reference,
        held_out_predictions,
        int8_features,
    )


@dataclass
class HeldOut:
    """What the open-set score is fitted and thresholded on: the served features of every
    training photo (N, D) with their species, and for each fold (training rows, held-out rows)
    the held-out photos' logits from the head that did not see them."""

    features: np.ndarray
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    held_out_logits: list[np.ndarray]
    final_rows: np.ndarray | None = None  # the photos the served score is fitted on (None: all)

    def logits(self) -> np.ndarray:
        if not self.held_out_logits:
            return np.zeros((0, 0))
        return np.concatenate(self.held_out_logits)

    def targets(self) -> np.ndarray:
        if not self.folds:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.y[rows] for _, rows in self.folds])


REFERENCE_POINTS = 500  # quantiles kept per reference distribution: plenty for a KS test


def drift_reference(top_probabilities: np.ndarray, open_set_scores: np.ndarray | None) -> dict[str, list[float]]:
    """The held-out distributions, as at most REFERENCE_POINTS quantiles each."""

    def sample(values: np.ndarray) -> list[float]:
        values = np.sort(np.asarray(values, dtype=np.float64))
        if len(values) > REFERENCE_POINTS:
            values = np.quantile(values, np.linspace(0, 1, REFERENCE_POINTS))
        return [round(float(v), 6) for v in values]

    found = {"top_probabilities": sample(top_probabilities)}
    if open_set_scores is not None:
        found["open_set_scores"] = sample(open_set_scores)
    return found


def _fit_open_set(
    held_out: HeldOut, temperature: float, config: TrainConfig
) -> tuple[OpenSetScore | None, OpenSetFit | None, np.ndarray | None]:
    """The served score, its fit and the held-out photos' scores (in ``held_out.targets()`` order)."""
    if config.open_set_method == "none":
        return None, None, None
    if sum(len(rows) for _, rows in held_out.folds) == 0:
        log.warning("No held-out photos to set an open-set threshold on: this version answers without a verdict.")
        return None, None, None
    score, fit, held_out_scores = fit_with_held_out_threshold(
        config.open_set_method,
        held_out.features,
        held_out.y,
        temperature,
        held_out.folds,
        held_out.held_out_logits,
        config.open_set_keep_rate,
        final_rows=held_out.final_rows,
        k=config.open_set_k,
    )
    log.info(
        "Open-set score %s: threshold %.4g keeps %.1f%% of %d held-out photos.",
        fit.method,
        fit.threshold,
        100 * (1 - fit.validation_rejected),
        fit.n_validation,
    )
    return score, fit, held_out_scores


def _load_initial_weights(model: SpeciesNet, weights: dict[str, Any], labels: list[str]) -> None:
    state = dict(weights["state_dict"])
    old_labels = list(weights["labels"])
    if old_labels == labels:
        model.load_state_dict(state, strict=True)
        return
    head = {k: v for k, v in state.items() if k.startswith("head.")}
    missing, unexpected = model.load_state_dict({k: v for k, v in state.items() if k not in head}, strict=False)
    if unexpected or any(not k.startswith("head.") for k in missing):
        raise InvalidInput("The base model's weights do not match its backbone.")
    # The head grows (or shrinks) with the species: a species both know keeps its row, a new
    # one starts from the fresh initialisation.
    shared = [(labels.index(label), row) for row, label in enumerate(old_labels) if label in labels]
    with torch.no_grad():
        for name in ("weight", "bias"):
            old = head.get(f"head.{name}")
            if old is None or old.shape[1:] != getattr(model.head, name).shape[1:]:
                continue
            for new_row, old_row in shared:
                getattr(model.head, name)[new_row] = old[old_row]
    added = sorted(set(labels) - set(old_labels))
    log.info("Species changed since the base model: %d rows kept, new: %s.", len(shared), ", ".join(added) or "none")


# --- shared helpers ------------------------------------------------------------------------


def _batches(arrays: Sequence[np.ndarray], size: int) -> Iterator[np.ndarray]:
    for start in range(0, len(arrays), size):
        yield scale_pixels(np.stack(arrays[start : start + size]))


def _mirror(pixels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(pixels[:, ::-1])


@torch.inference_mode()
def _predict_logits(model: SpeciesNet, items: Sequence[LoadedExample], flip_tta: bool) -> np.ndarray:
    model.eval()
    outputs = []
    for batch in _batches([item.centre for item in items], _FEATURE_BATCH):
        x = torch.from_numpy(batch)
        logits = model(x)
        if flip_tta:
            logits = (logits + model(x.flip(-1))) / 2
        outputs.append(logits.double().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, model.head.out_features))


# --- fast path: frozen features + logistic regression ----------------------------------------


class _PooledFeatures(nn.Module):
    def __init__(self, model: SpeciesNet):
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.model.features(image)


def export_feature_graph(model: SpeciesNet, path: Path) -> Path:
    """The frozen backbone(s) as an ONNX graph ``image`` (N, 3, H, W) -> ``features`` (N, D),
    with the "SAME" pads folded into the convolutions as in the served graph."""
    wrapper = _PooledFeatures(model).eval()
    size = model.image_size
    export_onnx(wrapper, torch.zeros(2, 3, size, size), path, ["image"], ["features"], opset=17)
    model.eval()  # the export puts the wrapper's train/eval mode back onto every submodule
    fold_padding(path)
    return path


class OnnxFeatureExtractor:
    """The frozen backbone(s) run through ONNX Runtime (``export_feature_graph``): about 3x
    faster than torch eager on this kind of CPU, then 1.8x faster again from the folded pads,
    for the same numbers (max difference ~1e-5). With ``int8_calibration`` (uint8 crops) the
    graph is quantised first (model/quantise.py) and kept in ``int8_graph``: what serving runs."""

    def __init__(self, model: SpeciesNet, int8_calibration: np.ndarray | None = None):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        self.int8_graph: bytes | None = None
        with tempfile.TemporaryDirectory(prefix="champipy-features-") as tmp:
            path = export_feature_graph(model, Path(tmp) / "features.onnx")
            if int8_calibration is not None:
                path = quantise_feature_graph(path, Path(tmp) / "features-int8.onnx", int8_calibration)
                self.int8_graph = path.read_bytes()
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {"image": batch})[0].astype(np.float64)


def _view(kind: str, config: TrainConfig, index: int, item: LoadedExample) -> np.ndarray:
    """One uint8 crop of an item: "centre", its "mirror", or "augmented<k>" (a seeded random
    crop that does not depend on the batch order)."""
    if kind == "centre":
        return item.centre
    if kind == "mirror":
        return _mirror(item.centre)
    k = int(kind.removeprefix("augmented"))
    if item.image is None:
        raise ValueError("augmented views need the examples loaded with keep_images=True")
    return augment(item.image, config.resolved_image_size, augment_rng(config.seed, k, index))


def _features(
    extract: OnnxFeatureExtractor,
    items: Sequence[LoadedExample],
    kind: str,
    offset: int,
    config: TrainConfig,
    report: Progress,
    counter: list[int],
    total: int,
) -> np.ndarray:
    chunks = []
    for start in range(0, len(items), _FEATURE_BATCH):
        chunk = items[start : start + _FEATURE_BATCH]
        views = [_view(kind, config, offset + start + i, item) for i, item in enumerate(chunk)]
        chunks.append(extract(scale_pixels(np.stack(views))))
        counter[0] += len(chunk)
        report({"stage": "features", "done": counter[0], "total": total})
    return np.concatenate(chunks) if chunks else np.zeros((0, FEATURE_DIM * len(parse_backbone(config.backbone))))


def _fit_head_on_features(
    model: SpeciesNet,
    extract: OnnxFeatureExtractor,
    items: Sequence[LoadedExample],
    folds: Sequence[Split],
    targets: dict[str, int],
    config: TrainConfig,
    report: Progress,
) -> tuple[list[dict[str, Any]], HeldOut]:
    """Features once per view, a head cross-fitted on each fold (out-of-fold logits, averaged
    over the mirror when ``flip_tta``), then the final head on every image, written into
    ``model.head``. Returns the history and the held-out logits with the served features."""
    training_kinds = (
        ["centre"] + ["mirror"] * config.flip_features + [f"augmented{k}" for k in range(config.feature_views)]
    )
    tta_kinds = ["centre", "mirror"] if config.flip_tta else ["centre"]
    kinds = list(dict.fromkeys(training_kinds + (tta_kinds if folds else [])))
    total = len(items) * len(kinds)
    counter = [0]
    report({"stage": "features", "done": 0, "total": total})
    features = {kind: _features(extract, items, kind, 0, config, report, counter, total) for kind in kinds}
    y = np.array([targets[item.label] for item in items], dtype=np.int64)
    position = {id(item): i for i, item in enumerate(items)}
    classes = model.head.out_features
    steps = len(folds) + 1
    history: list[dict[str, Any]] = []

    def fit(rows: np.ndarray) -> tuple[nn.Linear, np.ndarray, np.ndarray, dict[str, Any]]:
        x = np.concatenate([features[kind][rows] for kind in training_kinds])
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
        head, loss, accuracy = _fit_logistic_regression(
            (x - mean) / std, np.tile(y[rows], len(training_kinds)), classes, config.head_l2, config.balanced_head
        )
        return head, mean, std, {"stage": "train", "epochs": steps, "loss": loss, "accuracy": accuracy}

    out_of_fold: list[tuple[np.ndarray, np.ndarray]] = []
    fold_rows: list[tuple[np.ndarray, np.ndarray]] = []
    for k, fold in enumerate(folds):
        rows = np.array([position[id(item)] for item in fold.train])
        held_out = np.array([position[id(item)] for item in fold.val], dtype=np.int64)
        head, mean, std, entry = fit(rows)
        entry["epoch"] = k + 1
        if len(held_out):
            fold_rows.append((rows, held_out))
            with torch.no_grad():
                logits = sum(
                    head(torch.from_numpy((features[kind][held_out] - mean) / std).float()).double().numpy()
                    for kind in tta_kinds
                ) / len(tta_kinds)
            out_of_fold.append((held_out, logits))
            entry.update(
                val_loss=float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y[held_out]))),
                val_accuracy=float((logits.argmax(1) == y[held_out]).mean()),
            )
        history.append(entry)
        report(dict(entry))

    head, mean, std, entry = fit(np.arange(len(items)))
    entry["epoch"] = steps
    history.append(entry)
    report(dict(entry))
    # Fold the standardisation into the head: the exported graph sees raw features.
    with torch.no_grad():
        weight = head.weight.double() / torch.from_numpy(std)
        model.head.weight.copy_(weight.float())
        model.head.bias.copy_((head.bias.double() - weight @ torch.from_numpy(mean)).float())

    # Linear head: the mean of the views' logits is the head of their mean features.
    served = np.mean([features[kind] for kind in tta_kinds], axis=0) if folds else features["centre"]
    return history, HeldOut(served, y, fold_rows, [logits for _, logits in out_of_fold])


def _fit_logistic_regression(
    x: np.ndarray, y: np.ndarray, classes: int, l2: float, balanced: bool = False
) -> tuple[nn.Linear, float, float]:
    """Multinomial logistic regression with an L2 penalty, solved by L-BFGS from zero weights
    (deterministic) to convergence: the problem is convex and the penalty is the regulariser.
    float32 converges to the same weights (|dW| ~2e-4) in a third of the float64 time.
    ``balanced`` weighs each species by the inverse of its photo count, so that a species
    with few photos (a new one) is not drowned by the others; with equal counts it changes
    nothing. Returns the head, the final objective and the training accuracy."""
    features, targets = torch.from_numpy(x.astype(np.float32)), torch.from_numpy(y)
    weight = None
    if balanced:
        counts = np.bincount(y, minlength=classes).astype(np.float64)
        weight = torch.from_numpy((len(y) / (classes * np.maximum(counts, 1))).astype(np.float32))
    head = nn.Linear(x.shape[1], classes)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    optimizer = torch.optim.LBFGS(
        head.parameters(),
        lr=1.0,
        max_iter=_LBFGS_MAX_ITERATIONS,
        history_size=20,
        line_search_fn="strong_wolfe",
        tolerance_grad=1e-5,
        tolerance_change=1e-9,
    )

    def objective() -> torch.Tensor:
        return F.cross_entropy(head(features), targets, weight=weight) + l2 * head.weight.pow(2).sum() / 2

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = objective()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        loss = float(objective())
        accuracy = float((head(features).argmax(1) == targets).double().mean())
    return head, loss, accuracy


# --- fine-tune path ----------------------------------------------------------------------


def _fine_tune(
    model: SpeciesNet,
    train: Sequence[LoadedExample],
    train_y: np.ndarray,
    val: Sequence[LoadedExample],
    val_y: np.ndarray,
    config: TrainConfig,
    report: Progress,
) -> tuple[list[dict[str, Any]], np.ndarray]:
    body = model.unfreeze_last_blocks(config.variables)
    frozen = model.frozen_modules(config.variables)
    groups = [{"params": list(model.head.parameters()), "lr": config.lr_head}]
    if body:
        groups.append({"params": body, "lr": config.lr_body})
    optimizer = torch.optim.AdamW(groups, weight_decay=config.weight_decay)
    epochs = config.resolved_epochs
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    total_steps = epochs * steps_per_epoch
    warmup = max(1, round(config.warmup_epochs * steps_per_epoch))

    def lr_factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total_steps - warmup)))

    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    size = config.resolved_image_size
    history: list[dict[str, Any]] = []
    best_score, best_state, best_logits, stale = None, None, None, 0
    for epoch in range(1, epochs + 1):
        model.train()
        for module in frozen:
            module.eval()  # frozen batch-norms keep their ImageNet statistics
        order = np.random.default_rng((config.seed, epoch)).permutation(len(train))
        loss_sum, hits = 0.0, 0
        for start in range(0, len(order), config.batch_size):
            index = order[start : start + config.batch_size]
            views = [augment(train[i].image, size, augment_rng(config.seed, epoch, int(i))) for i in index]
            x = torch.from_numpy(scale_pixels(np.stack(views)))
            y = torch.from_numpy(train_y[index])
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=config.label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            loss_sum += float(loss.detach()) * len(index)
            hits += int((logits.argmax(1) == y).sum())
        entry: dict[str, Any] = {
            "stage": "train",
            "epoch": epoch,
            "epochs": epochs,
            "loss": loss_sum / len(train),
            "accuracy": hits / len(train),
        }
        logits = _predict_logits(model, val, config.flip_tta)
        if len(val_y):
            val_loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(val_y)))
            val_accuracy = float((logits.argmax(1) == val_y).mean())
            entry.update(val_loss=val_loss, val_accuracy=val_accuracy)
            score = (val_accuracy, -val_loss)
            if best_score is None or score > best_score:
                best_score, best_state, best_logits, stale = score, copy.deepcopy(model.state_dict()), logits, 0
            else:
                stale += 1
        history.append(entry)
        report(dict(entry))
        if stale >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
        logits = best_logits
    model.eval()
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    return history, logits


def _fine_tuned_held_out(
    model: SpeciesNet,
    train: Sequence[LoadedExample],
    train_y: np.ndarray,
    val: Sequence[LoadedExample],
    val_y: np.ndarray,
    config: TrainConfig,
    report: Progress,
) -> HeldOut:
    """The fine-tuned model's served features of both parts: the score is fitted on the
    training part and thresholded on the validation part, with the final head's logits."""
    if config.open_set_method == "none" or not len(val):
        return HeldOut(np.zeros((0, 0)), train_y, [], [])
    extract = OnnxFeatureExtractor(model)
    items = [*train, *val]
    kinds = ["centre", "mirror"] if config.flip_tta else ["centre"]
    total, counter = len(items) * len(kinds), [0]
    features = np.mean([_features(extract, items, kind, 0, config, report, counter, total) for kind in kinds], axis=0)
    train_rows, val_rows = np.arange(len(train)), np.arange(len(train), len(items))
    with torch.no_grad():
        val_logits = model.head(torch.from_numpy(features[val_rows]).float()).double().numpy()
    y = np.concatenate([train_y, val_y])
    return HeldOut(features, y, [(train_rows, val_rows)], [val_logits], final_rows=train_rows)
