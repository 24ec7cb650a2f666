"""Which model serves: follows the registry alias and swaps versions without a restart.

The serving process loads the ONNX model of the version that carries the ``production``
alias, warms it up, then swaps it in with one reference assignment, so a request sees either
the old or the new model, never a half-loaded one. A version that fails to load is
remembered and never replaces the serving one; the error shows in /status.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import NoModel
from ..model.predictor import ClassifierLike

log = logging.getLogger(__name__)

NO_MODEL_HELP = (
    "No model is in production yet. Train one with `champipy train --data DIR --promote` "
    "(or set CHAMPIPY_DATASET_DIR and restart `make run`), or promote a version with "
    "`champipy models promote VERSION`."
)


class RegistryLike(Protocol):
    def alias_version(self, alias: str) -> str | None: ...

    def download_serving_model(self, version: str) -> Path: ...


@dataclass(frozen=True)
class ServingModel:
    name: str
    version: str
    classifier: ClassifierLike
    loaded_at: datetime


class ModelProvider:
    def __init__(
        self,
        registry: RegistryLike,
        loader: Callable[[Path], ClassifierLike],
        *,
        model_name: str,
        alias: str,
        poll_seconds: float,
    ):
        self.registry = registry
        self.loader = loader  # directory -> classifier
        self.model_name = model_name
        self.alias = alias
        self.poll_seconds = poll_seconds
        self._serving: ServingModel | None = None
        self._failed_versions: dict[str, str] = {}
        self.last_error: str | None = None
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def current(self) -> ServingModel:
        serving = self._serving
        if serving is None:
            raise NoModel(self.last_error and f"{NO_MODEL_HELP} Last load error: {self.last_error}" or NO_MODEL_HELP)
        return serving

    @property
    def serving(self) -> ServingModel | None:
        return self._serving

    def refresh(self) -> bool:
        """Load the alias's version if it changed; True when a new model was swapped in."""
        with self._refresh_lock:
            try:
                version = self.registry.alias_version(self.alias)
            except Exception as exc:  # registry down: keep serving what we have
                # /status is public: the exception text (it can name internal hosts) goes to the log only.
                self.last_error = f"cannot read the registry ({type(exc).__name__}; details in the server log)"
                log.warning("model registry unreachable; keeping the serving model: %s", exc)
                return False
            if self.last_error and self.last_error.startswith("cannot read the registry"):
                self.last_error = None  # it answers again
            if version is None:
                return False
            if self._serving is not None and self._serving.version == version:
                return False
            if version in self._failed_versions:
                self.last_error = self._failed_versions[version]  # still true after a registry outage
                return False
            try:
                classifier = self.loader(self.registry.download_serving_model(version))
                self._warm_up(classifier)
            except Exception as exc:
                self.last_error = f"version {version} failed to load ({type(exc).__name__}; details in the server log)"
                self._failed_versions[version] = self.last_error
                log.error("model version %s failed to load; the serving model stays: %s", version, exc)
                return False
            previous = self._serving
            self._serving = ServingModel(self.model_name, version, classifier, datetime.now(UTC))
            self.last_error = None
            log.info(
                "now serving %s version %s (was %s)", self.model_name, version, previous.version if previous else "none"
            )
            return True

    @staticmethod
    def _warm_up(classifier: ClassifierLike) -> None:
        size = classifier.image_size
        scored = classifier.predict_scored(np.zeros((1, 3, size, size), dtype=np.float32))
        probabilities = scored.probabilities
        if probabilities.shape != (1, len(classifier.labels)) or not np.all(np.isfinite(probabilities)):
            raise ValueError(f"the model answered shape {probabilities.shape} for {len(classifier.labels)} labels")
        if classifier.open_set is None:
            return
        scores = scored.open_set_scores
        if scores is None or scores.shape != (1,) or not np.all(np.isfinite(scores)):
            raise ValueError("the model's metadata promises an open-set score its graph does not answer")
        if not np.isfinite(classifier.open_set.threshold):
            raise ValueError("the model's open-set threshold is not a number")

    def start(self) -> None:
        self.refresh()
        self._thread = threading.Thread(target=self._poll, name="model-poller", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def status(self) -> dict[str, Any]:
        serving = self._serving
        if serving is None:
            return {"loaded": False, "last_error": self.last_error}
        open_set = serving.classifier.open_set
        return {
            "loaded": True,
            "open_set": None if open_set is None else {"method": open_set.method, "threshold": open_set.threshold},
            "name": serving.name,
            "version": serving.version,
            "loaded_at": serving.loaded_at,
            "last_error": self.last_error,
        }
