"""The hot path: image bytes in, species probabilities out, every prediction stored.

Cache: a result is keyed by (SHA-256 of the image bytes, model version) and read from the
store, so it survives restarts and never crosses model versions; an in-process memory of the
same facts (``RecentResults``) spares a repeated image the store reads. A URL fetched recently is
not downloaded again. Images predicted with more than ``store_threshold`` are kept for
retraining, labelled with the predicted species, unless the open-set score says they are not
one of the known species (services/verdict.py): those stay in the spool for an expert's label.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from PIL import Image

from ..errors import Conflict, InvalidInput, NotFound
from ..images import bounded_copy, decode_image, sha256_hex
from ..settings import Settings
from ..species_names import normalise_species
from ..store.base import (
    LabelSource,
    NewImage,
    NewPrediction,
    OpenSetVerdict,
    Prediction,
    SpeciesScore,
    Store,
    User,
    utcnow,
)
from ..timing import stage
from .admission import AdmissionGate, InFlight, PerUserLimit
from .mo_resolver import MoResolver
from .ports import ImageFetcher, PredictionObserver
from .quota import DailyQuota
from .recent_results import Computed, RecentResults
from .serving import ModelProvider, ServingModel
from .spool import Spool
from .verdict import is_rejected

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PredictionOutcome:
    prediction: Prediction
    top_k: int
    kept_for_training: bool
    uncertain: bool

    @property
    def results(self) -> tuple[SpeciesScore, ...]:
        return self.prediction.results[: self.top_k]


def is_uncertain(prediction: Prediction, threshold: float) -> bool:
    """The one rule for the "uncertain" flag, in answers, records and the web page."""
    return not prediction.results or prediction.results[0].probability < threshold


class _KeyedLocks:
    """One lock per key, so two identical requests compute once and the second reads the cache."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], threading.Lock] = defaultdict(threading.Lock)
        self._guard = threading.Lock()

    def get(self, key: tuple[str, str]) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 4096:
                self._locks = defaultdict(threading.Lock, {k: v for k, v in self._locks.items() if v.locked()})
            return self._locks[key]


class PredictionService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        models: ModelProvider,
        fetcher: ImageFetcher,
        spool: Spool,
        quota: DailyQuota | None = None,
        observer: PredictionObserver | None = None,
    ):
        self.settings = settings
        self.observer = observer  # told of every answered prediction (the API's metrics)
        self.quota = quota
        self.store = store
        self.models = models
        self.fetcher = fetcher
        self.mo = MoResolver(settings, fetcher)  # Mushroom Observer pages and files of any size
        self.spool = spool
        self._in_flight = _KeyedLocks()
        self.recent = RecentResults()
        self.admission = AdmissionGate(settings.max_pending_predictions)
        self.downloads = PerUserLimit(settings.fetch_per_user)
        # Admitted predictions are either computing or waiting for the same image's result.
        self.computing = InFlight()

    # --- entry points ------------------------------------------------------------------
    def predict_url(self, url: str, top_k: int, user: User) -> PredictionOutcome:
        model = self.models.current()
        top_k = self._check_top_k(top_k, model)
        self._spend_quota(user)
        url = url.strip()
        since = utcnow() - timedelta(seconds=self.settings.url_cache_ttl_seconds)
        known_sha = self.store.find_recent_url_image(url, since) if self.settings.url_cache_ttl_seconds else None
        if known_sha:
            computed = self._known_results(known_sha, model.version)
            if computed is not None:
                return self._serve_cached(known_sha, computed, model, top_k, user, url, filename=_filename(url))
        with self.downloads.slot(user.username):
            file_url = self.file_url(url)
            data = self.fetcher.fetch(file_url).data
        return self._predict_bytes(data, model, top_k, user, source_url=url, filename=_filename(file_url))

    def file_url(self, url: str) -> str:
        """The image file behind ``url``: itself, or for a Mushroom Observer page or file of
        another size, the file at the size the model needs (an observation: its primary photo)."""
        link = self.mo.link(url)
        return url if link is None else self.mo.photo_url(link)

    def predict_upload(self, data: bytes, filename: str | None, top_k: int, user: User) -> PredictionOutcome:
        model = self.models.current()
        top_k = self._check_top_k(top_k, model)
        if not data:
            raise InvalidInput("The uploaded file is empty.")
        self._spend_quota(user)
        return self._predict_bytes(data, model, top_k, user, source_url=None, filename=filename)

    def feedback(self, prediction_id: str, species: str, user: User) -> Prediction:
        prediction = self.store.get_prediction(prediction_id)
        if prediction is None:
            raise NotFound("No such prediction.")
        if prediction.username != user.username and not user.is_admin:
            raise NotFound("No such prediction.")
        # Any species an expert names, spelled as the service already knows it where it does.
        known = [s.species for s in prediction.results] + [c.species for c in self.store.species_counts()]
        species = normalise_species(species, known)
        sha = prediction.image_sha256
        image = None  # the stored image is relabelled; one not stored yet comes with the call
        if self.store.get_image(sha) is None:
            data = self.spool.get(sha) or self._refetch_bounded(prediction)
            if data is None:
                raise Conflict("The image of this prediction is no longer available; upload it again.")
            image = NewImage(
                sha256=sha,
                data=data,
                label=species,
                label_source=LabelSource.CONFIRMED,
                source_url=prediction.source_url,
                filename=prediction.filename,
                username=user.username,
            )
        # One write: the image labelled (or stored) CONFIRMED together with the feedback.
        updated = self.store.record_feedback(prediction_id, species, user.username, image)
        self.recent.remember_kept(sha)
        return updated

    # --- internals ---------------------------------------------------------------------
    def _spend_quota(self, user: User) -> None:
        if self.quota is not None:
            self.quota.spend(user.username)

    def _check_top_k(self, top_k: int, model: ServingModel) -> int:
        n = len(model.classifier.labels)
        if not 1 <= top_k <= n:
            raise InvalidInput(f"nb_preds/top_k must be an integer from 1 to {n} (the number of species).")
        return top_k

    def _predict_bytes(
        self, data: bytes, model: ServingModel, top_k: int, user: User, source_url: str | None, filename: str | None
    ) -> PredictionOutcome:
        with stage("hash"):
            sha = sha256_hex(data)
        computed = self.recent.results(sha, model.version)
        if computed is not None:
            return self._serve_cached(sha, computed, model, top_k, user, source_url, filename)
        with self.admission.slot(), self._in_flight.get((sha, model.version)):
            with stage("cache"):
                computed = self._known_results(sha, model.version)
            if computed is not None:
                return self._serve_cached(sha, computed, model, top_k, user, source_url, filename)
            started = time.perf_counter()
            with self.computing.inside():
                # Decoded no larger than the model needs (the kept copy is made from it too).
                with stage("decode"):
                    decoded = decode_image(data, self.settings.image_limits, min_short_side=model.classifier.image_size)
                computed = _compute(model, decoded.image)
            latency_ms = (time.perf_counter() - started) * 1000
            prediction = self._record(sha, computed, model, user, source_url, filename, latency_ms=latency_ms)
            self.recent.remember_results(sha, model.version, computed)
        with stage("keep"):
            kept = self._keep_for_training(
                bounded_copy(data, decoded, self.settings.kept_image_max_side), prediction, user
            )
        return self._outcome(prediction, top_k, kept)

    def _known_results(self, sha: str, model_version: str) -> Computed | None:
        computed = self.recent.results(sha, model_version)
        if computed is None:
            stored = self.store.find_computed_prediction(sha, model_version)
            if stored is None:
                return None
            computed = Computed(stored.results, stored.open_set)
            self.recent.remember_results(sha, model_version, computed)
        return computed

    def _is_kept(self, sha: str) -> bool:
        if self.recent.is_kept(sha):
            return True
        if self.store.get_image(sha) is None:
            return False
        self.recent.remember_kept(sha)
        return True

    def _serve_cached(
        self,
        sha: str,
        computed: Computed,
        model: ServingModel,
        top_k: int,
        user: User,
        source_url: str | None,
        filename: str | None,
    ) -> PredictionOutcome:
        prediction = self._record(sha, computed, model, user, source_url, filename, latency_ms=None)
        return self._outcome(prediction, top_k, self._is_kept(sha))

    def _record(
        self,
        sha: str,
        computed: Computed,
        model: ServingModel,
        user: User,
        source_url: str | None,
        filename: str | None,
        *,
        latency_ms: float | None,
    ) -> Prediction:
        """Store one answer; ``latency_ms`` None: served from the cache (recorded as 0)."""
        with stage("store"):
            return self.store.add_prediction(
                NewPrediction(
                    username=user.username,
                    image_sha256=sha,
                    model_name=model.name,
                    model_version=model.version,
                    results=computed.results,
                    open_set=computed.open_set,
                    source_url=source_url,
                    filename=filename,
                    cached=latency_ms is None,
                    latency_ms=0.0 if latency_ms is None else latency_ms,
                )
            )

    def _keep_for_training(self, data: bytes, prediction: Prediction, user: User) -> bool:
        top = prediction.results[0]
        if top.probability > self.settings.store_threshold and not is_rejected(prediction):
            self.store.add_image(
                NewImage(
                    sha256=prediction.image_sha256,
                    data=data,
                    label=top.species,
                    label_source=LabelSource.PREDICTED,
                    label_probability=top.probability,
                    source_url=prediction.source_url,
                    filename=prediction.filename,
                    username=user.username,
                )
            )
            self.recent.remember_kept(prediction.image_sha256)
            return True
        if self._is_kept(prediction.image_sha256):
            return True
        try:
            self.spool.put(prediction.image_sha256, data)
        except OSError as exc:  # a full disk costs the chance of later feedback, not the answer
            log.warning("could not keep image %s for feedback: %s", prediction.image_sha256, exc)
        return False

    def _outcome(self, prediction: Prediction, top_k: int, kept: bool) -> PredictionOutcome:
        uncertain = is_uncertain(prediction, self.settings.uncertain_threshold)
        if self.observer is not None:
            self.observer.on_prediction(prediction)
        return PredictionOutcome(prediction=prediction, top_k=top_k, kept_for_training=kept, uncertain=uncertain)

    def _refetch_bounded(self, prediction: Prediction) -> bytes | None:
        data = self._refetch(prediction)
        if data is None:
            return None
        return bounded_copy(data, decode_image(data, self.settings.image_limits), self.settings.kept_image_max_side)

    def _refetch(self, prediction: Prediction) -> bytes | None:
        if not prediction.source_url:
            return None
        try:
            data = self.fetcher.fetch(prediction.source_url).data
        except Exception:
            return None
        return data if sha256_hex(data) == prediction.image_sha256 else None


def _compute(model: ServingModel, image: Image.Image) -> Computed:
    classifier = model.classifier
    with stage("preprocess"):
        batch = classifier.preprocess(image)[np.newaxis]
    with stage("infer"):
        scored = classifier.predict_scored(batch)
    verdict = None
    if classifier.open_set is not None and scored.open_set_scores is not None:
        verdict = OpenSetVerdict(float(scored.open_set_scores[0]), classifier.open_set.threshold)
    return Computed(_ranked(classifier.labels, scored.probabilities[0]), verdict)


def _ranked(labels: list[str], probabilities: np.ndarray) -> tuple[SpeciesScore, ...]:
    order = np.argsort(-probabilities, kind="stable")
    return tuple(SpeciesScore(labels[i], float(probabilities[i])) for i in order)


def _filename(url: str) -> str | None:
    name = url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
    return name or None
