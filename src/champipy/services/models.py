"""Model lifecycle seen from the service: list versions, promote, fine-tune or retrain as a job."""

from __future__ import annotations

import logging
from typing import Any

from ..errors import InvalidInput, NotFound
from . import supervise

log = logging.getLogger(__name__)

FINETUNE = "finetune"
RETRAIN = "retrain"


def list_versions(container) -> list[dict]:
    settings, store, registry = container.settings, container.store, container.registry
    promotions: dict[str, Any] = {}
    for event in reversed(store.list_events(supervise.PROMOTION, limit=500)):
        promotions[event.payload.get("version")] = event.created_at
    serving = container.models.serving if container.models is not None else None
    return [
        {
            "name": settings.registered_model,
            "version": str(v.version),
            "aliases": list(v.aliases),
            "metrics": dict(v.metrics),
            "params": {k: str(p) for k, p in dict(v.params).items()},
            "run_id": v.run_id,
            "created_at": v.created_at,
            "promoted_at": promotions.get(str(v.version)),
            "serving": serving is not None and serving.version == str(v.version),
        }
        for v in registry.list_versions()
    ]


def promote(container, version: str, username: str | None) -> dict:
    supervise.promote_version(container.settings, container.store, container.registry, version, by=username)
    if container.models is not None:
        container.models.refresh()  # serve it now rather than at the next poll
    return next(v for v in list_versions(container) if v["version"] == str(version))


def submit_finetune(container, params: dict, username: str | None):
    settings = container.settings
    if params.get("model_name", settings.registered_model) != settings.registered_model:
        raise NotFound(f"Unknown model {params['model_name']!r}; this service trains {settings.registered_model!r}.")
    params = dict(params, stage=supervise.normalise_alias(params.get("stage") or "", settings))
    return container.jobs.submit(FINETUNE, params, username)


def submit_retrain(container, promote_if_better: bool, username: str | None):
    return container.jobs.submit(RETRAIN, {"promote_if_better": promote_if_better}, username)


MIN_TRAINING_IMAGES = 20


def _stored_examples(settings, store):
    from ..model.data import examples_from_store

    examples = examples_from_store(store, settings.retrain_images)
    if len({e.label for e in examples}) < 2 or len(examples) < MIN_TRAINING_IMAGES:
        raise InvalidInput(
            f"Only {len(examples)} labelled images are stored; import photos first (`champipy data import DIR`)."
        )
    return examples


def _promote_if_better(settings, store, registry, outcome, base, job_name: str, on_promoted) -> bool:
    """Promote the new version when it beats the serving one on the evaluation set."""
    new_score = outcome.version.metrics.get("eval_top1")
    old_score = dict(base.metrics).get("eval_top1") if base is not None else None
    if new_score is None or (old_score is not None and new_score <= old_score):
        return False
    supervise.promote_version(settings, store, registry, outcome.version.version, by=job_name)
    if on_promoted:
        on_promoted()
    return True


def finetune_handler(settings, store, registry, on_promoted=None):
    """The job body: fine-tune from the version at ``stage`` on the most recent stored images."""

    def run(params: dict, report) -> dict:
        from ..model.pipeline import train_and_register
        from ..model.train import TrainConfig

        alias = params.get("stage") or settings.production_alias
        base = registry.version_for_alias(alias)
        if base is None:
            raise InvalidInput(f"No version has the alias {alias!r} to fine-tune from.")
        examples = _stored_examples(settings, store)
        report({"stage": "training", "images": len(examples), "base_version": str(base.version)})
        config = TrainConfig(
            backbone=str(dict(base.params).get("backbone", settings.backbone)),
            epochs=int(params.get("epochs", 5)),
            variables=int(params.get("variables", 2)),
        )
        outcome = train_and_register(settings, examples, config, progress=report, base_version=str(base.version))
        promoted = bool(params.get("promote_if_better")) and _promote_if_better(
            settings, store, registry, outcome, base, "finetune job", on_promoted)
        return {"version": str(outcome.version.version), "base_version": str(base.version),
                "images": len(examples), "metrics": dict(outcome.version.metrics), "promoted": promoted}

    return run


def retrain_handler(settings, store, registry, on_promoted=None):
    """The job body: train the default recipe from ImageNet weights on the most recent images."""

    def run(params: dict, report) -> dict:
        from ..model.pipeline import train_and_register
        from ..model.train import TrainConfig

        examples = _stored_examples(settings, store)
        report({"stage": "training", "images": len(examples)})
        outcome = train_and_register(settings, examples, TrainConfig(backbone=settings.backbone), progress=report)
        base = registry.version_for_alias(settings.production_alias)
        promoted = bool(params.get("promote_if_better")) and _promote_if_better(
            settings, store, registry, outcome, base, "retrain job", on_promoted)
        return {"version": str(outcome.version.version), "images": len(examples),
                "metrics": dict(outcome.version.metrics), "promoted": promoted}

    return run
