"""Answered predictions, told to whoever listens (each app's metrics), never failing one."""

from __future__ import annotations

import logging
import threading

from ..store.base import Prediction
from .ports import PredictionObserver

log = logging.getLogger(__name__)


class PredictionEvents:
    """Built with the prediction service and given to it; an app subscribes when it starts.
    The service never learns who listens, so several apps can share one container."""

    def __init__(self) -> None:
        self._observers: tuple[PredictionObserver, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, observer: PredictionObserver) -> None:
        with self._lock:
            self._observers = (*self._observers, observer)

    def on_prediction(self, prediction: Prediction) -> None:
        for observer in self._observers:
            try:
                observer.on_prediction(prediction)
            except Exception:  # a listener must never fail a prediction
                log.warning("a prediction observer failed", exc_info=True)
