"""A model's life as Bob runs it: list versions, promote one, fine-tune or retrain as a job.

Every promotion goes through ``ModelLifecycle.promote_version``, which records when it
happened: the monitor counts "new images since promotion" from that record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..aliases import alias_key, normalise_alias
from ..errors import InvalidInput, NotFound
from ..jobs.kinds import JobKind
from ..settings import Settings
from ..store.base import Job, Store
from .ports import JobSubmitter
from .serving import ModelProvider

if TYPE_CHECKING:
    from ..model.data import Example
    from ..model.pipeline import TrainingOutcome
    from ..registry import ModelVersionInfo, Registry

log = logging.getLogger(__name__)

PROMOTION = "promotion"  # the event kind of a promotion record
MIN_TRAINING_IMAGES = 20
Report = Callable[[dict[str, Any]], None]


class ModelLifecycle:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        registry: Registry,
        models: ModelProvider | None = None,
        jobs: JobSubmitter | None = None,
    ):
        self.settings = settings
        self.store = store
        self.registry = registry
        self.models = models  # the serving process's provider: follows a promotion at once
        self.jobs = jobs

    # --- versions and promotion ----------------------------------------------------------
    def list_versions(self) -> list[dict[str, Any]]:
        promotions: dict[str, datetime] = {}
        for event in reversed(self.store.list_events(PROMOTION, limit=500)):
            promotions[str(event.payload.get("version"))] = event.created_at
        serving = self.models.serving if self.models is not None else None
        return [
            {
                "name": self.settings.registered_model,
                "version": str(v.version),
                "aliases": list(v.aliases),
                "metrics": dict(v.metrics),
                "params": {k: str(p) for k, p in dict(v.params).items()},
                "run_id": v.run_id,
                "created_at": v.created_at,
                "promoted_at": promotions.get(str(v.version)),
                "serving": serving is not None and serving.version == str(v.version),
            }
            for v in self.registry.list_versions()
        ]

    def promote_version(self, version: str | int, alias: str | None = None, by: str | None = None) -> ModelVersionInfo:
        """Point ``alias`` (default: production) at ``version`` and record when."""
        alias = alias_key(alias or self.settings.production_alias)
        info = self.registry.promote(version, alias)
        self.store.add_event(
            PROMOTION,
            {
                "model_name": self.settings.registered_model,
                "version": str(info.version),
                "alias": alias,
                "username": by,
            },
        )
        if self.models is not None:
            self.models.refresh()  # serve it now rather than at the next poll
        return info

    def promote(self, version: str, username: str | None) -> dict[str, Any]:
        """What the API answers: the promoted version as listed."""
        self.promote_version(version, by=username)
        return next(v for v in self.list_versions() if v["version"] == str(version))

    def promoted_at(self, alias: str) -> tuple[str, datetime]:
        """The version now at ``alias`` and when it got there (our record, else its creation)."""
        model_name = self.settings.registered_model
        info = self.registry.version_for_alias(alias)
        if info is None:
            raise NotFound(f"No version of {model_name!r} has the alias {alias!r}.")
        version = str(info.version)
        for event in self.store.list_events(PROMOTION, limit=500):
            p = event.payload
            if (
                p.get("version") == version
                and alias_key(p.get("alias", "")) == alias_key(alias)
                and p.get("model_name") == model_name
            ):
                return version, event.created_at
        return version, info.created_at

    # --- jobs ----------------------------------------------------------------------------
    def submit_finetune(self, params: dict[str, Any], username: str | None) -> Job:
        settings = self.settings
        if params.get("model_name", settings.registered_model) != settings.registered_model:
            raise NotFound(
                f"Unknown model {params['model_name']!r}; this service trains {settings.registered_model!r}."
            )
        params = dict(params, stage=normalise_alias(params.get("stage"), settings.production_alias))
        return self._jobs().submit(JobKind.FINETUNE, params, username)

    def submit_retrain(self, promote_if_better: bool, username: str | None, reason: str | None = None) -> Job:
        params: dict[str, Any] = {"promote_if_better": promote_if_better}
        if reason:
            params["reason"] = reason
        return self._jobs().submit(JobKind.RETRAIN, params, username)

    def finetune(self, params: dict[str, Any], report: Report) -> dict[str, Any]:
        """The fine-tune job's body: from the version at ``stage`` on the most recent stored images."""
        from ..model.train import config_for

        alias = params.get("stage") or self.settings.production_alias
        base = self.registry.version_for_alias(alias)
        if base is None:
            raise InvalidInput(f"No version has the alias {alias!r} to fine-tune from.")
        examples = self._stored_examples()
        report({"stage": "training", "images": len(examples), "base_version": str(base.version)})
        config = replace(
            config_for(self.settings),
            backbone=str(dict(base.params).get("backbone", self.settings.backbone)),
            epochs=int(params.get("epochs", 5)),
            variables=int(params.get("variables", 2)),
        )
        outcome = self._train(examples, config, report, base_version=str(base.version))
        promoted = bool(params.get("promote_if_better")) and self._promote_if_better(outcome, base, "finetune job")
        return {
            "version": str(outcome.version.version),
            "base_version": str(base.version),
            "images": len(examples),
            "metrics": dict(outcome.version.metrics),
            "promoted": promoted,
        }

    def retrain(self, params: dict[str, Any], report: Report) -> dict[str, Any]:
        """The retrain job's body: the default recipe from ImageNet weights on the most recent images."""
        from ..model.train import config_for

        examples = self._stored_examples()
        report({"stage": "training", "images": len(examples)})
        outcome = self._train(examples, config_for(self.settings), report)
        base = self.registry.version_for_alias(self.settings.production_alias)
        promoted = bool(params.get("promote_if_better")) and self._promote_if_better(outcome, base, "retrain job")
        return {
            "version": str(outcome.version.version),
            "images": len(examples),
            "metrics": dict(outcome.version.metrics),
            "promoted": promoted,
        }

    # --- internals -----------------------------------------------------------------------
    def _jobs(self) -> JobSubmitter:
        if self.jobs is None:
            raise RuntimeError("this process was built without a job queue")
        return self.jobs

    def _train(
        self, examples: list[Example], config: Any, report: Report, base_version: str | None = None
    ) -> TrainingOutcome:
        from ..model.pipeline import train_and_register

        return train_and_register(self.settings, examples, config, progress=report, base_version=base_version)

    def _stored_examples(self) -> list[Example]:
        examples = stored_examples(self.store, self.settings.retrain_images)
        if len({e.label for e in examples}) < 2 or len(examples) < MIN_TRAINING_IMAGES:
            raise InvalidInput(
                f"Only {len(examples)} labelled images are stored; import photos first (`champipy data import DIR`)."
            )
        return examples

    def _promote_if_better(self, outcome: TrainingOutcome, base: ModelVersionInfo | None, job_name: str) -> bool:
        """Promote the new version when it beats the serving one on the evaluation set."""
        new_score = outcome.version.metrics.get("eval_top1")
        old_score = dict(base.metrics).get("eval_top1") if base is not None else None
        if new_score is None or (old_score is not None and new_score <= old_score):
            return False
        self.promote_version(outcome.version.version, by=job_name)
        return True


def stored_examples(store: Store, limit: int) -> list[Example]:
    """The store's training images as training examples (confirmed labels first, most recent first)."""
    from ..model.data import Example

    def reader(sha256: str) -> Callable[[], bytes | None]:
        return lambda: store.get_image_bytes(sha256)

    return [
        Example(record.sha256, record.label, str(record.label_source), reader(record.sha256))
        for record in store.training_images(limit)
    ]
