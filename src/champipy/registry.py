"""The model registry, on MLflow: training runs, registered versions, aliases, downloads.

Default store: a SQLite database and an artifacts folder in the data directory, so
``mlflow ui --backend-store-uri sqlite:///<data_dir>/mlflow.db`` opens the same runs and
models. ``CHAMPIPY_MLFLOW_URI`` points to a shared MLflow server instead.

No torch here (the serving process imports this); mlflow is imported when first needed.
Only the MlflowClient is used, never mlflow's global "active run" state, so several threads
(serving, jobs) can share one Registry.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .aliases import alias_key
from .artifacts import (
    META_FILE,
    MODEL_FILE,
    SERVING_ARTIFACTS,
    WEIGHTS_ARTIFACTS,
    WEIGHTS_FILE,
)
from .errors import NotFound
from .settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

LEGACY_STAGE = "Production"  # the original project promoted with MLflow stages
_ABSENT = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")  # MLflow's "no such alias/model"
# Where MLflow's SQL store writes down artifact locations, absolute (tables of older schemas
# may lack some of them).
_ARTIFACT_URI_COLUMNS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
    ("logged_models", "artifact_location"),
)


@dataclass(frozen=True)
class ModelVersionInfo:
    version: str
    run_id: str | None
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    params: dict[str, str]
    created_at: datetime
    source: str = ""
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["aliases"] = list(self.aliases)
        data["created_at"] = self.created_at.isoformat()
        return data


class Registry:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.uri = settings.resolved_mlflow_uri
        self.model_name = settings.registered_model
        self._client: MlflowClient | None = None
        self._lock = threading.Lock()

    # --- connection ----------------------------------------------------------------------
    @property
    def client(self) -> MlflowClient:
        with self._lock:
            if self._client is None:
                from mlflow import MlflowClient

                if not self.settings.mlflow_uri:
                    self.settings.ensure_data_dir()
                    follow_moved_data_dir(self.settings)
                self._client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
            return self._client

    def _experiment_id(self) -> str:
        from mlflow.exceptions import MlflowException

        name = self.settings.mlflow_experiment
        experiment = self.client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id
        # The local store keeps artifacts next to its database (follow_moved_data_dir keeps
        # them there when the data directory moves); a server chooses its own.
        remote = self.uri.startswith(("http://", "https://", "databricks"))
        location = None if remote else self.settings.mlflow_artifacts_dir.as_uri()
        try:
            return self.client.create_experiment(name, artifact_location=location)
        except MlflowException:  # another process created it first
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.model_name)
        except MlflowException:
            try:
                self.client.create_registered_model(
                    self.model_name, description="ChampiPy mushroom species classifier (ONNX + torch weights)"
                )
            except MlflowException:
                self.client.get_registered_model(self.model_name)  # created concurrently

    # --- writing -------------------------------------------------------------------------
    def log_training(
        self,
        *,
        params: Mapping[str, Any],
        metrics: Mapping[str, float],
        history: Sequence[Mapping[str, Any]],
        manifest: Sequence[Mapping[str, str]],
        serving_dir: Path,
        weights_path: Path,
        images: Sequence[Path] = (),
        reports: Mapping[str, Any] | None = None,
        tags: Mapping[str, str] | None = None,
        run_name: str | None = None,
        description: str = "",
    ) -> ModelVersionInfo:
        """One MLflow run with everything about a trained model, then a new registered version
        whose source is the run's ``serving`` folder (model.onnx + champipy_model.json).

        Call it only with a model that passed its export checks. If anything fails the run is
        marked FAILED and no version is registered."""
        from mlflow.entities import Metric, Param, RunTag

        for required in (serving_dir / MODEL_FILE, serving_dir / META_FILE, weights_path):
            if not required.is_file():
                raise FileNotFoundError(required)
        client = self.client
        run = client.create_run(
            self._experiment_id(), run_name=run_name, tags={"champipy.kind": "training", **(tags or {})}
        )
        run_id = run.info.run_id
        try:
            now = int(time.time() * 1000)
            batch_params = [Param(k, _param_value(v)) for k, v in params.items()]
            batch_metrics = [Metric(k, float(v), now, 0) for k, v in metrics.items() if _is_number(v)]
            for entry in history:  # per-epoch curves: epoch_loss, epoch_val_accuracy, ...
                step = int(entry.get("epoch", 0))
                batch_metrics += [
                    Metric(f"epoch_{k}", float(v), now, step)
                    for k, v in entry.items()
                    if k not in ("epoch", "epochs", "stage") and _is_number(v)
                ]
            for start in range(0, max(len(batch_params), len(batch_metrics)), 100):
                client.log_batch(
                    run_id,
                    metrics=batch_metrics[start : start + 100],
                    params=batch_params[start : start + 100],
                    tags=[RunTag("mlflow.note.content", description)] if description and start == 0 else [],
                )
            # MLflow's hint says dict, but it writes any JSON value (these are lists, as they always were).
            client.log_dict(run_id, list(manifest), "manifest.json")  # type: ignore[arg-type]
            client.log_dict(run_id, list(history), "history.json")  # type: ignore[arg-type]
            for name, report in (reports or {}).items():
                client.log_dict(run_id, report, f"{name}.json")
            for path in images:
                client.log_artifact(run_id, str(path))
            client.log_artifact(run_id, str(weights_path), WEIGHTS_ARTIFACTS)
            client.log_artifacts(run_id, str(serving_dir), SERVING_ARTIFACTS)

            self._ensure_registered_model()
            version = client.create_model_version(
                self.model_name,
                source=f"{run.info.artifact_uri}/{SERVING_ARTIFACTS}",
                run_id=run_id,
                description=description or None,
            )
        except BaseException:
            client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
        return self.get_version(version.version)

    def log_monitor_metrics(self, version: str | int, metrics: Mapping[str, float]) -> None:
        """Append monitoring values to the version's training run, as time series."""
        from mlflow.entities import Metric

        run_id = self._model_version(version).run_id
        if not run_id:
            return
        now = time.time()
        self.client.log_batch(
            run_id, metrics=[Metric(k, float(v), int(now * 1000), int(now)) for k, v in metrics.items()]
        )

    def promote(self, version: str | int, alias: str | None = None) -> ModelVersionInfo:
        """Point ``alias`` (default: the production alias) at ``version``."""
        info = self.get_version(version)
        self.client.set_registered_model_alias(
            self.model_name, alias_key(alias or self.settings.production_alias), info.version
        )
        return self.get_version(info.version)

    # --- reading -------------------------------------------------------------------------
    def list_versions(self) -> list[ModelVersionInfo]:
        """Every registered version, newest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self.client.search_model_versions(f"name = '{self.model_name}'")
        except MlflowException:
            return []
        return [
            self._info(self.client.get_model_version(self.model_name, mv.version))
            for mv in sorted(found, key=lambda mv: int(mv.version), reverse=True)
        ]

    def get_version(self, version: str | int) -> ModelVersionInfo:
        """Raises NotFound for an unknown version."""
        return self._info(self._model_version(version))

    def latest_version(self) -> ModelVersionInfo | None:
        versions = self.list_versions()
        return versions[0] if versions else None

    def version_for_alias(self, alias: str | None = None) -> ModelVersionInfo | None:
        """The version an alias points to ("Production" and "production" are the same alias,
        and a version left in the legacy "Production" stage counts when no alias is set)."""
        found = self._version_at_alias(alias)
        return self._info(found) if found is not None else None

    def alias_version(self, alias: str | None = None) -> str | None:
        """Only the version number behind an alias: what the model poller asks every few
        seconds, without the run's metrics and params that ``version_for_alias`` reads."""
        found = self._version_at_alias(alias)
        return str(found.version) if found is not None else None

    def _version_at_alias(self, alias: str | None):  # -> mlflow ModelVersion | None
        from mlflow.exceptions import MlflowException

        name = alias_key(alias or self.settings.production_alias)
        try:
            return self.client.get_model_version_by_alias(self.model_name, name)
        except MlflowException as exc:
            if exc.error_code not in _ABSENT:
                raise  # the registry is down or unreadable: not the same as "no such alias"
        if name == LEGACY_STAGE.lower():
            found: Sequence[Any]
            try:
                found = self.client.search_model_versions(f"name = '{self.model_name}'")
            except MlflowException:
                found = []
            staged = [mv for mv in found if (mv.current_stage or "").lower() == name]
            if staged:
                return self._model_version(max(staged, key=lambda mv: int(mv.version)).version)
        return None

    def download_serving_model(self, version: str | int) -> Path:
        """A local folder with model.onnx + champipy_model.json (whose metadata gains
        "version" and "run_id"), cached in <data_dir>/models/<version>."""
        target = self.settings.data_dir / "models" / str(version)
        cached = _read_meta(target)
        try:
            model_version = self._model_version(version)
        except NotFound:
            raise
        except Exception:  # registry unreachable: a cached copy is still the right model
            if cached is not None:
                return target
            raise
        if cached is not None and cached.get("run_id") == model_version.run_id:
            return target

        def finish(folder: Path) -> None:
            meta = json.loads((folder / META_FILE).read_text())
            meta.update(version=str(model_version.version), run_id=model_version.run_id, registry_uri=self.uri)
            (folder / META_FILE).write_text(json.dumps(meta, indent=2))

        return self._download(model_version.source, target, finish)

    def download_torch_weights(self, version: str | int) -> Path:
        """The version's torch weights file (``weights.pt``: state_dict, labels, backbone,
        image_size), cached in <data_dir>/models/torch/<version>."""
        model_version = self._model_version(version)
        target = self.settings.data_dir / "models" / "torch" / str(model_version.version)
        marker = target / "run_id"
        if (target / WEIGHTS_FILE).is_file() and marker.is_file() and marker.read_text() == model_version.run_id:
            return target / WEIGHTS_FILE
        source = f"runs:/{model_version.run_id}/{WEIGHTS_ARTIFACTS}"

        def finish(folder: Path) -> None:
            (folder / "run_id").write_text(model_version.run_id or "")

        return self._download(source, target, finish) / WEIGHTS_FILE

    def trained_image_hashes(self, version: str | int) -> set[str]:
        """SHA-256 of every image the version's run trained or validated on (its manifest);
        empty, with a warning, for a version registered without one."""
        from mlflow.exceptions import MlflowException

        model_version = self._model_version(version)
        try:
            with tempfile.TemporaryDirectory(prefix="champipy-manifest-") as folder:
                path = self.client.download_artifacts(model_version.run_id, "manifest.json", folder)
                rows = json.loads(Path(path).read_text())
        except (MlflowException, OSError, ValueError) as exc:
            log.warning("Version %s has no readable image manifest (%s): its images are unknown.", version, exc)
            return set()
        return {row["sha256"] for row in rows if isinstance(row, dict) and "sha256" in row}

    # --- helpers -------------------------------------------------------------------------
    def _model_version(self, version: str | int):  # -> mlflow ModelVersion
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(self.model_name, str(version))
        except MlflowException as exc:
            raise NotFound(f"Model {self.model_name} has no version {version}.") from exc

    def _info(self, mv: Any) -> ModelVersionInfo:
        metrics: dict[str, float] = {}
        params: dict[str, str] = {}
        if mv.run_id:
            data = self.client.get_run(mv.run_id).data
            metrics, params = dict(data.metrics), dict(data.params)
        return ModelVersionInfo(
            version=str(mv.version),
            run_id=mv.run_id,
            aliases=tuple(sorted(getattr(mv, "aliases", []) or [])),
            metrics=metrics,
            params=params,
            created_at=datetime.fromtimestamp(mv.creation_timestamp / 1000, tz=UTC),
            source=mv.source or "",
            description=mv.description or "",
            tags=dict(mv.tags or {}),
        )

    def _download(self, artifact_uri: str, target: Path, finish) -> Path:
        """Download into a temporary sibling, then rename: readers never see half a folder."""
        import mlflow.artifacts

        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            downloaded = Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=artifact_uri, dst_path=str(staging), tracking_uri=self.uri
                )
            )
            finish(downloaded)
            if target.exists():
                shutil.rmtree(target, ignore_errors=True)
            try:
                os.replace(downloaded, target)
            except OSError:
                if not target.exists():  # not a lost race with another process: a real error
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return target


def follow_moved_data_dir(settings: Settings) -> int:
    """Point the embedded MLflow store at the artifacts of the data directory it is in.

    MLflow writes absolute ``file://`` URIs into its database (the experiment's artifact
    location, each run's artifact URI, each model version's source), so a data directory that
    was copied or moved (a restored backup, a volume mounted elsewhere) would still read and
    write the artifacts at its old place, or fail where that place is gone. Relative locations
    are no way out: MLflow makes them absolute when it records them. So on opening the local
    store, every recorded location under an artifact root of ours (a folder named
    ``mlartifacts``) that is not this data directory's is rewritten to this data directory's,
    in one transaction; a store that was not moved is only read. Never called for a
    configured ``CHAMPIPY_MLFLOW_URI``: a shared server's locations are its own business.

    Returns how many experiments were moved."""
    database = Path(settings.resolved_mlflow_uri.removeprefix("sqlite:///"))
    current = settings.mlflow_artifacts_dir.as_uri()
    if not database.is_file() or database.stat().st_size == 0:
        return 0  # a new store: MLflow creates it, and _experiment_id records the right root
    connection = sqlite3.connect(database, timeout=30, isolation_level=None)
    try:
        columns = {
            (table, column)
            for table, column in _ARTIFACT_URI_COLUMNS
            if any(row[1] == column for row in connection.execute(f"PRAGMA table_info({table})"))
        }
        if ("experiments", "artifact_location") not in columns:
            return 0  # not migrated yet: nothing recorded

        def moved_roots() -> list[str]:
            return sorted(
                {
                    location
                    for (location,) in connection.execute(
                        "SELECT artifact_location FROM experiments WHERE artifact_location LIKE ?",
                        (f"%/{settings.mlflow_artifacts_dir.name}",),
                    )
                    if location != current
                }
            )

        if not moved_roots():
            return 0  # the usual case: only read, so a read-only store opens as before
        connection.execute("BEGIN IMMEDIATE")  # another process may be doing the same: look again
        try:
            moved = moved_roots()
            for old in moved:
                for table, column in sorted(columns):
                    connection.execute(
                        f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                        f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                        (current, len(old) + 1, old, len(old) + 1, f"{old}/"),
                    )
            connection.execute("COMMIT")
        except BaseException:
            connection.execute("ROLLBACK")
            raise
    finally:
        connection.close()
    for old in moved:
        log.warning(
            "The MLflow store %s recorded its artifacts at %s: the data directory was moved or copied, it now uses %s.",
            database,
            old,
            current,
        )
    if moved and not settings.mlflow_artifacts_dir.is_dir():
        log.warning(
            "%s is missing: the registered models' artifacts did not come with the data directory.",
            settings.mlflow_artifacts_dir,
        )
    return len(moved)


def _read_meta(folder: Path) -> dict[str, Any] | None:
    try:
        if not (folder / MODEL_FILE).is_file():
            return None
        return json.loads((folder / META_FILE).read_text())
    except (OSError, ValueError):
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:6000]
