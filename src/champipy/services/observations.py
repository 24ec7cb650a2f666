"""One find, 1-5 photos: each photo predicted as any other (cache, kept for training, spool),
their probabilities combined into one answer, and when the photos came from a Mushroom
Observer observation, whether ChampiPy agrees with the community's name.

A photo that cannot be read is reported on its own and the others still answer; only when
no photo can be used does the whole request fail, with the first photo's error.
"""

from __future__ import annotations

import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..errors import ChampipyError, InvalidInput, NotFound
from ..model.observation import combine
from ..settings import Settings
from ..species_names import normalise_species
from ..store.base import NewObservation, Observation, Prediction, SpeciesScore, Store, User
from .mo_resolver import MAX_OBSERVATION_PHOTOS
from .predict import PredictionOutcome, PredictionService

MAX_PHOTOS = MAX_OBSERVATION_PHOTOS
# Photos of one observation are fetched and predicted side by side, one per core: on 2 cores,
# 3 at once made an observation of 3 photos cost 3.35x one photo, 2 at once 2.85-3.10x
# (bench/bench_observation_cost.py).
PARALLEL_PHOTOS = max(1, min(MAX_PHOTOS, os.cpu_count() or 1))


@dataclass(frozen=True)
class Photo:
    """One photo as given: a URL, or uploaded bytes."""

    url: str | None = None
    data: bytes | None = None
    filename: str | None = None

    @property
    def label(self) -> str:
        return self.url or self.filename or "upload"


@dataclass(frozen=True)
class PhotoResult:
    photo: Photo
    outcome: PredictionOutcome | None = None
    error: ChampipyError | None = None


@dataclass(frozen=True)
class ObservationOutcome:
    observation: Observation
    photos: list[PhotoResult]
    top_k: int

    @property
    def agrees_with_consensus(self) -> bool | None:
        """None without a consensus name; False when ChampiPy does not name the same species
        (or recognises none of the photos)."""
        consensus = self.observation.mo_consensus
        if not consensus:
            return None
        if self.observation.recognised is False or not self.observation.results:
            return False
        return self.observation.results[0].species.casefold() == consensus.casefold()


class ObservationService:
    def __init__(self, settings: Settings, store: Store, predictor: PredictionService):
        self.settings = settings
        self.store = store
        self.predictor = predictor
        self._pool = ThreadPoolExecutor(max_workers=PARALLEL_PHOTOS, thread_name_prefix="observation")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def identify(
        self, photos: list[Photo], top_k: int, user: User, mo_observation: str | None = None
    ) -> ObservationOutcome:
        mo_id = consensus = None
        if mo_observation is not None:
            if photos:
                raise InvalidInput("Give photos or one Mushroom Observer observation, not both.")
            link = self.predictor.mo.link(mo_observation, bare_id_is_observation=True)
            if link is None:
                raise InvalidInput(f"{mo_observation!r} is not a Mushroom Observer observation URL or id.")
            found = self.predictor.mo.observation(link)
            photos = [Photo(url=url) for url in found.photo_urls]
            mo_id, consensus = found.id, found.consensus
        if not 1 <= len(photos) <= MAX_PHOTOS:
            raise InvalidInput(f"An observation has 1 to {MAX_PHOTOS} photos; {len(photos)} were given.")
        model = self.predictor.models.current()
        if not 1 <= top_k <= len(model.classifier.labels):
            raise InvalidInput(f"top_k must be from 1 to {len(model.classifier.labels)} (the number of species).")
        everything = len(model.classifier.labels)
        results = list(self._pool.map(lambda photo: self._predict(photo, everything, user), photos))
        usable = [r.outcome.prediction for r in results if r.outcome is not None]
        if not usable:
            first = next(r.error for r in results if r.error is not None)
            raise first
        version = Counter(p.model_version for p in usable).most_common(1)[0][0]  # a swap mid-way
        combined = [p for p in usable if p.model_version == version]
        observation = self.store.add_observation(
            NewObservation(
                username=user.username,
                prediction_ids=tuple(p.id for p in usable),
                results=_combined_results(combined),
                model_name=combined[0].model_name,
                model_version=version,
                recognised=_recognised(combined),
                mo_observation_id=mo_id,
                mo_consensus=_consensus_name(consensus),
            )
        )
        return ObservationOutcome(observation, results, top_k)

    def feedback(self, observation_id: str, species: str, user: User) -> list[Prediction]:
        """Label every photo of the observation; returns their updated predictions."""
        observation = self.store.get_observation(observation_id)
        if observation is None or (observation.username != user.username and not user.is_admin):
            raise NotFound("No such observation.")
        return [self.predictor.feedback(pid, species, user) for pid in observation.prediction_ids]

    def _predict(self, photo: Photo, top_k: int, user: User) -> PhotoResult:
        try:
            if photo.data is not None:
                outcome = self.predictor.predict_upload(photo.data, photo.filename, top_k, user)
            else:
                outcome = self.predictor.predict_url(photo.url or "", top_k, user)
        except ChampipyError as error:
            return PhotoResult(photo, error=error)
        return PhotoResult(photo, outcome=outcome)


def _combined_results(predictions: list[Prediction]) -> tuple[SpeciesScore, ...]:
    species = [s.species for s in predictions[0].results]
    matrix = np.array(
        [[dict((s.species, s.probability) for s in p.results).get(n, 0.0) for n in species] for p in predictions]
    )
    combined = combine(matrix)
    order = np.argsort(-combined, kind="stable")
    return tuple(SpeciesScore(species[i], float(combined[i])) for i in order)


def _recognised(predictions: list[Prediction]) -> bool | None:
    verdicts = [p.open_set.recognised for p in predictions if p.open_set is not None]
    return any(verdicts) if verdicts else None


def _consensus_name(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return normalise_species(name)
    except ChampipyError:
        return name.strip()[:200]  # MO's name as MO spells it, even when we would not
