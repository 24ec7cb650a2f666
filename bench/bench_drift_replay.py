"""The drift signals measured end to end with the replay tool, against a live service.

    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \\
    python bench/bench_drift_replay.py [--window 100] [--check-every 20]

Trains and registers the default recipe, serves it (the real app, SQLite, in this process on
127.0.0.1), then replays as traffic with ``champipy.replay``: first the eval photos (clean,
never trained on; 20% given true-label feedback), running the periodic check (POST /monitor)
every ``--check-every`` answers; then the generated drifted set (blurred, pixelated and tiny
crops of eval photos, and non-mushroom images; tests/support/ood_images.py), checking the
same way. Prints every check's signals, the clean checks that alerted (false alarms) and the
number of drifted answers until each signal's first alert (detection delay). The eval set
gives 222 distinct photos, so only a couple of disjoint clean windows exist:
bench/bench_drift.py estimates the false-alarm rate on many resampled windows.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from champipy.api.app import create_app  # noqa: E402
from champipy.model.data import examples_from_folder  # noqa: E402
from champipy.model.pipeline import train_and_register  # noqa: E402
from champipy.model.train import TrainConfig  # noqa: E402
from champipy.registry import Registry  # noqa: E402
from champipy.replay import ReplaySummary, replay  # noqa: E402
from champipy.settings import Settings  # noqa: E402
from champipy.store import open_store  # noqa: E402
from support.accounts import make_account  # noqa: E402
from support.live_server import client, live_server  # noqa: E402
from support.ood_images import write_ood_set  # noqa: E402

SIGNALS = ("expert_accuracy", "rejected_share", "score_drift", "confidence_drift")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--check-every", type=int, default=20)
    args = parser.parse_args()
    base = Settings()
    if base.dataset_dir is None or base.eval_dir is None:
        sys.exit("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR.")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            data_dir=root / "data",
            mlflow_uri="",
            eval_dir=None,  # the drift signals only: no evaluation of the fixed folder
            bootstrap_model=False,
            drift_window=args.window,
            drift_min_window=min(50, args.window),
            drift_min_feedback=10,
        )
        settings.ensure_data_dir()
        outcome = train_and_register(settings, examples_from_folder(base.dataset_dir), TrainConfig(seed=0))
        Registry(settings).promote(outcome.version.version)
        write_ood_set(root / "drifted", mushrooms=Path(base.eval_dir))
        store = open_store(settings.resolved_database_url)
        user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
        checks: list[tuple[str, int, dict]] = []
        with live_server(create_app(settings)) as url, client(url, auth=admin.auth) as bob:

            def checker(phase: str):
                def on_photo(summary: ReplaySummary) -> None:
                    if summary.sent and summary.sent % args.check_every == 0:
                        result = bob.post("/monitor").json()
                        checks.append((phase, summary.sent, {s["name"]: s for s in result["signals"]}))

                return on_photo

            with client(url, auth=user.auth) as c:
                clean = replay(c, Path(base.eval_dir), 0.2, seed=0, on_photo=checker("clean"))
                drifted = replay(c, root / "drifted", 0.0, seed=1, on_photo=checker("drifted"))
        store.close()
    print(
        f"replayed {clean.sent} clean (feedback on {clean.feedback}) then {drifted.sent} drifted photos; "
        f"window {args.window}, a check every {args.check_every} answers"
    )
    print(f"{'phase':<8}{'answers':>8}  " + "  ".join(f"{n:>17}" for n in SIGNALS))
    for phase, sent, signals in checks:
        cells = []
        for name in SIGNALS:
            s = signals[name]
            value = "-" if s["value"] is None else f"{s['value']:.3f}"
            cells.append(f"{value + (' ALERT' if s['alert'] else ''):>17}")
        print(f"{phase:<8}{sent:>8}  " + "  ".join(cells))
    false = [(sent, n) for phase, sent, s in checks if phase == "clean" for n in SIGNALS if s[n]["alert"]]
    print(
        f"false alarms on clean traffic: {len(false)} signal-checks of "
        f"{sum(p == 'clean' for p, _, _ in checks) * len(SIGNALS)} {false}"
    )
    for name in SIGNALS:
        first = next((sent for phase, sent, s in checks if phase == "drifted" and s[name]["alert"]), None)
        print(f"  {name}: first alert after {first if first is not None else 'none within'} drifted answers")


if __name__ == "__main__":
    main()
