"""Serving latency and throughput: raw ONNX Runtime vs the API over HTTP, in one run.

    CHAMPIPY_DATASET_DIR=.../train CHAMPIPY_EVAL_DIR=.../eval \
    python bench/bench_serving.py [--backbone lite0] [--train-per-species 20] [--json-out FILE]

What it does, on one machine, in one process tree:

1. Model: trains a small model with the real pipeline (``train_and_register`` on
   ``--train-per-species`` photos per species of CHAMPIPY_DATASET_DIR, frozen features, in a
   child process so this one never imports torch) into a temporary data dir and promotes it.
   Accuracy does not matter for timing; the backbone does (default: Settings().backbone, what
   the service trains). ``--data-dir DIR`` trains into DIR once and reuses it on later runs;
   ``--mlflow-uri URI`` reuses an existing registry's production version (nothing is written).
2. Photos: distinct JPEGs made beforehand (not timed) from the evaluation photos
   (CHAMPIPY_EVAL_DIR, else the dataset): a random crop, a small rotation, sometimes a mirror,
   and a per-run nonce in the JPEG comment, so every upload is new to the prediction cache.
3. Server: ``champipy serve`` in its own process on 127.0.0.1 (as deployed: own GIL, JSON
   access log, in-process job consumer, model poller), on a fresh data dir with a SQLite store;
   a user made with ``add_user`` and an API token, so no password hash is timed.
4. Sequential, one client (httpx, keep-alive): blocks of ``--block`` items, each block timing
   in turn raw ORT on the decoded images (preprocess + predict_batch), raw decode + preprocess
   + ORT from the bytes, an uncached upload of the same bytes through the API, then the same
   bytes again (cached). Interleaving the four series in small blocks keeps the ratios
   honest on a machine whose speed drifts 10-30% (ML_NOTES): compare ratios, not times.
   The raw baseline uses the same Classifier.load (same ORT thread setting) as the server.
5. Throughput: ``--concurrency`` clients (asyncio + httpx) sending distinct uncached photos,
   then photos already predicted (cached); requests/s, latency under load, and the server's
   CPU time per request (from /proc).

The service stores each computed prediction's decode + preprocess + ORT time; its median is
shown too, so "API minus in-server inference" is the HTTP, auth, cache and store overhead.
Prints a table, then the ratios, then one JSON line (also written to --json-out).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import multiprocessing
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from PIL import Image, ImageOps

from champipy.images import ImageLimits, decode_image
from champipy.model.classifier import Classifier
from champipy.settings import Settings

API_RATIO_GOAL = 1.5  # uncached API p50 / raw decode+inference p50: at most
CACHE_RATIO_GOAL = 20.0  # uncached API p50 / cached API p50: at least
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


# --- small helpers ----------------------------------------------------------------------------
def summary(samples_ms) -> dict:
    a = np.asarray(samples_ms, dtype=float)
    if a.size == 0:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "mean_ms": None}
    return {
        "n": int(a.size),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p95_ms": round(float(np.percentile(a, 95)), 3),
        "mean_ms": round(float(a.mean()), 3),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def photo_paths(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def make_uploads(photos: list[Path], n: int, seed: int, nonce: str) -> list[bytes]:
    """``n`` distinct JPEGs: crops, small rotations and mirrors of ``photos`` (not timed)."""
    rng = random.Random(seed)
    order = photos[:]
    rng.shuffle(order)
    opened: dict[Path, Image.Image] = {}
    uploads = []
    for i in range(n):
        path = order[i % len(order)]
        if path not in opened:
            with Image.open(path) as image:
                opened[path] = ImageOps.exif_transpose(image).convert("RGB")
        image = opened[path]
        width, height = image.size
        scale = rng.uniform(0.8, 1.0)
        crop_w, crop_h = max(16, round(width * scale)), max(16, round(height * scale))
        left, top = rng.randint(0, width - crop_w), rng.randint(0, height - crop_h)
        variant = image.crop((left, top, left + crop_w, top + crop_h))
        variant = variant.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR)
        if rng.random() < 0.5:
            variant = ImageOps.mirror(variant)
        buffer = io.BytesIO()
        variant.save(buffer, "JPEG", quality=90, comment=f"champipy-bench {nonce} {i}".encode())
        uploads.append(buffer.getvalue())
    if len(set(uploads)) != len(uploads):
        raise RuntimeError("the prepared uploads are not all distinct")
    return uploads


# --- the model --------------------------------------------------------------------------------
def train_registry(model_dir: str, dataset_dir: str, backbone: str, per_species: int, seed: int) -> dict:
    """Runs in a child process (torch stays out of the measuring process)."""
    from champipy.model.data import examples_from_folder
    from champipy.model.pipeline import train_and_register
    from champipy.model.train import TrainConfig, use_fast_malloc
    from champipy.registry import Registry

    use_fast_malloc()  # ML_NOTES: glibc malloc makes torch ~2x slower here
    # eval_dir=None: no evaluation pass, timing does not need it.
    settings = Settings(
        data_dir=Path(model_dir), mlflow_uri="", database_url="", dataset_dir=Path(dataset_dir), eval_dir=None
    )
    settings.ensure_data_dir()
    per_label: dict[str, list] = {}
    for example in examples_from_folder(dataset_dir):
        per_label.setdefault(example.label, []).append(example)
    rng = random.Random(seed)
    subset = [e for examples in per_label.values() for e in rng.sample(examples, min(per_species, len(examples)))]
    outcome = train_and_register(settings, subset, TrainConfig(backbone=backbone, seed=seed))
    version = str(outcome.version.version)
    Registry(settings).promote(version)
    return {"version": version, "n_examples": len(subset), "species": len(per_label)}


def production_version(settings: Settings):
    from champipy.registry import Registry

    return Registry(settings).version_for_alias(settings.production_alias)


# --- the server -------------------------------------------------------------------------------
def service_with_token(data_dir: Path, mlflow_uri: str, username: str) -> tuple[Settings, str]:
    """Settings of a fresh service on SQLite in ``data_dir``, and an API token of a user made in
    its store beforehand (with ``add_user``, so no password hash is timed)."""
    from champipy.services.users import add_user, create_token
    from champipy.store import open_store

    settings = Settings(data_dir=data_dir, mlflow_uri=mlflow_uri, database_url="")
    settings.ensure_data_dir()
    store = open_store(settings.resolved_database_url)
    try:
        add_user(store, username, uuid.uuid4().hex)
        return settings, create_token(store, username, "bench").token
    finally:
        store.close()


class Server:
    """``champipy serve`` in its own process, on a fresh data dir, stderr (JSON log) to a file."""

    def __init__(
        self, data_dir: Path, mlflow_uri: str, log_path: Path, timeout: float = 180.0, extra_env: dict | None = None
    ):
        """``extra_env``: more settings for this server (``CHAMPIPY_...`` variables)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            k: v
            for k, v in os.environ.items()
            if k
            not in (
                "CHAMPIPY_DATA_DIR",
                "CHAMPIPY_MLFLOW_URI",
                "CHAMPIPY_DATABASE_URL",
                "CHAMPIPY_REDIS_URL",
                "CHAMPIPY_HOST",
                "CHAMPIPY_PORT",
            )
        }
        env.update(CHAMPIPY_DATA_DIR=str(data_dir), CHAMPIPY_MLFLOW_URI=mlflow_uri, CHAMPIPY_BOOTSTRAP_MODEL="false")
        env.update(extra_env or {})
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "champipy", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.log_path = log_path
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"champipy serve exited with {self.process.returncode}:\n{log_path.read_text()[-3000:]}"
                )
            try:
                status = httpx.get(f"{self.url}/status", timeout=2, trust_env=False).json()
                if status["model"]["loaded"]:
                    self.model = status["model"]
                    break
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not serve a model within {timeout:.0f} s")
            time.sleep(0.2)

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


def upload_kwargs(data: bytes) -> dict:
    return {"files": {"file": ("photo.jpg", data, "image/jpeg")}, "data": {"top_k": "3"}}


def check_answer(response: httpx.Response, expect_cached: bool, problems: list[str]) -> None:
    if response.status_code != 200:
        problems.append(f"HTTP {response.status_code}: {response.text[:200]}")
    elif response.json()["cached"] is not expect_cached:
        problems.append(f"expected cached={expect_cached}, got {not expect_cached}")


# --- the measurements -------------------------------------------------------------------------
def sequential(
    client: httpx.Client,
    classifier: Classifier,
    uploads: list[bytes],
    block: int,
    limits: ImageLimits,
    problems: list[str],
    seconds: float,
) -> dict[str, list[float]]:
    """Blocks of: raw decoded, raw from bytes, API uncached (same bytes), API cached (again).
    Stops starting new blocks after ``seconds`` (at least three blocks run)."""
    deadline = time.monotonic() + seconds
    decoded = [decode_image(data, limits, min_short_side=classifier.image_size).image for data in uploads]  # not timed
    series: dict[str, list[float]] = {"raw_decoded": [], "raw_bytes": [], "api_uncached": [], "api_cached": []}

    def raw_decoded(i: int) -> None:
        classifier.predict_batch(classifier.preprocess(decoded[i])[np.newaxis])

    def raw_bytes(i: int) -> None:
        image = decode_image(uploads[i], limits, min_short_side=classifier.image_size).image
        classifier.predict_batch(classifier.preprocess(image)[np.newaxis])

    for start in range(0, len(uploads), block):
        if start >= 3 * block and time.monotonic() > deadline:
            break
        indices = range(start, min(start + block, len(uploads)))
        for name, run in (("raw_decoded", raw_decoded), ("raw_bytes", raw_bytes)):
            time.sleep(0.02)  # let the other side's ORT threads stop spinning
            for i in indices:
                began = time.perf_counter()
                run(i)
                series[name].append((time.perf_counter() - began) * 1000)
        for name, cached in (("api_uncached", False), ("api_cached", True)):
            time.sleep(0.02)
            for i in indices:
                began = time.perf_counter()
                response = client.post("/predictions", **upload_kwargs(uploads[i]))
                series[name].append((time.perf_counter() - began) * 1000)
                check_answer(response, cached, problems)
    return series


async def concurrent(
    url: str,
    headers: dict,
    payloads: list[bytes],
    clients: int,
    expect_cached: bool,
    server: Server,
    problems: list[str],
    warm_up: list[bytes],
    seconds: float,
) -> dict:
    """``clients`` workers share the payloads (each sent once); no new request starts after
    ``seconds``, so requests/s counts the requests that completed."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120, trust_env=False, limits=limits) as client:

        async def run(items: list[bytes], latencies: list[float] | None, deadline: float) -> None:
            iterator = iter(items)

            async def worker() -> None:
                for data in iterator:  # one shared iterator: each payload is sent once
                    if time.monotonic() > deadline:
                        break
                    began = time.perf_counter()
                    response = await client.post("/predictions", **upload_kwargs(data))
                    if latencies is not None:
                        latencies.append((time.perf_counter() - began) * 1000)
                        check_answer(response, expect_cached, problems)

            await asyncio.gather(*(worker() for _ in range(clients)))

        await run(warm_up, None, float("inf"))  # opens the connections
        latencies: list[float] = []
        cpu_server, cpu_client = server.cpu_seconds(), time.process_time()
        began = time.perf_counter()
        await run(payloads, latencies, time.monotonic() + seconds)
        wall = time.perf_counter() - began
        cpu_server, cpu_client = server.cpu_seconds() - cpu_server, time.process_time() - cpu_client
    return {
        **summary(latencies),
        "clients": clients,
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(latencies) / wall, 2),
        "server_cpu_ms_per_request": round(cpu_server * 1000 / len(latencies), 2),
        "client_cpu_ms_per_request": round(cpu_client * 1000 / len(latencies), 2),
    }


def stored_latencies(service_settings: Settings, username: str, shas: set[str]) -> list[float]:
    """The service's own decode + preprocess + ORT time of the given computed predictions."""
    from champipy.store import open_store

    store = open_store(service_settings.resolved_database_url)
    try:
        predictions = store.recent_predictions(100_000, username=username)
    finally:
        store.close()
    return [p.latency_ms for p in predictions if not p.cached and p.image_sha256 in shas and p.latency_ms is not None]


# --- main -------------------------------------------------------------------------------------
def main() -> None:
    base = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--backbone",
        default=base.backbone,
        help=f"backbone(s) of the model to train (default: the service's, {base.backbone})",
    )
    parser.add_argument("--train-per-species", type=int, default=20, help="training photos per species (default 20)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="registry folder to reuse (trained into on the first run); default: a temporary one",
    )
    parser.add_argument("--mlflow-uri", help="existing registry whose production version is benchmarked")
    parser.add_argument(
        "--requests",
        type=int,
        default=150,
        help="sequential uncached uploads (and as many raw runs and cached requests)",
    )
    parser.add_argument("--block", type=int, default=10, help="items per interleaved block (default 10)")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument(
        "--concurrent-requests", type=int, default=240, help="uncached uploads in the throughput run (default 240)"
    )
    parser.add_argument(
        "--cached-concurrent-requests",
        type=int,
        default=600,
        help="cached requests in the throughput run (default 600)",
    )
    parser.add_argument(
        "--phase-seconds",
        type=float,
        default=30.0,
        help="time cap of the sequential phase and of each throughput run (default 30)",
    )
    parser.add_argument("--warmup", type=int, default=16, help="untimed requests and raw runs before timing")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json-out", type=Path, help="also write the JSON result here")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (server log, store)")
    args = parser.parse_args()
    Settings(backbone=args.backbone)  # validates the name

    photo_dir = base.eval_dir or base.dataset_dir
    if photo_dir is None or not Path(photo_dir).is_dir():
        parser.error("set CHAMPIPY_EVAL_DIR (or CHAMPIPY_DATASET_DIR) to a folder of species sub-folders of photos")
    photos = photo_paths(Path(photo_dir))
    if not photos:
        parser.error(f"no photos under {photo_dir}")

    work = Path(tempfile.mkdtemp(prefix="champipy-bench-serving-"))
    result: dict = {
        "bench": "serving",
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_start": os.getloadavg()[0],
    }
    phases: dict[str, float] = {}
    server: Server | None = None
    try:
        # 1. the model
        began = time.perf_counter()
        if args.mlflow_uri:
            mlflow_uri = args.mlflow_uri
            registry_dir = work / "registry"
        else:
            registry_dir = (args.data_dir or work / "registry").resolve()
            mlflow_uri = f"sqlite:///{registry_dir / 'mlflow.db'}"
        registry_settings = Settings(data_dir=work / "raw", mlflow_uri=mlflow_uri, database_url="")
        info = production_version(registry_settings) if (args.mlflow_uri or args.data_dir) else None
        trained = None
        if info is None:
            if args.mlflow_uri:
                parser.error(f"{args.mlflow_uri} has no '{base.production_alias}' version")
            if base.dataset_dir is None or not Path(base.dataset_dir).is_dir():
                parser.error("set CHAMPIPY_DATASET_DIR to train the model (or pass --data-dir / --mlflow-uri)")
            print(
                f"training {args.backbone} on {args.train_per_species} photos per species into {registry_dir} ...",
                flush=True,
            )
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                trained = pool.apply(
                    train_registry,
                    (str(registry_dir), str(base.dataset_dir), args.backbone, args.train_per_species, args.seed),
                )
            info = production_version(registry_settings)
        from champipy.registry import Registry

        model_dir = Registry(registry_settings).download_serving_model(info.version)
        classifier = Classifier.load(model_dir, threads=base.inference_threads)
        backbone = info.params.get("backbone", args.backbone)
        if trained is None and backbone != args.backbone:
            print(
                f"note: reusing version {info.version}, whose backbone is {backbone} (not --backbone {args.backbone})",
                flush=True,
            )
        phases["model_s"] = time.perf_counter() - began
        result["model"] = {
            "version": str(info.version),
            "backbone": backbone,
            "image_size": classifier.image_size,
            "trained_here": trained is not None,
            "inference_threads": base.inference_threads,
        }

        # 2. the photos (distinct bytes; a nonce keeps them new to a reused store too)
        began = time.perf_counter()
        nonce = uuid.uuid4().hex[:12]
        n_seq, n_conc = args.requests, args.concurrent_requests
        uploads = make_uploads(photos, args.warmup + n_seq + args.concurrency + n_conc, args.seed, nonce)
        warm, uploads = uploads[: args.warmup], uploads[args.warmup :]
        seq_uploads, uploads = uploads[:n_seq], uploads[n_seq:]
        conc_warm, conc_uploads = uploads[: args.concurrency], uploads[args.concurrency :]
        sizes = [len(u) for u in seq_uploads]
        pixels = [np.prod(Image.open(io.BytesIO(u)).size) for u in seq_uploads]
        result["uploads"] = {
            "source": str(photo_dir),
            "median_bytes": int(np.median(sizes)),
            "median_pixels": int(np.median(pixels)),
        }
        phases["prepare_s"] = time.perf_counter() - began

        # 3. the server, a user and an API token
        began = time.perf_counter()
        username = f"bench-{nonce}"
        service_settings, token = service_with_token(work / "service", mlflow_uri, username)
        server = Server(service_settings.data_dir.resolve(), mlflow_uri, work / "server.log")
        if str(server.model.get("version")) != str(info.version):
            raise RuntimeError(f"the server serves version {server.model.get('version')}, expected {info.version}")
        headers = {"Authorization": f"Bearer {token}"}
        phases["server_start_s"] = time.perf_counter() - began

        # 4. sequential latencies, after a warm-up of every path
        began = time.perf_counter()
        problems: list[str] = []
        with httpx.Client(base_url=server.url, headers=headers, timeout=60, trust_env=False) as client:
            for data in warm:
                image = decode_image(data, base.image_limits, min_short_side=classifier.image_size).image
                classifier.predict_batch(classifier.preprocess(image)[np.newaxis])
                check_answer(client.post("/predictions", **upload_kwargs(data)), False, problems)
                check_answer(client.post("/predictions", **upload_kwargs(data)), True, problems)
            series = sequential(
                client, classifier, seq_uploads, args.block, base.image_limits, problems, args.phase_seconds
            )
        stats = {name: summary(samples) for name, samples in series.items()}
        phases["sequential_s"] = time.perf_counter() - began

        # 5. throughput with concurrent clients
        began = time.perf_counter()
        uncached_conc = asyncio.run(
            concurrent(
                server.url,
                headers,
                conc_uploads,
                args.concurrency,
                False,
                server,
                problems,
                conc_warm,
                args.phase_seconds,
            )
        )
        cached_pool = seq_uploads[: len(series["api_cached"])]  # certainly predicted already
        rng = random.Random(args.seed)
        cached_payloads = [rng.choice(cached_pool) for _ in range(args.cached_concurrent_requests)]
        cached_conc = asyncio.run(
            concurrent(
                server.url,
                headers,
                cached_payloads,
                args.concurrency,
                True,
                server,
                problems,
                [rng.choice(cached_pool) for _ in range(args.concurrency)],
                args.phase_seconds,
            )
        )
        phases["throughput_s"] = time.perf_counter() - began

        from champipy.images import sha256_hex

        sent = seq_uploads[: len(series["api_uncached"])]
        in_server = summary(stored_latencies(service_settings, username, {sha256_hex(u) for u in sent}))
        stats["in_server_inference"] = in_server
        if problems:
            raise RuntimeError(f"{len(problems)} unexpected answers, e.g. {problems[:3]}")
    finally:
        if server is not None:
            server.stop()
        if args.keep:
            print(f"kept {work}", flush=True)
        else:
            shutil.rmtree(work, ignore_errors=True)

    result["load_average_end"] = os.getloadavg()[0]
    p50 = {name: s["p50_ms"] for name, s in stats.items()}
    ratios = {
        "api_uncached_over_raw_bytes_p50": ratio(p50["api_uncached"], p50["raw_bytes"]),
        "api_uncached_over_raw_decoded_p50": ratio(p50["api_uncached"], p50["raw_decoded"]),
        "api_uncached_over_api_cached_p50": ratio(p50["api_uncached"], p50["api_cached"]),
        "in_server_inference_over_raw_bytes_p50": ratio(p50["in_server_inference"], p50["raw_bytes"]),
    }
    goals = {
        "api_uncached_over_raw_bytes_p50_max": API_RATIO_GOAL,
        "api_uncached_over_api_cached_p50_min": CACHE_RATIO_GOAL,
        "api_ratio_met": bool(ratios["api_uncached_over_raw_bytes_p50"] <= API_RATIO_GOAL),
        "cache_ratio_met": bool(ratios["api_uncached_over_api_cached_p50"] >= CACHE_RATIO_GOAL),
    }
    result.update(
        latency=stats,
        throughput={"uncached": uncached_conc, "cached": cached_conc},
        ratios=ratios,
        goals=goals,
        phases_s={k: round(v, 1) for k, v in phases.items()},
        args={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
    )

    model = result["model"]
    print()
    print(
        f"ChampiPy serving bench: {model['backbone']} ({model['image_size']} px), model version {model['version']}, "
        f"ORT threads {model['inference_threads'] or 'auto'}, {os.cpu_count()} CPUs; uploads median "
        f"{result['uploads']['median_bytes'] / 1024:.1f} KiB, {result['uploads']['median_pixels'] / 1e3:.0f} kpx"
    )
    print(
        f"{'single image, one client (interleaved blocks)':48s} {'n':>5s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s}"
    )
    labels = {
        "raw_decoded": "raw ORT: preprocess + predict_batch (decoded)",
        "raw_bytes": "raw ORT: decode + preprocess + predict (bytes)",
        "api_uncached": "API upload over HTTP, uncached",
        "api_cached": "API upload over HTTP, cached (same bytes)",
        "in_server_inference": "  in-server decode+preprocess+ORT (stored)",
    }
    for name, label in labels.items():
        s = stats[name]
        print(f"{label:48s} {s['n']:5d} {s['p50_ms']:8.2f} {s['p95_ms']:8.2f} {s['mean_ms']:8.2f}")
    print(
        f"\n{'throughput, ' + str(args.concurrency) + ' concurrent clients':36s} {'n':>5s} {'req/s':>8s} "
        f"{'p50 ms':>8s} {'p95 ms':>8s} {'srv CPU ms/req':>15s} {'cli CPU ms/req':>15s}"
    )
    for name, t in (("uncached (distinct photos)", uncached_conc), ("cached (photos already seen)", cached_conc)):
        print(
            f"{name:36s} {t['n']:5d} {t['requests_per_s']:8.1f} {t['p50_ms']:8.2f} {t['p95_ms']:8.2f} "
            f"{t['server_cpu_ms_per_request']:15.2f} {t['client_cpu_ms_per_request']:15.2f}"
        )
    print("\nratios (same run):")
    r = ratios
    print(
        f"  uncached API p50 / raw decode+inference p50 = {r['api_uncached_over_raw_bytes_p50']:.2f}  "
        f"(goal <= {API_RATIO_GOAL}: {'met' if goals['api_ratio_met'] else 'NOT met'})"
    )
    print(
        f"  uncached API p50 / cached API p50           = {r['api_uncached_over_api_cached_p50']:.2f}  "
        f"(goal >= {CACHE_RATIO_GOAL:g}: {'met' if goals['cache_ratio_met'] else 'NOT met'})"
    )
    print(f"  uncached API p50 / raw decoded-image p50    = {r['api_uncached_over_raw_decoded_p50']:.2f}")
    print(f"  in-server inference p50 / raw bytes p50     = {r['in_server_inference_over_raw_bytes_p50']:.2f}")
    print(
        f"  API overhead beyond in-server inference (p50): "
        f"{p50['api_uncached'] - p50['in_server_inference']:.2f} ms uncached, {p50['api_cached']:.2f} ms cached"
    )
    print(
        "phases (s): "
        + ", ".join(f"{k} {v:.1f}" for k, v in phases.items())
        + f"; 1-min load average {result['load_average_start']:.1f} at start, {result['load_average_end']:.1f} at end"
        + " (other work on the machine inflates every time; the ratios compare series measured together)"
    )
    line = json.dumps(result, sort_keys=True)
    if args.json_out:
        args.json_out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
