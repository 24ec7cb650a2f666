"""Load: 16 clients for 60 s of mixed cached and uncached predictions against ``champipy serve``.

Zero errors are allowed, and every answered prediction must be in the store. Run with
``make check-load``; CHAMPIPY_LOAD_SECONDS and CHAMPIPY_LOAD_CLIENTS shorten or widen it.
Only 127.0.0.1 is contacted: the API, and an image server the API fetches URLs from.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest

from champipy.store import open_store
from support.accounts import make_account
from support.image_server import ImageServer
from support.live_server import client

from .helpers import sample, scrape
from .serving import dataset_photos, serve_process, upload, variant

pytestmark = pytest.mark.load

SECONDS = float(os.environ.get("CHAMPIPY_LOAD_SECONDS", "60"))
CLIENTS = int(os.environ.get("CHAMPIPY_LOAD_CLIENTS", "16"))
REQUEST_TIMEOUT = 60.0  # support.live_server.client's
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "ops"

# What each request does, with its share of the traffic.
MIX = (("upload-cached", 0.40), ("upload-new", 0.30), ("url-cached", 0.15), ("url-new", 0.15))


@dataclass(frozen=True)
class Outcome:
    kind: str
    status: int
    seconds: float
    prediction_id: str | None = None
    image_sha256: str | None = None
    cached: bool | None = None
    error: str | None = None


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def test_sixteen_clients_for_a_minute(tmp_path, trained_registry):
    probe = trained_registry.settings_for(tmp_path / "probe")
    photos = [data for _, data in dataset_photos(probe, per_species=4)]
    routes = {f"/known/{i}.jpg": (200, data, "image/jpeg") for i, data in enumerate(photos)}
    with ImageServer(routes) as images:
        # One account stands for many users here: its downloads in flight may be as many as the clients.
        settings = trained_registry.settings_for(
            tmp_path / "data", fetch_allow_hosts=images.host, fetch_per_user=CLIENTS
        )
        store = open_store(settings.resolved_database_url)
        user = make_account(store)
        with serve_process(settings, tmp_path / "serve.log") as base_url:
            with client(base_url, auth=user.auth) as c:
                token = c.post("/tokens", json={"name": "load"}).json()["token"]
            headers = {"Authorization": f"Bearer {token}"}

            # Warm-up: every known photo predicted once by upload and once by URL.
            with client(base_url, headers=headers) as c:
                for i, data in enumerate(photos):
                    assert upload(c, data).status_code == 200
                    assert c.get("/predictions", params={"file": images.url(f"/known/{i}.jpg")}).status_code == 200
            warm_up = 2 * len(photos)

            outcomes: list[Outcome] = []
            lock = threading.Lock()
            new_paths = iter(range(10**9))
            deadline = time.monotonic() + SECONDS

            def one_client(seed: int) -> None:
                rng = random.Random(seed)
                kinds, weights = zip(*MIX, strict=True)
                mine = []
                with client(base_url, headers=headers) as c:
                    while time.monotonic() < deadline:
                        kind = rng.choices(kinds, weights)[0]
                        index = rng.randrange(len(photos))
                        started = time.perf_counter()
                        try:
                            if kind == "upload-cached":
                                answer = upload(c, photos[index])
                            elif kind == "upload-new":
                                answer = upload(c, variant(photos[index], rng))
                            elif kind == "url-cached":
                                answer = c.get("/predictions", params={"file": images.url(f"/known/{index}.jpg")})
                            else:
                                with lock:
                                    path = f"/new/{next(new_paths)}.jpg"
                                images.routes[path] = (200, variant(photos[index], rng), "image/jpeg")
                                answer = c.post("/predictions", json={"url": images.url(path), "top_k": 2})
                        except Exception as exc:  # a transport error counts as a failed request
                            mine.append(Outcome(kind, 0, time.perf_counter() - started, error=repr(exc)))
                            continue
                        elapsed = time.perf_counter() - started
                        if answer.status_code == 200:
                            body = answer.json()
                            mine.append(Outcome(kind, 200, elapsed, body["id"], body["image_sha256"], body["cached"]))
                        else:
                            mine.append(Outcome(kind, answer.status_code, elapsed, error=answer.text[:300]))
                with lock:
                    outcomes.extend(mine)

            threads = [threading.Thread(target=one_client, args=(seed,)) for seed in range(CLIENTS)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(SECONDS + 2 * REQUEST_TIMEOUT)
            elapsed = time.monotonic() - started
            assert not any(t.is_alive() for t in threads), "a client did not stop"
            with client(base_url) as c:
                metrics = scrape(c)
        log_lines = [
            json.loads(line) for line in (tmp_path / "serve.log").read_text().splitlines() if line.startswith("{")
        ]

        # --- the numbers ------------------------------------------------------------------------
        latencies = [o.seconds for o in outcomes]
        report = {
            "clients": CLIENTS,
            "seconds": round(elapsed, 1),
            "requests": len(outcomes),
            "throughput_per_s": round(len(outcomes) / elapsed, 1),
            "p50_ms": round(1000 * statistics.median(latencies), 1),
            "p99_ms": round(1000 * _percentile(latencies, 0.99), 1),
            "by_kind": {
                kind: {
                    "requests": len(mine := [o.seconds for o in outcomes if o.kind == kind]),
                    "p50_ms": round(1000 * statistics.median(mine), 1) if mine else None,
                    "p99_ms": round(1000 * _percentile(mine, 0.99), 1) if mine else None,
                }
                for kind, _ in MIX
            },
            "statuses": dict(Counter(o.status for o in outcomes)),
        }
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        (ARTIFACTS / "load.json").write_text(json.dumps(report, indent=2))
        print(
            f"\nLOAD: {report['requests']} requests from {CLIENTS} clients in {report['seconds']} s: "
            f"{report['throughput_per_s']} req/s, p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms"
        )
        for kind, numbers in report["by_kind"].items():
            print(f"LOAD:   {kind:14} {numbers}")

        # --- the checks ---------------------------------------------------------------------
        failures = [o for o in outcomes if o.status != 200]
        assert not failures, f"{len(failures)} failed requests, e.g. {failures[:3]}"
        assert len(outcomes) > CLIENTS * 2, "the load hardly ran"
        for o in outcomes:
            stored = store.get_prediction(o.prediction_id)
            assert stored is not None, f"answer {o.prediction_id} ({o.kind}) is not in the store"
            assert stored.image_sha256 == o.image_sha256 and stored.cached == o.cached
        assert all(o.cached for o in outcomes if o.kind in ("upload-cached", "url-cached"))
        assert not any(o.cached for o in outcomes if o.kind in ("upload-new", "url-new"))
        assert store.count_predictions() == warm_up + len(outcomes)
        store.close()

        counted = sum(sample(metrics, "champipy_predictions_total", cached=flag) or 0 for flag in ("true", "false"))
        assert counted == warm_up + len(outcomes)
        access = [line for line in log_lines if line.get("logger") == "champipy.access"]
        predictions_logged = [line for line in access if line["path"] == "/predictions"]
        assert len(predictions_logged) == warm_up + len(outcomes)
        assert all(line.get("request_id") and line["status"] == 200 for line in predictions_logged)
        assert token not in (tmp_path / "serve.log").read_text()


def test_four_times_the_queue_bound_gets_clean_refusals(tmp_path, trained_registry):
    """16 clients of new photos against 4 computation slots: each answer is a stored prediction
    or a 503 busy with Retry-After, never an error, a lost or a half-stored request; /status
    keeps answering. Accepted latency and /status latency are printed, not asserted."""
    bound, clients, seconds = 4, 16, min(SECONDS, 20.0)
    probe = trained_registry.settings_for(tmp_path / "probe")
    photos = [data for _, data in dataset_photos(probe, per_species=2)]
    settings = trained_registry.settings_for(tmp_path / "data", max_pending_predictions=bound)
    store = open_store(settings.resolved_database_url)
    user = make_account(store)
    with serve_process(settings, tmp_path / "serve.log") as base_url:
        with client(base_url, auth=user.auth) as c:
            token = c.post("/tokens", json={"name": "load"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        outcomes: list[Outcome] = []
        status_seconds: list[float] = []
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def one_client(seed: int) -> None:
            rng, mine = random.Random(seed), []
            with client(base_url, headers=headers) as c:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    answer = upload(c, variant(rng.choice(photos), rng))
                    elapsed = time.perf_counter() - started
                    if answer.status_code == 200:
                        body = answer.json()
                        mine.append(Outcome("new", 200, elapsed, body["id"], body["image_sha256"], body["cached"]))
                    else:
                        mine.append(
                            Outcome(
                                "new",
                                answer.status_code,
                                elapsed,
                                error=f"{answer.headers.get('retry-after')} {answer.text[:200]}",
                            )
                        )
                        time.sleep(0.05)
            with lock:
                outcomes.extend(mine)

        def watch_status() -> None:
            with client(base_url) as c:
                while time.monotonic() < deadline:
                    started = time.perf_counter()
                    assert c.get("/status").status_code == 200
                    status_seconds.append(time.perf_counter() - started)
                    time.sleep(0.2)

        threads = [threading.Thread(target=one_client, args=(seed,)) for seed in range(clients)]
        threads.append(threading.Thread(target=watch_status))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(seconds + 2 * REQUEST_TIMEOUT)
        assert not any(t.is_alive() for t in threads), "a client did not stop"
        with client(base_url) as c:
            metrics = scrape(c)

    accepted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 503]
    print(
        f"\nBACK-PRESSURE: bound {bound}, {clients} clients, {seconds:.0f} s: {len(accepted)} accepted "
        f"(p50 {1000 * statistics.median(o.seconds for o in accepted):.0f} ms, "
        f"p99 {1000 * _percentile([o.seconds for o in accepted], 0.99):.0f} ms), {len(refused)} refused "
        f"(p99 {1000 * _percentile([o.seconds for o in refused], 0.99):.0f} ms); /status p99 "
        f"{1000 * _percentile(status_seconds, 0.99):.0f} ms over {len(status_seconds)} calls"
    )
    assert {o.status for o in outcomes} <= {200, 503}, Counter(o.status for o in outcomes)
    assert accepted and refused, "4x the bound must both be served and refused"
    assert all('"busy"' in o.error and int(o.error.split()[0]) >= 1 for o in refused)
    for o in accepted:
        assert store.get_prediction(o.prediction_id).image_sha256 == o.image_sha256
    assert store.count_predictions() == len(accepted), "a refused request left a prediction behind"
    assert sample(metrics, "champipy_predictions_refused_busy_total") == len(refused)
    store.close()
