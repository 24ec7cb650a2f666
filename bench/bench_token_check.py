"""What checking a bearer token costs once replicas must see each other's revocations.

    python bench/bench_token_check.py [--calls 5000] [--postgres URL] [--redis URL]

A token's user is remembered per process (CHAMPIPY_TOKEN_CACHE_SECONDS); since revocations are
shared, a remembered user counts only after one read of the revocation counter. Times
``Authenticator.with_token`` for one valid token, interleaved in rounds, in four ways:

- ``memory clock`` (baseline): remembered, the counter in process memory (one process);
- ``redis clock``: remembered, the counter in Redis (what replicas do);
- ``no cache, postgres``: every call reads the token and its user from PostgreSQL;
- ``no cache, sqlite``: the same from the embedded SQLite store.

Prints the median microseconds per call, the ratios to the baseline and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
from psycopg import sql

from champipy.services import users
from champipy.services.login_throttle import LoginThrottle, throttle_storage
from champipy.services.token_revocations import RevocationClock
from champipy.store import open_store


def authenticator(store, counters_url: str, cache_seconds: float) -> users.Authenticator:
    counters = throttle_storage(counters_url)
    return users.Authenticator(
        store, LoginThrottle(counters, 5, 60), token_cache_seconds=cache_seconds, revocations=RevocationClock(counters)
    )


def per_call_us(auth: users.Authenticator, token: str, calls: int) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        auth.with_token(token)
    return (time.perf_counter() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=5000, help="calls per way and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()

    database = f"bench_tokens_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    stores = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = open_store(f"sqlite:///{Path(tmp) / 'bench.db'}")
            postgres = open_store(f"{args.postgres.rsplit('/', 1)[0]}/{database}")
            stores = [sqlite, postgres]
            tokens = {}
            for name, store in (("sqlite", sqlite), ("postgres", postgres)):
                store.add_user("bench", "not-a-password-hash", users.roles_for(False))
                tokens[name] = users.create_token(store, "bench", "bench").token
            ways = {
                "memory clock": (authenticator(postgres, "memory://", 600), tokens["postgres"]),
                "redis clock": (authenticator(postgres, args.redis, 600), tokens["postgres"]),
                "no cache, postgres": (authenticator(postgres, "memory://", 0), tokens["postgres"]),
                "no cache, sqlite": (authenticator(sqlite, "memory://", 0), tokens["sqlite"]),
            }
            for auth, token in ways.values():
                per_call_us(auth, token, 100)  # warm: connections opened, the user remembered
            samples: dict[str, list[float]] = {name: [] for name in ways}
            for _ in range(args.rounds):
                for name, (auth, token) in ways.items():
                    calls = args.calls if "clock" in name else max(1, args.calls // 10)
                    samples[name].append(per_call_us(auth, token, calls))
    finally:
        for store in stores:
            store.close()
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database)))

    medians = {name: statistics.median(values) for name, values in samples.items()}
    baseline = medians["memory clock"]
    print(f"{'way':<20} {'us/call':>10} {'x baseline':>11}")
    for name, value in medians.items():
        print(f"{name:<20} {value:>10.1f} {value / baseline:>11.1f}")
    print(
        json.dumps(
            {"bench": "token_check", "us_per_call": medians, "ratio": {n: v / baseline for n, v in medians.items()}}
        )
    )


if __name__ == "__main__":
    main()
