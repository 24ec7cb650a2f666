"""Can a stranger tell an existing user name from the time a wrong sign-in takes?

    python bench/bench_login_timing.py [--rounds 50]

Serves the app in this process (uvicorn on 127.0.0.1, a fresh SQLite data dir), with the
throttle's limits raised so that no series is locked out, then times interleaved HTTP Basic
sign-ins that fail: an unknown user, a disabled user, and an existing user with a wrong
password. Prints each median, the ratios to the wrong-password median, and one JSON line.
Goal (hardening issue, item 7): every ratio within 0.8-1.2.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

from champipy.api.app import create_app
from champipy.services.users import add_user, set_disabled
from champipy.settings import Settings
from champipy.store import open_store


def serve(settings: Settings) -> tuple[uvicorn.Server, threading.Thread, str]:
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, thread, f"http://127.0.0.1:{port}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            data_dir=Path(tmp), bootstrap_model=False, login_max_failures=100_000, login_user_soft_limit=100_000
        )
        settings.ensure_data_dir()
        store = open_store(settings.resolved_database_url)
        add_user(store, "existing", "the-right-password")
        add_user(store, "disabled", "the-right-password")
        set_disabled(store, "disabled", True)
        server, thread, url = serve(settings)
        series = {"unknown user": "nobody-here", "disabled user": "disabled", "wrong password": "existing"}
        times: dict[str, list[float]] = {name: [] for name in series}
        with httpx.Client(base_url=url, trust_env=False) as client:
            for username in series.values():  # warm-up: the dummy hash, connections
                client.get("/user", auth=(username, "warm-up-guess"))
            for i in range(args.rounds):
                for name, username in series.items():
                    started = time.perf_counter()
                    answer = client.get("/user", auth=(username, f"guess-{i}"))
                    times[name].append((time.perf_counter() - started) * 1000)
                    assert answer.status_code == 401, answer.text
        server.should_exit = True
        thread.join(10)
        store.close()
    medians = {name: statistics.median(values) for name, values in times.items()}
    baseline = medians["wrong password"]
    print(f"{'series':<16} {'median ms':>10} {'ratio':>7}")
    for name, median in medians.items():
        print(f"{name:<16} {median:>10.1f} {median / baseline:>7.2f}")
    ratios = {name: round(m / baseline, 3) for name, m in medians.items()}
    print(
        json.dumps(
            {
                "rounds": args.rounds,
                "median_ms": {k: round(v, 2) for k, v in medians.items()},
                "ratio_to_wrong_password": ratios,
                "within_20_percent": all(0.8 <= r <= 1.2 for r in ratios.values()),
            }
        )
    )


if __name__ == "__main__":
    main()
