"""Serving settings side by side: several ``champipy serve`` processes, one setting apart, one run.

    python bench/bench_server_settings.py [--variant 'NAME:CHAMPIPY_X=v,CHAMPIPY_Y=w' ...] [--rounds 10]

Without ``--variant`` it compares the served ONNX Runtime session with and without spinning
intra-op threads (``CHAMPIPY_INFERENCE_SPINNING``) and, as a third line, one intra-op thread per
request (``CHAMPIPY_INFERENCE_THREADS=1``). The first variant is the baseline.

The model is trained here on ``--train-per-species`` photos per species (in a child process, as
bench_serving.py does), or reused with ``--mlflow-uri``. Every server runs at once on its own
fresh SQLite store; only one is sent traffic at a time. Each round, in turn for every server:
``--sequential`` uncached uploads one after the other (latency), then ``--burst`` uncached
uploads from ``--concurrency`` clients (requests/s), and the server's CPU time per request of
that burst (from /proc). The machine's speed drifts between rounds, so each round's
requests/s is divided by the baseline's of the same round: the median of those ratios and in
how many rounds the variant was faster say more than the raw medians.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from bench_serving import Server, make_uploads, photo_paths, production_version, service_with_token, train_registry

from champipy.settings import Settings

DEFAULT_VARIANTS = [
    "spinning (default):CHAMPIPY_INFERENCE_SPINNING=true",
    "no spinning:CHAMPIPY_INFERENCE_SPINNING=false",
    "1 thread per request:CHAMPIPY_INFERENCE_THREADS=1",
]


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'name:CHAMPIPY_A=1,CHAMPIPY_B=2' -> ('name', {'CHAMPIPY_A': '1', 'CHAMPIPY_B': '2'})"""
    name, _, assignments = text.partition(":")
    env = dict(item.split("=", 1) for item in assignments.split(",") if item)
    if not name or any(not key.startswith("CHAMPIPY_") for key in env):
        raise argparse.ArgumentTypeError(f"expected NAME:CHAMPIPY_X=v[,...], got {text!r}")
    return name, env


def start_server(work: Path, mlflow_uri: str, env: dict[str, str]) -> tuple[Server, str]:
    """A server on a fresh store, with a user and an API token made beforehand."""
    settings, token = service_with_token(work / "service", mlflow_uri, "bench")
    return Server(settings.data_dir.resolve(), mlflow_uri, work / "server.log", extra_env=env), token


def upload(client: httpx.Client, data: bytes) -> None:
    answer = client.post("/predictions", files={"file": ("p.jpg", data, "image/jpeg")}, data={"top_k": "3"})
    if answer.status_code != 200 or answer.json()["cached"]:
        raise RuntimeError(f"expected an uncached answer, got {answer.status_code}: {answer.text[:200]}")


def send_all(clients: list[httpx.Client], payloads: list[bytes]) -> None:
    """Every payload once, from one thread per client."""
    with ThreadPoolExecutor(len(clients)) as pool:
        list(pool.map(lambda item: upload(clients[item[0] % len(clients)], item[1]), enumerate(payloads)))


def main() -> None:
    base = Settings()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", type=parse_variant, help="NAME:CHAMPIPY_X=v[,...]")
    parser.add_argument("--backbone", default=base.backbone)
    parser.add_argument("--train-per-species", type=int, default=20)
    parser.add_argument("--mlflow-uri", help="reuse this registry's production version")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--sequential", type=int, default=10, help="sequential uploads per server and round")
    parser.add_argument("--burst", type=int, default=48, help="concurrent uploads per server and round")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    variants = dict(args.variant or [parse_variant(v) for v in DEFAULT_VARIANTS])
    work = Path(tempfile.mkdtemp(prefix="champipy-bench-settings-"))
    mlflow_uri = args.mlflow_uri
    if not mlflow_uri:
        print(f"training {args.backbone} on {args.train_per_species} photos per species ...", flush=True)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            pool.apply(
                train_registry,
                (str(work / "registry"), str(base.dataset_dir), args.backbone, args.train_per_species, 0),
            )
        mlflow_uri = f"sqlite:///{work / 'registry' / 'mlflow.db'}"
    info = production_version(Settings(data_dir=work / "raw", mlflow_uri=mlflow_uri, database_url=""))
    per_round = args.sequential + args.burst
    uploads = iter(
        make_uploads(
            photo_paths(Path(base.eval_dir or base.dataset_dir)),
            (args.rounds + 1) * per_round * len(variants),
            0,
            uuid.uuid4().hex[:8],
        )
    )

    servers: dict[str, tuple[Server, str]] = {}
    try:
        for i, (name, env) in enumerate(variants.items()):
            servers[name] = start_server(work / f"server-{i}", mlflow_uri, env)

        def clients(name: str) -> list[httpx.Client]:
            # New connections each round: an idle keep-alive connection may be closed meanwhile.
            url, token = servers[name][0].url, servers[name][1]
            headers = {"Authorization": f"Bearer {token}"}
            return [
                httpx.Client(base_url=url, headers=headers, trust_env=False, timeout=60)
                for _ in range(args.concurrency)
            ]

        latencies: dict[str, list[list[float]]] = {name: [] for name in variants}  # per round
        rates: dict[str, list[float]] = {name: [] for name in variants}
        cpu_ms: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds + 1):  # round 0 warms every server up, not counted
            for name in variants:
                server, pool_clients = servers[name][0], clients(name)
                this_round = []
                for _ in range(args.sequential):
                    data = next(uploads)
                    began = time.perf_counter()
                    upload(pool_clients[0], data)
                    this_round.append((time.perf_counter() - began) * 1000)
                if round_:
                    latencies[name].append(this_round)
                burst = [next(uploads) for _ in range(args.burst)]
                cpu, began = server.cpu_seconds(), time.perf_counter()
                send_all(pool_clients, burst)
                if round_:
                    rates[name].append(len(burst) / (time.perf_counter() - began))
                    cpu_ms[name].append((server.cpu_seconds() - cpu) * 1000 / len(burst))
                for client in pool_clients:
                    client.close()
    finally:
        for server, _ in servers.values():
            server.stop()

    baseline = next(iter(variants))
    print(f"\n{info.params.get('backbone', args.backbone)}, uncached uploads, {args.rounds} interleaved rounds")
    print("(x: the median over rounds of this server's value / the baseline's in the same round)")
    header = f"{'server':26s} {'p50 ms':>7s} {'x':>6s} {f'{args.concurrency} clients/s':>13s} {'x':>6s}"
    print(f"{header} {'more /s in':>11s} {'CPU ms/req':>11s}")
    base_p50 = np.median(latencies[baseline], axis=1)
    table = {}
    for name in variants:
        p50_ratios = np.median(latencies[name], axis=1) / base_p50
        rate_ratios = np.asarray(rates[name]) / np.asarray(rates[baseline])
        row = {
            "p50_ms": round(float(np.median(latencies[name])), 2),
            "p50_ratio": round(float(np.median(p50_ratios)), 3),
            "per_second": round(float(np.median(rates[name])), 2),
            "per_second_ratio": round(float(np.median(rate_ratios)), 3),
            "rounds_more_per_second": int((rate_ratios > 1).sum()),
            "cpu_ms_per_request": round(float(np.median(cpu_ms[name])), 1),
            "env": variants[name],
        }
        table[name] = row
        print(
            f"{name:26s} {row['p50_ms']:7.1f} {row['p50_ratio']:6.2f} {row['per_second']:13.1f}"
            f" {row['per_second_ratio']:6.2f} {row['rounds_more_per_second']:>4d} of {args.rounds}"
            f" {row['cpu_ms_per_request']:11.1f}"
        )
    print(json.dumps({"bench": "server_settings", "variants": table}))


if __name__ == "__main__":
    main()
