"""Serving stacks side by side: one exported model, the same photos, one run.

    python bench/bench_peers.py [--backbone lite0+lite2] [--requests 60] [--concurrent-requests 160]

What a team choosing a serving stack would compare, on ChampiPy's own exported model (trained
here on ``--train-per-species`` photos per species, in a child process, and promoted):

- **raw ONNX Runtime** in this process: decode + preprocess + inference of the photo bytes,
  the floor every server adds to;
- **ChampiPy** (``champipy serve``): an upload (multipart) to POST /predictions, uncached (every
  photo distinct), which also stores the prediction and, for confident photos, the image;
- **minimal FastAPI** (``minimal_server.py``): the same decode, preprocessing and ONNX
  Runtime behind one FastAPI route under uvicorn, and nothing else (no sign-in, cache, store,
  logs): the floor of HTTP serving in Python, so the table separates what HTTP costs from what
  ChampiPy's own work costs;
- **``mlflow models serve``** (``--env-manager local``) on a pyfunc wrapping the same ONNX file,
  that decodes and preprocesses with ChampiPy's own code: a POST /invocations of the photo
  base64-encoded in a one-row ``dataframe_split`` (MLflow's documented input).

Each stack: sequential requests in interleaved blocks (latency p50/p95), then
``--concurrency`` clients (throughput), and the peak resident memory of its process tree
(VmHWM from /proc; for raw ORT, this whole benchmark process). Compare ratios, not times.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import mlflow.pyfunc
import numpy as np
from bench_serving import (
    Server,
    free_port,
    make_uploads,
    photo_paths,
    production_version,
    service_with_token,
    summary,
    train_registry,
)

from champipy.images import decode_image
from champipy.model.classifier import Classifier
from champipy.settings import Settings


class OnnxPhotoModel(mlflow.pyfunc.PythonModel):
    """The exported ONNX model as an MLflow pyfunc: base64 photo in, probabilities out."""

    def load_context(self, context) -> None:
        self.classifier = Classifier.load(context.artifacts["model_dir"])

    def predict(self, context, model_input, params=None):
        classifier = self.classifier
        batch = np.stack(
            [
                classifier.preprocess(decode_image(base64.b64decode(text), min_short_side=classifier.image_size).image)
                for text in model_input["image"]
            ]
        )
        return classifier.predict_batch(batch)


def tree_peak_rss_mib(pid: int) -> float:
    """VmHWM of a process and all its descendants, in MiB."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total / 1024


def wait_until_up(url: str, process: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer in {timeout} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def main() -> None:
    base = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=base.backbone)
    parser.add_argument("--train-per-species", type=int, default=20)
    parser.add_argument("--requests", type=int, default=60, help="sequential requests per stack")
    parser.add_argument("--block", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--concurrent-requests", type=int, default=160, help="requests per stack, all clients")
    parser.add_argument("--warmup", type=int, default=8)
    args = parser.parse_args()
    photos = photo_paths(Path(base.eval_dir or base.dataset_dir))
    work = Path(tempfile.mkdtemp(prefix="champipy-bench-peers-"))
    registry_dir = work / "registry"
    print(f"training {args.backbone} on {args.train_per_species} photos per species ...", flush=True)
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        pool.apply(train_registry, (str(registry_dir), str(base.dataset_dir), args.backbone, args.train_per_species, 0))
    mlflow_uri = f"sqlite:///{registry_dir / 'mlflow.db'}"
    registry_settings = Settings(data_dir=work / "raw", mlflow_uri=mlflow_uri, database_url="")
    info = production_version(registry_settings)
    from champipy.registry import Registry

    model_dir = Registry(registry_settings).download_serving_model(info.version)
    raw = Classifier.load(model_dir)

    nonce = uuid.uuid4().hex[:8]
    stacks = 4  # raw, ChampiPy, minimal FastAPI, mlflow
    total = (args.warmup + args.requests + args.concurrent_requests) * stacks
    uploads = iter(make_uploads(photos, total, 0, nonce))

    pyfunc_dir = work / "pyfunc"
    mlflow.pyfunc.save_model(str(pyfunc_dir), python_model=OnnxPhotoModel(), artifacts={"model_dir": str(model_dir)})

    # ChampiPy as bench_serving.py runs it: a user and an API token made in its store first.
    service_settings, token = service_with_token(work / "champipy", mlflow_uri, f"bench-{nonce}")
    champipy = Server(service_settings.data_dir.resolve(), mlflow_uri, work / "champipy.log")

    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
    minimal_port = free_port()
    minimal_server = start(
        [sys.executable, "-m", "uvicorn", "minimal_server:app", "--app-dir", str(Path(__file__).parent)]
        + ["--host", "127.0.0.1", "--port", str(minimal_port), "--no-access-log"],
        dict(env, CHAMPIPY_BENCH_MODEL_DIR=str(model_dir)),
        work / "minimal.log",
    )
    mlflow_port = free_port()
    mlflow_cli = str(Path(sys.executable).with_name("mlflow"))
    mlflow_server = start(
        [mlflow_cli, "models", "serve", "-m", str(pyfunc_dir), "--env-manager", "local", "-h", "127.0.0.1"]
        + ["-p", str(mlflow_port)],
        # It execs uvicorn by name: this environment's scripts must be on PATH.
        dict(env, PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"),
        work / "mlflow.log",
    )
    try:
        wait_until_up(f"http://127.0.0.1:{mlflow_port}/ping", mlflow_server, work / "mlflow.log")
        wait_until_up(f"http://127.0.0.1:{minimal_port}/ping", minimal_server, work / "minimal.log")
        headers = {"Authorization": f"Bearer {token}"}

        def raw_call(data: bytes) -> None:
            decoded = decode_image(data, min_short_side=raw.image_size).image
            raw.predict_batch(raw.preprocess(decoded)[None])

        server_timings: list[dict[str, float]] = []  # ChampiPy's Server-Timing stages, per answer

        def champipy_call(client: httpx.Client, data: bytes) -> None:
            began = time.perf_counter()
            answer = client.post("/predictions", files={"file": ("p.jpg", data, "image/jpeg")}, data={"top_k": "3"})
            if answer.status_code != 200 or answer.json()["cached"]:
                raise RuntimeError(f"ChampiPy answered {answer.status_code}: {answer.text[:200]}")
            stages = parse_server_timing(answer.headers.get("server-timing", ""))
            stages["client"] = (time.perf_counter() - began) * 1000
            server_timings.append(stages)

        def minimal_call(client: httpx.Client, data: bytes) -> None:
            answer = client.post("/predict", files={"file": ("p.jpg", data, "image/jpeg")})
            if answer.status_code != 200:
                raise RuntimeError(f"the minimal server answered {answer.status_code}: {answer.text[:200]}")

        def mlflow_call(client: httpx.Client, data: bytes) -> None:
            body = {"dataframe_split": {"columns": ["image"], "data": [[base64.b64encode(data).decode()]]}}
            answer = client.post("/invocations", json=body)
            if answer.status_code != 200:
                raise RuntimeError(f"mlflow answered {answer.status_code}: {answer.text[:200]}")

        def clients():
            return {
                "ChampiPy": httpx.Client(base_url=champipy.url, headers=headers, trust_env=False, timeout=60),
                "minimal FastAPI": httpx.Client(
                    base_url=f"http://127.0.0.1:{minimal_port}", trust_env=False, timeout=60
                ),
                "mlflow models serve": httpx.Client(
                    base_url=f"http://127.0.0.1:{mlflow_port}", trust_env=False, timeout=60
                ),
            }

        calls = {
            "raw ONNX Runtime": lambda _clients, data: raw_call(data),
            "ChampiPy": lambda cs, data: champipy_call(cs["ChampiPy"], data),
            "minimal FastAPI": lambda cs, data: minimal_call(cs["minimal FastAPI"], data),
            "mlflow models serve": lambda cs, data: mlflow_call(cs["mlflow models serve"], data),
        }
        shared = clients()
        for call in calls.values():
            for _ in range(args.warmup):
                call(shared, next(uploads))
        latencies: dict[str, list[float]] = {name: [] for name in calls}
        server_timings.clear()
        for _ in range(max(1, args.requests // args.block)):
            for name, call in calls.items():
                for _ in range(args.block):
                    data = next(uploads)
                    began = time.perf_counter()
                    call(shared, data)
                    latencies[name].append((time.perf_counter() - began) * 1000)
        sequential_timings = list(server_timings)
        throughput = {}
        for name, call in calls.items():
            batch = [next(uploads) for _ in range(args.concurrent_requests)]
            local = [clients() for _ in range(args.concurrency)]
            began = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(
                    pool.map(
                        lambda item, call=call, local=local: call(local[item[0] % args.concurrency], item[1]),
                        enumerate(batch),
                    )
                )
            throughput[name] = len(batch) / (time.perf_counter() - began)
            for cs in local:
                for c in cs.values():
                    c.close()
        rss = {
            "raw ONNX Runtime": tree_peak_rss_mib(os.getpid()),
            "ChampiPy": tree_peak_rss_mib(champipy.process.pid),
            "minimal FastAPI": tree_peak_rss_mib(minimal_server.pid),
            "mlflow models serve": tree_peak_rss_mib(mlflow_server.pid),
        }
    finally:
        champipy.stop()
        stop(mlflow_server)
        stop(minimal_server)

    print(f"\n{info.params.get('backbone', args.backbone)} at {raw.image_size} px, uncached photos, same run:")
    print(f"{'stack':22s} {'p50 ms':>8s} {'p95 ms':>8s} {f'{args.concurrency} clients/s':>13s} {'peak RSS MiB':>13s}")
    table = {}
    for name in calls:
        s = summary(latencies[name])
        table[name] = dict(s, per_second=round(throughput[name], 2), peak_rss_mib=round(rss[name], 1))
        print(f"{name:22s} {s['p50_ms']:8.1f} {s['p95_ms']:8.1f} {throughput[name]:13.1f} {rss[name]:13.0f}")
    floor, ours, minimal, peer = (table[n] for n in calls)
    print(f"ChampiPy p50 / raw p50 = {ours['p50_ms'] / floor['p50_ms']:.2f}")
    print(f"minimal FastAPI p50 / raw p50 = {minimal['p50_ms'] / floor['p50_ms']:.2f} (HTTP alone)")
    speedup = ours["per_second"] / peer["per_second"]
    print(f"ChampiPy / mlflow models serve, {args.concurrency}-client throughput = {speedup:.2f}")
    against_minimal = ours["per_second"] / minimal["per_second"]
    print(f"ChampiPy / minimal FastAPI, {args.concurrency}-client throughput = {against_minimal:.2f}")
    breakdown = time_breakdown(sequential_timings)
    print(f"\nwhere an uncached ChampiPy upload's time goes, mean ms of {len(sequential_timings)} sequential requests:")
    for name, ms in breakdown.items():
        print(f"  {name:34s} {ms:6.2f}")
    print(json.dumps({"bench": "peers", "stacks": table, "champipy_breakdown_ms": breakdown}))


def parse_server_timing(value: str) -> dict[str, float]:
    """'decode;dur=1.20, app;dur=30.1' -> {'decode': 1.2, 'app': 30.1}"""
    found = {}
    for entry in value.split(","):
        name, _, parameters = entry.strip().partition(";")
        for parameter in parameters.split(";"):
            key, _, number = parameter.strip().partition("=")
            if key == "dur" and name:
                found[name] = float(number)
    return found


def time_breakdown(timings: list[dict[str, float]]) -> dict[str, float]:
    """Mean ms per stage (means add up, medians do not), the app's time outside the stages, and
    what the client waited beyond the app (HTTP parsing, the event loop, the connection)."""
    stages = [name for name in dict.fromkeys(k for t in timings for k in t) if name not in ("app", "client")]
    found = {name: float(np.mean([t.get(name, 0.0) for t in timings])) for name in stages}
    app = float(np.mean([t["app"] for t in timings]))
    found["app outside the stages (routing, JSON)"] = app - sum(found.values())
    found["HTTP and client, outside the app"] = float(np.mean([t["client"] for t in timings])) - app
    found["total (client)"] = float(np.mean([t["client"] for t in timings]))
    return found


if __name__ == "__main__":
    main()
