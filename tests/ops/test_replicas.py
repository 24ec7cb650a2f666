"""Beyond one machine: two ``champipy serve`` replicas and two ``champipy worker`` processes share
nothing but PostgreSQL, Redis, an MLflow server (backend store in PostgreSQL, artifacts in an
S3 bucket it serves) and the spool bucket, as a deployment on several machines would. Each
process has a data folder of its own: no shared disk.

The checks run in file order on one deployment (``make check-replicas``):
both replicas start together on an empty registry and exactly one version is trained; a
prediction computed on A is cached on B; sign-in lockout, token revocation, page sessions and
feedback on spooled images hold across replicas; a fine-tune submitted on A runs once on a worker with its
progress visible from B; a promotion through A is served by B; 8 clients over both replicas for
30 s lose nothing; the minute's scheduled monitor check runs once although both workers run
the schedule. Only 127.0.0.1 is contacted.
"""

from __future__ import annotations

import io
import os
import random
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest
import redis
from PIL import Image
from psycopg import sql

from champipy.store import Store, open_store
from champipy.web.session import SESSION_COOKIE
from support.live_server import client, free_port
from support.mlflow_server import MlflowServer
from support.processes import stop_process_group

from .helpers import wait_until
from .serving import LOOPBACK, upload, variant

pytestmark = pytest.mark.replicas

REDIS_DB_URL = "redis://127.0.0.1:6379/7"  # a database of its own, emptied before and after
PER_SPECIES, EVAL_PER_SPECIES = 12, 4
POLL_SECONDS = 1.0
LOAD_SECONDS = float(os.environ.get("CHAMPIPY_REPLICAS_LOAD_SECONDS", "30"))
LOAD_CLIENTS = 8
ADMIN_PASSWORD = "replicas-admin-" + secrets.token_hex(6)


@dataclass
class Deployment:
    a: str  # replica URLs
    b: str
    env: dict[str, str]
    store: Store
    mlflow_url: str
    logs: Path
    spool_prefix: str
    artifacts_prefix: str
    object_storage: object
    dataset: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def admin(self, url: str) -> httpx.Client:
        return client(url, auth=("admin", ADMIN_PASSWORD))

    def versions(self) -> list[str]:
        from mlflow import MlflowClient

        found = MlflowClient(tracking_uri=self.mlflow_url).search_model_versions("name='champipy'")
        return sorted(str(v.version) for v in found)

    def log_text(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")


def _subset(source: Path, target: Path, per_species: int) -> Path:
    """Links to the first photos of each species: a small first model, trained in seconds."""
    for species in sorted(p for p in source.iterdir() if p.is_dir()):
        (target / species.name).mkdir(parents=True)
        for photo in sorted(species.iterdir())[:per_species]:
            (target / species.name / photo.name).symlink_to(photo)
    return target


@pytest.fixture(scope="module")
def postgres_databases() -> Iterator[tuple[str, str]]:
    """Two fresh databases: the ChampiPy store and MLflow's backend store."""
    admin_url = os.environ.get("CHAMPIPY_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
    names = [f"champipy_replicas_{uuid.uuid4().hex[:8]}", f"mlflow_replicas_{uuid.uuid4().hex[:8]}"]
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as admin:
        for name in names:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{names[0]}", f"postgresql+psycopg://{base.split('://', 1)[1]}/{names[1]}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            for name in names:
                admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _start(name: str, command: list[str], env: dict[str, str], logs: Path) -> subprocess.Popen:
    with (logs / f"{name}.log").open("w") as log:
        return subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _loaded_version(url: str) -> str | None:
    try:
        model = httpx.get(f"{url}/status", timeout=2, trust_env=False).json()["model"]
    except (httpx.HTTPError, ValueError, KeyError):
        return None
    return model.get("version") if model.get("loaded") else None


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, postgres_databases, object_storage) -> Iterator[Deployment]:
    from champipy.settings import Settings

    base = Settings()
    if base.dataset_dir is None or base.eval_dir is None:
        pytest.fail("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR (the Makefile does).", pytrace=False)
    root = tmp_path_factory.mktemp("replicas")
    logs = root / "logs"
    logs.mkdir()
    dataset = _subset(Path(base.dataset_dir), root / "train", PER_SPECIES)
    eval_subset = _subset(Path(base.eval_dir), root / "eval", EVAL_PER_SPECIES)
    store_url, mlflow_backend = postgres_databases
    redis.Redis.from_url(REDIS_DB_URL).flushdb()

    run = uuid.uuid4().hex[:8]
    storage_env = object_storage.env()
    artifacts_prefix = f"mlartifacts-{run}"
    mlflow = MlflowServer(
        mlflow_backend,
        logs / "mlflow.log",
        f"s3://{object_storage.bucket}/{artifacts_prefix}",
        serve_artifacts=True,
        env=storage_env,
    )
    mlflow_url = mlflow.start()
    spool_prefix = f"spool-{run}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
    env.update(storage_env)
    env.update(
        CHAMPIPY_DATABASE_URL=store_url,
        CHAMPIPY_MLFLOW_URI=mlflow_url,
        CHAMPIPY_REDIS_URL=REDIS_DB_URL,
        CHAMPIPY_SPOOL_URL=f"s3://{object_storage.bucket}/{spool_prefix}",
        CHAMPIPY_DATASET_DIR=str(dataset),
        CHAMPIPY_EVAL_DIR=str(eval_subset),
        CHAMPIPY_BACKBONE="lite0",
        CHAMPIPY_MODEL_POLL_SECONDS=str(POLL_SECONDS),
        CHAMPIPY_MONITOR_CRON="* * * * *",
        CHAMPIPY_ADMIN_PASSWORD=ADMIN_PASSWORD,
        # Session cookies signed by one replica must open the other: one key for all.
        CHAMPIPY_SECRET_KEY=secrets.token_hex(32),
        CHAMPIPY_LOG_LEVEL="info",
        MLFLOW_HTTP_REQUEST_MAX_RETRIES="2",
    )
    champipy = str(Path(sys.executable).with_name("champipy"))
    processes: dict[str, subprocess.Popen] = {}
    store = open_store(store_url)
    try:
        urls = {}
        for name in ("a", "b"):  # started together, each on an empty registry
            port = free_port()
            urls[name] = f"http://{LOOPBACK}:{port}"
            own = dict(env, CHAMPIPY_DATA_DIR=str(root / name), CHAMPIPY_HOST=LOOPBACK, CHAMPIPY_PORT=str(port))
            processes[name] = _start(name, [champipy, "serve"], own, logs)
        for name in ("worker-1", "worker-2"):
            own = dict(env, CHAMPIPY_DATA_DIR=str(root / name))
            processes[name] = _start(name, [champipy, "worker", "--heartbeat-seconds", "1"], own, logs)

        def both_serve() -> bool:
            for name, process in processes.items():
                assert process.poll() is None, f"{name} exited:\n{(logs / f'{name}.log').read_text()[-3000:]}"
            return all(_loaded_version(url) for url in urls.values())

        wait_until(both_serve, timeout=600, interval=1, what="both replicas to serve a first model")
        yield Deployment(
            urls["a"],
            urls["b"],
            env,
            store,
            mlflow_url,
            logs,
            spool_prefix,
            artifacts_prefix,
            object_storage,
            dataset,
            processes,
        )
    finally:
        for process in processes.values():
            stop_process_group(process, timeout=30)
        mlflow.stop()
        store.close()
        redis.Redis.from_url(REDIS_DB_URL).flushdb()


def _photo(deployment: Deployment, index: int = 0) -> bytes:
    species = sorted(p for p in Path(deployment.env["CHAMPIPY_EVAL_DIR"]).iterdir() if p.is_dir())
    folder = species[index % len(species)]
    return sorted(folder.iterdir())[index // len(species)].read_bytes()


def _noise_jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=90)
    return out.getvalue()


def _token(url: str, auth: tuple[str, str], name: str) -> tuple[str, str]:
    with client(url, auth=auth) as c:
        answer = c.post("/tokens", json={"name": name})
        answer.raise_for_status()
        return answer.json()["token"], answer.json()["id"]


# --- the checks, in order -------------------------------------------------------------------
def test_replicas_started_together_trained_exactly_one_first_model(deployment):
    assert deployment.versions() == ["1"]
    assert _loaded_version(deployment.a) == _loaded_version(deployment.b) == "1"
    for url in (deployment.a, deployment.b):  # the Kubernetes readiness probe's question
        assert httpx.get(f"{url}/status", params={"ready": "true"}, trust_env=False).status_code == 200
    trained = [n for n in ("a", "b") if "training a first one" in deployment.log_text(n)]
    waited = [n for n in ("a", "b") if "another replica promoted a first model" in deployment.log_text(n)]
    assert len(trained) == 1 and len(waited) == 1, (trained, waited)
    # The model the replicas loaded came through the MLflow server from the bucket.
    stored = deployment.object_storage.client().list_objects_v2(
        Bucket=deployment.object_storage.bucket, Prefix=f"{deployment.artifacts_prefix}/"
    )
    assert any(item["Key"].endswith(".onnx") for item in stored.get("Contents", [])), stored.get("Contents")


def test_a_prediction_computed_on_a_is_cached_on_b(deployment):
    photo = _photo(deployment, 3)
    with deployment.admin(deployment.a) as a, deployment.admin(deployment.b) as b:
        first = upload(a, photo)
        again = upload(b, photo)
    assert first.status_code == 200 and first.json()["cached"] is False
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.json()["results"] == first.json()["results"]
    assert deployment.store.get_prediction(again.json()["id"]) is not None


def test_five_failed_sign_ins_on_a_lock_the_account_on_b(deployment):
    from support.accounts import make_account

    account = make_account(deployment.store)
    for _ in range(5):
        with client(deployment.a, auth=(account.username, "wrong-password-123")) as a:
            assert a.get("/predictions/recent").status_code == 401
    with client(deployment.b, auth=account.auth) as b:
        locked = b.get("/predictions/recent")
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1


def test_a_token_revoked_on_a_is_refused_by_b_at_once(deployment):
    from support.accounts import make_account

    account = make_account(deployment.store)
    token, token_id = _token(deployment.a, account.auth, "replicas")
    bearer = {"Authorization": f"Bearer {token}"}
    with client(deployment.b, headers=bearer) as b:
        assert b.get("/predictions/recent").status_code == 200  # B now remembers this token's user
        with client(deployment.a, auth=account.auth) as a:
            assert a.delete(f"/tokens/{token_id}").status_code == 204
        assert b.get("/predictions/recent").status_code == 401  # the next request, not 10 s later


def test_a_page_session_signed_in_on_a_opens_b(deployment):
    with client(deployment.a) as a:
        form = a.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', form).group(1)
        answer = a.post(
            "/login", data={"username": "admin", "password": ADMIN_PASSWORD, "csrf_token": token, "next": "/admin"}
        )
        assert answer.status_code == 303
        session = a.cookies[SESSION_COOKIE]
    with client(deployment.b, cookies={SESSION_COOKIE: session}) as b:
        page = b.get("/admin")
    assert page.status_code == 200 and "csrf-token" in page.text  # the dashboard, not the sign-in form


def test_feedback_on_b_stores_the_spooled_photo_predicted_on_a(deployment):
    noise = _noise_jpeg(11)
    with deployment.admin(deployment.a) as a:
        predicted = upload(a, noise).json()
    assert predicted["kept_for_training"] is False  # so only the spool bucket has its bytes
    sha = predicted["image_sha256"]
    assert deployment.store.get_image(sha) is None
    spooled = deployment.object_storage.client().list_objects_v2(
        Bucket=deployment.object_storage.bucket, Prefix=f"{deployment.spool_prefix}/{sha}"
    )
    assert spooled.get("KeyCount") == 1
    species = sorted(p.name for p in deployment.dataset.iterdir())[0]
    with deployment.admin(deployment.b) as b:
        answer = b.post(f"/predictions/{predicted['id']}/feedback", json={"species": species})
    assert answer.status_code == 200, answer.text
    assert deployment.store.get_image_bytes(sha) == noise


def test_a_finetune_submitted_on_a_runs_once_on_a_worker_with_progress_seen_from_b(deployment):
    champipy = str(Path(sys.executable).with_name("champipy"))
    imported = subprocess.run(
        [champipy, "data", "import", str(deployment.dataset)],
        env=dict(deployment.env, CHAMPIPY_DATA_DIR=str(deployment.logs.parent / "cli")),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert imported.returncode == 0, imported.stderr[-2000:]
    with deployment.admin(deployment.a) as a:
        job = a.post("/finetune", json={"variables": 0, "epochs": 2}).json()
    seen: list[dict] = []
    with deployment.admin(deployment.b) as b:

        def finished() -> dict | None:
            state = b.get(f"/jobs/{job['id']}").json()
            seen.append(state)
            return state if state["state"] in ("succeeded", "failed") else None

        done = wait_until(finished, timeout=600, interval=0.5, what="the fine-tune job to finish")
    assert done["state"] == "succeeded", done["error"]
    assert any(s["state"] == "running" and s["progress"] for s in seen), "B saw the job's progress"
    ran_on = [name for name in ("worker-1", "worker-2") if job["id"] in deployment.log_text(name)]
    assert len(ran_on) == 1, ran_on
    assert deployment.versions() == ["1", "2"]  # one run, one new version


def test_a_version_promoted_through_a_is_served_by_b_within_the_poll_interval(deployment):
    with deployment.admin(deployment.a) as a:
        assert a.post("/models/2/promote").status_code == 200
    promoted_at = time.monotonic()
    wait_until(lambda: _loaded_version(deployment.b) == "2", timeout=30, interval=0.1, what="B to serve version 2")
    took = time.monotonic() - promoted_at
    assert _loaded_version(deployment.a) == "2"
    print(f"\nB served the promoted version after {took:.1f} s (poll interval {POLL_SECONDS} s + loading the model)")


def test_eight_clients_over_both_replicas_for_thirty_seconds_lose_nothing(deployment):
    from support.accounts import make_account

    account = make_account(deployment.store)
    token, _ = _token(deployment.a, account.auth, "load")
    photos = [_photo(deployment, i) for i in range(10)]
    outcomes: list[tuple[str, int, str | None]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + LOAD_SECONDS

    def load(worker: int) -> None:
        rng = random.Random(worker)
        urls = (deployment.a, deployment.b)
        clients = [client(url, headers={"Authorization": f"Bearer {token}"}) for url in urls]
        try:
            turn = worker
            while time.monotonic() < deadline:
                turn += 1
                photo = rng.choice(photos)
                data = photo if rng.random() < 0.4 else variant(photo, rng)
                try:
                    answer = upload(clients[turn % 2], data)
                    found = (urls[turn % 2], answer.status_code, answer.json().get("id"))
                except (httpx.HTTPError, ValueError) as exc:
                    found = (urls[turn % 2], 0, repr(exc))
                with lock:
                    outcomes.append(found)
        finally:
            for c in clients:
                c.close()

    threads = [threading.Thread(target=load, args=(i,)) for i in range(LOAD_CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=LOAD_SECONDS + 120)
    statuses = Counter(status for _, status, _ in outcomes)
    per_replica = Counter(url for url, _, _ in outcomes)
    print(f"\n{len(outcomes)} predictions in {LOAD_SECONDS:.0f} s over 2 replicas: {dict(statuses)}")
    assert statuses == Counter({200: len(outcomes)}), statuses
    assert per_replica[deployment.a] > 0 and per_replica[deployment.b] > 0
    missing = [pid for _, _, pid in outcomes if deployment.store.get_prediction(pid) is None]
    assert missing == [], f"{len(missing)} answered predictions have no row"


def test_the_scheduled_monitor_check_runs_once_per_minute_with_two_schedulers(deployment):
    def monitor_jobs() -> list:
        return [j for j in deployment.store.list_jobs(limit=500) if j.kind == "monitor"]

    # The deployment has run for minutes by now; wait for a scheduled check if none came yet.
    wait_until(lambda: monitor_jobs(), timeout=90, interval=1, what="a scheduled monitor check")
    slots = Counter(job.params.get("scheduled_for") for job in monitor_jobs())
    assert slots and all(count == 1 for count in slots.values()), slots
