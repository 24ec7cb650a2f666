"""What Bob watches: accuracy of the serving model, new images since its promotion, the
mean confidence of recent predictions, and the periodic check that raises alerts."""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from ..errors import InvalidInput, NoModel, NotFound
from ..settings import Settings
from ..store.base import Store
from .model_provider import ModelProvider

log = logging.getLogger(__name__)

PROMOTION = "promotion"
# Evaluations are CPU-bound; running two at once only makes both slower.
_evaluation_lock = threading.Lock()
MONITOR = "monitor"


def accuracy_cache_key(version: str, eval_dir: Path) -> str:
    return f"accuracy:{version}:{eval_dir.resolve()}"


def production_accuracy(settings: Settings, store: Store, models: ModelProvider) -> dict:
    """Evaluate the serving model on the evaluation set, once per model version."""
    from ..model.evaluate import evaluate_folder

    serving = models.current()
    if settings.eval_dir is None or not Path(settings.eval_dir).is_dir():
        raise InvalidInput("No evaluation set: set CHAMPIPY_EVAL_DIR to a folder of species sub-folders.")
    key = accuracy_cache_key(serving.version, Path(settings.eval_dir))
    with _evaluation_lock:
        cached = store.get_parameter(key)
        if cached:
            return json.loads(cached) | {"cached": True}
        report = evaluate_folder(serving.classifier, Path(settings.eval_dir)).to_dict()
        report |= {"model_name": serving.name, "model_version": serving.version,
                   "evaluated_at": datetime.now(timezone.utc).isoformat()}
        store.set_parameter(key, json.dumps(report))
    return report | {"cached": False}


def past_prediction_accuracy(store: Store, nb_last_preds: int) -> dict:
    """Mean top probability of the last predictions and, where experts answered, real accuracy."""
    if nb_last_preds < 1:
        raise InvalidInput("nb_last_preds must be at least 1.")
    recent = store.recent_predictions(nb_last_preds)
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


def promote_version(settings: Settings, store: Store, registry, version: str | int,
                    alias: str | None = None, by: str | None = None):
    """Point ``alias`` (default: production) at ``version`` and record when, for the monitor's
    "new images since promotion". Every promotion goes through here. Returns the version info."""
    alias = (alias or settings.production_alias).strip().lower()
    info = registry.promote(version, alias)
    store.add_event(PROMOTION, {"model_name": settings.registered_model, "version": str(info.version),
                                "alias": alias, "username": by})
    return info


def promoted_at(store: Store, registry, model_name: str, alias: str) -> tuple[str, datetime]:
    """The version now at ``alias`` and when it got there (our record, else its creation)."""
    info = registry.version_for_alias(alias)
    if info is None:
        raise NotFound(f"No version of {model_name!r} has the alias {alias!r}.")
    version = str(info.version)
    for event in store.list_events(PROMOTION, limit=500):
        p = event.payload
        if p.get("version") == version and p.get("alias", "").lower() == alias.lower() \
                and p.get("model_name") == model_name:
            return version, event.created_at
    return version, info.created_at


def new_images_since_promotion(settings: Settings, store: Store, registry, model_name: str, stage: str) -> dict:
    if model_name != settings.registered_model:
        raise NotFound(f"Unknown model {model_name!r}; this service serves {settings.registered_model!r}.")
    alias = normalise_alias(stage, settings)
    version, since = promoted_at(store, registry, model_name, alias)
    return {"model_name": model_name, "stage": alias, "version": version,
            "promoted_at": since.isoformat(), "nb_new_img": store.count_images(since=since)}


def normalise_alias(stage: str, settings: Settings) -> str:
    """The original used the MLflow stage "Production"; we use the alias "production"."""
    stage = (stage or settings.production_alias).strip()
    if not stage or len(stage) > 64 or not stage.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("stage must be an alias name such as 'production'.")
    return stage.lower()


@dataclass(frozen=True)
class MonitorResult:
    ok: bool
    accuracy: float | None
    nb_new_img: int | None
    model_version: str | None
    alerts: list[str]
    checked_at: str

    def to_dict(self) -> dict:
        return {"ok": self.ok, "accuracy": self.accuracy, "nb_new_img": self.nb_new_img,
                "model_version": self.model_version, "alerts": self.alerts, "checked_at": self.checked_at,
                }


def run_monitor(settings: Settings, store: Store, models: ModelProvider, registry) -> MonitorResult:
    """The periodic check: accuracy >= target and new images < target, else alerts."""
    alerts: list[str] = []
    accuracy = new_images = version = None
    try:
        report = production_accuracy(settings, store, models)
        accuracy, version = report["top1"], report["model_version"]
        if accuracy < settings.target_accuracy:
            alerts.append(f"accuracy {accuracy:.3f} is below the target {settings.target_accuracy:.2f}")
    except NoModel:
        alerts.append("no model is in production")
    try:
        counted = new_images_since_promotion(settings, store, registry, settings.registered_model,
                                             settings.production_alias)
        new_images = counted["nb_new_img"]
        if new_images >= settings.target_new_images:
            alerts.append(f"{new_images} new images since promotion (threshold {settings.target_new_images}): "
                          "time to retrain")
    except NotFound:
        pass
    result = MonitorResult(ok=not alerts, accuracy=accuracy, nb_new_img=new_images, model_version=version,
                           alerts=alerts, checked_at=datetime.now(timezone.utc).isoformat())
    store.add_event(MONITOR, result.to_dict())
    return result
