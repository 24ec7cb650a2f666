"""Observations in SQL."""

from __future__ import annotations

from sqlalchemy import select

from ..ports import ObservationRepository
from ..records import NewObservation, Observation, utcnow
from ..rules import decode_results, encode_results
from ..sql_models import ObservationRow
from .engine import SqlBase, new_id


class SqlObservations(SqlBase, ObservationRepository):
    def add_observation(self, observation: NewObservation) -> Observation:
        stored = Observation(**vars(observation), id=new_id(), created_at=utcnow())
        with self._writing() as session:
            session.add(
                ObservationRow(
                    id=stored.id,
                    username=stored.username,
                    prediction_ids=list(stored.prediction_ids),
                    results=encode_results(stored.results),
                    model_name=stored.model_name,
                    model_version=stored.model_version,
                    recognised=stored.recognised,
                    mo_observation_id=stored.mo_observation_id,
                    mo_consensus=stored.mo_consensus,
                    created_at=stored.created_at,
                )
            )
        return stored

    def get_observation(self, observation_id: str) -> Observation | None:
        with self._reading() as session:
            row = session.get(ObservationRow, observation_id)
            return _observation(row) if row else None

    def recent_observations(self, limit: int, username: str | None = None) -> list[Observation]:
        query = select(ObservationRow)
        if username is not None:
            query = query.where(ObservationRow.username == username)
        query = query.order_by(ObservationRow.created_at.desc(), ObservationRow.id).limit(limit)
        with self._reading() as session:
            return [_observation(row) for row in session.scalars(query)]


def _observation(row: ObservationRow) -> Observation:
    return Observation(
        id=row.id,
        username=row.username,
        prediction_ids=tuple(str(i) for i in row.prediction_ids),
        results=decode_results(row.results),
        model_name=row.model_name,
        model_version=row.model_version,
        recognised=row.recognised,
        mo_observation_id=row.mo_observation_id,
        mo_consensus=row.mo_consensus,
        created_at=row.created_at,
    )
