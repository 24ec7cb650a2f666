"""The MongoDB backend's shared base: one client, the collections, indexes, errors.

Each aggregate's methods live in their own module (``users``, ``images``, ...) as mixins over
``MongoBase``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import ObjectId
from gridfs import GridFSBucket
from pymongo import ASCENDING, DESCENDING, MongoClient, uri_parser
from pymongo.collection import Collection
from pymongo.errors import ConnectionFailure, DuplicateKeyError, OperationFailure

from ...errors import Conflict, StoreUnavailable
from ..ports import Lifecycle
from ..records import utcnow

log = logging.getLogger(__name__)

Document = dict[str, Any]

DEFAULT_DATABASE = "champipy_db"
IMAGE_BUCKET = "img_store"
TIMEOUT_SECONDS = 3
# Defaults only: the same options written in the URL win.
CLIENT_DEFAULTS: dict[str, Any] = {
    "serverSelectionTimeoutMS": TIMEOUT_SECONDS * 1000,
    "connectTimeoutMS": TIMEOUT_SECONDS * 1000,
    "socketTimeoutMS": 20_000,
}
# MongoDB refuses to build an index whose name or options differ from an existing one.
INDEX_CONFLICT_CODES = {85, 86}
# Multi-document transactions need a replica set or a sharded cluster; a standalone server
# (and the mongoeco test server) has none.
TRANSACTIONAL_TOPOLOGIES = {"ReplicaSetWithPrimary", "Sharded", "LoadBalanced"}

NEWEST_FIRST = [("datetime", DESCENDING), ("_id", DESCENDING)]
CREATED_NEWEST_FIRST = [("created_at", DESCENDING), ("_id", DESCENDING)]


def now() -> datetime:
    """The current UTC time at BSON's millisecond precision, so what we return is what we read."""
    moment = utcnow()
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def object_id(value: str) -> ObjectId | None:
    return ObjectId(value) if isinstance(value, str) and ObjectId.is_valid(value) else None


class MongoBase(Lifecycle):
    def __init__(self, url: str):
        parsed = uri_parser.parse_uri(url)
        given = {name.lower() for name in parsed["options"]}
        options = {k: v for k, v in CLIENT_DEFAULTS.items() if k.lower() not in given}
        self._client: MongoClient[Document] = MongoClient(url, tz_aware=True, tzinfo=UTC, **options)
        self._db = self._client[parsed["database"] or DEFAULT_DATABASE]
        self._users: Collection[Document] = self._db["users"]
        self._tokens: Collection[Document] = self._db["api_tokens"]
        self._predictions: Collection[Document] = self._db["predictions"]
        self._observations: Collection[Document] = self._db["observations"]
        self._parameters: Collection[Document] = self._db["parameters"]
        self._events: Collection[Document] = self._db["events"]
        self._jobs: Collection[Document] = self._db["jobs"]
        self._images = GridFSBucket(self._db, bucket_name=IMAGE_BUCKET)
        self._image_files: Collection[Document] = self._db[f"{IMAGE_BUCKET}.files"]
        self._image_chunks: Collection[Document] = self._db[f"{IMAGE_BUCKET}.chunks"]
        try:
            with self._guard():
                self._create_indexes()
                self._hash_legacy_images()
        except BaseException:
            self.close()
            raise

    # --- setup ---------------------------------------------------------------------------
    def _create_indexes(self) -> None:
        wanted: list[tuple[Collection[Document], list[tuple[str, int]], dict[str, Any]]] = [
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
            (self._observations, [("user", ASCENDING), ("datetime", DESCENDING)], {}),
            (self._observations, [("datetime", DESCENDING)], {}),
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
                self._image_files.update_one({"_id": doc["_id"]}, _set_metadata(metadata, "sha256", sha256))
            except DuplicateKeyError:
                # The original keyed images by file name, so it may hold the same bytes twice.
                self._image_files.update_one({"_id": doc["_id"]}, _set_metadata(metadata, "duplicate_of", sha256))

    # --- errors and transactions ----------------------------------------------------------
    @contextmanager
    def _guard(self, conflict: str = "already exists") -> Iterator[None]:
        try:
            yield
        except DuplicateKeyError as error:
            raise Conflict(conflict) from error
        except ConnectionFailure as error:
            raise StoreUnavailable(f"database unavailable: {str(error)[:200]}") from error

    def _supports_transactions(self) -> bool:
        """Whether the server can run multi-document transactions (known once connected)."""
        return self._client.topology_description.topology_type_name in TRANSACTIONAL_TOPOLOGIES

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


# --- documents ------------------------------------------------------------------------------
def _set_metadata(metadata: Any, field: str, value: str) -> dict[str, Any]:
    # A GridFS file written without metadata has none (or null): set the whole document then.
    if isinstance(metadata, Mapping):
        return {"$set": {f"metadata.{field}": value}}
    return {"$set": {"metadata": {field: value}}}


def as_utc(value: Any, fallback_id: Any = None) -> datetime:
    """A stored time as aware UTC: the original wrote naive times, sometimes ISO text."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value))
        except ValueError:
            pass
    if isinstance(fallback_id, ObjectId):
        moment: datetime = fallback_id.generation_time
        return moment
    return datetime.fromtimestamp(0, UTC)


def optional_utc(value: Any) -> datetime | None:
    return as_utc(value) if value else None
