"""False alarms on clean traffic and detection delay on drifted traffic, for each drift signal.

    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \\
    python bench/bench_drift.py [--windows 500] [--window 200] [--checks-every 10]

Trains the default recipe on the training photos (its held-out reference included), exports
it, and scores with the served ONNX model: the eval photos (clean traffic, never trained on)
and the generated out-of-distribution set (tests/support/ood_images.py: blurred, pixelated and
tiny crops of eval photos, and non-mushroom images). Then, with the service's own signal code
(services/drift.py) and settings:

- false alarms: ``--windows`` windows of ``--window`` answers drawn with replacement from the
  clean photos; the share of windows in which each signal alerts. The eval set has 222 photos,
  so windows overlap heavily: the estimate is about this set, not about new photos;
- detection delay: a stream of clean answers, then from the onset a mix with a share of
  drifted ones; the check runs every ``--checks-every`` answers on the last ``--window``; the
  number of answers after the onset until the first alert (median over 50 streams), per
  drift kind and share.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from champipy.images import decode_image  # noqa: E402
from champipy.model.classifier import Classifier  # noqa: E402
from champipy.model.data import examples_from_folder  # noqa: E402
from champipy.model.export import export_serving_model  # noqa: E402
from champipy.model.train import TrainConfig, train_model  # noqa: E402
from champipy.services.drift import live_signals  # noqa: E402
from champipy.settings import Settings  # noqa: E402
from champipy.store.base import OpenSetVerdict, Prediction, SpeciesScore  # noqa: E402
from support.ood_images import DEGRADED_MUSHROOM, NON_MUSHROOM, write_ood_set  # noqa: E402

SIGNALS = ("rejected_share", "score_drift", "confidence_drift")


def scored(classifier: Classifier, paths: list[Path]) -> list[tuple[float, float]]:
    """(top probability, open-set score) of each photo, as served."""
    found = []
    for start in range(0, len(paths), 32):
        batch = np.stack([classifier.preprocess(decode_image(p.read_bytes()).image) for p in paths[start : start + 32]])
        out = classifier.predict_scored(batch)
        assert out.open_set_scores is not None
        found += list(zip(out.probabilities.max(axis=1).tolist(), out.open_set_scores.tolist(), strict=True))
    return found


def as_predictions(rows: list[tuple[float, float]], threshold: float) -> list[Prediction]:
    return [
        Prediction(
            username="replay",
            image_sha256=f"{i:064x}",
            model_name="champipy",
            model_version="1",
            results=(SpeciesScore("top", top),),
            open_set=OpenSetVerdict(score=score, threshold=threshold),
            id=str(i),
        )
        for i, (top, score) in enumerate(rows)
    ]


def alerts(rows: list[tuple[float, float]], threshold: float, reference, settings: Settings) -> set[str]:
    signals = live_signals(as_predictions(rows, threshold), [], reference, settings)
    return {s.name for s in signals if s.alert}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=500)
    parser.add_argument("--window", type=int, default=Settings().drift_window)
    parser.add_argument("--checks-every", type=int, default=10)
    parser.add_argument("--streams", type=int, default=30)
    args = parser.parse_args()
    settings = Settings()
    if settings.dataset_dir is None or settings.eval_dir is None:
        sys.exit("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR.")
    started = time.perf_counter()
    trained = train_model(examples_from_folder(settings.dataset_dir), TrainConfig(seed=0))
    with tempfile.TemporaryDirectory() as tmp:
        classifier = Classifier.load(export_serving_model(trained, Path(tmp) / "model"))
        ood = Path(tmp) / "ood"
        write_ood_set(ood, mushrooms=Path(settings.eval_dir))
        clean = scored(classifier, sorted(Path(settings.eval_dir).rglob("*.jpg")))
        drifted = {
            kind: scored(classifier, sorted((ood / kind).iterdir())) for kind in NON_MUSHROOM + DEGRADED_MUSHROOM
        }
    reference, threshold = classifier.drift_reference, classifier.open_set.threshold  # type: ignore[union-attr]
    print(
        f"trained and scored in {time.perf_counter() - started:.0f} s; window {args.window}, "
        f"KS threshold {settings.drift_ks_threshold}, alpha {settings.drift_alpha}"
    )

    rng = np.random.default_rng(0)
    false = dict.fromkeys(SIGNALS, 0)
    for _ in range(args.windows):
        rows = [clean[i] for i in rng.integers(0, len(clean), args.window)]
        for name in alerts(rows, threshold, reference, settings):
            false[name] += 1
    print("false alarms on clean windows: " + ", ".join(f"{n} {false[n] / args.windows:.3f}" for n in SIGNALS))

    kinds = {
        "non-mushroom": [r for k in NON_MUSHROOM for r in drifted[k]],
        "blurred": drifted["blurred"],
        "pixelated": drifted["pixelated"],
        "tiny crops": drifted["tiny_crops"],
    }
    print(f"detection delay (answers after onset, median of {args.streams} streams; '-' never within 1000):")
    print(f"{'drift':<14}{'share':>6}  " + "  ".join(f"{n:>17}" for n in SIGNALS))
    for kind, pool in kinds.items():
        for share in (0.1, 0.3, 1.0):
            delays: dict[str, list[float]] = {n: [] for n in SIGNALS}
            for _ in range(args.streams):
                stream = [clean[i] for i in rng.integers(0, len(clean), args.window)]
                first: dict[str, float] = {}
                for step in range(1, 1001):
                    drift = rng.random() < share
                    stream.append(pool[rng.integers(0, len(pool))] if drift else clean[rng.integers(0, len(clean))])
                    if step % args.checks_every == 0:
                        for name in alerts(stream[-args.window :], threshold, reference, settings):
                            first.setdefault(name, step)
                    if len(first) == len(SIGNALS):
                        break
                for name in SIGNALS:
                    delays[name].append(first.get(name, float("inf")))
            cells = []
            for name in SIGNALS:
                median = float(np.median(delays[name]))
                cells.append(f"{'-' if median == float('inf') else f'{median:.0f}':>17}")
            print(f"{kind:<14}{share:>6.1f}  " + "  ".join(cells))


if __name__ == "__main__":
    main()
