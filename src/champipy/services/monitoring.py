"""The periodic check with its consequences: history, alert, optional retrain job."""

from __future__ import annotations

import logging

from ..alerts import post_alert
from . import supervise
from .models import RETRAIN

log = logging.getLogger(__name__)

MONITOR_JOB = "monitor"


def check_and_alert(container) -> supervise.MonitorResult:
    settings = container.settings
    result = supervise.run_monitor(settings, container.store, container.models, container.registry)
    _log_to_mlflow(container, result)
    if result.ok:
        return result
    post_alert(settings, {"service": "champipy", "event": "model_check_failed", **result.to_dict()})
    new_images_crossed = result.nb_new_img is not None and result.nb_new_img >= settings.target_new_images
    jobs = getattr(container, "jobs", None)
    if settings.retrain_on_new_images and new_images_crossed and jobs is not None:
        job = jobs.submit(RETRAIN, {"promote_if_better": True, "reason": "new images"}, None)
        log.info("new-image threshold crossed: retrain job %s submitted", job.id)
    return result


def _log_to_mlflow(container, result: supervise.MonitorResult) -> None:
    """Monitor metrics go on the serving version's training run, as a time series."""
    if result.model_version is None:
        return
    try:
        container.registry.log_monitor_metrics(result.model_version, {
            "monitor_accuracy": result.accuracy if result.accuracy is not None else float("nan"),
            "monitor_new_images": float(result.nb_new_img or 0),
        })
    except Exception as exc:  # the check's verdict matters more than its MLflow copy
        log.warning("could not log monitor metrics to MLflow: %s", exc)


def monitor_handler(container):
    def run(params: dict, report) -> dict:
        container.models.refresh()  # a worker process has no poller: read the alias now
        return check_and_alert(container).to_dict()

    return run
