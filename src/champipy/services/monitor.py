"""What Bob watches, and the periodic check that acts on it.

The numbers: accuracy of the serving model on the evaluation set (once per version), new
images since its promotion, the mean confidence of recent predictions. ``run_check`` is the
one check the API, the CLI and the scheduled job run: it records its result, logs it to the
serving version's MLflow run, sends an alert when a target is crossed, and with
``retrain_on_new_images`` queues a retrain once enough new images arrived.
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..aliases import normalise_alias
from ..errors import InvalidInput, NoModel, NotFound
from ..settings import Settings
from ..store.base import Store
from .drift import Signal, live_signals, window
from .lifecycle import ModelLifecycle
from .open_set_share import rejections_by_day
from .ports import AlertSender
from .serving import ModelProvider

if TYPE_CHECKING:
    from ..registry import Registry

log = logging.getLogger(__name__)

MONITOR = "monitor"  # the event kind of a check's record
MAX_DAYS = 366
# Evaluations are CPU-bound; running two at once only makes both slower.
_evaluation_lock = threading.Lock()


def accuracy_cache_key(version: str, eval_dir: Path, ood_dir: Path | None = None) -> str:
    key = f"accuracy:{version}:{eval_dir.resolve()}"
    return key if ood_dir is None else f"{key}:ood:{ood_dir.resolve()}"


@dataclass(frozen=True)
class MonitorResult:
    ok: bool
    accuracy: float | None
    nb_new_img: int | None
    model_version: str | None
    alerts: list[str]
    checked_at: str
    signals: list[dict[str, Any]] = field(default_factory=list)  # live traffic (services/drift.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Monitor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        models: ModelProvider,
        registry: Registry,
        lifecycle: ModelLifecycle,
        alert: AlertSender,
    ):
        self.settings = settings
        self.store = store
        self.models = models
        self.registry = registry
        self.lifecycle = lifecycle  # when the serving version was promoted; queues retrains
        self.alert = alert

    # --- what Bob watches ----------------------------------------------------------------
    def production_accuracy(self) -> dict[str, Any]:
        """Evaluate the serving model on the evaluation set, once per model version."""
        from ..model.evaluate import evaluate_folder

        serving = self.models.current()
        eval_dir = self.settings.eval_dir
        if eval_dir is None or not Path(eval_dir).is_dir():
            raise InvalidInput("No evaluation set: set CHAMPIPY_EVAL_DIR to a folder of species sub-folders.")
        ood_dir = self.settings.ood_dir if self.settings.ood_dir and self.settings.ood_dir.is_dir() else None
        key = accuracy_cache_key(serving.version, Path(eval_dir), ood_dir)
        with _evaluation_lock:
            cached = self.store.get_parameter(key)
            if cached:
                return dict(json.loads(cached)) | {"cached": True}
            report = evaluate_folder(serving.classifier, Path(eval_dir), ood=ood_dir).to_dict()
            report |= {
                "model_name": serving.name,
                "model_version": serving.version,
                "evaluated_at": datetime.now(UTC).isoformat(),
            }
            self.store.set_parameter(key, json.dumps(report))
        return report | {"cached": False}

    def past_prediction_accuracy(self, nb_last_preds: int) -> dict[str, Any]:
        """Mean top probability of the last predictions and, where experts answered, real accuracy."""
        if nb_last_preds < 1:
            raise InvalidInput("nb_last_preds must be at least 1.")
        recent = self.store.recent_predictions(nb_last_preds)
        if not recent:
            return {"n": 0, "mean_probability": None, "n_feedback": 0, "feedback_accuracy": None}
        with_feedback = [p for p in recent if p.feedback_species]
        correct = sum(p.results[0].species == p.feedback_species for p in with_feedback)
        return {
            "n": len(recent),
            "mean_probability": sum(p.results[0].probability for p in recent) / len(recent),
            "n_feedback": len(with_feedback),
            "feedback_accuracy": correct / len(with_feedback) if with_feedback else None,
        }

    def open_set_rejections(self, days: int) -> dict[str, Any]:
        """The share of recent answers that were not recognised, per day, against the share the
        serving version was set to reject on its own held-out photos."""
        if not 1 <= days <= MAX_DAYS:
            raise InvalidInput(f"days must be between 1 and {MAX_DAYS}.")
        recent = self.store.recent_predictions(self.settings.monitor_window)
        per_day = rejections_by_day(recent, datetime.now(UTC).date(), days)
        serving = self.models.serving
        open_set = serving.classifier.open_set if serving is not None else None
        return {
            "expected_rejected": None if open_set is None else 1 - open_set.keep_rate,
            "window": self.settings.monitor_window,
            "days": [asdict(d) | {"day": d.day.isoformat()} for d in per_day],
        }

    def new_images_since_promotion(self, model_name: str, stage: str | None) -> dict[str, Any]:
        if model_name != self.settings.registered_model:
            raise NotFound(f"Unknown model {model_name!r}; this service serves {self.settings.registered_model!r}.")
        alias = normalise_alias(stage, self.settings.production_alias)
        version, since = self.lifecycle.promoted_at(alias)
        return {
            "model_name": model_name,
            "stage": alias,
            "version": version,
            "promoted_at": since.isoformat(),
            "nb_new_img": self.store.count_images(since=since),
        }

    # --- the periodic check --------------------------------------------------------------
    def run_check(self) -> MonitorResult:
        """Accuracy >= target and new images < target, else alerts; with all consequences."""
        result = self._measure()
        self.store.add_event(MONITOR, result.to_dict())
        self._log_to_mlflow(result)
        if not result.ok:
            self.alert({"service": "champipy", "event": "model_check_failed", **result.to_dict()})
            self._maybe_retrain(result)
        return result

    def _measure(self) -> MonitorResult:
        settings = self.settings
        alerts: list[str] = []
        accuracy: float | None = None
        new_images: int | None = None
        version: str | None = None
        try:
            report = self.production_accuracy()
            accuracy, version = report["top1"], report["model_version"]
            if accuracy is not None and accuracy < settings.target_accuracy:
                alerts.append(f"accuracy {accuracy:.3f} is below the target {settings.target_accuracy:.2f}")
        except NoModel:
            alerts.append("no model is in production")
        except InvalidInput as exc:  # no evaluation set: the new-image check and its retrain still run
            alerts.append(f"accuracy not checked: {exc.detail}")
        try:
            counted = self.new_images_since_promotion(settings.registered_model, settings.production_alias)
            new_images = counted["nb_new_img"]
            if new_images is not None and new_images >= settings.target_new_images:
                alerts.append(
                    f"{new_images} new images since promotion (threshold {settings.target_new_images}): time to retrain"
                )
        except NotFound:
            pass
        signals = self.live_signals()
        alerts.extend(s.sentence for s in signals if s.alert)
        return MonitorResult(
            ok=not alerts,
            accuracy=accuracy,
            nb_new_img=new_images,
            model_version=version,
            alerts=alerts,
            checked_at=datetime.now(UTC).isoformat(),
            signals=[s.to_dict() for s in signals],
        )

    def live_signals(self) -> list[Signal]:
        """The drift signals of the serving version's recent traffic (empty: nothing serves)."""
        serving = self.models.serving
        if serving is None:
            return []
        recent = self.store.recent_predictions(self.settings.monitor_window)
        mine = [p for p in recent if p.model_version == serving.version]
        feedback = [p for p in mine if p.feedback_species]
        reference = serving.classifier.drift_reference
        return live_signals(
            window(mine, serving.version, self.settings.drift_window), feedback, reference, self.settings
        )

    def _maybe_retrain(self, result: MonitorResult) -> None:
        settings = self.settings
        crossed = result.nb_new_img is not None and result.nb_new_img >= settings.target_new_images
        if not (settings.retrain_on_new_images and crossed and self.lifecycle.jobs is not None):
            return
        job = self.lifecycle.submit_retrain(True, None, reason="new images")
        log.info("new-image threshold crossed: retrain job %s submitted", job.id)

    def _log_to_mlflow(self, result: MonitorResult) -> None:
        """Monitor metrics go on the serving version's training run, as a time series."""
        if result.model_version is None:
            return
        try:
            self.registry.log_monitor_metrics(
                result.model_version,
                {
                    "monitor_accuracy": result.accuracy if result.accuracy is not None else float("nan"),
                    "monitor_new_images": float(result.nb_new_img or 0),
                    **{f"monitor_{s['name']}": s["value"] for s in result.signals if s["value"] is not None},
                },
            )
        except Exception as exc:  # the check's verdict matters more than its MLflow copy
            log.warning("could not log monitor metrics to MLflow: %s", exc)
