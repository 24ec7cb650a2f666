"""Single-image inference: ONNX Runtime (what serves) vs torch eager, same model, one process.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
    python bench/bench_inference.py [--backbone lite0+lite2] [--runs 100] [--threads 2]

The model is the default recipe's architecture (ImageNet features, a species head, mirror
averaging and temperature in the graph); trained weights do not change the timing. Prints the
median and 95th percentile per image and the torch/ORT ratio; on a shared machine compare the
ratio rather than the absolute times.

Then ORT per image for batches of 2, 4 and 8 against batch 1: what micro-batching requests that
arrive together could gain (the service predicts one image per request; see the README).

Then the "SAME" padding folded into the convolutions (model/onnx_graph.py, the default) against
the graph as torch exports it: both from the same weights, timed in alternating blocks, with
the largest probability difference and whether the top species ever differs on 32 inputs.

Then the cost of the open-set score: the same network exported with and without the second
output (``knn+maxlogit``, the default, whose k-NN bank holds one feature vector per training
photo), timed in alternating blocks so that drift hits both alike, for banks of
``--bank-sizes`` photos (1000 is today's training set; the bank grows with the species).

Last, predictions from 1, 2 and 8 threads at once on one session: ORT's defaults (what the
service runs) against no spinning and one thread per call, in interleaved rounds.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from PIL import Image

from champipy.model.backbone import FEATURE_DIM, SpeciesNet
from champipy.model.calibrate import Calibration
from champipy.model.classifier import META_FILE, MODEL_FILE, Classifier
from champipy.model.export import export_serving_model, serving_module
from champipy.model.open_set import DEFAULT_K, DEFAULT_METHOD, OpenSetFit, fit_open_set_score
from champipy.model.train import TrainConfig, TrainedModel, use_fast_malloc


def timings(function, runs: int) -> np.ndarray:
    for _ in range(5):
        function()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return np.array(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default=TrainConfig().backbone)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--bank-sizes", default="1000,5000,20000", help="comma-separated k-NN bank sizes")
    args = parser.parse_args()
    use_fast_malloc()
    torch.set_num_threads(args.threads)

    config = TrainConfig(backbone=args.backbone)
    model = SpeciesNet(config.backbone, 10).eval()
    labels = [f"species {i}" for i in range(10)]
    trained = TrainedModel(model, labels, config, Calibration(0.9, 0, 0, 0, 0), [], {}, [], None)
    module = serving_module(trained)
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (320, 480, 3), dtype=np.uint8))

    with tempfile.TemporaryDirectory() as tmp:
        export_serving_model(trained, tmp)
        classifier = Classifier.load(tmp, threads=args.threads)
        x = classifier.preprocess(photo)[None]
        tensor = torch.from_numpy(x)
        with torch.inference_mode():
            expected = module(tensor).numpy()
            results = {
                "preprocess (Pillow + NumPy)": timings(lambda: classifier.preprocess(photo), args.runs),
                "ONNX Runtime": timings(lambda: classifier.predict_batch(x), args.runs),
                "torch eager": timings(lambda: module(tensor), args.runs),
            }
        difference = float(np.abs(classifier.predict_batch(x) - expected).max())
        per_image = {
            size: np.median(
                timings(lambda size=size: classifier.predict_batch(np.repeat(x, size, 0)), max(10, args.runs // size))
            )
            / size
            for size in (1, 2, 4, 8)
        }

    print(
        f"{args.backbone} at {classifier.image_size}px, mirror averaging {config.flip_tta}, batch 1, "
        f"{args.threads} threads, {args.runs} runs (max |p_ort - p_torch| = {difference:.1e})"
    )
    for name, samples in results.items():
        print(f"  {name:28s} median {np.median(samples):7.2f} ms   p95 {np.percentile(samples, 95):7.2f} ms")
    ort_median = np.median(results["ONNX Runtime"])
    torch_median = np.median(results["torch eager"])
    print(
        f"  torch eager / ONNX Runtime: {torch_median / ort_median:.2f}x (median), "
        f"{np.percentile(results['torch eager'], 95) / np.percentile(results['ONNX Runtime'], 95):.2f}x (p95)"
    )
    print("  ONNX Runtime per image by batch size (median):")
    for size, ms in per_image.items():
        print(f"    batch {size}: {ms:7.2f} ms per image, {per_image[1] / ms:.2f}x batch 1's throughput")
    padding_cost(trained, photo, args)
    open_set_cost(trained, photo, args)
    concurrency(trained, photo, args)


def padding_cost(trained: TrainedModel, photo: Image.Image, args: argparse.Namespace, block: int = 10) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        exported = Classifier.load(
            export_serving_model(trained, f"{tmp}/as-exported", fold_padding=False), args.threads
        )
        folded = Classifier.load(export_serving_model(trained, f"{tmp}/folded"), threads=args.threads)
        x = folded.preprocess(photo)[None]
        slow, fast = [], []
        for _ in range(max(1, args.runs // block)):
            slow.append(timings(lambda: exported.predict_batch(x), block))
            fast.append(timings(lambda: folded.predict_batch(x), block))
        inputs = np.random.default_rng(2).normal(size=(32, *x.shape[1:])).astype(np.float32)
        a, b = exported.predict_batch(inputs), folded.predict_batch(inputs)
    before, after = np.median(np.concatenate(slow)), np.median(np.concatenate(fast))
    print(
        f"  padding folded into the convolutions, batch 1, alternating blocks of {block}: "
        f"as exported {before:.2f} ms, folded {after:.2f} ms (median): {before / after:.2f}x faster; "
        f"max |dp| {np.abs(a - b).max():.1e}, top species differs on {int((a.argmax(1) != b.argmax(1)).sum())} of 32"
    )


def with_open_set(trained: TrainedModel, bank_size: int) -> TrainedModel:
    """The same network with a ``knn+maxlogit`` score over a bank of random unit features:
    the timing depends on the bank's size, not on what it holds."""
    features = np.random.default_rng(1).normal(size=(bank_size, FEATURE_DIM * len(trained.config.backbone.split("+"))))
    targets = np.arange(bank_size) % len(trained.labels)
    score = fit_open_set_score(DEFAULT_METHOD, features.astype(np.float32), targets, trained.temperature)
    fit = OpenSetFit(DEFAULT_METHOD, DEFAULT_K, 0.98, 0.0, bank_size, 0.02)
    return replace(trained, open_set=score, open_set_fit=fit)


def open_set_cost(trained: TrainedModel, photo: Image.Image, args: argparse.Namespace, block: int = 10) -> None:
    print(f"  open-set score ({DEFAULT_METHOD}), batch 1, alternating blocks of {block}:")
    with tempfile.TemporaryDirectory() as tmp:
        plain = Classifier.load(export_serving_model(trained, f"{tmp}/plain"), threads=args.threads)
        x = plain.preprocess(photo)[None]
        for bank_size in [int(n) for n in args.bank_sizes.split(",")]:
            scored = Classifier.load(
                export_serving_model(with_open_set(trained, bank_size), f"{tmp}/bank-{bank_size}"),
                threads=args.threads,
            )
            without, with_score = [], []
            for _ in range(max(1, args.runs // block)):
                without.append(timings(lambda: plain.predict_batch(x), block))
                with_score.append(timings(lambda scored=scored: scored.predict_scored(x), block))
            a, b = np.median(np.concatenate(without)), np.median(np.concatenate(with_score))
            size_mb = (Path(tmp) / f"bank-{bank_size}" / MODEL_FILE).stat().st_size / 1e6
            print(
                f"    bank {bank_size:6d}: without {a:7.2f} ms, with {b:7.2f} ms (median): "
                f"{b / a:.3f}x; model.onnx {size_mb:.1f} MB"
            )


def concurrency(trained: TrainedModel, photo: Image.Image, args: argparse.Namespace) -> None:
    """Predictions from 1, 2 and 8 threads at once on one session: ONNX Runtime's defaults (what
    the service runs: every core, spinning threads), without spinning, and one thread per call
    (concurrent calls then share the cores). Three rounds, the variants interleaved in each, so
    that drift hits all alike."""
    with tempfile.TemporaryDirectory() as tmp:
        directory = export_serving_model(trained, f"{tmp}/model")
        meta = json.loads((directory / META_FILE).read_text())

        def session(threads: int = 0, spinning: bool = True) -> Classifier:
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
            return Classifier(ort.InferenceSession(str(directory / MODEL_FILE), options), meta)

        variants = {
            "ORT defaults (the service)": Classifier.load(directory),
            "no spinning": session(spinning=False),
            "one thread per call": session(threads=1),
        }
        x = variants["ORT defaults (the service)"].preprocess(photo)[None]
        callers = (1, 2, 8)
        found: dict[str, dict[int, list[float]]] = {name: {n: [] for n in callers} for name in variants}
        for _ in range(3):
            for name, classifier in variants.items():
                for n in callers:
                    found[name][n].append(per_second(lambda c=classifier: c.predict_batch(x), n, 12 * n))
    print("  concurrent callers on one session, predictions per second (median of 3 interleaved rounds):")
    base = {n: np.median(found["ORT defaults (the service)"][n]) for n in callers}
    for name, by_callers in found.items():
        cells = "  ".join(
            f"{n} callers {np.median(v):5.1f}/s ({np.median(v) / base[n]:.2f}x)" for n, v in by_callers.items()
        )  # noqa: E501
        print(f"    {name:28s} {cells}")


def per_second(function, callers: int, calls: int) -> float:
    with ThreadPoolExecutor(callers) as pool:
        list(pool.map(lambda _: function(), range(callers * 2)))  # warm every thread
        started = time.perf_counter()
        list(pool.map(lambda _: function(), range(calls)))
        return calls / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
