"""Predictions and their feedback in SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, func, select

from ..ports import PredictionRepository
from ..records import LabelSource, NewImage, NewPrediction, OpenSetVerdict, Prediction, utcnow
from ..rules import (
    confirmed_image,
    decode_results,
    encode_results,
    feedback_changes,
    no_image,
    no_prediction,
    stored_prediction,
)
from ..sql_models import PredictionRow
from .engine import SqlBase, new_id
from .images import insert_image, label_image

_PREDICTIONS = cast(Table, PredictionRow.__table__)
_PREDICTION_INSERT = _PREDICTIONS.insert()
_COMPUTED_QUERY = (
    select(_PREDICTIONS)
    .where(
        _PREDICTIONS.c.image_sha256 == bindparam("sha256"),
        _PREDICTIONS.c.model_version == bindparam("version"),
        _PREDICTIONS.c.cached.is_(False),
    )
    .order_by(_PREDICTIONS.c.created_at.desc())
    .limit(1)
)


class SqlPredictions(SqlBase, PredictionRepository):
    def add_prediction(self, prediction: NewPrediction) -> Prediction:
        stored = stored_prediction(prediction, new_id(), utcnow())
        # Every request writes one row, cached answers included: a Core insert on a connection
        # costs 0.3 ms where the ORM unit of work cost 0.8 (SQLite, measured).
        with self._connection() as connection:
            connection.execute(
                _PREDICTION_INSERT,
                {
                    "id": stored.id,
                    "username": stored.username,
                    "image_sha256": stored.image_sha256,
                    "model_name": stored.model_name,
                    "model_version": stored.model_version,
                    "results": encode_results(stored.results),
                    "source_url": stored.source_url,
                    "filename": stored.filename,
                    "cached": stored.cached,
                    "latency_ms": stored.latency_ms,
                    **_open_set_columns(stored.open_set),
                    "created_at": stored.created_at,
                },
            )
        return stored

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        with self._reading() as session:
            row = session.get(PredictionRow, prediction_id)
            return _prediction(row) if row else None

    def find_computed_prediction(self, image_sha256: str, model_version: str) -> Prediction | None:
        # Every uncached request asks first: a Core select on a connection, as add_prediction.
        with self._read_connection() as connection:
            row = connection.execute(_COMPUTED_QUERY, {"sha256": image_sha256, "version": model_version}).first()
            return _prediction(row) if row else None

    def find_recent_url_image(self, source_url: str, since: datetime) -> str | None:
        with self._reading() as session:
            return session.scalar(
                select(PredictionRow.image_sha256)
                .where(PredictionRow.source_url == source_url, PredictionRow.created_at >= since)
                .order_by(PredictionRow.created_at.desc())
                .limit(1)
            )

    def recent_predictions(self, limit: int, username: str | None = None) -> list[Prediction]:
        query = select(PredictionRow)
        if username is not None:
            query = query.where(PredictionRow.username == username)
        query = query.order_by(PredictionRow.created_at.desc(), PredictionRow.id).limit(limit)
        with self._reading() as session:
            return [_prediction(row) for row in session.scalars(query)]

    def set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        with self._writing() as session:
            row = session.get(PredictionRow, prediction_id)
            if row is None:
                raise no_prediction(prediction_id)
            for name, value in feedback_changes(species, username, utcnow()).items():
                setattr(row, name, value)
        return _prediction(row)

    def record_feedback(
        self, prediction_id: str, species: str, username: str, image: NewImage | None = None
    ) -> Prediction:
        # One transaction: an error anywhere below (NotFound included) rolls it all back.
        with self._writing() as session:
            row = session.get(PredictionRow, prediction_id)
            if row is None:
                raise no_prediction(prediction_id)
            sha256 = row.image_sha256
            given = None if image is None else confirmed_image(image, sha256, species)
            if not label_image(session, sha256, species, LabelSource.CONFIRMED):
                if given is None:
                    raise no_image(sha256)
                if not insert_image(session, given):
                    # PostgreSQL: another writer stored it since; SQLite holds the write lock.
                    label_image(session, sha256, species, LabelSource.CONFIRMED)
            for name, value in feedback_changes(species, username, utcnow()).items():
                setattr(row, name, value)
        return _prediction(row)

    def count_predictions(self) -> int:
        with self._reading() as session:
            return session.scalar(select(func.count()).select_from(PredictionRow)) or 0


def _prediction(row: PredictionRow | Row[Any]) -> Prediction:
    return Prediction(
        id=row.id,
        username=row.username,
        image_sha256=row.image_sha256,
        model_name=row.model_name,
        model_version=row.model_version,
        results=decode_results(row.results),
        source_url=row.source_url,
        filename=row.filename,
        cached=row.cached,
        latency_ms=row.latency_ms,
        open_set=_open_set(row.open_set_score, row.open_set_threshold),
        created_at=row.created_at,
        feedback_species=row.feedback_species,
        feedback_username=row.feedback_username,
        feedback_at=row.feedback_at,
    )


def _open_set_columns(verdict: OpenSetVerdict | None) -> dict[str, float | None]:
    if verdict is None:
        return {"open_set_score": None, "open_set_threshold": None}
    return {"open_set_score": verdict.score, "open_set_threshold": verdict.threshold}


def _open_set(score: float | None, threshold: float | None) -> OpenSetVerdict | None:
    if score is None or threshold is None:
        return None
    return OpenSetVerdict(score=score, threshold=threshold)
