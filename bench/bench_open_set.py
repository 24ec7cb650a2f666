"""Open-set scores side by side: which one tells "one of the species I know" from the rest.

    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \
    python bench/bench_open_set.py [--backbone lite2] [--keep-rate 0.98] [--k 5]

In-set: the eval photos (never trained on). Far out-of-distribution: the non-mushroom
categories of tests/support/ood_images.py (faces, photos, textures, microscopy, drawings,
noise), generated into a temporary folder; degraded mushroom photos (blurred, pixelated, tiny
crops) are reported apart. Near out-of-distribution: leave 2 species out of training (5
disjoint pairs) and score their photos (train and eval) as unknown.

Each method's threshold is set as training sets it: on out-of-fold in-set scores of the
training photos (5 folds), so ``rejected``/``recognised`` are what serving would do; AUROC and
the false-positive rate at 95% in-set kept (FPR@95) do not depend on a threshold. The
features are the frozen backbone's, averaged over the photo and its mirror, as served.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from champipy.intervals import wilson  # noqa: E402
from champipy.model.backbone import SpeciesNet  # noqa: E402
from champipy.model.calibrate import fit_temperature, softmax  # noqa: E402
from champipy.model.data import Example, examples_from_folder, load_examples  # noqa: E402
from champipy.model.open_set import DEFAULT_K, METHODS, fit_with_held_out_threshold  # noqa: E402
from champipy.model.preprocess import scale_pixels  # noqa: E402
from champipy.model.train import OnnxFeatureExtractor, _fit_logistic_regression  # noqa: E402
from champipy.settings import Settings  # noqa: E402
from support.ood_images import DEGRADED_MUSHROOM, NON_MUSHROOM, write_ood_set  # noqa: E402

HEAD_L2 = 1e-2


def served_features(extract: OnnxFeatureExtractor, examples: list[Example], size: int) -> np.ndarray:
    items = load_examples(examples, size, keep_images=False)
    out = []
    for start in range(0, len(items), 32):
        centre = np.stack([item.centre for item in items[start : start + 32]])
        mirror = np.ascontiguousarray(centre[:, :, ::-1])
        out.append((extract(scale_pixels(centre)) + extract(scale_pixels(mirror))) / 2)
    return np.concatenate(out)


def fit_head(x: np.ndarray, y: np.ndarray, classes: int, balanced: bool = False):
    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-6
    head, _, _ = _fit_logistic_regression((x - mean) / std, y, classes, HEAD_L2, balanced)

    def logits(features: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return head(torch.from_numpy(((features - mean) / std).astype(np.float32))).double().numpy()

    return logits


def folds_of(y: np.ndarray, n: int = 5, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), dtype=np.int64)
    for label in np.unique(y):
        rows = np.flatnonzero(y == label)
        fold_of[rows[rng.permutation(len(rows))]] = np.arange(len(rows)) % n
    return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(n)]


def fpr_at(in_scores: np.ndarray, out_scores: np.ndarray, keep: float = 0.95) -> float:
    return float((out_scores <= np.quantile(in_scores, keep)).mean())


def auroc(in_scores: np.ndarray, out_scores: np.ndarray) -> float:
    return float(roc_auc_score(np.r_[np.zeros(len(in_scores)), np.ones(len(out_scores))], np.r_[in_scores, out_scores]))


def auroc_interval(in_scores: np.ndarray, out_scores: np.ndarray, rounds: int = 500, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95% interval, both sets resampled."""
    rng = np.random.default_rng(seed)
    values = [
        auroc(
            in_scores[rng.integers(0, len(in_scores), len(in_scores))],
            out_scores[rng.integers(0, len(out_scores), len(out_scores))],
        )
        for _ in range(rounds)
    ]
    return [float(np.quantile(values, 0.025)), float(np.quantile(values, 0.975))]


def scenario(x_train, y_train, x_in, y_in, outs: dict[str, np.ndarray], methods, keep_rate, k):
    """Fit the head and every method on (x_train, y_train) as training does; score the rest."""
    classes = int(y_train.max()) + 1
    folds = folds_of(y_train)
    held_logits = []
    for train_rows, held_rows in folds:
        held_logits.append(fit_head(x_train[train_rows], y_train[train_rows], classes)(x_train[held_rows]))
    held_y = np.concatenate([y_train[rows] for _, rows in folds])
    temperature = fit_temperature(np.concatenate(held_logits), held_y).temperature
    logits = fit_head(x_train, y_train, classes)
    in_logits = logits(x_in)
    out_logits = {name: logits(x) for name, x in outs.items()}
    top1 = softmax(in_logits, temperature).argmax(1) == y_in
    rows = {}
    for method in methods:
        started = time.perf_counter()
        score, fit, _ = fit_with_held_out_threshold(
            method, x_train, y_train, temperature, folds, held_logits, keep_rate, k=k
        )
        s_in = score.score(x_in, in_logits)
        recognised = s_in <= fit.threshold
        row = {
            "threshold": fit.threshold,
            "n_in": len(s_in),
            "in_rejected": float((~recognised).mean()),
            "top1_all": float(top1.mean()),
            "top1_recognised": float(top1[recognised].mean()),
            "fit_s": time.perf_counter() - started,
        }
        for name, x in outs.items():
            s_out = score.score(x, out_logits[name])
            row[f"{name}_auroc"] = auroc(s_in, s_out)
            row[f"{name}_fpr95"] = fpr_at(s_in, s_out)
            row[f"{name}_recognised"] = float((s_out <= fit.threshold).mean())
            row[f"{name}_n"] = len(s_out)
            row[f"{name}_auroc_ci"] = auroc_interval(s_in, s_out)
        rows[method] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="lite2")
    parser.add_argument("--keep-rate", type=float, default=0.98)
    parser.add_argument("--k", type=int, default=DEFAULT_K)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--cache", type=Path, help="an .npz to keep the features in between runs")
    parser.add_argument("--json", type=Path, help="write the full table here")
    args = parser.parse_args()
    settings = Settings()
    if settings.dataset_dir is None or settings.eval_dir is None:
        sys.exit("Set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR.")
    methods = args.methods.split(",")
    torch.set_num_threads(2)

    train = examples_from_folder(settings.dataset_dir)
    evaluation = examples_from_folder(settings.eval_dir)
    labels = sorted({e.label for e in train})
    with tempfile.TemporaryDirectory() as tmp:
        write_ood_set(Path(tmp), mushrooms=Path(settings.eval_dir))
        ood = {
            category: examples_from_folder_flat(Path(tmp) / category) for category in NON_MUSHROOM + DEGRADED_MUSHROOM
        }
        if args.cache and args.cache.exists():
            cached = np.load(args.cache)
            features = {name: cached[name] for name in cached.files}
        else:
            model = SpeciesNet(args.backbone, len(labels))
            extract = OnnxFeatureExtractor(model)
            started = time.perf_counter()
            features = {
                "train": served_features(extract, train, model.image_size),
                "eval": served_features(extract, evaluation, model.image_size),
            }
            for category, examples in ood.items():
                features[category] = served_features(extract, examples, model.image_size)
            print(f"features: {time.perf_counter() - started:.0f} s", file=sys.stderr)
            if args.cache:
                np.savez(args.cache, **features)
    y_train = np.array([labels.index(e.label) for e in train])
    y_eval = np.array([labels.index(e.label) for e in evaluation])
    non_mushroom = np.concatenate([features[c] for c in NON_MUSHROOM])
    outs = {"non_mushroom": non_mushroom, **{c: features[c] for c in NON_MUSHROOM + DEGRADED_MUSHROOM}}
    full = scenario(features["train"], y_train, features["eval"], y_eval, outs, methods, args.keep_rate, args.k)

    leave_out = {method: [] for method in methods}
    for pair in range(len(labels) // 2):
        out_species = {2 * pair, 2 * pair + 1}
        kept = [s for s in range(len(labels)) if s not in out_species]
        remap = {s: i for i, s in enumerate(kept)}
        train_in = np.isin(y_train, kept)
        eval_in = np.isin(y_eval, kept)
        unknown = np.concatenate([features["train"][~train_in], features["eval"][~eval_in]])
        rows = scenario(
            features["train"][train_in],
            np.array([remap[s] for s in y_train[train_in]]),
            features["eval"][eval_in],
            np.array([remap[s] for s in y_eval[eval_in]]),
            {"unknown_species": unknown},
            methods,
            args.keep_rate,
            args.k,
        )
        for method in methods:
            leave_out[method].append(rows[method])

    print(
        f"{'method':<12} {'in rej':>6} {'top1 rec':>8} | {'far AUROC':>9} {'FPR@95':>6} {'far rec':>7} |"
        f" {'L2O AUROC':>9} {'min':>5} {'L2O rec':>7} | blurred pixel tiny (recognised)"
    )
    for method in methods:
        row, l2o = full[method], leave_out[method]
        aurocs = [r["unknown_species_auroc"] for r in l2o]
        print(
            f"{method:<12} {row['in_rejected']:6.3f} {row['top1_recognised']:8.3f} | {row['non_mushroom_auroc']:9.3f}"
            f" {row['non_mushroom_fpr95']:6.3f} {row['non_mushroom_recognised']:7.3f} | {np.mean(aurocs):9.3f}"
            f" {min(aurocs):5.3f} {np.mean([r['unknown_species_recognised'] for r in l2o]):7.3f} |"
            f" {row['blurred_recognised']:.2f} {row['pixelated_recognised']:.2f} {row['tiny_crops_recognised']:.2f}"
        )
    print(f"top-1 on eval, all photos: {full[methods[0]]['top1_all']:.3f} (n={len(y_eval)})")
    print("95% intervals (Wilson for rates, bootstrap for AUROC; the eval set is small and tuned on):")
    for method in methods:
        row = full[method]
        n_in, n_far = row["n_in"], row["non_mushroom_n"]
        rejected = wilson(round(row["in_rejected"] * n_in), n_in)
        far = wilson(round(row["non_mushroom_recognised"] * n_far), n_far)
        low, high = row["non_mushroom_auroc_ci"]
        l2o = [r["unknown_species_auroc"] for r in leave_out[method]]
        print(
            f"  {method:<12} in rejected [{rejected.low:.3f}, {rejected.high:.3f}]  far recognised"
            f" [{far.low:.3f}, {far.high:.3f}]  far AUROC [{low:.3f}, {high:.3f}]"
            f"  L2O AUROC per pair {' '.join(f'{a:.3f}' for a in l2o)}"
        )
    if args.json:
        args.json.write_text(json.dumps({"full": full, "leave_2_out": leave_out}, indent=2))


def examples_from_folder_flat(folder: Path) -> list[Example]:
    """One category folder of the OOD set as examples (label: the category)."""
    from champipy.images import sha256_hex

    return [
        Example(sha256_hex(path.read_bytes()), folder.name, "ood", path.read_bytes) for path in sorted(folder.iterdir())
    ]


if __name__ == "__main__":
    main()
