"""The in-memory backend (``memory://``): the fake at the storage port for fast unit tests.

Each ``open_store("memory://")`` is a new, empty store that lives as long as the object; it
passes the same contract suite as the real backends (``tests/store/test_contract.py``) and
follows the same rules (``rules``). One lock guards everything, so the threads of a test
server may share it; every call is atomic, ``record_feedback`` included.
"""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from ..errors import Conflict
from .base import Store
from .records import (
    ApiToken,
    Event,
    ImageRecord,
    Job,
    JobState,
    LabelSource,
    NewImage,
    NewObservation,
    NewPrediction,
    Observation,
    Prediction,
    SpeciesCount,
    User,
    utcnow,
)
from .rules import (
    JobUpdate,
    confirmed_image,
    feedback_changes,
    label_rank,
    no_image,
    no_job,
    no_prediction,
    no_user,
    species_counts,
    stored_prediction,
    user_changes,
)

SCHEME = "memory"
T = TypeVar("T")


def _new_id() -> str:
    return uuid.uuid4().hex


def _aware(moment: datetime) -> datetime:
    # The SQL and MongoDB backends read a naive time as UTC: so does this one.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _newest_first(items: Iterable[T], limit: int, keep: Callable[[T], bool] = lambda _: True) -> list[T]:
    """Items stored oldest first (dicts keep insertion order), newest first, at most ``limit``."""
    found: list[T] = []
    for item in reversed(list(items)):
        if len(found) >= limit:
            break
        if keep(item):
            found.append(item)
    return found


class MemoryStore(Store):
    def __init__(self, url: str = f"{SCHEME}://"):
        if not url.lower().startswith(f"{SCHEME}:"):
            raise ValueError(f"not a {SCHEME}:// URL: {url!r}")
        self._lock = threading.RLock()
        self._closed = False
        self._users: dict[str, User] = {}
        self._tokens: dict[str, ApiToken] = {}  # by id, oldest first
        self._images: dict[str, ImageRecord] = {}  # by SHA-256, oldest first
        self._image_bytes: dict[str, bytes] = {}
        self._predictions: dict[str, Prediction] = {}  # by id, oldest first
        self._observations: dict[str, Observation] = {}  # by id, oldest first
        self._parameters: dict[str, str] = {}
        self._events: list[Event] = []
        self._jobs: dict[str, Job] = {}  # by id, oldest first

    # --- lifecycle -------------------------------------------------------------------------
    def ping(self) -> bool:
        return not self._closed

    def close(self) -> None:
        self._closed = True

    # --- users -----------------------------------------------------------------------------
    def add_user(self, username: str, password_hash: str, roles: tuple[str, ...]) -> User:
        user = User(username=username, password_hash=password_hash, roles=tuple(roles))
        with self._lock:
            if username in self._users:
                raise Conflict(f"user {username!r} already exists")
            self._users[username] = user
        return user

    def get_user(self, username: str) -> User | None:
        with self._lock:
            return self._users.get(username)

    def list_users(self) -> list[User]:
        with self._lock:
            return [self._users[name] for name in sorted(self._users)]

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        roles: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> User:
        changes = user_changes(password_hash=password_hash, roles=roles, disabled=disabled)
        with self._lock:
            user = self._users.get(username)
            if user is None:
                raise no_user(username)
            user = self._users[username] = replace(user, **changes)
        return user

    def add_token(self, username: str, name: str, token_hash: str, expires_at: datetime | None = None) -> ApiToken:
        token = ApiToken(
            id=_new_id(),
            username=username,
            name=name,
            token_hash=token_hash,
            created_at=utcnow(),
            expires_at=expires_at,
        )
        with self._lock:
            if any(t.token_hash == token_hash for t in self._tokens.values()):
                raise Conflict("this token already exists")
            self._tokens[token.id] = token
        return token

    def get_token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._lock:
            return next((t for t in self._tokens.values() if t.token_hash == token_hash), None)

    def list_tokens(self, username: str) -> list[ApiToken]:
        with self._lock:
            mine = [t for t in self._tokens.values() if t.username == username]
        return _newest_first(mine, len(mine))

    def revoke_token(self, username: str, token_id: str) -> bool:
        with self._lock:
            token = self._tokens.get(token_id)
            if token is None or token.username != username:
                return False
            self._tokens[token_id] = replace(token, revoked=True)
            return True

    # --- images ----------------------------------------------------------------------------
    def add_image(self, image: NewImage) -> bool:
        with self._lock:
            return self._insert_image(image)

    def _insert_image(self, image: NewImage) -> bool:
        if image.sha256 in self._images:
            return False
        self._images[image.sha256] = ImageRecord(
            sha256=image.sha256,
            label=image.label,
            label_source=LabelSource(image.label_source),
            source_url=image.source_url,
            filename=image.filename,
            username=image.username,
            created_at=utcnow(),
            size=len(image.data),
            license=image.license,
            copyright=image.copyright,
            label_probability=image.label_probability,
        )
        self._image_bytes[image.sha256] = bytes(image.data)
        return True

    def get_image(self, sha256: str) -> ImageRecord | None:
        with self._lock:
            return self._images.get(sha256)

    def get_image_bytes(self, sha256: str) -> bytes | None:
        with self._lock:
            return self._image_bytes.get(sha256)

    def set_image_label(self, sha256: str, label: str, source: LabelSource) -> None:
        with self._lock:
            if not self._label_image(sha256, label, source):
                raise no_image(sha256)

    def _label_image(self, sha256: str, label: str, source: LabelSource) -> bool:
        record = self._images.get(sha256)
        if record is None:
            return False
        self._images[sha256] = replace(record, label=label, label_source=LabelSource(source), label_probability=None)
        return True

    def count_images(self, since: datetime | None = None) -> int:
        with self._lock:
            if since is None:
                return len(self._images)
            cutoff = _aware(since)
            return sum(1 for record in self._images.values() if record.created_at >= cutoff)

    def training_images(self, limit: int) -> list[ImageRecord]:
        with self._lock:
            newest_first = _newest_first(self._images.values(), len(self._images))
        # sorted() is stable: within one label source, newest first stays.
        return sorted(newest_first, key=lambda record: label_rank(record.label_source))[:limit]

    def species_counts(self) -> list[SpeciesCount]:
        with self._lock:
            return species_counts((r.label, r.label_source.value, 1) for r in self._images.values())

    # --- observations ----------------------------------------------------------------------
    def add_observation(self, observation: NewObservation) -> Observation:
        stored = Observation(**vars(observation), id=_new_id(), created_at=utcnow())
        with self._lock:
            self._observations[stored.id] = stored
        return stored

    def get_observation(self, observation_id: str) -> Observation | None:
        with self._lock:
            return self._observations.get(observation_id)

    def recent_observations(self, limit: int, username: str | None = None) -> list[Observation]:
        with self._lock:
            return _newest_first(
                self._observations.values(), limit, lambda o: username is None or o.username == username
            )

    # --- predictions -----------------------------------------------------------------------
    def add_prediction(self, prediction: NewPrediction) -> Prediction:
        stored = stored_prediction(prediction, _new_id(), utcnow())
        with self._lock:
            self._predictions[stored.id] = stored
        return stored

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        with self._lock:
            return self._predictions.get(prediction_id)

    def find_computed_prediction(self, image_sha256: str, model_version: str) -> Prediction | None:
        with self._lock:
            found = _newest_first(
                self._predictions.values(),
                1,
                lambda p: (p.image_sha256, p.model_version) == (image_sha256, model_version) and not p.cached,
            )
        return found[0] if found else None

    def find_recent_url_image(self, source_url: str, since: datetime) -> str | None:
        cutoff = _aware(since)
        with self._lock:
            found = _newest_first(
                self._predictions.values(),
                1,
                lambda p: p.source_url == source_url and p.created_at >= cutoff,
            )
        return found[0].image_sha256 if found else None

    def recent_predictions(self, limit: int, username: str | None = None) -> list[Prediction]:
        with self._lock:
            return _newest_first(
                self._predictions.values(),
                limit,
                lambda p: username is None or p.username == username,
            )

    def set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        with self._lock:
            return self._set_feedback(prediction_id, species, username)

    def _set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        prediction = self._predictions.get(prediction_id)
        if prediction is None:
            raise no_prediction(prediction_id)
        updated = replace(prediction, **feedback_changes(species, username, utcnow()))
        self._predictions[prediction_id] = updated
        return updated

    def record_feedback(
        self, prediction_id: str, species: str, username: str, image: NewImage | None = None
    ) -> Prediction:
        with self._lock:
            prediction = self._predictions.get(prediction_id)
            if prediction is None:
                raise no_prediction(prediction_id)
            sha256 = prediction.image_sha256
            given = None if image is None else confirmed_image(image, sha256, species)
            if sha256 not in self._images and given is None:
                raise no_image(sha256)
            # Nothing below can fail: the writes are all or nothing under the lock.
            if not self._label_image(sha256, species, LabelSource.CONFIRMED) and given is not None:
                self._insert_image(given)
            return self._set_feedback(prediction_id, species, username)

    def count_predictions(self) -> int:
        with self._lock:
            return len(self._predictions)

    # --- parameters ------------------------------------------------------------------------
    def get_parameter(self, name: str) -> str | None:
        with self._lock:
            return self._parameters.get(name)

    def set_parameter(self, name: str, value: str) -> None:
        with self._lock:
            self._parameters[name] = str(value)

    # --- jobs and events --------------------------------------------------------------------
    # Their dicts are copied in and out, as a database would: a caller changing what it got
    # back does not change what is stored.
    def add_job(self, kind: str, params: dict[str, Any], username: str | None) -> Job:
        job = Job(
            id=_new_id(),
            kind=kind,
            params=copy.deepcopy(dict(params)),
            state=JobState.QUEUED,
            username=username,
            created_at=utcnow(),
        )
        with self._lock:
            self._jobs[job.id] = job
        return copy.deepcopy(job)

    def update_job(
        self,
        job_id: str,
        *,
        state: JobState | None = None,
        progress: dict[str, Any] | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> Job:
        change = JobUpdate(
            utcnow(),
            state=state,
            progress=copy.deepcopy(progress),
            result=copy.deepcopy(result),
            error=error,
        )
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise no_job(job_id)
            updated = self._jobs[job_id] = change.applied_to(job)
            return copy.deepcopy(updated)

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
            return copy.deepcopy(job) if job else None

    def list_jobs(self, limit: int = 50, state: JobState | None = None) -> list[Job]:
        with self._lock:
            jobs = _newest_first(self._jobs.values(), limit, lambda job: state is None or job.state is state)
            return copy.deepcopy(jobs)

    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        event = Event(kind=kind, payload=copy.deepcopy(dict(payload)), created_at=utcnow())
        with self._lock:
            self._events.append(event)
        return copy.deepcopy(event)

    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        with self._lock:
            return copy.deepcopy(_newest_first(self._events, limit, lambda e: e.kind == kind))
