"""Every job body in one place: each turns a job's stored params into one service call.

A handler receives the job's params (JSON, as submitted) and a ``report`` callback for
progress; what it returns becomes the job's result.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInput
from ..settings import Settings
from ..store.base import Store
from .kinds import JobKind
from .runner import Handler, JobRunner, Report

if TYPE_CHECKING:
    from ..services.lifecycle import ModelLifecycle
    from ..services.monitor import Monitor


def register_data_jobs(runner: JobRunner, settings: Settings, store: Store) -> None:
    runner.register(JobKind.IMPORT, import_photos(settings, store))
    runner.register(JobKind.FETCH, fetch_from_mushroom_observer(settings, store))


def register_model_jobs(runner: JobRunner, lifecycle: ModelLifecycle, monitor: Monitor) -> None:
    runner.register(JobKind.FINETUNE, lifecycle.finetune)
    runner.register(JobKind.RETRAIN, lifecycle.retrain)
    runner.register(JobKind.MONITOR, periodic_check(monitor))


def import_photos(settings: Settings, store: Store) -> Handler:
    """Params ``dir`` (default: the dataset folder), optional ``username`` and ``pace_seconds``."""

    def run(params: dict[str, Any], report: Report) -> dict[str, Any]:
        from ..services.dataset_import import import_folder

        directory = params.get("dir") or settings.dataset_dir
        if not directory:
            raise InvalidInput("No folder given and CHAMPIPY_DATASET_DIR is not set.")
        summary = import_folder(
            store,
            Path(directory),
            settings,
            username=params.get("username"),
            pace_seconds=float(params.get("pace_seconds") or 0.0),
            on_progress=lambda current: report(current.counts()),
        )
        return summary.as_dict()

    return run


def fetch_from_mushroom_observer(settings: Settings, store: Store) -> Handler:
    """Params ``species`` (a name or a list), optional ``limit`` and ``username``."""

    def run(params: dict[str, Any], report: Report) -> dict[str, Any]:
        from ..mushroom_observer import MushroomObserverClient, fetch_species

        species = params.get("species") or []
        if isinstance(species, str):
            species = [species]
        with MushroomObserverClient.from_settings(settings) as client:
            summary = fetch_species(
                store,
                settings,
                client,
                list(species),
                limit=int(params.get("limit") or 100),
                username=params.get("username"),
                on_progress=lambda name, current: report({"species": name, **current.totals()}),
            )
        return summary.as_dict()

    return run


def periodic_check(monitor: Monitor) -> Handler:
    def run(params: dict[str, Any], report: Report) -> dict[str, Any]:
        monitor.models.refresh()  # a worker process has no poller: read the alias now
        return monitor.run_check().to_dict()

    return run
