"""Images in SQL: metadata in ``images``, bytes in ``image_blobs``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from ..ports import ImageRepository
from ..records import ImageRecord, LabelSource, NewImage, SpeciesCount, utcnow
from ..rules import LABEL_PRIORITY, UNKNOWN_LABEL_RANK, no_image, species_counts
from ..sql_models import ImageBlobRow, ImageRow
from .engine import SqlBase, dialect_name, rowcount

_IMAGES = cast(Table, ImageRow.__table__)
_BLOB_INSERT = cast(Table, ImageBlobRow.__table__).insert()
# ON CONFLICT DO NOTHING: a concurrent writer of the same image is not an error. Built once per
# dialect with the values bound at execution: building ``.values(...)`` on every call was half
# the cost of keeping a photo (SQLite, timed alone: 0.65 -> 0.27 ms).
_IMAGE_INSERTS = {
    name: insert(_IMAGES).on_conflict_do_nothing(index_elements=[_IMAGES.c.sha256]).returning(_IMAGES.c.sha256)
    for name, insert in (("sqlite", sqlite.insert), ("postgresql", postgresql.insert))
}


class SqlImages(SqlBase, ImageRepository):
    def add_image(self, image: NewImage) -> bool:
        # Every confident prediction writes one: Core inserts on a connection, as add_prediction.
        with self._connection() as connection:
            return insert_image(connection, image)

    def get_image(self, sha256: str) -> ImageRecord | None:
        with self._reading() as session:
            row = session.get(ImageRow, sha256)
            return _image(row) if row else None

    def get_image_bytes(self, sha256: str) -> bytes | None:
        with self._reading() as session:
            return session.scalar(select(ImageBlobRow.data).where(ImageBlobRow.sha256 == sha256))

    def set_image_label(self, sha256: str, label: str, source: LabelSource) -> None:
        with self._writing() as session:
            if not label_image(session, sha256, label, source):
                raise no_image(sha256)

    def count_images(self, since: datetime | None = None) -> int:
        query = select(func.count()).select_from(ImageRow)
        if since is not None:
            query = query.where(ImageRow.created_at >= since)
        with self._reading() as session:
            return session.scalar(query) or 0

    def training_images(self, limit: int) -> list[ImageRecord]:
        priority = case(
            {source.value: rank for source, rank in LABEL_PRIORITY.items()},
            value=ImageRow.label_source,
            else_=UNKNOWN_LABEL_RANK,
        )
        with self._reading() as session:
            rows = session.scalars(
                select(ImageRow).order_by(priority, ImageRow.created_at.desc(), ImageRow.sha256).limit(limit)
            )
            return [_image(row) for row in rows]

    def species_counts(self) -> list[SpeciesCount]:
        query = select(ImageRow.label, ImageRow.label_source, func.count()).group_by(
            ImageRow.label, ImageRow.label_source
        )
        with self._reading() as session:
            return species_counts((label, source, n) for label, source, n in session.execute(query))


# --- in a caller's transaction ------------------------------------------------------------------
def insert_image(session: Session | Connection, image: NewImage) -> bool:
    """Store the image once by hash; False, changing nothing, when it is already stored."""
    if session.execute(_IMAGE_INSERTS[dialect_name(session)], _image_columns(image)).scalar() is None:
        return False
    session.execute(_BLOB_INSERT, {"sha256": image.sha256, "data": image.data})
    return True


def label_image(session: Session, sha256: str, label: str, source: LabelSource) -> bool:
    """Relabel a stored image; False when it is not stored."""
    result = session.execute(
        update(ImageRow)
        .where(ImageRow.sha256 == sha256)
        .values(label=label, label_source=source.value, label_probability=None)
    )
    return rowcount(result) > 0


# --- rows to records ----------------------------------------------------------------------
def _image_columns(image: NewImage) -> dict[str, Any]:
    return dict(
        sha256=image.sha256,
        label=image.label,
        label_source=LabelSource(image.label_source).value,
        source_url=image.source_url,
        filename=image.filename,
        username=image.username,
        license=image.license,
        copyright=image.copyright,
        size=len(image.data),
        created_at=utcnow(),
        label_probability=image.label_probability,
    )


def _image(row: ImageRow) -> ImageRecord:
    return ImageRecord(
        sha256=row.sha256,
        label=row.label,
        label_source=LabelSource(row.label_source),
        source_url=row.source_url,
        filename=row.filename,
        username=row.username,
        created_at=row.created_at,
        size=row.size,
        license=row.license,
        copyright=row.copyright,
        label_probability=row.label_probability,
    )
