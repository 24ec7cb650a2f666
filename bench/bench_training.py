"""Training time and evaluation accuracy of a recipe (default: TrainConfig's defaults).

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \
    python bench/bench_training.py [--backbone lite0+lite2] [--variables N --epochs N] [--seed S]

Times train (load + features/fine-tune + calibration) and export (ONNX + parity check)
separately from the evaluation, which runs the exported ONNX model on the eval folder.
Timings on a shared machine vary 10-30% from run to run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from dataclasses import replace

from champipy.model.classifier import Classifier
from champipy.model.data import examples_from_folder
from champipy.model.evaluate import evaluate_folder
from champipy.model.export import export_serving_model
from champipy.model.train import config_from_options, train_model
from champipy.settings import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone")
    parser.add_argument("--variables", type=int)
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--feature-views", type=int)
    parser.add_argument("--flip-features", action=argparse.BooleanOptionalAction)
    parser.add_argument("--calibration-folds", type=int)
    parser.add_argument("--no-tta", action="store_true")
    parser.add_argument("--head-l2", type=float)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args()

    settings = Settings()
    if not settings.dataset_dir or not settings.eval_dir:
        parser.error("set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR")
    config = config_from_options(args.epochs, args.variables, args.backbone, args.seed)
    changes = {"threads": args.threads}
    if args.feature_views is not None:
        changes["feature_views"] = args.feature_views
    if args.flip_features is not None:
        changes["flip_features"] = args.flip_features
    if args.calibration_folds is not None:
        changes["calibration_folds"] = args.calibration_folds
    if args.no_tta:
        changes["flip_tta"] = False
    if args.head_l2 is not None:
        changes["head_l2"] = args.head_l2
    config = replace(config, **changes)

    started = time.perf_counter()
    cpu_started = _cpu_seconds()
    examples = examples_from_folder(settings.dataset_dir)
    trained = train_model(examples, config)
    train_seconds = time.perf_counter() - started
    train_cpu_seconds = _cpu_seconds() - cpu_started
    with tempfile.TemporaryDirectory() as tmp:
        export_started = time.perf_counter()
        export_serving_model(trained, tmp)
        export_seconds = time.perf_counter() - export_started
        report = evaluate_folder(Classifier.load(tmp, threads=args.threads), settings.eval_dir)
    result = {
        "recipe": {k: v for k, v in config.to_params().items() if k != "threads"},
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "export_seconds": round(export_seconds, 1),
        "val_top1": trained.metrics.get("val_top1"),
        "temperature": round(trained.temperature, 3),
        "eval_top1": report.top1,
        "eval_top3": report.top3,
        "eval_ece": report.ece,
        "eval_n": report.n,
    }
    if args.json:
        print(json.dumps(result))
        return
    mode = (
        f"fine-tune last {config.variables} blocks, {config.resolved_epochs} epochs"
        if config.fine_tune
        else "frozen features"
    )
    print(f"recipe: {config.backbone}, {mode}, seed {config.seed}")
    print(
        f"train {train_seconds:.1f} s + export/parity {export_seconds:.1f} s "
        f"= {train_seconds + export_seconds:.1f} s (limit 300 s); train CPU time {train_cpu_seconds:.0f} s "
        f"on {config.threads} threads, load average {os.getloadavg()[0]:.1f}"
    )
    print(
        f"eval (n={report.n}): top-1 {report.top1:.3f}  top-3 {report.top3:.3f}  ECE {report.ece:.3f}"
        f"  (targets >= 0.94, >= 0.98, <= 0.05)"
    )


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
