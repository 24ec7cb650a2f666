"""Observations in MongoDB: ChampiPy's own ``observations`` collection (the original had none)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..ports import ObservationRepository
from ..records import NewObservation, Observation
from ..rules import decode_results, encode_results
from .client import NEWEST_FIRST, Document, MongoBase, as_utc, now, object_id


class MongoObservations(MongoBase, ObservationRepository):
    def add_observation(self, observation: NewObservation) -> Observation:
        doc: Document = {
            "user": observation.username,
            "prediction_ids": list(observation.prediction_ids),
            "results": encode_results(observation.results),
            "model_name": observation.model_name,
            "model_version": observation.model_version,
            "recognised": observation.recognised,
            "mo_observation_id": observation.mo_observation_id,
            "mo_consensus": observation.mo_consensus,
            "datetime": now(),
        }
        with self._guard():
            self._observations.insert_one(doc)
        return _observation(doc)

    def get_observation(self, observation_id: str) -> Observation | None:
        oid = object_id(observation_id)
        if oid is None:
            return None
        with self._guard():
            doc = self._observations.find_one({"_id": oid})
        return _observation(doc) if doc else None

    def recent_observations(self, limit: int, username: str | None = None) -> list[Observation]:
        query = {} if username is None else {"user": username}
        with self._guard():
            return [_observation(doc) for doc in self._observations.find(query).sort(NEWEST_FIRST).limit(limit)]


def _observation(doc: Mapping[str, Any]) -> Observation:
    mo_id = doc.get("mo_observation_id")
    return Observation(
        id=str(doc["_id"]),
        username=str(doc.get("user") or ""),
        prediction_ids=tuple(str(i) for i in doc.get("prediction_ids") or ()),
        results=decode_results(doc.get("results")),
        model_name=str(doc.get("model_name") or ""),
        model_version=str(doc.get("model_version") or ""),
        recognised=doc.get("recognised"),
        mo_observation_id=int(mo_id) if mo_id is not None else None,
        mo_consensus=doc.get("mo_consensus"),
        created_at=as_utc(doc.get("datetime"), doc.get("_id")),
    )
