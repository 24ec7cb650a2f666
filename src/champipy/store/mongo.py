"""The MongoDB backend, in the original ChampiPy layout so an existing database keeps working.

Database ``champipy_db`` (or the one named in the URL): ``users`` {username, hashed_password,
access}, ``predictions`` {user, url, filename, datetime, results: [{name, proba}]},
``parameters`` {param_name, param_value} and the GridFS bucket ``img_store`` whose metadata
holds {filename, classname, user}. ChampiPy adds fields to those documents and the
collections ``api_tokens``, ``events`` and ``jobs``; documents written by the original, which
lack the new fields, are read with defaults.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

import pymongo
from bson import ObjectId
from gridfs import GridFSBucket
from gridfs.errors import FileExists, NoFile
from pymongo import ASCENDING, DESCENDING, MongoClient, ReturnDocument, uri_parser
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from ..errors import Conflict, NotFound, StoreUnavailable
from .base import (
    LABEL_PRIORITY,
    ApiToken,
    Event,
    ImageRecord,
    Job,
    JobState,
    LabelSource,
    NewImage,
    NewPrediction,
    Prediction,
    SpeciesScore,
    Store,
    User,
    utcnow,
)

log = logging.getLogger(__name__)

DEFAULT_DATABASE = "champipy_db"
IMAGE_BUCKET = "img_store"
TIMEOUT_SECONDS = 3
# Defaults only: the same options written in the URL win.
CLIENT_DEFAULTS = {
    "serverSelectionTimeoutMS": TIMEOUT_SECONDS * 1000,
    "connectTimeoutMS": TIMEOUT_SECONDS * 1000,
    "socketTimeoutMS": 20_000,
}
# The original stored images only when the model was confident: a missing source means that.
LEGACY_LABEL_SOURCE = LabelSource.PREDICTED
# MongoDB refuses to build an index whose name or options differ from an existing one.
INDEX_CONFLICT_CODES = {85, 86}

_NEWEST_FIRST = [("datetime", DESCENDING), ("_id", DESCENDING)]
_CREATED_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def now() -> datetime:
    """The current UTC time at BSON's millisecond precision, so what we return is what we read."""
    moment = utcnow()
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def object_id(value: str) -> ObjectId | None:
    return ObjectId(value) if isinstance(value, str) and ObjectId.is_valid(value) else None


class MongoStore(Store):
    def __init__(self, url: str):
        parsed = uri_parser.parse_uri(url)
        given = {name.lower() for name in parsed["options"]}
        options = {k: v for k, v in CLIENT_DEFAULTS.items() if k.lower() not in given}
        self._client: MongoClient[dict[str, Any]] = MongoClient(
            url, tz_aware=True, tzinfo=timezone.utc, **options
        )
        self._db = self._client[parsed["database"] or DEFAULT_DATABASE]
        self._users = self._db["users"]
        self._tokens = self._db["api_tokens"]
        self._predictions = self._db["predictions"]
        self._parameters = self._db["parameters"]
        self._events = self._db["events"]
        self._jobs = self._db["jobs"]
        self._images = GridFSBucket(self._db, bucket_name=IMAGE_BUCKET)
        self._image_files = self._db[f"{IMAGE_BUCKET}.files"]
        self._image_chunks = self._db[f"{IMAGE_BUCKET}.chunks"]
        try:
            with self._guard():
                self._create_indexes()
                self._hash_legacy_images()
        except BaseException:
            self.close()
            raise

    # --- setup ---------------------------------------------------------------------------
    def _create_indexes(self) -> None:
        wanted: list[tuple[Any, list[tuple[str, int]], dict[str, Any]]] = [
            (self._users, [("username", ASCENDING)], {"unique": True}),
            (self._tokens, [("token_hash", ASCENDING)], {"unique": True}),
            (self._tokens, [("username", ASCENDING), ("created_at", DESCENDING)], {}),
            # Sparse: images stored by the original have no hash until _hash_legacy_images.
            (self._image_files, [("metadata.sha256", ASCENDING)], {"unique": True, "sparse": True}),
            (self._image_files, [("uploadDate", DESCENDING)], {}),
            (self._predictions, [("image_sha256", ASCENDING), ("model_version", ASCENDING)], {}),
            (self._predictions, [("url", ASCENDING), ("datetime", DESCENDING)], {}),
            (self._predictions, [("user", ASCENDING), ("datetime", DESCENDING)], {}),
            (self._predictions, [("datetime", DESCENDING)], {}),
            # Not unique: an original database may hold the same name twice (see set_parameter).
            (self._parameters, [("param_name", ASCENDING)], {}),
            (self._events, [("kind", ASCENDING), ("created_at", DESCENDING)], {}),
            (self._jobs, [("created_at", DESCENDING)], {}),
            (self._jobs, [("state", ASCENDING), ("created_at", DESCENDING)], {}),
        ]
        for collection, keys, options in wanted:
            try:
                collection.create_index(keys, **options)
            except OperationFailure as error:
                if error.code not in INDEX_CONFLICT_CODES:
                    raise
                log.warning("keeping the existing index on %s %s: %s", collection.name, keys, error)

    def _hash_legacy_images(self) -> None:
        """Give images stored by the original their SHA-256, once, so they count as stored."""
        unhashed = {
            "metadata.sha256": {"$exists": False},
            "metadata.duplicate_of": {"$exists": False},
        }
        for doc in self._image_files.find(unhashed, {"metadata": 1}):
            data = self._images.open_download_stream(doc["_id"]).read()
            sha256 = hashlib.sha256(data).hexdigest()
            metadata = doc.get("metadata")
            try:
                self._image_files.update_one(
                    {"_id": doc["_id"]}, _set_metadata(metadata, "sha256", sha256)
                )
            except DuplicateKeyError:
                # The original keyed images by file name, so it may hold the same bytes twice.
                self._image_files.update_one(
                    {"_id": doc["_id"]}, _set_metadata(metadata, "duplicate_of", sha256)
                )

    # --- errors ----------------------------------------------------------------------------
    @contextmanager
    def _guard(self, conflict: str = "already exists") -> Iterator[None]:
        try:
            yield
        except DuplicateKeyError as error:
            raise Conflict(conflict) from error
        except ConnectionFailure as error:
            raise StoreUnavailable(f"database unavailable: {str(error)[:200]}") from error

    # --- lifecycle -------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            with pymongo.timeout(TIMEOUT_SECONDS):
                self._client.admin.command("ping")
            return True
        except Exception:
            return False

    def close(self) -> None:
        self._client.close()

    # --- users -----------------------------------------------------------------------------
    def add_user(self, username: str, password_hash: str, roles: tuple[str, ...]) -> User:
        doc = {
            "username": username,
            "hashed_password": password_hash,
            "access": list(roles),
            "disabled": False,
            "created_at": now(),
        }
        with self._guard(f"user {username!r} already exists"):
            self._users.insert_one(doc)
        return _user(doc)

    def get_user(self, username: str) -> User | None:
        with self._guard():
            doc = self._users.find_one({"username": username})
        return _user(doc) if doc else None

    def list_users(self) -> list[User]:
        with self._guard():
            return [_user(doc) for doc in self._users.find().sort("username", ASCENDING)]

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        roles: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> User:
        changes: dict[str, Any] = {}
        if password_hash is not None:
            changes["hashed_password"] = password_hash
        if roles is not None:
            changes["access"] = list(roles)
        if disabled is not None:
            changes["disabled"] = disabled
        with self._guard():
            if changes:
                doc = self._users.find_one_and_update(
                    {"username": username},
                    {"$set": changes},
                    return_document=ReturnDocument.AFTER,
                )
            else:
                doc = self._users.find_one({"username": username})
        if doc is None:
            raise NotFound(f"no user {username!r}")
        return _user(doc)

    # --- API tokens ------------------------------------------------------------------------
    def add_token(self, username: str, name: str, token_hash: str,
                  expires_at: datetime | None = None) -> ApiToken:
        doc = {
            "username": username,
            "name": name,
            "token_hash": token_hash,
            "created_at": now(),
            "revoked": False,
            "expires_at": expires_at,
        }
        with self._guard("this token already exists"):
            self._tokens.insert_one(doc)
        return _token(doc)

    def get_token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._guard():
            doc = self._tokens.find_one({"token_hash": token_hash})
        return _token(doc) if doc else None

    def list_tokens(self, username: str) -> list[ApiToken]:
        with self._guard():
            docs = self._tokens.find({"username": username}).sort(_CREATED_NEWEST_FIRST)
            return [_token(doc) for doc in docs]

    def revoke_token(self, username: str, token_id: str) -> bool:
        oid = object_id(token_id)
        if oid is None:
            return False
        with self._guard():
            result = self._tokens.update_one(
                {"_id": oid, "username": username}, {"$set": {"revoked": True}}
            )
        return result.matched_count > 0

    # --- images ----------------------------------------------------------------------------
    def add_image(self, image: NewImage) -> bool:
        metadata = {
            "filename": image.filename,
            "classname": image.label,
            "user": image.username,
            "sha256": image.sha256,
            "label_source": LabelSource(image.label_source).value,
            "source_url": image.source_url,
            "license": image.license,
            "copyright": image.copyright,
        }
        file_id = ObjectId()
        with self._guard():
            if self._image_files.find_one({"metadata.sha256": image.sha256}, {"_id": 1}):
                return False
            try:
                self._images.upload_from_stream_with_id(
                    file_id, image.filename or image.sha256, image.data, metadata=metadata
                )
            except FileExists:
                # Another writer stored the same hash between our check and our insert: the
                # unique index refused our file document, so drop the chunks written before it.
                self._image_chunks.delete_many({"files_id": file_id})
                return False
        return True

    def get_image(self, sha256: str) -> ImageRecord | None:
        with self._guard():
            doc = self._image_files.find_one({"metadata.sha256": sha256})
        return _image(doc) if doc else None

    def get_image_bytes(self, sha256: str) -> bytes | None:
        with self._guard():
            doc = self._image_files.find_one({"metadata.sha256": sha256}, {"_id": 1})
            if doc is None:
                return None
            try:
                return self._images.open_download_stream(doc["_id"]).read()
            except NoFile:
                return None

    def set_image_label(self, sha256: str, label: str, source: LabelSource) -> None:
        with self._guard():
            result = self._image_files.update_one(
                {"metadata.sha256": sha256},
                {"$set": {"metadata.classname": label, "metadata.label_source": source.value}},
            )
        if result.matched_count == 0:
            raise NotFound(f"no image {sha256}")

    def count_images(self, since: datetime | None = None) -> int:
        query = {} if since is None else {"uploadDate": {"$gte": since}}
        with self._guard():
            return self._image_files.count_documents(query)

    def training_images(self, limit: int) -> list[ImageRecord]:
        records: list[ImageRecord] = []
        with self._guard():
            for source in sorted(LABEL_PRIORITY, key=LABEL_PRIORITY.__getitem__):
                if len(records) >= limit:
                    break
                docs = (
                    self._image_files.find(
                        {"metadata.sha256": {"$exists": True}, **_label_source_filter(source)}
                    )
                    .sort([("uploadDate", DESCENDING), ("_id", DESCENDING)])
                    .limit(limit - len(records))
                )
                records.extend(_image(doc) for doc in docs)
        return records

    # --- predictions -----------------------------------------------------------------------
    def add_prediction(self, prediction: NewPrediction) -> Prediction:
        doc = {
            "user": prediction.username,
            "url": prediction.source_url,
            "filename": prediction.filename,
            "datetime": now(),
            "results": [{"name": s.species, "proba": s.probability} for s in prediction.results],
            "image_sha256": prediction.image_sha256,
            "model_name": prediction.model_name,
            "model_version": prediction.model_version,
            "cached": prediction.cached,
            "latency_ms": prediction.latency_ms,
        }
        with self._guard():
            self._predictions.insert_one(doc)
        return _prediction(doc)

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        oid = object_id(prediction_id)
        if oid is None:
            return None
        with self._guard():
            doc = self._predictions.find_one({"_id": oid})
        return _prediction(doc) if doc else None

    def find_computed_prediction(self, image_sha256: str, model_version: str) -> Prediction | None:
        query = {
            "image_sha256": image_sha256,
            "model_version": model_version,
            "cached": {"$ne": True},
        }
        with self._guard():
            doc = self._predictions.find_one(query, sort=_NEWEST_FIRST)
        return _prediction(doc) if doc else None

    def find_recent_url_image(self, source_url: str, since: datetime) -> str | None:
        query = {
            "url": source_url,
            "datetime": {"$gte": since},
            # The original's predictions carry no hash: they cannot answer this.
            "image_sha256": {"$nin": [None, ""]},
        }
        with self._guard():
            doc = self._predictions.find_one(query, {"image_sha256": 1}, sort=_NEWEST_FIRST)
        return doc["image_sha256"] if doc else None

    def recent_predictions(self, limit: int, username: str | None = None) -> list[Prediction]:
        query = {} if username is None else {"user": username}
        with self._guard():
            docs = self._predictions.find(query).sort(_NEWEST_FIRST).limit(limit)
            return [_prediction(doc) for doc in docs]

    def set_feedback(self, prediction_id: str, species: str, username: str) -> Prediction:
        oid = object_id(prediction_id)
        doc = None
        if oid is not None:
            with self._guard():
                doc = self._predictions.find_one_and_update(
                    {"_id": oid},
                    {
                        "$set": {
                            "feedback_species": species,
                            "feedback_username": username,
                            "feedback_at": now(),
                        }
                    },
                    return_document=ReturnDocument.AFTER,
                )
        if doc is None:
            raise NotFound(f"no prediction {prediction_id!r}")
        return _prediction(doc)

    def count_predictions(self) -> int:
        with self._guard():
            return self._predictions.count_documents({})

    # --- parameters and events -------------------------------------------------------------
    def get_parameter(self, name: str) -> str | None:
        with self._guard():
            doc = self._parameters.find_one({"param_name": name})
        if doc is None or doc.get("param_value") is None:
            return None
        return str(doc["param_value"])

    def set_parameter(self, name: str, value: str) -> None:
        # update_many: should the original have left duplicates, they all agree afterwards.
        with self._guard():
            self._parameters.update_many(
                {"param_name": name}, {"$set": {"param_value": value}}, upsert=True
            )

    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        doc = {"kind": kind, "payload": dict(payload), "created_at": now()}
        with self._guard():
            self._events.insert_one(doc)
        return _event(doc)

    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        with self._guard():
            docs = self._events.find({"kind": kind}).sort(_CREATED_NEWEST_FIRST).limit(limit)
            return [_event(doc) for doc in docs]

    # --- jobs --------------------------------------------------------------------------------
    def add_job(self, kind: str, params: dict[str, Any], username: str | None) -> Job:
        doc = {
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
            raise NotFound(f"no job {job_id!r}")
        moment = now()
        changes: dict[str, Any] = {"heartbeat_at": moment}
        if state is not None:
            changes["state"] = state.value
            if state in (JobState.SUCCEEDED, JobState.FAILED):
                changes["finished_at"] = moment
        if progress is not None:
            changes["progress"] = dict(progress)
        if result is not None:
            changes["result"] = dict(result)
        if error is not None:
            changes["error"] = error
        with self._guard():
            if state is JobState.RUNNING:
                # Only the first start counts; a null filter also matches a missing field.
                self._jobs.update_one(
                    {"_id": oid, "started_at": None}, {"$set": {"started_at": moment}}
                )
            doc = self._jobs.find_one_and_update(
                {"_id": oid}, {"$set": changes}, return_document=ReturnDocument.AFTER
            )
        if doc is None:
            raise NotFound(f"no job {job_id!r}")
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
            docs = self._jobs.find(query).sort(_CREATED_NEWEST_FIRST).limit(limit)
            return [_job(doc) for doc in docs]


# --- documents to records -----------------------------------------------------------------
def _set_metadata(metadata: Any, field: str, value: str) -> dict[str, Any]:
    # A GridFS file written without metadata has none (or null): set the whole document then.
    if isinstance(metadata, Mapping):
        return {"$set": {f"metadata.{field}": value}}
    return {"$set": {"metadata": {field: value}}}


def _label_source_filter(source: LabelSource) -> dict[str, Any]:
    if source is LEGACY_LABEL_SOURCE:
        others = [s.value for s in LabelSource if s is not LEGACY_LABEL_SOURCE]
        return {"metadata.label_source": {"$nin": others}}
    return {"metadata.label_source": source.value}


def _as_utc(value: Any, fallback_id: Any = None) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, str):
        try:
            return _as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    if isinstance(fallback_id, ObjectId):
        return fallback_id.generation_time
    return datetime.fromtimestamp(0, timezone.utc)


def _text(value: Any) -> str:
    # bcrypt.hashpw returns bytes, which the original may have stored as BSON binary.
    return value.decode() if isinstance(value, bytes) else str(value or "")


def _user(doc: Mapping[str, Any]) -> User:
    access = doc.get("access") or ()
    return User(
        username=doc["username"],
        password_hash=_text(doc.get("hashed_password")),
        roles=(access,) if isinstance(access, str) else tuple(access),
        disabled=bool(doc.get("disabled", False)),
        created_at=_as_utc(doc.get("created_at"), doc.get("_id")),
    )


def _token(doc: Mapping[str, Any]) -> ApiToken:
    return ApiToken(
        id=str(doc["_id"]),
        username=doc["username"],
        name=doc["name"],
        token_hash=doc["token_hash"],
        created_at=_as_utc(doc["created_at"]),
        revoked=bool(doc.get("revoked", False)),
        expires_at=_as_utc(doc["expires_at"]) if doc.get("expires_at") else None,
    )


def _image(doc: Mapping[str, Any]) -> ImageRecord:
    metadata = doc.get("metadata") or {}
    try:
        source = LabelSource(metadata.get("label_source"))
    except ValueError:
        source = LEGACY_LABEL_SOURCE
    return ImageRecord(
        sha256=metadata["sha256"],
        label=str(metadata.get("classname") or ""),
        label_source=source,
        source_url=metadata.get("source_url"),
        # GridFS's own filename is the hash when ChampiPy had no name: only a fallback.
        filename=metadata["filename"] if "filename" in metadata else doc.get("filename"),
        username=metadata.get("user"),
        created_at=_as_utc(doc.get("uploadDate"), doc.get("_id")),
        size=int(doc.get("length", 0)),
        license=metadata.get("license"),
        copyright=metadata.get("copyright"),
    )


def _prediction(doc: Mapping[str, Any]) -> Prediction:
    return Prediction(
        id=str(doc["_id"]),
        username=str(doc.get("user") or ""),
        image_sha256=str(doc.get("image_sha256") or ""),
        model_name=str(doc.get("model_name") or ""),
        model_version=str(doc.get("model_version") or ""),
        results=tuple(
            SpeciesScore(str(r["name"]), float(r["proba"])) for r in doc.get("results") or ()
        ),
        source_url=doc.get("url"),
        filename=doc.get("filename"),
        cached=bool(doc.get("cached", False)),
        latency_ms=doc.get("latency_ms"),
        created_at=_as_utc(doc.get("datetime"), doc.get("_id")),
        feedback_species=doc.get("feedback_species"),
        feedback_username=doc.get("feedback_username"),
        feedback_at=_as_utc(doc["feedback_at"]) if doc.get("feedback_at") else None,
    )


def _event(doc: Mapping[str, Any]) -> Event:
    return Event(
        kind=doc["kind"], payload=doc.get("payload") or {}, created_at=_as_utc(doc["created_at"])
    )


def _job(doc: Mapping[str, Any]) -> Job:
    def optional_time(name: str) -> datetime | None:
        value = doc.get(name)
        return _as_utc(value) if value else None

    return Job(
        id=str(doc["_id"]),
        kind=doc["kind"],
        params=doc.get("params") or {},
        state=JobState(doc["state"]),
        username=doc.get("username"),
        created_at=_as_utc(doc["created_at"]),
        progress=doc.get("progress") or {},
        result=doc.get("result"),
        error=doc.get("error"),
        started_at=optional_time("started_at"),
        finished_at=optional_time("finished_at"),
        heartbeat_at=optional_time("heartbeat_at"),
    )
