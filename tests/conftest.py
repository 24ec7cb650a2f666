"""Shared fixtures: a real, empty database for each storage backend.

- SQLite: a file per test.
- PostgreSQL (``CHAMPIPY_TEST_POSTGRES_URL``, default the local ``test`` database as admin):
  one database per test session, one schema per test.
- MongoDB: the mongoeco wire-protocol server from ``.venv-mongo`` (made by
  ``scripts/setup_mongo_venv.sh``) for the session, or a real server at
  ``CHAMPIPY_TEST_MONGO_URL``; one database per test.
- memory: the in-memory fake (``memory://``), a new one for each open.

A service that is missing fails the tests that need it: nothing is skipped.
"""

from __future__ import annotations

import os
import select
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pymongo
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from champipy.store import Store, open_store, sql_models
from support import leftovers
from support.object_storage import ObjectStorage, running_seaweedfs
from support.processes import stop_process

BACKENDS = ("sqlite", "postgresql", "mongodb", "memory")
REPO_ROOT = Path(__file__).resolve().parent.parent
POSTGRES_ADMIN_URL = os.environ.get("CHAMPIPY_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test")
MONGO_PYTHON = REPO_ROOT / ".venv-mongo" / "bin" / "python"
MONGO_LAUNCHER = REPO_ROOT / "scripts" / "mongo_server.py"
MONGO_START_SECONDS = 30


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


# --- PostgreSQL ------------------------------------------------------------------------------
class PostgresDatabase:
    """A database made for this test session; each caller gets a schema of its own in it."""

    def __init__(self, admin_url: str):
        self.name = unique_name("champipy_test")
        self._admin_url = admin_url
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
                admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        except psycopg.OperationalError as error:
            pytest.fail(
                f"PostgreSQL is not reachable at {admin_url} ({error}). Start it with "
                "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
                "or point CHAMPIPY_TEST_POSTGRES_URL at one.",
                pytrace=False,
            )
        self.url = make_url(admin_url).set(database=self.name)
        self._connection = psycopg.connect(self._libpq_url(), autocommit=True)
        self._shared_schema: tuple[str, str] | None = None

    def _libpq_url(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def new_schema_url(self) -> tuple[str, str]:
        schema = unique_name("t")
        self._connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return schema, url.render_as_string(hide_password=False)

    def empty_store_url(self) -> str:
        """A schema migrated once per session and emptied for each caller: faster than new."""
        if self._shared_schema is None:
            self._shared_schema = self.new_schema_url()
            open_store(self._shared_schema[1]).close()
        schema, url = self._shared_schema
        tables = [sql.Identifier(schema, table.name) for table in sql_models.Base.metadata.sorted_tables]
        self._connection.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(tables)))
        return url

    def drop_schema(self, schema: str) -> None:
        self._connection.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))

    def drop(self) -> None:
        self._connection.close()
        with psycopg.connect(self._admin_url, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[PostgresDatabase]:
    database = PostgresDatabase(POSTGRES_ADMIN_URL)
    yield database
    database.drop()


# --- Object storage (S3 API) -----------------------------------------------------------------
@pytest.fixture(scope="session")
def object_storage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStorage]:
    """A SeaweedFS S3 gateway for the whole session; each test takes its own bucket."""
    folder = tmp_path_factory.mktemp("seaweedfs")
    with running_seaweedfs(folder / "data", folder / "weed.log") as storage:
        yield storage


# --- MongoDB ---------------------------------------------------------------------------------
def with_database(mongo_url: str, database: str) -> str:
    parts = urlsplit(mongo_url)
    return urlunsplit(parts._replace(path=f"/{database}"))


def _wait_for_ready_line(process: subprocess.Popen[str], log: Path) -> str:
    deadline = time.monotonic() + MONGO_START_SECONDS
    assert process.stdout is not None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        readable, _, _ = select.select([process.stdout], [], [], 0.2)
        if readable:
            line = process.stdout.readline()
            if line.startswith("READY "):
                return line.split(None, 1)[1].strip()
    process.kill()
    pytest.fail(
        f"the mongoeco server did not start within {MONGO_START_SECONDS} s:\n{log.read_text(errors='replace')[-2000:]}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def mongo_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL of a MongoDB wire server for the whole session."""
    external = os.environ.get("CHAMPIPY_TEST_MONGO_URL", "").strip()
    if external:
        yield external
        return
    if not MONGO_PYTHON.exists():
        pytest.fail(
            f"{MONGO_PYTHON} is missing: run `bash scripts/setup_mongo_venv.sh` (needs Python "
            "3.13) or point CHAMPIPY_TEST_MONGO_URL at a MongoDB server.",
            pytrace=False,
        )
    log = tmp_path_factory.mktemp("mongo") / "server.log"
    with log.open("w") as stderr:
        process = subprocess.Popen(
            [str(MONGO_PYTHON), str(MONGO_LAUNCHER), "--host", "127.0.0.1", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
        )
    try:
        yield _wait_for_ready_line(process, log)
    finally:
        stop_process(process, timeout=10)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture(scope="session")
def mongo_admin(mongo_server_url: str) -> Iterator[pymongo.MongoClient]:
    client: pymongo.MongoClient = pymongo.MongoClient(mongo_server_url, serverSelectionTimeoutMS=3000)
    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as error:
        pytest.fail(f"MongoDB at {mongo_server_url} does not answer: {error}", pytrace=False)
    yield client
    client.close()


# --- any backend -----------------------------------------------------------------------------
DatabaseUrlFactory = Callable[[str], str]


@pytest.fixture
def database_url_for(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseUrlFactory]:
    """``database_url_for(backend)``: the URL of a new, empty database, removed after the test.

    ``backend`` is one of ``BACKENDS``. Opening a store on the URL creates the schema.
    """
    cleanups: list[Callable[[], None]] = []

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / unique_name('champipy')}.db"
        if backend == "postgresql":
            postgres: PostgresDatabase = request.getfixturevalue("postgres_database")
            schema, url = postgres.new_schema_url()
            cleanups.append(lambda: postgres.drop_schema(schema))
            return url
        if backend == "mongodb":
            base_url = request.getfixturevalue("mongo_server_url")
            admin: pymongo.MongoClient = request.getfixturevalue("mongo_admin")
            name = unique_name("champipy_test")
            cleanups.append(lambda: admin.drop_database(name))
            return with_database(base_url, name)
        if backend == "memory":
            return "memory://"
        raise ValueError(f"unknown backend {backend!r}; expected one of {BACKENDS}")

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, database_url_for: DatabaseUrlFactory) -> Iterator[Store]:
    """A fresh, empty store on each backend in turn."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_database").empty_store_url()
    else:
        url = database_url_for(request.param)
    opened = open_store(url)
    yield opened
    opened.close()


# --- a trained model ---------------------------------------------------------------------------
@pytest.fixture(scope="session")
def trained_registry(tmp_path_factory: pytest.TempPathFactory):
    """A real model trained on a small part of the dataset, registered and promoted once."""
    from support.trained_model import train_small_registry

    return train_small_registry(tmp_path_factory.mktemp("trained-registry"))


# --- the suite ends what it starts ------------------------------------------------------------
CHECKOUT = str(Path(__file__).resolve().parent.parent)
_SESSION_STARTED = pytest.StashKey[int]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SESSION_STARTED] = leftovers.now_in_ticks()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when a process it started (a server, a worker, a child of either) is still
    alive once every fixture has been torn down; then end it, so nothing outlives the run."""
    started = session.config.stash.get(_SESSION_STARTED, None)
    if started is None:
        return
    left = leftovers.wait_for_leftovers(started, (CHECKOUT,), grace_seconds=10.0)
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(left)} process(es) started by the tests outlived them (now killed):"]
    lines += [f"  pid {p.pid}: {p.command[:200]}" for p in left]
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line("\n".join(lines), red=True)
    leftovers.kill(left)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
