"""How many expert-confirmed photos a new species needs: its top-1 after learning it from 20,
50 and 100 photos, and the old species' top-1 before and after.

    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \\
    python bench/bench_species_growth.py [--backbone lite2] [--seeds 3] [--cache /tmp/features.npz]

Photos of other species do not exist offline, so each of the 10 species takes its turn as the
"new" one: the base model learns the other 9 from all their training photos; then the new
species joins with n of its training photos (n random photos, ``--seeds`` draws for n < 100)
as a retrain would learn it. Top-1 is measured on the eval photos (never trained on): of the
new species (about 22 per species, so each rate is coarse: intervals are printed), and of the
9 old ones before and after. The recipe is the default's fast path (frozen features averaged
over the photo and its mirror, standardised, L2 logistic head); the temperature does not
change top-1.

Last, the wall time of one real retrain that adds a species with 20 photos
(``train_model`` on 9 x 100 + 20 photos, the default recipe with its 5 folds and open-set
fit); ``--no-timing`` skips it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from bench_open_set import fit_head, served_features  # noqa: E402

from champipy.intervals import wilson  # noqa: E402
from champipy.model.backbone import SpeciesNet  # noqa: E402
from champipy.model.data import examples_from_folder  # noqa: E402
from champipy.model.train import OnnxFeatureExtractor, TrainConfig, train_model  # noqa: E402
from champipy.settings import Settings  # noqa: E402

SIZES = (20, 50, 100)


def top1(logits: np.ndarray, y: np.ndarray) -> tuple[int, int]:
    return int((logits.argmax(1) == y).sum()), len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=TrainConfig().backbone)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--cache", type=Path, help="an .npz to keep the features in between runs")
    parser.add_argument("--no-timing", action="store_true")
    parser.add_argument(
        "--balanced", action="store_true", help="weigh species by the inverse of their photo count in the head"
    )
    args = parser.parse_args()
    settings = Settings()
    if settings.dataset_dir is None or settings.eval_dir is None:
        sys.exit("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR.")
    torch.set_num_threads(2)
    train = examples_from_folder(settings.dataset_dir)
    evaluation = examples_from_folder(settings.eval_dir)
    labels = sorted({e.label for e in train})
    if args.cache and args.cache.exists():
        cached = np.load(args.cache)
        x_train, x_eval = cached["train"], cached["eval"]
    else:
        model = SpeciesNet(args.backbone, len(labels))
        extract = OnnxFeatureExtractor(model)
        x_train = served_features(extract, train, model.image_size)
        x_eval = served_features(extract, evaluation, model.image_size)
        if args.cache:
            np.savez(args.cache, train=x_train, eval=x_eval)
    y_train = np.array([labels.index(e.label) for e in train])
    y_eval = np.array([labels.index(e.label) for e in evaluation])

    new_hits = {n: [0, 0] for n in SIZES}
    old_before, old_after = [0, 0], {n: [0, 0] for n in SIZES}
    print(f"{'new species':<24} {'old before':>10} " + " ".join(f"{'n=' + str(n):>14}" for n in SIZES))
    for new in range(len(labels)):
        old = [s for s in range(len(labels)) if s != new]
        remap = {s: i for i, s in enumerate(old)}
        old_train, old_eval = np.isin(y_train, old), np.isin(y_eval, old)
        base = fit_head(x_train[old_train], np.array([remap[s] for s in y_train[old_train]]), len(old))
        k, n = top1(base(x_eval[old_eval]), np.array([remap[s] for s in y_eval[old_eval]]))
        old_before[0] += k
        old_before[1] += n
        base_top1 = k / n
        cells = []
        new_rows = np.flatnonzero(y_train == new)
        for size in SIZES:
            draws = 1 if size >= len(new_rows) else args.seeds
            new_k = new_n = old_k = old_n = 0
            for seed in range(draws):
                chosen = np.random.default_rng(seed).choice(new_rows, min(size, len(new_rows)), replace=False)
                rows = np.r_[np.flatnonzero(old_train), chosen]
                head = fit_head(x_train[rows], y_train[rows], len(labels), args.balanced)
                logits = head(x_eval)
                k, n = top1(logits[y_eval == new], y_eval[y_eval == new])
                new_k, new_n = new_k + k, new_n + n
                k, n = top1(logits[old_eval], y_eval[old_eval])
                old_k, old_n = old_k + k, old_n + n
            new_hits[size][0] += new_k
            new_hits[size][1] += new_n
            old_after[size][0] += old_k
            old_after[size][1] += old_n
            cells.append(f"{new_k / new_n:6.3f} ({old_k / old_n:.3f})")
        print(f"{labels[new]:<24} {base_top1:10.3f} " + " ".join(f"{c:>14}" for c in cells))
    print("cells: top-1 of the new species' eval photos (old species' top-1 after adding it)")
    before = wilson(*old_before)
    print(f"old species before: {before.rate:.3f} [{before.low:.3f}, {before.high:.3f}] (n={before.n} photo-trials)")
    for size in SIZES:
        learned, kept = wilson(*new_hits[size]), wilson(*old_after[size])
        print(
            f"n={size:<3}: new species top-1 {learned.rate:.3f} [{learned.low:.3f}, {learned.high:.3f}]"
            f"  old species after {kept.rate:.3f} [{kept.low:.3f}, {kept.high:.3f}]"
            "  (intervals treat photo-trials as independent: they are not across seeds; read them as rough)"
        )

    if not args.no_timing:
        new = 0
        examples = [e for e in train if e.label != labels[new]]
        examples += [e for e in train if e.label == labels[new]][:20]
        started = time.perf_counter()
        trained = train_model(examples, TrainConfig(backbone=args.backbone, seed=0))
        print(
            f"one retrain adding {labels[new]} with 20 photos ({len(examples)} photos, {args.backbone}, default "
            f"recipe): {time.perf_counter() - started:.0f} s wall, of which train_seconds "
            f"{trained.metrics['train_seconds']:.0f}"
        )


if __name__ == "__main__":
    main()
