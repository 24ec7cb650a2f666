"""The SQL backend: SQLite (default, one file) or PostgreSQL, through SQLAlchemy 2.

One engine per store, a short session per call: the store is shared by the threads of the
FastAPI pool. The schema is brought to the latest Alembic revision when the store opens.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Insert, case, create_engine, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

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
from .sql_models import (
    ApiTokenRow,
    EventRow,
    ImageBlobRow,
    ImageRow,
    JobRow,
    ParameterRow,
    PredictionRow,
    UserRow,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
CONNECT_TIMEOUT_SECONDS = 3
SQLITE_BUSY_TIMEOUT_MS = 10_000
# Any constant works: it only has to be the same for every process migrating one database.
MIGRATION_LOCK_KEY = 0x43_68_61_6D_70_69

_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)


def engine_url(url: str) -> URL:
    """The SQLAlchemy URL, with psycopg 3 as the PostgreSQL driver."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def alembic_config(url: str | URL) -> Config:
    """An Alembic configuration in code: no alembic.ini is shipped or needed."""
    config = Config()
    # ConfigParser interpolates '%', which may appear in paths and passwords.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    rendered = engine_url(url) if isinstance(url, str) else url
    config.set_main_option(
        "sqlalchemy.url", rendered.render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def new_id() -> str:
    return uuid.uuid4().hex


class SqlStore(Store):
    def __init__(self, url: str):
        self._url = engine_url(url)
        self._is_sqlite = self._url.get_backend_name() == "sqlite"
        self._engine = self._create_engine(self._url)
        # Writers on SQLite take the write lock up front (BEGIN IMMEDIATE): a reader that
        # upgrades to a writer later can fail at once with "database is locked" in WAL mode.
        self._write_engine = self._engine.execution_options(sqlite_begin="BEGIN IMMEDIATE")
        self._read_sessions = sessionmaker(self._engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(self._write_engine, expire_on_commit=False)
        # PostgreSQL health checks use a fresh connection so a wedged pooled one cannot hang
        # them: connect_timeout then bounds the whole check.
        self._ping_engine = (
            self._engine
            if self._is_sqlite
            else create_engine(self._url, poolclass=NullPool, connect_args=self._pg_connect_args())
        )
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    # --- setup ---------------------------------------------------------------------------
    def _pg_connect_args(self) -> dict[str, Any]:
        # Settings already in the URL's query win over these defaults.
        defaults: dict[str, Any] = {
            "connect_timeout": CONNECT_TIMEOUT_SECONDS,
            "keepalives": 1,
            "keepalives_idle": 30,
            "keepalives_interval": 10,
            "keepalives_count": 3,
        }
        return {key: value for key, value in defaults.items() if key not in self._url.query}

    def _create_engine(self, url: URL) -> Engine:
        if not self._is_sqlite:
            return create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                pool_timeout=10,
                connect_args=self._pg_connect_args(),
            )
        engine = create_engine(url)
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine

    def _migrate(self) -> None:
        with self._guard(), self._write_engine.begin() as connection:
            if not self._is_sqlite:
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
            self._upgrade(connection)

    def _upgrade(self, connection: Connection) -> None:
        config = alembic_config(self._url)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")

    # --- sessions and errors --------------------------------------------------------------
    @contextmanager
    def _guard(self, conflict: str = "already exists") -> Iterator[None]:
        try:
            yield
        except IntegrityError as error:
            raise Conflict(conflict) from error
        except _UNAVAILABLE as error:
            raise StoreUnavailable(f"database unavailable: {_first_line(error)}") from error
        except DBAPIError as error:
            if error.connection_invalidated:
                raise StoreUnavailable(f"database unavailable: {_first_line(error)}") from error
            raise

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._guard(), self._read_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _writing(self, conflict: str = "already exists") -> Iterator[Session]:
        with self._guard(conflict), self._write_sessions() as session, session.begin():
            yield session

    # --- lifecycle -------------------------------------------------------------------------
    def ping(self) -> bool:
        try:
            with self._ping_engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
            return True
        except Exception:
            return False

    def close(self) -> None:
        self._engine.dispose()
        self._ping_engine.dispose()

    # --- users -----------------------------------------------------------------------------
    def add_user(self, username: str, password_hash: str, roles: tuple[str, ...]) -> User:
        row = UserRow(
            username=username,
            password_hash=password_hash,
            roles=list(roles),
            disabled=False,
            created_at=utcnow(),
        )
        with self._writing(f"user {username!r} already exists") as session:
            session.add(row)
        return _user(row)

    def get_user(self, username: str) -> User | None:
        with self._reading() as session:
            row = session.get(UserRow, username)
            return _user(row) if row else None

    def list_users(self) -> list[User]:
        with self._reading() as session:
            rows = session.scalars(select(UserRow).order_by(UserRow.username))
            return [_user(row) for row in rows]

    def update_user(
        self,
        username: str,
        *,
        password_hash: str | None = None,
        roles: tuple[str, ...] | None = None,
        disabled: bool | None = None,
    ) -> User:
        with self._writing() as session:
            row = session.get(UserRow, username)
            if row is None:
                raise NotFound(f"no user {username!r}")
            if password_hash is not None:
                row.password_hash = password_hash
            if roles is not None:
                row.roles = list(roles)
            if disabled is not None:
                row.disabled = disabled
        return _user(row)

    # --- API tokens ------------------------------------------------------------------------
    def add_token(self, username: str, name: str, token_hash: str,
                  expires_at: datetime | None = None) -> ApiToken:
        row = ApiTokenRow(
            id=new_id(),
            username=username,
            name=name,
            token_hash=token_hash,
            created_at=utcnow(),
            revoked=False,
            expires_at=expires_at,
        )
        with self._writing("this token already exists") as session:
            session.add(row)
        return _token(row)

    def get_token_by_hash(self, token_hash: str) -> ApiToken | None:
        with self._reading() as session:
            row = session.scalar(select(ApiTokenRow).where(ApiTokenRow.token_hash == token_hash))
            return _token(row) if row else None

    def list_tokens(self, username: str) -> list[ApiToken]:
        with self._reading() as session:
            rows = session.scalars(
                select(ApiTokenRow)
                .where(ApiTokenRow.username == username)
                .order_by(ApiTokenRow.created_at.desc(), ApiTokenRow.id)
            )
            return [_token(row) for row in rows]

    def revoke_token(self, username: str, token_id: str) -> bool:
        with self._writing() as session:
            result = session.execute(
                update(ApiTokenRow)
                .where(ApiTokenRow.id == token_id, ApiTokenRow.username == username)
                .values(revoked=True)
            )
            return result.rowcount > 0

    # --- images ----------------------------------------------------------------------------
    def _insert(self, row_class: type[Any]) -> Insert:
        dialect = sqlite if self._is_sqlite else postgresql
        return dialect.insert(row_class)

    def add_image(self, image: NewImage) -> bool:
        # ON CONFLICT DO NOTHING: a concurrent writer of the same image is not an error.
        insert_metadata = (
            self._insert(ImageRow)
            .values(**_image_columns(image))
            .on_conflict_do_nothing(index_elements=[ImageRow.sha256])
            .returning(ImageRow.sha256)
        )
        with self._writing() as session:
            if session.execute(insert_metadata).scalar() is None:
                return False
            session.add(ImageBlobRow(sha256=image.sha256, data=image.data))
        return True

    def get_image(self, sha256: str) -> ImageRecord | None:
        with self._reading() as session:
            row = session.get(ImageRow, sha256)
            return _image(row) if row else None

    def get_image_bytes(self, sha256: str) -> bytes | None:
        with self._reading() as session:
            return session.scalar(select(ImageBlobRow.data).where(ImageBlobRow.sha256 == sha256))

    def set_image_label(self, sha256: str, label: str, source: LabelSource) -> None:
        with self._writing() as session:
            result = session.execute(
                update(ImageRow)
                .where(ImageRow.sha256 == sha256)
                .values(label=label, label_source=source.value)
            )
            if result.rowcount == 0:
                raise NotFound(f"no image {sha256}")

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
            else_=len(LABEL_PRIORITY),
        )
        with self._reading() as session:
            rows = session.scalars(
                select(ImageRow)
                .order_by(priority, ImageRow.created_at.desc(), ImageRow.sha256)
                .limit(limit)
            )
            return [_image(row) for row in rows]

    # --- predictions -----------------------------------------------------------------------
    def add_prediction(self, prediction: NewPrediction) -> Prediction:
        stored = Prediction(
            id=new_id(), username=prediction.username, image_sha256=prediction.image_sha256,
            model_name=prediction.model_name, model_version=prediction.model_version,
            results=tuple(prediction.results), source_url=prediction.source_url,
            filename=prediction.filename, cached=prediction.cached, latency_ms=prediction.latency_ms,
            created_at=utcnow(),
        )
        # Every request writes one row, cached answers included: a Core insert on a connection
        # costs 0.3 ms where the ORM unit of work cost 0.8 (SQLite, measured).
        with self._guard(), self._write_engine.begin() as connection:
            connection.execute(_PREDICTION_INSERT, {
                "id": stored.id, "username": stored.username, "image_sha256": stored.image_sha256,
                "model_name": stored.model_name, "model_version": stored.model_version,
                "results": [{"name": s.species, "proba": s.probability} for s in stored.results],
                "source_url": stored.source_url, "filename": stored.filename, "cached": stored.cached,
                "latency_ms": stored.latency_ms, "created_at": stored.created_at,
            })
        return stored

    def get_prediction(self, prediction_id: str) -> Prediction | None:
        with self._reading() as session:
            row = session.get(PredictionRow, prediction_id)
            return _prediction(row) if row else None

    def find_computed_prediction(self, image_sha256: str, model_version: str) -> Prediction | None:
        with self._reading() as session:
            row = session.scalar(
                select(PredictionRow)
                .where(
                    PredictionRow.image_sha256 == image_sha256,
                    PredictionRow.model_version == model_version,
                    PredictionRow.cached.is_(False),
                )
                .order_by(PredictionRow.created_at.desc())
                .limit(1)
            )
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
                raise NotFound(f"no prediction {prediction_id!r}")
            row.feedback_species = species
            row.feedback_username = username
            row.feedback_at = utcnow()
        return _prediction(row)

    def count_predictions(self) -> int:
        with self._reading() as session:
            return session.scalar(select(func.count()).select_from(PredictionRow)) or 0

    # --- parameters and events -------------------------------------------------------------
    def get_parameter(self, name: str) -> str | None:
        with self._reading() as session:
            row = session.get(ParameterRow, name)
            return row.value if row else None

    def set_parameter(self, name: str, value: str) -> None:
        upsert = (
            self._insert(ParameterRow)
            .values(name=name, value=value)
            .on_conflict_do_update(index_elements=[ParameterRow.name], set_={"value": value})
        )
        with self._writing() as session:
            session.execute(upsert)

    def add_event(self, kind: str, payload: dict[str, Any]) -> Event:
        row = EventRow(id=new_id(), kind=kind, payload=dict(payload), created_at=utcnow())
        with self._writing() as session:
            session.add(row)
        return Event(kind=row.kind, payload=row.payload, created_at=row.created_at)

    def list_events(self, kind: str, limit: int = 100) -> list[Event]:
        with self._reading() as session:
            rows = session.scalars(
                select(EventRow)
                .where(EventRow.kind == kind)
                .order_by(EventRow.created_at.desc(), EventRow.id)
                .limit(limit)
            )
            return [Event(kind=r.kind, payload=r.payload, created_at=r.created_at) for r in rows]

    # --- jobs --------------------------------------------------------------------------------
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
        now = utcnow()
        with self._writing() as session:
            row = session.get(JobRow, job_id, with_for_update=not self._is_sqlite)
            if row is None:
                raise NotFound(f"no job {job_id!r}")
            if state is not None:
                row.state = state.value
                if state is JobState.RUNNING and row.started_at is None:
                    row.started_at = now
                if state in (JobState.SUCCEEDED, JobState.FAILED):
                    row.finished_at = now
            if progress is not None:
                row.progress = dict(progress)
            if result is not None:
                row.result = dict(result)
            if error is not None:
                row.error = error
            row.heartbeat_at = now
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


# --- SQLite connection set-up ----------------------------------------------------------------
def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" hook below issue BEGIN instead of the sqlite3 module.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        # WAL lets readers work while one writer writes; it sticks to the file once set.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _begin_sqlite_transaction(connection: Connection) -> None:
    connection.exec_driver_sql(connection.get_execution_options().get("sqlite_begin", "BEGIN"))


# --- rows to records ----------------------------------------------------------------------
def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:200]


def _user(row: UserRow) -> User:
    return User(
        username=row.username,
        password_hash=row.password_hash,
        roles=tuple(row.roles),
        disabled=row.disabled,
        created_at=row.created_at,
    )


def _token(row: ApiTokenRow) -> ApiToken:
    return ApiToken(
        id=row.id,
        username=row.username,
        name=row.name,
        token_hash=row.token_hash,
        created_at=row.created_at,
        revoked=row.revoked,
        expires_at=row.expires_at,
    )


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
    )


_PREDICTION_INSERT = PredictionRow.__table__.insert()


def _prediction(row: PredictionRow) -> Prediction:
    return Prediction(
        id=row.id,
        username=row.username,
        image_sha256=row.image_sha256,
        model_name=row.model_name,
        model_version=row.model_version,
        results=tuple(SpeciesScore(r["name"], float(r["proba"])) for r in row.results),
        source_url=row.source_url,
        filename=row.filename,
        cached=row.cached,
        latency_ms=row.latency_ms,
        created_at=row.created_at,
        feedback_species=row.feedback_species,
        feedback_username=row.feedback_username,
        feedback_at=row.feedback_at,
    )


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
