"""Small fakes at our own ports, for the fast unit layer.

- ``StubClassifier`` (``ClassifierLike``): the species is the image's dominant colour channel
  (red, green, blue -> ``LABELS[0..2]``), its probability the channel's share of the mean
  colour. Deterministic, no ONNX: a pure red photo is ``LABELS[0]`` at 0.99. With
  ``open_set=True`` it also scores how grey an image is (a grey photo is "not a known species",
  above ``GREY_THRESHOLD``), as the real model scores how unfamiliar one is.
- ``FakeRegistry`` (``RegistryLike`` plus what the monitor and the lifecycle read of
  ``champipy.registry.Registry``): versions, aliases, downloads and logged metrics in memory.
- ``StubLoader``: the provider's loader (directory -> classifier), one classifier per version.
- ``FakeFetcher`` (``ImageFetcher``), ``RecordingObserver`` (``PredictionObserver``),
  ``RecordingAlert`` (``AlertSender``), ``FakeJobSubmitter`` (``JobSubmitter``).

Each keeps the real shapes: the same method names, arguments and returned records.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from champipy.errors import NotFound
from champipy.fetch import FetchedImage
from champipy.model.predictor import DriftReference, OpenSetThreshold, ScoredBatch
from champipy.registry import ModelVersionInfo
from champipy.store.base import Job, Prediction, Store

LABELS = ["amanita", "boletus", "chanterelle"]  # red, green, blue
RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)
MODELS_ROOT = Path("/fake-registry/models")  # never touched: the loader reads only the name


def image_bytes(colour: tuple[int, int, int], size: tuple[int, int] = (48, 32), fmt: str = "PNG") -> bytes:
    """A real, small, solid-colour image file made in memory."""
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, fmt)
    return buffer.getvalue()


def top_probability(colour: tuple[int, int, int]) -> float:
    """What ``StubClassifier`` answers for a solid ``colour``, for its most probable species."""
    shares = np.asarray(colour, dtype=np.float64) + 1.0
    return float(shares.max() / shares.sum())


# --- the classifier ------------------------------------------------------------------------
GREY_THRESHOLD = -0.2  # open-set score: minus the spread of the channel means, in [0, 1]


class StubClassifier:
    """``ClassifierLike``: labels, image_size, preprocess, predict_batch, predict_scored (and
    ``version``, which ``evaluate_folder`` reads from the real ``Classifier``)."""

    def __init__(
        self, labels: list[str] | None = None, image_size: int = 16, version: str | None = None, open_set: bool = False
    ):
        self.labels = list(labels or LABELS)
        self.image_size = image_size
        self.version = version
        self.open_set = OpenSetThreshold("grey", GREY_THRESHOLD, 0.98) if open_set else None
        self.drift_reference: DriftReference | None = None
        self.batches: list[int] = []  # the size of each batch predicted, warm-up included

    def predict_scored(self, batch: np.ndarray) -> ScoredBatch:
        probabilities = self.predict_batch(batch)
        if self.open_set is None:
            return ScoredBatch(probabilities, None)
        means = np.asarray(batch, dtype=np.float32).mean(axis=(2, 3)) / 255.0
        return ScoredBatch(probabilities, (means.min(axis=1) - means.max(axis=1)).astype(np.float32))

    @property
    def images_predicted(self) -> int:
        return sum(self.batches)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        resized = image.convert("RGB").resize((self.image_size, self.image_size))
        return np.ascontiguousarray(np.moveaxis(np.asarray(resized, dtype=np.float32), -1, 0))

    def predict_batch(self, batch: np.ndarray) -> np.ndarray:
        batch = np.asarray(batch, dtype=np.float32)
        expected = (3, self.image_size, self.image_size)
        if batch.ndim != 4 or batch.shape[1:] != expected:
            raise ValueError(f"expected (N, {expected}), got {batch.shape}")
        self.batches.append(batch.shape[0])
        shares = batch.mean(axis=(2, 3)) + 1.0  # (N, 3): one column per colour channel
        probabilities = shares / shares.sum(axis=1, keepdims=True)
        return self._columns(probabilities.astype(np.float32))

    def _columns(self, probabilities: np.ndarray) -> np.ndarray:
        return probabilities[:, : len(self.labels)]


class WrongShapeClassifier(StubClassifier):
    """Answers one column more than it has labels: a model whose export and metadata disagree."""

    def _columns(self, probabilities: np.ndarray) -> np.ndarray:
        extra = np.zeros((probabilities.shape[0], 1), dtype=np.float32)
        return np.concatenate([probabilities, extra], axis=1)


class StubLoader:
    """The provider's loader: the classifier (or the exception) registered for a version,
    found by the name of the folder ``FakeRegistry.download_serving_model`` returned."""

    def __init__(self, **by_version: StubClassifier | Exception):
        self.by_version: dict[str, StubClassifier | Exception] = dict(by_version)
        self.loaded: list[str] = []  # versions asked for, in order

    def set(self, version: str, classifier: StubClassifier | Exception) -> None:
        self.by_version[version] = classifier

    def __call__(self, directory: Path) -> StubClassifier:
        version = Path(directory).name
        self.loaded.append(version)
        found = self.by_version[version]
        if isinstance(found, Exception):
            raise found
        return found


# --- the registry --------------------------------------------------------------------------
class FakeRegistry:
    """The parts of ``champipy.registry.Registry`` that serving, lifecycle and monitor call.

    ``unreachable`` (an exception) makes alias reads raise, as MLflow does when its server is
    down; ``failing_metrics`` makes ``log_monitor_metrics`` raise.
    """

    def __init__(self, model_name: str = "champipy", production_alias: str = "production"):
        self.model_name = model_name
        self.production_alias = production_alias
        self._versions: dict[str, ModelVersionInfo] = {}
        self._aliases: dict[str, str] = {}
        self.unreachable: Exception | None = None
        self.failing_metrics: Exception | None = None
        self.downloads: list[str] = []
        self.logged_metrics: list[tuple[str, dict[str, float]]] = []

    # writing
    def add_version(
        self, version: str, metrics: dict[str, float] | None = None, created_at: datetime | None = None
    ) -> ModelVersionInfo:
        info = ModelVersionInfo(
            version=str(version),
            run_id=f"run-{version}",
            aliases=(),
            metrics=dict(metrics or {}),
            params={"backbone": "stub"},
            created_at=created_at or datetime.now(UTC),
        )
        self._versions[info.version] = info
        return self._with_aliases(info)

    def set_alias(self, alias: str, version: str | None) -> None:
        """Move an alias behind the lifecycle's back, as another process's promotion would."""
        if version is None:
            self._aliases.pop(_alias(alias), None)
        else:
            self._aliases[_alias(alias)] = str(version)

    def promote(self, version: str | int, alias: str | None = None) -> ModelVersionInfo:
        info = self.get_version(version)
        self._aliases[_alias(alias or self.production_alias)] = info.version
        return self.get_version(info.version)

    def log_monitor_metrics(self, version: str | int, metrics: dict[str, float]) -> None:
        self.get_version(version)
        if self.failing_metrics is not None:
            raise self.failing_metrics
        self.logged_metrics.append((str(version), dict(metrics)))

    # reading
    def list_versions(self) -> list[ModelVersionInfo]:
        return [self._with_aliases(v) for v in sorted(self._versions.values(), key=lambda v: -int(v.version))]

    def get_version(self, version: str | int) -> ModelVersionInfo:
        info = self._versions.get(str(version))
        if info is None:
            raise NotFound(f"No version {version} of {self.model_name!r}.")
        return self._with_aliases(info)

    def version_for_alias(self, alias: str | None = None) -> ModelVersionInfo | None:
        version = self.alias_version(alias)
        return self.get_version(version) if version is not None else None

    def alias_version(self, alias: str | None = None) -> str | None:
        if self.unreachable is not None:
            raise self.unreachable
        return self._aliases.get(_alias(alias or self.production_alias))

    def download_serving_model(self, version: str | int) -> Path:
        info = self.get_version(version)
        self.downloads.append(info.version)
        return MODELS_ROOT / info.version

    def _with_aliases(self, info: ModelVersionInfo) -> ModelVersionInfo:
        aliases = tuple(sorted(a for a, v in self._aliases.items() if v == info.version))
        return replace(info, aliases=aliases)


def _alias(alias: str) -> str:
    return alias.strip().lower()


# --- the other ports -----------------------------------------------------------------------
class FakeFetcher:
    """``ImageFetcher``: the bytes registered for each URL; ``during_fetch`` runs inside a fetch."""

    def __init__(self, images: dict[str, bytes] | None = None):
        self.images = dict(images or {})
        self.fetched: list[str] = []
        self.during_fetch: Callable[[str], None] | None = None

    def fetch(self, url: str) -> FetchedImage:
        self.fetched.append(url)
        if self.during_fetch is not None:
            self.during_fetch(url)
        return FetchedImage(data=self.images[url], final_url=url, content_type="image/png")


class RecordingObserver:
    """``PredictionObserver``: keeps every prediction it is told of."""

    def __init__(self) -> None:
        self.predictions: list[Prediction] = []

    def on_prediction(self, prediction: Prediction) -> None:
        self.predictions.append(prediction)


class RecordingAlert:
    """``AlertSender``: keeps every payload; answers ``delivered``."""

    def __init__(self, delivered: bool = True):
        self.payloads: list[dict[str, Any]] = []
        self.delivered = delivered

    def __call__(self, payload: dict[str, Any]) -> bool:
        self.payloads.append(payload)
        return self.delivered


class FakeJobSubmitter:
    """``JobSubmitter``: records the QUEUED job in the store, as ``JobRunner.submit`` does, and
    runs nothing."""

    def __init__(self, store: Store):
        self.store = store
        self.jobs: list[Job] = []

    def submit(self, kind: str, params: dict[str, Any] | None = None, username: str | None = None) -> Job:
        job = self.store.add_job(str(kind), dict(params or {}), username)
        self.jobs.append(job)
        return job
