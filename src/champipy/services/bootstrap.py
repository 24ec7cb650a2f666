"""First start: when no version serves and a dataset folder is configured, train and promote one.

A newcomer's `make run` should end with a service that answers predictions, not a 503.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..settings import Settings

if TYPE_CHECKING:
    from ..registry import Registry
    from .lifecycle import ModelLifecycle

log = logging.getLogger(__name__)


def needs_first_model(settings: Settings, registry: Registry) -> bool:
    return settings.bootstrap_model and registry.alias_version(settings.production_alias) is None


def first_model_once(settings: Settings, registry: Registry, train: Callable[[], object]) -> bool:
    """Run ``train`` unless a version serves, at most once across replicas starting together.

    True when this process trained; False when a version served already or another replica
    promoted one while this one waited for the lock.
    """
    from .first_model_lock import first_model_lock

    if not needs_first_model(settings, registry):
        return False
    with first_model_lock(settings):
        if not needs_first_model(settings, registry):
            log.info("another replica promoted a first model meanwhile: serving it")
            return False
        train()
        return True


def train_first_model(
    settings: Settings, lifecycle: ModelLifecycle, progress: Callable[[dict[str, Any]], None] | None = None
) -> str | None:
    """Train the default recipe on CHAMPIPY_DATASET_DIR and promote it; None when impossible."""
    dataset = settings.dataset_dir
    if dataset is None or not Path(dataset).is_dir():
        log.warning(
            "no model in production and no CHAMPIPY_DATASET_DIR folder to train one from: "
            "predictions will answer 503 until a version is promoted"
        )
        return None
    try:
        from ..model.data import examples_from_folder
        from ..model.pipeline import train_and_register
        from ..model.train import config_for
    except ImportError as exc:  # a serving-only install has no torch
        log.warning("cannot train a first model here (%s); install champipy[train] or promote a version", exc)
        return None
    log.info("no model in production: training a first one from %s", dataset)
    outcome = train_and_register(settings, examples_from_folder(dataset), config_for(settings), progress=progress)
    version = str(outcome.version.version)
    lifecycle.promote_version(version, by="first start")
    log.info("version %s trained and promoted", version)
    return version
