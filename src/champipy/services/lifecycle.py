"""A model's life as Bob runs it: list versions, promote one, fine-tune or retrain as a job.

Every promotion goes through ``ModelLifecycle.promote_version``, which records when it
happened: the monitor counts "new images since promotion" from that record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..aliases import alias_key, normalise_alias
from ..errors import InvalidInput, NotFound
from ..jobs.kinds import JobKind
from ..settings import Settings
from ..store.base import ImageRecord, Job, Store
from .ports import JobSubmitter
from .serving import ModelProvider
from .training_set import TrainingSelection, select_training_images

if TYPE_CHECKING:
    from ..model.data import Example
    from ..model.pipeline import TrainingOutcome
    from ..registry import ModelVersionInfo, Registry

log = logging.getLogger(__name__)

PROMOTION = "promotion"  # the event kind of a promotion record
MIN_TRAINING_IMAGES = 20
# Image metadata rows (never bytes) a training selection reads: far above any store here.
CATALOGUE_MAX = 200_000
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
        """The fine-tune job's body: from the version at ``stage`` on the selected stored images
        (model/training_set.py), its species plus the ones experts taught since."""
        from ..model.train import config_for

        alias = params.get("stage") or self.settings.production_alias
        base = self.registry.version_for_alias(alias)
        if base is None:
            raise InvalidInput(f"No version has the alias {alias!r} to fine-tune from.")
        selection = self._select(base)
        report({"stage": "training", "images": len(selection.images), "base_version": str(base.version)})
        config = replace(
            config_for(self.settings),
            backbone=str(dict(base.params).get("backbone", self.settings.backbone)),
            epochs=int(params.get("epochs", 5)),
            variables=int(params.get("variables", 2)),
        )
        outcome = self._train(selection, config, report, base, base_version=str(base.version))
        promoted = bool(params.get("promote_if_better")) and self._promote_if_better(outcome, base, "finetune job")
        return self._job_result(outcome, selection, promoted) | {"base_version": str(base.version)}

    def retrain(self, params: dict[str, Any], report: Report) -> dict[str, Any]:
        """The retrain job's body: the default recipe from ImageNet weights on the selected
        stored images, the serving version's species plus the ones experts taught since."""
        from ..model.train import config_for

        base = self.registry.version_for_alias(self.settings.production_alias)
        selection = self._select(base)
        report({"stage": "training", "images": len(selection.images)})
        outcome = self._train(selection, config_for(self.settings), report, base)
        promoted = bool(params.get("promote_if_better")) and self._promote_if_better(outcome, base, "retrain job")
        return self._job_result(outcome, selection, promoted)

    # --- internals -----------------------------------------------------------------------
    def _jobs(self) -> JobSubmitter:
        if self.jobs is None:
            raise RuntimeError("this process was built without a job queue")
        return self.jobs

    def _train(
        self,
        selection: TrainingSelection,
        config: Any,
        report: Report,
        base: ModelVersionInfo | None,
        base_version: str | None = None,
    ) -> TrainingOutcome:
        from ..model.pipeline import train_and_register

        return train_and_register(
            self.settings,
            examples_of(self.store, selection.images),
            config,
            progress=report,
            base_version=base_version,
            known_species=labels_of(base),
            extra_params=selection.params(),
        )

    def _select(self, base: ModelVersionInfo | None) -> TrainingSelection:
        selection = select_training_images(
            self.store.training_images(CATALOGUE_MAX),
            self.settings.retrain_images,
            labels_of(base),
            self.settings.new_species_min_photos,
            self.settings.retrain_species_floor,
            self._min_predicted_probability(base),
            self.settings.learn_unscored_predictions,
        )
        if len(selection.labels) < 2 or len(selection.images) < MIN_TRAINING_IMAGES:
            raise InvalidInput(
                f"Only {len(selection.images)} labelled images of {len(selection.labels)} species can be trained on; "
                "import photos first (`champipy data import DIR`)."
            )
        log.info(
            "Training set: %d images of %d species (new: %s); %d predicted labels admitted, %d refused.",
            len(selection.images),
            len(selection.labels),
            ", ".join(selection.new_species) or "none",
            selection.predicted_admitted,
            selection.predicted_refused,
        )
        return selection

    def _min_predicted_probability(self, base: ModelVersionInfo | None) -> float:
        """The base version's precision rule; a version trained before it measured one admits
        no predicted label (nothing says how clean they are)."""
        measured = dict(base.metrics).get("kept_label_min_probability") if base is not None else None
        return max(self.settings.store_threshold, float(measured) if measured is not None else 1.0)

    @staticmethod
    def _job_result(outcome: TrainingOutcome, selection: TrainingSelection, promoted: bool) -> dict[str, Any]:
        return {
            "version": str(outcome.version.version),
            "images": len(selection.images),
            "species": selection.labels,
            "new_species": selection.new_species,
            "metrics": dict(outcome.version.metrics),
            "promoted": promoted,
        }

    def _promote_if_better(self, outcome: TrainingOutcome, base: ModelVersionInfo | None, job_name: str) -> bool:
        """Promote the new version when it beats the serving one on the evaluation photos of
        the species both know (a new species is reported apart, in ``eval_top1_new_species``)."""
        metrics = outcome.version.metrics
        new_score = metrics.get("eval_top1_known_species", metrics.get("eval_top1"))
        old_metrics = dict(base.metrics) if base is not None else {}
        old_score = old_metrics.get("eval_top1_own_species", old_metrics.get("eval_top1"))
        if new_score is None or (old_score is not None and new_score <= old_score):
            return False
        self.promote_version(outcome.version.version, by=job_name)
        return True


def labels_of(version: ModelVersionInfo | None) -> list[str]:
    """The species a registered version knows (its ``labels`` param)."""
    if version is None:
        return []
    try:
        labels = json.loads(dict(version.params).get("labels", "[]"))
    except ValueError:
        return []
    return [str(label) for label in labels] if isinstance(labels, list) else []


def examples_of(store: Store, records: list[ImageRecord]) -> list[Example]:
    """Stored images as training examples; the bytes are read when training loads them."""
    from ..model.data import Example

    def reader(sha256: str) -> Callable[[], bytes | None]:
        return lambda: store.get_image_bytes(sha256)

    return [Example(r.sha256, r.label, str(r.label_source), reader(r.sha256)) for r in records]


def stored_examples(store: Store, limit: int) -> list[Example]:
    """The store's first ``limit`` training images as examples, in the store's order."""
    return examples_of(store, store.training_images(limit))
