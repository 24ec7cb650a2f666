"""Faults while serving: the database goes away and comes back, the MLflow store becomes
unreadable, a corrupt model version is promoted, the data directory's disk fills up.

Each one must give clear answers (503 and the like, never a 500 or a crash) and heal without
a restart. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import subprocess
import time

import pytest
from sqlalchemy.engine import make_url

from support.live_server import client
from support.mlflow_server import MlflowServer

from .helpers import sample, scrape, wait_until
from .serving import dataset_photos, serve, upload, variant
from .tcp_proxy import TcpProxy

POSTGRES = ("127.0.0.1", 5432)


def _photo(served) -> bytes:
    return dataset_photos(served.settings, per_species=1)[0][1]


# --- the database ------------------------------------------------------------------------------
def test_database_goes_away_and_comes_back(tmp_path, trained_registry, postgres_database):
    schema, url = postgres_database.new_schema_url()
    rng = random.Random(1)
    try:
        with TcpProxy(*POSTGRES) as proxy:
            proxied = make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
            with serve(trained_registry, tmp_path / "data", database_url=proxied) as served, served.client() as c:
                photo = _photo(served)
                assert upload(c, photo).status_code == 200
                assert c.get("/dbconnex").json()["connected"] is True

                proxy.cut()
                outage = [upload(c, variant(photo, rng)) for _ in range(3)] + [upload(c, photo)]
                assert [a.status_code for a in outage] == [503] * 4, [a.text for a in outage]
                assert all(a.json()["error"] == "database_unavailable" for a in outage)
                assert c.get("/dbconnex").json()["connected"] is False
                assert c.get("/status").status_code == 200  # alive, and says which model serves
                assert c.get("/metrics").status_code == 200

                proxy.restore()
                wait_until(
                    lambda: upload(c, variant(photo, rng)).status_code == 200,
                    timeout=30,
                    what="predictions to work again once the database is back",
                )
                assert c.get("/dbconnex").json()["connected"] is True
                again = upload(c, photo)
                assert again.status_code == 200 and again.json()["cached"] is True
                assert proxy.refused > 0, "the outage was not seen by the service"
    finally:
        postgres_database.drop_schema(schema)


# --- the MLflow store ---------------------------------------------------------------------------
def test_unreadable_mlflow_store_keeps_the_serving_model(tmp_path, trained_registry):
    with serve(trained_registry, tmp_path / "data") as served, served.client() as c:
        photo = _photo(served)
        version = c.get("/status").json()["model"]["version"]
        assert upload(c, photo).status_code == 200
        mlflow_db = make_url(served.settings.mlflow_uri).database
        healthy = open(mlflow_db, "rb").read()
        with open(mlflow_db, "r+b") as f:  # in place: open connections see it too
            f.write(b"this is not an SQLite database any more " * 100)
        try:
            rng = random.Random(2)
            polls = 8  # the alias is read every model_poll_seconds (0.5 s here)
            for _ in range(polls):
                time.sleep(served.settings.model_poll_seconds)
                model = c.get("/status").json()["model"]
                assert model["loaded"] is True and model["version"] == version
                fresh = upload(c, variant(photo, rng))
                assert fresh.status_code == 200 and fresh.json()["model"]["version"] == version
                assert upload(c, photo).json()["cached"] is True
            metrics = scrape(c)
            assert sample(metrics, "champipy_model_info", name=served.settings.registered_model, version=version) == 1
        finally:
            with open(mlflow_db, "wb") as f:
                f.write(healthy)
        assert upload(c, variant(photo, random.Random(3))).status_code == 200
        assert c.get("/status").json()["model"]["version"] == version


@pytest.fixture
def mlflow_server(tmp_path):
    """``start(backend_uri)`` runs an MLflow tracking server on 127.0.0.1; ``stop()`` kills it."""
    servers: list[MlflowServer] = []

    class Servers:
        def start(self, backend_uri: str) -> str:
            server = MlflowServer(
                backend_uri, tmp_path / f"mlflow-{len(servers)}.log", str(tmp_path / "mlflow-artifacts")
            )
            servers.append(server)
            return server.start()

        def stop(self) -> None:
            servers[-1].stop()

    yield Servers()
    for server in servers:
        server.stop()


def test_mlflow_server_down_keeps_the_serving_model(tmp_path, trained_registry, mlflow_server, monkeypatch):
    # Fail fast instead of MLflow's default minutes of retries: the poller then runs often.
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    backend = trained_registry.settings_for(tmp_path / "registry").mlflow_uri  # a private copy
    url = mlflow_server.start(backend)
    with serve(trained_registry, tmp_path / "data", mlflow_uri=url) as served, served.client() as c:
        photo = _photo(served)
        version = c.get("/status").json()["model"]["version"]
        assert version == trained_registry.version
        mlflow_server.stop()
        rng = random.Random(6)
        for _ in range(6):  # several polls of the alias, each failing to connect
            time.sleep(served.settings.model_poll_seconds)
            model = c.get("/status").json()["model"]
            assert model["loaded"] is True and model["version"] == version
            fresh = upload(c, variant(photo, rng))
            assert fresh.status_code == 200 and fresh.json()["model"]["version"] == version
        host_and_port = url.split("://", 1)[1].rstrip("/")
        status = c.get("/status")
        assert host_and_port not in status.text, "the public /status names no internal host"
        assert (status.json()["model"]["last_error"] or "cannot read the registry").startswith(
            "cannot read the registry"
        )


# --- a corrupt model ----------------------------------------------------------------------------
def test_a_corrupt_model_version_never_serves(tmp_path, trained_registry):
    from support.registry_edits import register_corrupt_version, set_alias

    with serve(trained_registry, tmp_path / "data") as served, served.client() as c:
        photo = _photo(served)
        good = c.get("/status").json()["model"]["version"]
        bad = register_corrupt_version(served.settings, good)
        set_alias(served.settings, bad)  # promoted behind the service's back
        status = wait_until(
            lambda: (s := c.get("/status").json())["model"]["last_error"] and s,
            timeout=30,
            what="/status to report the failed load",
        )
        assert status["model"]["version"] == good and str(bad) in status["model"]["last_error"]
        answer = upload(c, variant(photo, random.Random(4)))
        assert answer.status_code == 200 and answer.json()["model"]["version"] == good
        metrics = scrape(c)
        assert sample(metrics, "champipy_model_load_error") == 1
        assert sample(metrics, "champipy_model_info", name=served.settings.registered_model, version=good) == 1


# --- a full disk ----------------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path):
    """A 64 MiB tmpfs (needs root, as CI runs): a data directory that can really fill up."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mount_point)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.fail(f"cannot mount a tmpfs for the full-disk test (needs root): {done.stderr.strip()}", pytrace=False)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _fill(directory) -> int:
    """Write until the file system says ENOSPC; returns the bytes written."""
    written = 0
    chunk = b"\0" * (1 << 20)
    with open(directory / "filler", "wb", buffering=0) as f:
        try:
            while True:
                written += f.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    with open(directory / "filler-tail", "wb", buffering=0) as f:  # the last partial blocks
        try:
            while True:
                written += f.write(b"\0" * 512)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return written


def test_a_full_data_disk_is_a_clear_error_and_heals(small_disk, trained_registry):
    rng = random.Random(5)
    with serve(trained_registry, small_disk / "data") as served, served.client() as c:
        photo = _photo(served)
        assert upload(c, photo).status_code == 200
        _fill(small_disk)
        assert shutil.disk_usage(small_disk).free < 64 * 1024
        try:
            answers = [upload(c, variant(photo, rng)) for _ in range(3)] + [upload(c, photo)]
            with client(served.url, auth=served.user.auth) as basic:  # tokens are made with a password
                answers.append(basic.post("/tokens", json={"name": "on a full disk"}))
            for answer in answers:  # writes: a clear 503, never a 500
                assert answer.status_code == 503, answer.text
                assert answer.json()["error"] == "database_unavailable"
                assert "full" in answer.json()["detail"], answer.text
            assert c.get("/predictions/recent").status_code == 200  # reads still work
            assert c.get("/status").json()["model"]["loaded"] is True
        finally:
            os.remove(small_disk / "filler")
            os.remove(small_disk / "filler-tail")
        time.sleep(0.2)
        wait_until(
            lambda: upload(c, variant(photo, rng)).status_code == 200,
            timeout=20,
            what="predictions to work again once space is freed",
        )
