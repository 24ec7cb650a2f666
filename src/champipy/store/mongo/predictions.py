"""Predictions in MongoDB: the original's ``predictions`` collection {user, url, filename,
datetime, results: [{name, proba}]} plus the fields ChampiPy adds.

A prediction the original wrote has none of ChampiPy's fields: its ``proba`` is a percent
(ChampiPy's are fractions) and it has no image hash, its image being the ``img_store`` file
of the same name; both are read that way, and the document is never rewritten in our form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from gridfs.errors import FileExists
from pymongo import ASCENDING, ReturnDocument
from pymongo.client_session import ClientSession

from ..ports import PredictionRepository
from ..records import LabelSource, NewImage, NewPrediction, OpenSetVerdict, Prediction, SpeciesScore
from ..rules import (
    confirmed_image,
    decode_results,
    encode_results,
    feedback_changes,
    no_image,
    no_prediction,
)
from .client import NEWEST_FIRST, Document, MongoBase, as_utc, now, object_id
from .images import insert_image, label_image

# A transaction that lost a race to store the same image runs once more, and then labels it.
FEEDBACK_ATTEMPTS = 2
# The original's results are percents (97.31); ChampiPy's are fractions.
LEGACY_PROBA_SCALE = 100.0


class MongoPredictions(MongoBase, PredictionRepository):
    def add_prediction(self, prediction: NewPrediction) -> Prediction:
        doc: Document = {
            "user": prediction.username,
            "url": prediction.source_url,
            "filename": prediction.filename,
            "datetime": now(),
            "results": encode_results(prediction.results),
            "image_sha256": prediction.image_sha256,
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
            "cached": prediction.cached,
            "latency_ms": prediction.latency_ms,
        }
        if prediction.open_set is not None:
            doc["open_set"] = {
                "score": prediction.open_set.score,
                "threshold": prediction.open_set.threshold,
            }
        with self._guard():
            self._predictions.insert_one(doc)
        return _prediction(doc, {})

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        oid = object_id(prediction_id)
        if oid is None:
            return None
        with self._guard():
            doc = self._predictions.find_one({"_id": oid})
            return self._prediction(doc) if doc else None

    def find_computed_prediction(self, image_sha256: str, model_version: str) -> Prediction | None:
        query = {
            "image_sha256": image_sha256,
            "model_version": model_version,
            "cached": {"$ne": True},
        }
        with self._guard():
            doc = self._predictions.find_one(query, sort=NEWEST_FIRST)
            return self._prediction(doc) if doc else None

    def find_recent_url_image(self, source_url: str, since: datetime) -> str | None:
        query = {
            "url": source_url,
            "datetime": {"$gte": since},
            # The original's predictions carry no hash: they cannot answer this.
            "image_sha256": {"$nin": [None, ""]},
        }
        with self._guard():
            doc = self._predictions.find_one(query, {"image_sha256": 1}, sort=NEWEST_FIRST)
        return str(doc["image_sha256"]) if doc else None

    def recent_predictions(self, limit: int, username: str | None = None) -> list[Prediction]:
        query = {} if username is None else {"user": username}
        with self._guard():
            docs = list(self._predictions.find(query).sort(NEWEST_FIRST).limit(limit))
            links = self._legacy_image_links(docs)
            return [_prediction(doc, links) for doc in docs]

    def set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        oid = object_id(prediction_id)
        doc = None
        if oid is not None:
            with self._guard():
                doc = self._set_feedback(oid, species, username)
                if doc is not None:
                    return self._prediction(doc)
        raise no_prediction(prediction_id)

    def record_feedback(
        self, prediction_id: str, species: str, username: str, image: NewImage | None = None
    ) -> Prediction:
        oid = object_id(prediction_id)
        with self._guard():
            found = None if oid is None else self._predictions.find_one({"_id": oid})
            if oid is None or found is None:
                raise no_prediction(prediction_id)
            sha256 = self._prediction(found).image_sha256
            given = None if image is None else confirmed_image(image, sha256, species)
            if not self._supports_transactions():
                # A standalone server (the mongoeco test server among them) has no
                # transactions. The writes then go in a safe order instead: everything that
                # can refuse (the prediction, the image) is checked before the first write;
                # the image is labelled or stored before the prediction records the feedback,
                # so a failure in between leaves a confirmed image and no feedback, which the
                # expert's retry completes (both writes are idempotent). Predictions are never
                # deleted, so the one found above is still there for the last write.
                return self._write_feedback(oid, sha256, species, username, given, None)
            for attempt in range(FEEDBACK_ATTEMPTS):
                try:
                    with self._client.start_session() as session:
                        return session.with_transaction(
                            lambda s: self._write_feedback(oid, sha256, species, username, given, s)
                        )
                except FileExists:
                    if attempt + 1 == FEEDBACK_ATTEMPTS:
                        raise
        raise AssertionError("unreachable")

    def _write_feedback(
        self,
        oid: ObjectId,
        sha256: str,
        species: str,
        username: str,
        image: NewImage | None,
        session: ClientSession | None,
    ) -> Prediction:
        if not label_image(self, sha256, species, LabelSource.CONFIRMED, session):
            if image is None:
                raise no_image(sha256)
            if not insert_image(self, image, session):
                label_image(self, sha256, species, LabelSource.CONFIRMED, session)
        doc = self._set_feedback(oid, species, username, session)
        if doc is None:
            raise no_prediction(str(oid))
        return self._prediction(doc, session)

    def _set_feedback(
        self, oid: ObjectId, species: str, username: str, session: ClientSession | None = None
    ) -> Document | None:
        return self._predictions.find_one_and_update(
            {"_id": oid},
            {"$set": feedback_changes(species, username, now())},
            return_document=ReturnDocument.AFTER,
            session=session,
        )

    def count_predictions(self) -> int:
        with self._guard():
            return self._predictions.count_documents({})

    # --- documents to records ---------------------------------------------------------------
    def _prediction(self, doc: Mapping[str, Any], session: ClientSession | None = None) -> Prediction:
        return _prediction(doc, self._legacy_image_links([doc], session))

    def _legacy_image_links(
        self, docs: Iterable[Mapping[str, Any]], session: ClientSession | None = None
    ) -> dict[str, str]:
        """The image hash of each legacy prediction's file name, as the original linked them.

        The original stored a name once (it checked ``fs.exists(filename=...)``), so the
        oldest file of that name is the prediction's image. A name whose file is not stored,
        or not hashed yet, links to nothing.
        """
        names = {str(doc["filename"]) for doc in docs if _is_legacy(doc) and doc.get("filename")}
        if not names:
            return {}
        files = self._image_files.find(
            {"filename": {"$in": sorted(names)}}, {"filename": 1, "metadata": 1}, session=session
        ).sort([("uploadDate", ASCENDING), ("_id", ASCENDING)])
        links: dict[str, str] = {}
        for file in files:
            metadata = file.get("metadata") or {}
            # A duplicate of bytes stored under another name is that image.
            sha256 = metadata.get("sha256") or metadata.get("duplicate_of")
            if sha256:
                links.setdefault(str(file["filename"]), str(sha256))
        return links


def _is_legacy(doc: Mapping[str, Any]) -> bool:
    """Written by the original: ChampiPy always writes ``model_version``, the original never."""
    return "model_version" not in doc


def _results(doc: Mapping[str, Any]) -> tuple[SpeciesScore, ...]:
    results = decode_results(doc.get("results"))
    if not _is_legacy(doc):
        return results
    return tuple(SpeciesScore(r.species, r.probability / LEGACY_PROBA_SCALE) for r in results)


def _prediction(doc: Mapping[str, Any], legacy_links: Mapping[str, str]) -> Prediction:
    linked = legacy_links.get(str(doc.get("filename")), "") if _is_legacy(doc) else ""
    return Prediction(
        id=str(doc["_id"]),
        username=str(doc.get("user") or ""),
        image_sha256=str(doc.get("image_sha256") or linked),
        model_name=str(doc.get("model_name") or ""),
        model_version=str(doc.get("model_version") or ""),
        results=_results(doc),
        source_url=doc.get("url"),
        filename=doc.get("filename"),
        cached=bool(doc.get("cached", False)),
        latency_ms=doc.get("latency_ms"),
        open_set=_open_set(doc.get("open_set")),
        created_at=as_utc(doc.get("datetime"), doc.get("_id")),
        feedback_species=doc.get("feedback_species"),
        feedback_username=doc.get("feedback_username"),
        feedback_at=as_utc(doc["feedback_at"]) if doc.get("feedback_at") else None,
    )


def _open_set(stored: Any) -> OpenSetVerdict | None:
    if not isinstance(stored, Mapping) or stored.get("score") is None:
        return None
    return OpenSetVerdict(score=float(stored["score"]), threshold=float(stored["threshold"]))
