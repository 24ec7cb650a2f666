"""Jobs (``jobs``) and events (``events``) in MongoDB."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo import ReturnDocument

from ..ports import JobRepository
from ..records import Event, Job, JobState
from ..rules import JobUpdate, no_job
from .client import (
    CREATED_NEWEST_FIRST,
    Document,
    MongoBase,
    as_utc,
    now,
    object_id,
    optional_utc,
)


class MongoJobs(MongoBase, JobRepository):
    def add_job(self, kind: str, params: dict[str, Any], username: str | None) -> Job:
        doc: Document = {
            "kind": kind,
            "params": dict(params),
            "state": JobState.QUEUED.value,
            "username": username,
            "created_at": now(),
            "progress": {},
            "result": None,
            "error": None,
            "started_at": None,
            "finished_at": None,
            "heartbeat_at": None,
        }
        with self._guard():
            self._jobs.insert_one(doc)
        return _job(doc)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        progress: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job:
        oid = object_id(job_id)
        if oid is None:
            raise no_job(job_id)
        change = JobUpdate(now(), state=state, progress=progress, result=result, error=error)
        with self._guard():
            if change.starts:
                # Only the first start counts; a null filter also matches a missing field.
                self._jobs.update_one({"_id": oid, "started_at": None}, {"$set": {"started_at": change.moment}})
            doc = self._jobs.find_one_and_update(
                {"_id": oid}, {"$set": change.changes()}, return_document=ReturnDocument.AFTER
            )
        if doc is None:
            raise no_job(job_id)
        return _job(doc)

    def get_job(self, job_id: str) -> Job | None:
        oid = object_id(job_id)
        if oid is None:
            return None
        with self._guard():
            doc = self._jobs.find_one({"_id": oid})
        return _job(doc) if doc else None

    def list_jobs(self, limit: int = 50, state: JobState | None = None) -> list[Job]:
        query = {} if state is None else {"state": state.value}
        with self._guard():
            docs = self._jobs.find(query).sort(CREATED_NEWEST_FIRST).limit(limit)
            return [_job(doc) for doc in docs]

    # --- events ------------------------------------------------------------------------------
    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        doc: Document = {"kind": kind, "payload": dict(payload), "created_at": now()}
        with self._guard():
            self._events.insert_one(doc)
        return _event(doc)

    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        with self._guard():
            docs = self._events.find({"kind": kind}).sort(CREATED_NEWEST_FIRST).limit(limit)
            return [_event(doc) for doc in docs]


def _event(doc: Mapping[str, Any]) -> Event:
    return Event(kind=doc["kind"], payload=doc.get("payload") or {}, created_at=as_utc(doc["created_at"]))


def _job(doc: Mapping[str, Any]) -> Job:
    return Job(
        id=str(doc["_id"]),
        kind=doc["kind"],
        params=doc.get("params") or {},
        state=JobState(doc["state"]),
        username=doc.get("username"),
        created_at=as_utc(doc["created_at"]),
        progress=doc.get("progress") or {},
        result=doc.get("result"),
        error=doc.get("error"),
        started_at=optional_utc(doc.get("started_at")),
        finished_at=optional_utc(doc.get("finished_at")),
        heartbeat_at=optional_utc(doc.get("heartbeat_at")),
    )
