"""INT8: is a quantised backbone worth serving? Accuracy on the same folds, and its speed.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
    CHAMPIPY_DATASET_DIR=/path/to/train CHAMPIPY_EVAL_DIR=/path/to/eval \
    python bench/bench_int8.py [--backbone lite0+lite2] [--seeds 0,1,2] [--calibration-photos 200]

The backbone is frozen, so quantising it only changes the features the head reads. Each variant
(ONNX Runtime static quantisation, QDQ, per-channel weights, calibrated on training photos by
MinMax, percentile or entropy) computes the features of every training and eval photo and its
mirror; the product's logistic head is then cross-fitted on the same folds as ``train_model``
(so it learns the quantised features, as a quantised recipe would) and compared photo by photo
with the float features: CV top-1 with the paired 95% interval, eval top-1, and the graph's ms
per photo (the photo and its mirror, batch 2, ``--threads``), timed in alternating blocks.

The bar was 0.5 pt of float's CV top-1: MinMax stays within it, so the product quantises with
MinMax on the fast path (model/quantise.py, ``CHAMPIPY_INT8``).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from bench_inference import timings
from bench_recipes import Outcome, paired_interval, per_photo_rate
from onnxruntime.quantization import CalibrationMethod
from recipe_alternatives import cv_hits, logistic

from champipy.model.backbone import SpeciesNet
from champipy.model.data import examples_from_folder, label_names, load_examples
from champipy.model.preprocess import scale_pixels
from champipy.model.quantise import quantise_feature_graph
from champipy.model.train import TrainConfig, export_feature_graph, use_fast_malloc
from champipy.settings import Settings

HISTOGRAM_PHOTOS = 16


def session(path: Path, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def features(graph: ort.InferenceSession, items: list) -> dict[str, np.ndarray]:
    views = {"centre": [i.centre for i in items], "mirror": [np.ascontiguousarray(i.centre[:, ::-1]) for i in items]}
    return {
        name: np.concatenate(
            [graph.run(None, {"image": scale_pixels(np.stack(a[s : s + 32]))})[0] for s in range(0, len(a), 32)]
        ).astype(np.float64)
        for name, a in views.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=TrainConfig().backbone)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--calibration-photos", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=100)
    args = parser.parse_args()
    use_fast_malloc()
    torch.set_num_threads(args.threads)
    settings = Settings()
    if not settings.dataset_dir or not settings.eval_dir:
        parser.error("set CHAMPIPY_DATASET_DIR and CHAMPIPY_EVAL_DIR")
    seeds = [int(s) for s in args.seeds.split(",")]
    model = SpeciesNet(args.backbone, 2).eval()
    size = model.image_size
    train = load_examples(examples_from_folder(settings.dataset_dir), size, keep_images=False)
    evaluation = load_examples(examples_from_folder(settings.eval_dir), size, keep_images=False)
    labels = label_names(train)
    y = np.array([labels.index(i.label) for i in train])
    y_eval = np.array([labels.index(i.label) for i in evaluation])
    # Calibration photos: a seeded sample of the training photos, never an eval photo.
    rng = np.random.default_rng(0)
    sample = [train[i].centre for i in rng.choice(len(train), args.calibration_photos, replace=False)]
    calibration = np.stack(sample)

    with tempfile.TemporaryDirectory(prefix="champipy-int8-") as tmp:
        work = Path(tmp)
        graphs = {"float": export_feature_graph(model, work / "float.onnx")}
        # MinMax folds each batch's ranges in as it goes; the histogram methods keep every
        # activation of every calibration photo until the end (~120 MB a photo here), so they
        # see fewer photos.
        for method, photos in (
            (CalibrationMethod.MinMax, calibration),
            (CalibrationMethod.Percentile, calibration[:HISTOGRAM_PHOTOS]),
            (CalibrationMethod.Entropy, calibration[:HISTOGRAM_PHOTOS]),
        ):
            path = quantise_feature_graph(graphs["float"], work / f"int8-{method.name}.onnx", photos, method)
            graphs[f"int8 {method.name} ({len(photos)} photos)"] = path
        sessions = {name: session(path, args.threads) for name, path in graphs.items()}

        outcomes: dict[str, Outcome] = {}
        evals: dict[str, float] = {}
        for name, graph in sessions.items():
            train_features, eval_features = features(graph, train), features(graph, evaluation)
            hits = cv_hits(train, y, train_features, ["centre"], ["centre", "mirror"], "logistic", seeds)
            outcomes[name] = Outcome(TrainConfig(), hits=hits)
            predict = logistic(train_features["centre"], y, len(labels))
            logits = (predict(eval_features["centre"]) + predict(eval_features["mirror"])) / 2
            evals[name] = float((logits.argmax(axis=1) == y_eval).mean())
            print(f"  {name}: CV top-1 {np.mean([np.mean(list(h.values())) for h in hits.values()]):.4f}", flush=True)

        x = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
        samples: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(5):
            for name, graph in sessions.items():
                samples[name].extend(timings(lambda g=graph: g.run(None, {"image": x}), args.runs // 5))

    base = outcomes["float"]
    photos = sorted(base.hits[seeds[0]])
    float_ms = float(np.median(samples["float"]))
    print(f"\n{args.backbone} at {size} px, {len(seeds)} seeds x 5 folds, a logistic head on each variant's features")
    header = ("variant", "CV top-1", "vs float [paired 95%]", "eval top-1", "ms/photo", "speed-up")
    print("{:20s} {:>9s} {:>26s} {:>11s} {:>9s} {:>9s}".format(*header))
    for name, outcome in outcomes.items():
        rate = per_photo_rate(outcome, photos)
        mean, low, high = paired_interval(rate, per_photo_rate(base, photos))
        ms = float(np.median(samples[name]))
        print(
            f"{name:20s} {rate.mean():9.4f} {mean * 100:+7.2f} pt [{low * 100:+.2f}, {high * 100:+.2f}] "
            f"{evals[name]:11.3f} {ms:9.1f} {float_ms / ms:8.2f}x"
        )


if __name__ == "__main__":
    main()
