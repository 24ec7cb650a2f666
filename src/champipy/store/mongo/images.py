"""Images in MongoDB: the original's GridFS bucket ``img_store``.

The original wrote ``fs.put(data, filename=<URL basename>, classname=..., user=...)``, so its
label and user are top-level fields of ``img_store.files``; ChampiPy writes them there too
(the original's fine-tune reads ``grid_out.classname``) and keeps its own fields (sha256,
label_source, ...) with a copy of the label under ``metadata``. Reads take ``metadata`` first,
then the top-level field.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from bson import ObjectId
from gridfs import GridIn
from gridfs.errors import FileExists, NoFile
from pymongo import DESCENDING
from pymongo.client_session import ClientSession

from ..ports import ImageRepository
from ..records import ImageRecord, LabelSource, NewImage, SpeciesCount
from ..rules import LABELS_BY_PRIORITY, no_image, species_counts
from .client import IMAGE_BUCKET, MongoBase, as_utc

# The original stored images only when the model was confident: a missing source means that.
LEGACY_LABEL_SOURCE = LabelSource.PREDICTED
# An image without a label (in metadata or, as the original wrote it, top-level) never trains.
LABELLED: dict[str, Any] = {"$or": [{"metadata.classname": {"$nin": [None, ""]}}, {"classname": {"$nin": [None, ""]}}]}


class MongoImages(MongoBase, ImageRepository):
    def add_image(self, image: NewImage) -> bool:
        with self._guard():
            return insert_image(self, image)

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
                data: bytes = self._images.open_download_stream(doc["_id"]).read()
            except NoFile:
                return None
            return data

    def set_image_label(self, sha256: str, label: str, source: LabelSource) -> None:
        with self._guard():
            labelled = label_image(self, sha256, label, source)
        if not labelled:
            raise no_image(sha256)

    def count_images(self, since: datetime | None = None) -> int:
        query = {} if since is None else {"uploadDate": {"$gte": since}}
        with self._guard():
            return self._image_files.count_documents(query)

    def training_images(self, limit: int) -> list[ImageRecord]:
        records: list[ImageRecord] = []
        with self._guard():
            for source in LABELS_BY_PRIORITY:
                if len(records) >= limit:
                    break
                query = {"metadata.sha256": {"$exists": True}, **_label_source_filter(source), **LABELLED}
                docs = (
                    self._image_files.find(query)
                    .sort([("uploadDate", DESCENDING), ("_id", DESCENDING)])
                    .limit(limit - len(records))
                )
                records.extend(_image(doc) for doc in docs)
        return records

    def species_counts(self) -> list[SpeciesCount]:
        fields = {"classname": 1, "metadata.classname": 1, "metadata.label_source": 1}
        with self._guard():
            docs = list(self._image_files.find(LABELLED, fields))
        return species_counts((_image_label(doc), _source(doc).value, 1) for doc in docs)


# --- also used in the feedback transaction ---------------------------------------------------
def insert_image(base: MongoBase, image: NewImage, session: ClientSession | None = None) -> bool:
    """Store the image once by hash; False, changing nothing, when it is already stored.

    In a transaction (``session`` given), a concurrent writer of the same hash makes this
    raise ``FileExists``, which aborts the transaction: the caller retries it.
    """
    metadata = {
        "filename": image.filename,
        "classname": image.label,
        "user": image.username,
        "sha256": image.sha256,
        "label_source": LabelSource(image.label_source).value,
        "source_url": image.source_url,
        "license": image.license,
        "copyright": image.copyright,
        "label_probability": image.label_probability,
    }
    file_id = ObjectId()
    if base._image_files.find_one({"metadata.sha256": image.sha256}, {"_id": 1}, session=session):
        return False
    try:
        # GridFSBucket can only write ``metadata``; GridIn, like the original's fs.put, also
        # writes top-level fields, all in the one file document.
        with GridIn(
            base._db[IMAGE_BUCKET],
            session=session,
            _id=file_id,
            filename=image.filename or image.sha256,
            metadata=metadata,
            classname=image.label,
            user=image.username,
        ) as upload:
            upload.write(image.data)
    except FileExists:
        if session is not None:
            raise
        # Another writer stored the same hash between our check and our insert: the
        # unique index refused our file document, so drop the chunks written before it.
        base._image_chunks.delete_many({"files_id": file_id})
        return False
    return True


def label_image(
    base: MongoBase,
    sha256: str,
    label: str,
    source: LabelSource,
    session: ClientSession | None = None,
) -> bool:
    """Relabel a stored image; False when it is not stored."""
    result = base._image_files.update_one(
        {"metadata.sha256": sha256},
        {
            "$set": {
                "metadata.classname": label,
                "classname": label,
                "metadata.label_source": source.value,
                "metadata.label_probability": None,
            }
        },
        session=session,
    )
    if result.matched_count:
        # The original may hold the same bytes under another name; its fine-tune reads each
        # file's own classname, so those copies take the new label too.
        base._image_files.update_many(
            {"metadata.duplicate_of": sha256}, {"$set": {"classname": label}}, session=session
        )
    return result.matched_count > 0


# --- documents to records -----------------------------------------------------------------
def _label_source_filter(source: LabelSource) -> dict[str, Any]:
    if source is LEGACY_LABEL_SOURCE:
        others = [s.value for s in LabelSource if s is not LEGACY_LABEL_SOURCE]
        return {"metadata.label_source": {"$nin": others}}
    return {"metadata.label_source": source.value}


def _source(doc: Mapping[str, Any]) -> LabelSource:
    try:
        return LabelSource(str((doc.get("metadata") or {}).get("label_source")))
    except ValueError:
        return LEGACY_LABEL_SOURCE


def _image_label(doc: Mapping[str, Any]) -> str:
    return str((doc.get("metadata") or {}).get("classname") or doc.get("classname") or "")


def _image(doc: Mapping[str, Any]) -> ImageRecord:
    metadata = doc.get("metadata") or {}
    return ImageRecord(
        sha256=metadata["sha256"],
        label=_image_label(doc),
        label_source=_source(doc),
        source_url=metadata.get("source_url"),
        # GridFS's own filename is the hash when ChampiPy had no name: only a fallback.
        filename=metadata["filename"] if "filename" in metadata else doc.get("filename"),
        username=metadata.get("user") or doc.get("user"),
        created_at=as_utc(doc.get("uploadDate"), doc.get("_id")),
        size=int(doc.get("length", 0)),
        license=metadata.get("license"),
        copyright=metadata.get("copyright"),
        label_probability=metadata.get("label_probability"),
    )
