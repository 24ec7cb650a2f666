"""Train -> export (checked) -> evaluate -> register: what the CLI and the jobs call.

Nothing reaches the registry before the ONNX export has passed its parity check, so a crash
or a failed check never leaves a half-registered version.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..artifacts import SERVING_ARTIFACTS, WEIGHTS_FILE
from ..registry import ModelVersionInfo, Registry
from ..settings import Settings
from .classifier import Classifier
from .data import Example
from .evaluate import EvaluationReport, evaluate_folder
from .export import export_serving_model
from .train import Progress, TrainConfig, TrainedModel, train_model

log = logging.getLogger(__name__)


@dataclass
class TrainingOutcome:
    version: ModelVersionInfo
    metrics: dict[str, float]  # validation (and eval_* when an evaluation folder is set)
    eval_report: EvaluationReport | None
    promoted: bool
    trained: TrainedModel

    def summary(self) -> dict[str, Any]:
        """JSON-friendly: what a job stores as its result."""
        return {
            "version": self.version.version,
            "run_id": self.version.run_id,
            "promoted": self.promoted,
            "metrics": self.metrics,
            "labels": self.trained.labels,
        }


def load_weights(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def train_and_register(
    settings: Settings,
    examples: Sequence[Example],
    config: TrainConfig | None = None,
    progress: Progress | None = None,
    base_version: str | None = None,
    promote: bool = False,
    registry: Registry | None = None,
    known_species: Sequence[str] = (),
    extra_params: dict[str, Any] | None = None,
) -> TrainingOutcome:
    """Train on ``examples`` (from scratch, or from ``base_version``'s torch weights), export
    and check the ONNX model, evaluate it on ``settings.eval_dir`` when set, register it as a
    new version, and point the production alias at it when ``promote``.

    ``known_species``: the species of the version this one replaces; the eval metrics then
    say apart how it does on those and on the species it adds. ``extra_params`` (what the
    training set was made of) are logged with the run."""
    config = config or TrainConfig()
    registry = registry or Registry(settings)
    initial_weights = load_weights(registry.download_torch_weights(base_version)) if base_version else None
    seen_by_base = registry.trained_image_hashes(base_version) if base_version else frozenset()

    trained = train_model(examples, config, progress, initial_weights, settings.max_image_pixels, seen_by_base)
    metrics = dict(trained.metrics)
    with tempfile.TemporaryDirectory(prefix="champipy-train-") as tmp:
        folder = Path(tmp)
        serving_dir = export_serving_model(trained, folder / SERVING_ARTIFACTS)
        weights_path = folder / WEIGHTS_FILE
        torch.save(trained.weights(), weights_path)

        images: list[Path] = []
        reports: dict[str, Any] = {}
        if trained.val_report is not None:
            images.append(trained.val_report.confusion_png(folder / "confusion_matrix_val.png"))
            reports["val_report"] = trained.val_report.to_dict()
        eval_report = None
        if settings.eval_dir and not Path(settings.eval_dir).is_dir():
            log.warning("The evaluation folder %s does not exist: no eval metrics.", settings.eval_dir)
        elif settings.eval_dir:
            if progress:
                progress({"stage": "evaluating"})
            eval_report = evaluate_folder(
                Classifier.load(serving_dir),
                settings.eval_dir,
                max_pixels=settings.max_image_pixels,
                ood=_ood_dir(settings),
            )
        if eval_report is not None and eval_report.n == 0:
            log.warning("No images in the evaluation folder %s: no eval metrics.", settings.eval_dir)
            eval_report = None
        if eval_report is not None:
            metrics.update(
                eval_top1=eval_report.top1,
                eval_top3=eval_report.top3,
                eval_ece=eval_report.ece,
                eval_ece_if_calibrated=eval_report.ece_check.if_calibrated,
                eval_ece_calibration_p=eval_report.ece_check.p_value,
                eval_n=eval_report.n,
            )
            if eval_report.open_set is not None:
                metrics.update(eval_report.open_set.metrics())
            metrics.update(species_split_metrics(eval_report, trained.labels, known_species))
            images.append(eval_report.confusion_png(folder / "confusion_matrix_eval.png"))
            reports["eval_report"] = eval_report.to_dict()

        params: dict[str, Any] = {
            **trained.config.to_params(),
            "labels": trained.labels,
            "base_version": base_version or "",
            "n_examples": len(examples),
            **(extra_params or {}),
        }
        mode = "fine-tune" if trained.config.fine_tune else "frozen features"
        description = f"{trained.backbone}, {mode}, {len(trained.labels)} species, {len(trained.manifest)} images" + (
            f", from version {base_version}" if base_version else ""
        )
        version = registry.log_training(
            params=params,
            metrics=metrics,
            history=trained.history,
            manifest=trained.manifest,
            serving_dir=serving_dir,
            weights_path=weights_path,
            images=images,
            reports=reports,
            tags={"champipy.backbone": trained.backbone, "champipy.base_version": base_version or ""},
            description=description,
        )
    if promote:
        version = registry.promote(version.version)
    if eval_report is not None:
        eval_report.model_version = version.version
    log.info("Registered %s version %s (%s)", settings.registered_model, version.version, description)
    return TrainingOutcome(version, metrics, eval_report, promote, trained)


def _ood_dir(settings: Settings) -> Path | None:
    if settings.ood_dir is not None and not Path(settings.ood_dir).is_dir():
        log.warning("The out-of-distribution folder %s does not exist: no ood metrics.", settings.ood_dir)
        return None
    return settings.ood_dir


def species_split_metrics(
    report: EvaluationReport, labels: Sequence[str], known_species: Sequence[str]
) -> dict[str, float]:
    """Top-1 on the eval photos of the species this version knows (``eval_top1_own_species``)
    and, when it replaces a version, on that version's species and on the ones it adds: a
    promotion compares versions on the species both know."""

    def top1(species: set[str]) -> tuple[float, int] | None:
        rows = [report.per_species[s] for s in species if s in report.per_species and report.per_species[s]["n"]]
        n = sum(int(r["n"]) for r in rows)
        return (sum(float(r["recall"]) * int(r["n"]) for r in rows) / n, n) if n else None

    found: dict[str, float] = {}
    parts = {"own_species": set(labels)}
    if known_species:
        parts |= {"known_species": set(known_species) & set(labels), "new_species": set(labels) - set(known_species)}
    for name, species in parts.items():
        measured = top1(species)
        if measured is not None:
            found[f"eval_top1_{name}"], found[f"eval_n_{name}"] = measured[0], float(measured[1])
    return found
