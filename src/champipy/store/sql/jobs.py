"""Jobs and events in SQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ..ports import JobRepository
from ..records import Event, Job, JobState, utcnow
from ..rules import JobUpdate, no_job
from ..sql_models import EventRow, JobRow
from .engine import SqlBase, new_id


class SqlJobs(SqlBase, JobRepository):
    def add_job(self, kind: str, params: dict[str, Any], username: str | None) -> Job:
        row = JobRow(
            id=new_id(),
            kind=kind,
            params=dict(params),
            state=JobState.QUEUED.value,
            username=username,
            created_at=utcnow(),
            progress={},
        )
        with self._writing() as session:
            session.add(row)
        return _job(row)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        progress: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job:
        change = JobUpdate(utcnow(), state=state, progress=progress, result=result, error=error)
        with self._writing() as session:
            row = session.get(JobRow, job_id, with_for_update=not self._is_sqlite)
            if row is None:
                raise no_job(job_id)
            if change.starts and row.started_at is None:
                row.started_at = change.moment
            for name, value in change.changes().items():
                setattr(row, name, value)
        return _job(row)

    def get_job(self, job_id: str) -> Job | None:
        with self._reading() as session:
            row = session.get(JobRow, job_id)
            return _job(row) if row else None

    def list_jobs(self, limit: int = 50, state: JobState | None = None) -> list[Job]:
        query = select(JobRow)
        if state is not None:
            query = query.where(JobRow.state == state.value)
        query = query.order_by(JobRow.created_at.desc(), JobRow.id).limit(limit)
        with self._reading() as session:
            return [_job(row) for row in session.scalars(query)]

    # --- events ------------------------------------------------------------------------------
    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        row = EventRow(id=new_id(), kind=kind, payload=dict(payload), created_at=utcnow())
        with self._writing() as session:
            session.add(row)
        return _event(row)

    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        with self._reading() as session:
            rows = session.scalars(
                select(EventRow)
                .where(EventRow.kind == kind)
                .order_by(EventRow.created_at.desc(), EventRow.id)
                .limit(limit)
            )
            return [_event(row) for row in rows]


def _event(row: EventRow) -> Event:
    return Event(kind=row.kind, payload=row.payload, created_at=row.created_at)


def _job(row: JobRow) -> Job:
    return Job(
        id=row.id,
        kind=row.kind,
        params=row.params,
        state=JobState(row.state),
        username=row.username,
        created_at=row.created_at,
        progress=row.progress or {},
        result=row.result,
        error=row.error,
        started_at=row.started_at,
        finished_at=row.finished_at,
        heartbeat_at=row.heartbeat_at,
    )
