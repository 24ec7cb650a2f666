"""Choosing the training recipe by cross-validation on the training photos, eval as a last check.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \
    python bench/bench_recipes.py [--seeds 0,1,2] [--only "NAME;NAME"] [--fine-tune] [--alternatives]

Every candidate is trained by the product's own ``train_model`` once per seed. Its fast path
already cross-fits the head on 5 stratified folds (the seed draws the folds), so each training
photo is predicted once by a head that never saw it: the candidate's **CV top-1** is the share of
those out-of-fold answers that are right, averaged over the seeds. The folds of a seed are the
same for every candidate, so candidates are compared photo by photo: the interval on a
difference is a paired bootstrap over photos (SciPy), much narrower than the two candidates'
own Wilson intervals side by side.

Also per candidate: the training time (seed 0 and the mean), the calibrated out-of-fold ECE,
the exported model's inference time per photo (ONNX Runtime, batch 1, ``--threads``, every
candidate timed in alternating blocks so that the machine's drift hits all alike), and its
eval top-1 / top-3 / ECE (seed 0's model on CHAMPIPY_EVAL_DIR: a last check, not a criterion).

``--fine-tune`` adds fine-tuning the last blocks (the slower "retrain" path): one seed, its own
80/20 split, so it is compared on that split's photos only. ``--alternatives`` adds what the
product's recipe cannot express, on the same folds and the same served features: a small MLP head
instead of the logistic regression, and three crops along the long side (each mirrored) instead
of the centre crop and its mirror.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_inference import timings
from scipy.stats import bootstrap

from champipy.model.classifier import Classifier
from champipy.model.data import examples_from_folder
from champipy.model.evaluate import evaluate_folder
from champipy.model.export import export_serving_model
from champipy.model.train import TrainConfig, TrainedModel, train_model, use_fast_malloc
from champipy.settings import Settings

BASELINE = "lite2, mirror (before)"
CHOSEN = "lite0+lite2, mirror, INT8 (chosen)"

# Float unless named INT8, so that each row measures one change against the recipe before.
CANDIDATES: dict[str, TrainConfig] = {
    BASELINE: TrainConfig(backbone="lite2", int8=False),
    "lite2, no mirror": TrainConfig(backbone="lite2", flip_tta=False, int8=False),
    "lite2 at 300 px, mirror": TrainConfig(backbone="lite2", image_size=300, int8=False),
    "lite2 + 4 augmented views, mirror": TrainConfig(backbone="lite2", feature_views=4, int8=False),
    "lite0, mirror": TrainConfig(backbone="lite0", int8=False),
    "lite0, no mirror": TrainConfig(backbone="lite0", flip_tta=False, int8=False),
    "lite0+lite2, mirror": TrainConfig(backbone="lite0+lite2", int8=False),
    "lite0+lite2, no mirror": TrainConfig(backbone="lite0+lite2", flip_tta=False, int8=False),
    "lite0+lite2, mirrored training views": TrainConfig(backbone="lite0+lite2", flip_features=True, int8=False),
    "lite0+lite1+lite2, mirror": TrainConfig(backbone="lite0+lite1+lite2", int8=False),
    CHOSEN: TrainConfig(),
    "lite0+lite2, no mirror, INT8": TrainConfig(flip_tta=False),
}
FINE_TUNE = "lite0+lite2, fine-tune last 5 blocks"


@dataclass
class Outcome:
    config: TrainConfig
    hits: dict[int, dict[str, bool]] = field(default_factory=dict)  # seed -> photo sha -> right
    train_seconds: dict[int, float] = field(default_factory=dict)
    ece: dict[int, float] = field(default_factory=dict)
    model_dir: Path | None = None
    eval: dict[str, float] = field(default_factory=dict)
    inference_ms: float | None = None


def run(name: str, config: TrainConfig, seeds: list[int], examples: list, settings: Settings, work: Path) -> Outcome:
    outcome = Outcome(config)
    for seed in seeds:
        trained = train_model(examples, replace(config, seed=seed))
        outcome.hits[seed] = trained_hits(trained)
        outcome.train_seconds[seed] = trained.metrics["train_seconds"]
        outcome.ece[seed] = trained.metrics["val_ece"]
        top1 = float(np.mean(list(outcome.hits[seed].values())))
        print(f"  {name} seed {seed}: CV top-1 {top1:.4f}, {trained.metrics['train_seconds']:.0f} s", flush=True)
        if seed == seeds[0]:
            outcome.model_dir = export_serving_model(trained, work / f"model-{len(list(work.iterdir()))}")
            outcome.eval = evaluate(outcome.model_dir, settings)
    return outcome


def evaluate(model_dir: Path, settings: Settings) -> dict[str, float]:
    if not settings.eval_dir:
        return {}
    report = evaluate_folder(Classifier.load(model_dir), settings.eval_dir)
    return {"top1": report.top1, "top3": report.top3, "ece": report.ece, "n": report.n}


def time_inference(outcomes: dict[str, Outcome], threads: int, runs: int, blocks: int) -> None:
    """Median ms per photo of each exported model, timed in alternating blocks in a fresh process
    (training's threads measurably slow ONNX Runtime in the process that trained)."""
    directories = {name: str(o.model_dir) for name, o in outcomes.items() if o.model_dir is not None}
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        medians = pool.apply(inference_medians, (directories, threads, runs, blocks))
    for name, median in medians.items():
        outcomes[name].inference_ms = median


def inference_medians(directories: dict[str, str], threads: int, runs: int, blocks: int) -> dict[str, float]:
    classifiers = {name: Classifier.load(directory, threads=threads) for name, directory in directories.items()}
    inputs = {
        name: np.random.default_rng(0).uniform(-1, 1, (1, 3, c.image_size, c.image_size)).astype(np.float32)
        for name, c in classifiers.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in classifiers}
    for _ in range(blocks):
        for name, classifier in classifiers.items():
            x = inputs[name]
            samples[name].extend(timings(lambda c=classifier, x=x: c.predict_batch(x), runs // blocks))
    return {name: float(np.median(values)) for name, values in samples.items()}


def per_photo_rate(outcome: Outcome, photos: list[str]) -> np.ndarray:
    """Each photo's share of seeds in which it was answered right."""
    seeds = sorted(outcome.hits)
    return np.array([np.mean([outcome.hits[s][p] for s in seeds if p in outcome.hits[s]]) for p in photos])


def mean_interval(values: np.ndarray) -> tuple[float, float, float]:
    """Mean over photos with its 95% bootstrap interval (BCa, photos resampled): for one
    recipe's per-photo hit rates, or for two recipes' per-photo differences (paired)."""
    if np.all(values == values[0]):
        return float(values[0]), float(values[0]), float(values[0])
    result = bootstrap((values,), np.mean, confidence_level=0.95, n_resamples=10_000, rng=0)
    return float(values.mean()), float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_interval(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Mean of a - b over the same photos, with its 95% bootstrap interval."""
    return mean_interval(a - b)


def table(outcomes: dict[str, Outcome], baseline: str) -> list[dict[str, Any]]:
    base = outcomes[baseline]
    rows = []
    for name, outcome in outcomes.items():
        photos = sorted(set.intersection(*(set(h) for h in outcome.hits.values())))
        rate = per_photo_rate(outcome, photos)
        seeds_top1 = [float(np.mean([outcome.hits[s][p] for p in photos])) for s in sorted(outcome.hits)]
        own = mean_interval(rate)
        shared = [p for p in photos if all(p in h for h in base.hits.values())]
        difference = paired_interval(per_photo_rate(outcome, shared), per_photo_rate(base, shared))
        rows.append(
            {
                "recipe": name,
                "photos": len(photos),
                "seeds": sorted(outcome.hits),
                "cv_top1": float(rate.mean()),
                "cv_top1_seeds": seeds_top1,
                "cv_top1_interval": [own[1], own[2]],
                "vs_baseline": difference[0],
                "vs_baseline_interval": [difference[1], difference[2]],
                "cv_ece": float(np.mean(list(outcome.ece.values()))),
                "train_seconds": float(np.mean(list(outcome.train_seconds.values()))),
                "inference_ms": outcome.inference_ms,
                "eval": outcome.eval,
                "hits": {str(seed): hits for seed, hits in outcome.hits.items()},  # for re-analysis
            }
        )
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(
        f"\n{'recipe':40s} {'CV top-1':>9s} {'95% interval':>15s} {'vs before [paired 95%]':>25s} "
        f"{'CV ECE':>7s} {'train s':>8s} {'infer ms':>9s} {'eval top-1/top-3/ECE':>22s}"
    )
    for row in rows:
        low, high = row["cv_top1_interval"]
        d_low, d_high = row["vs_baseline_interval"]
        evaluation = row["eval"]
        eval_text = f"{evaluation['top1']:.3f}/{evaluation['top3']:.3f}/{evaluation['ece']:.3f}" if evaluation else "-"
        infer = f"{row['inference_ms']:.1f}" if row["inference_ms"] is not None else "-"
        ece = f"{row['cv_ece']:.3f}" if row["cv_ece"] is not None else "-"
        seconds = f"{row['train_seconds']:.0f}" if row["train_seconds"] is not None else "-"
        print(
            f"{row['recipe']:40s} {row['cv_top1']:9.4f} [{low:.3f}, {high:.3f}] "
            f"{row['vs_baseline'] * 100:+6.2f} pt [{d_low * 100:+.2f}, {d_high * 100:+.2f}] "
            f"{ece:>7s} {seconds:>8s} {infer:>9s} {eval_text:>22s}"
        )
    print(
        "CV top-1: each training photo's out-of-fold answers, right in what share of the seeds, averaged; "
        "intervals: bootstrap over photos."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--only", help="candidate names separated by ';' (the baseline always runs)")
    parser.add_argument("--fine-tune", action="store_true", help="add the fine-tune path (one seed, slow)")
    parser.add_argument("--alternatives", action="store_true", help="add the MLP head and three-crop views")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100, help="timed inferences per candidate")
    parser.add_argument("--json", help="also write the table here")
    args = parser.parse_args()
    use_fast_malloc()
    torch.set_num_threads(args.threads)
    settings = Settings()
    if not settings.dataset_dir:
        parser.error("set CHAMPIPY_DATASET_DIR (and CHAMPIPY_EVAL_DIR for the last check)")
    seeds = [int(s) for s in args.seeds.split(",")]
    chosen = dict(CANDIDATES)
    if args.only:
        names = {name.strip() for name in args.only.split(";")}
        chosen = {name: c for name, c in CANDIDATES.items() if name in names or name == BASELINE}
    examples = examples_from_folder(settings.dataset_dir)
    outcomes: dict[str, Outcome] = {}
    with tempfile.TemporaryDirectory(prefix="champipy-recipes-") as tmp:
        work = Path(tmp)
        started = time.perf_counter()
        for name, config in chosen.items():
            outcomes[name] = run(name, config, seeds, examples, settings, work)
        if args.fine_tune:
            config = TrainConfig(backbone="lite0+lite2", variables=5)
            outcomes[FINE_TUNE] = run(FINE_TUNE, config, seeds[:1], examples, settings, work)
        time_inference(outcomes, args.threads, args.runs, blocks=5)
        rows = table(outcomes, BASELINE)
        if args.alternatives:
            from recipe_alternatives import alternatives

            rows += alternatives(examples, seeds, outcomes[BASELINE])
        print_table(rows)
        print(f"all candidates: {time.perf_counter() - started:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


def trained_hits(trained: TrainedModel) -> dict[str, bool]:
    """Photo SHA-256 -> whether its out-of-fold answer was right."""
    predictions = trained.held_out_predictions
    assert predictions is not None
    return dict(zip(predictions.sha256, predictions.top1_hits().tolist(), strict=True))


if __name__ == "__main__":
    main()
