"""The SQL backends' shared base: one engine per store, a short session per call.

The store is shared by the threads of the FastAPI pool. The schema is brought to the latest
Alembic revision when the store opens. Each aggregate's methods live in their own module
(``users``, ``images``, ...) as mixins over ``SqlBase``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, CursorResult, Engine, Result, make_url
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

from ...errors import Conflict, StoreUnavailable
from ..ports import Lifecycle

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
# The newest migration's revision (tests/store checks it is alembic's head): a database already
# there opens without loading alembic.
SCHEMA_REVISION = "0005"
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
    from alembic.config import Config

    config = Config()
    # ConfigParser interpolates '%', which may appear in paths and passwords.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    rendered = engine_url(url) if isinstance(url, str) else url
    config.set_main_option("sqlalchemy.url", rendered.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def new_id() -> str:
    return uuid.uuid4().hex


def dialect_name(session: Session | Connection) -> str:
    """'sqlite' or 'postgresql': the database behind a session or a connection."""
    return (session.dialect if isinstance(session, Connection) else session.get_bind().dialect).name


def insert_for(session: Session | Connection, row_class: type[Any]) -> sqlite.Insert | postgresql.Insert:
    """An INSERT that knows ON CONFLICT, in the session's (or connection's) dialect."""
    if dialect_name(session) == "sqlite":
        return sqlite.insert(row_class)
    return postgresql.insert(row_class)


def rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE matched."""
    return cast(CursorResult[Any], result).rowcount


class SqlBase(Lifecycle):
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
        if self._at_schema_revision():
            return  # nothing to do, and alembic (half a second to import) stays unloaded
        with self._guard(), self._write_engine.begin() as connection:
            if not self._is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            self._upgrade(connection)

    def _at_schema_revision(self) -> bool:
        try:
            with self._write_engine.connect() as connection:
                found = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        except DBAPIError:
            return False  # a new database: no version table yet
        return list(found) == [SCHEMA_REVISION]

    def _upgrade(self, connection: Connection) -> None:
        from alembic import command

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
        """One transaction: everything written in the block commits together or not at all."""
        with self._guard(conflict), self._write_sessions() as session, session.begin():
            yield session

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A Core connection in a write transaction, for the hottest inserts."""
        with self._guard(), self._write_engine.begin() as connection:
            yield connection

    @contextmanager
    def _read_connection(self) -> Iterator[Connection]:
        """A Core connection in a read transaction, for the hottest lookups."""
        with self._guard(), self._engine.begin() as connection:
            yield connection

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


def _first_line(error: BaseException) -> str:
    return str(getattr(error, "orig", None) or error).strip().splitlines()[0][:200]
