"""Tables of the SQL backend (SQLite and PostgreSQL). Migrations live in ``migrations/``.

Usernames are plain columns, not foreign keys, so that the SQL and MongoDB backends accept
exactly the same calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """Stores UTC and always returns timezone-aware UTC datetimes.

    SQLite has no time zone type: it keeps naive UTC text (which also sorts correctly), so
    the zone is put back on read. PostgreSQL returns the session's zone, converted here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSON columns that may be absent store SQL NULL rather than the JSON literal null.
NullableJSON = JSON(none_as_null=True)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime}


class UserRow(Base):
    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(150), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[Any]] = mapped_column(JSON)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(150), index=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class ImageRow(Base):
    """An image's metadata; the bytes are in ``image_blobs`` so listings never load them."""

    __tablename__ = "images"

    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(200))
    label_source: Mapped[str] = mapped_column(String(16))
    source_url: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    username: Mapped[str | None] = mapped_column(String(150))
    license: Mapped[str | None] = mapped_column(String(255))
    copyright: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(index=True)
    label_probability: Mapped[float | None] = mapped_column(Float)  # predicted labels only


class ImageBlobRow(Base):
    __tablename__ = "image_blobs"

    sha256: Mapped[str] = mapped_column(String(64), ForeignKey("images.sha256", ondelete="CASCADE"), primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class PredictionRow(Base):
    __tablename__ = "predictions"
    __table_args__ = (
        Index("ix_predictions_image_version", "image_sha256", "model_version"),
        Index("ix_predictions_url_created", "source_url", "created_at"),
        Index("ix_predictions_user_created", "username", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    image_sha256: Mapped[str] = mapped_column(String(64))
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    # [{"name": species, "proba": probability}, ...]: the original MongoDB layout's words.
    results: Mapped[list[Any]] = mapped_column(JSON)
    source_url: Mapped[str | None] = mapped_column(Text)
    filename: Mapped[str | None] = mapped_column(String(255))
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    # Both NULL when the model version had no open-set score.
    open_set_score: Mapped[float | None] = mapped_column(Float)
    open_set_threshold: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(index=True)
    feedback_species: Mapped[str | None] = mapped_column(String(200))
    feedback_username: Mapped[str | None] = mapped_column(String(150))
    feedback_at: Mapped[datetime | None]


class ObservationRow(Base):
    __tablename__ = "observations"
    __table_args__ = (Index("ix_observations_user_created", "username", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    username: Mapped[str] = mapped_column(String(150))
    prediction_ids: Mapped[list[Any]] = mapped_column(JSON)
    # [{"name": species, "proba": probability}, ...], like predictions.results
    results: Mapped[list[Any]] = mapped_column(JSON)
    model_name: Mapped[str] = mapped_column(String(200))
    model_version: Mapped[str] = mapped_column(String(100))
    recognised: Mapped[bool | None] = mapped_column(Boolean)
    mo_observation_id: Mapped[int | None] = mapped_column(BigInteger)
    mo_consensus: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(index=True)


class ParameterRow(Base):
    __tablename__ = "parameters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class EventRow(Base):
    __tablename__ = "events"
    __table_args__ = (Index("ix_events_kind_created", "kind", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class JobRow(Base):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_state_created", "state", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    username: Mapped[str | None] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(index=True)
    progress: Mapped[dict[str, Any]] = mapped_column(JSON)
    result: Mapped[dict[str, Any] | None] = mapped_column(NullableJSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
