"""Single-image inference: ONNX Runtime (what serves) vs torch eager, same model, one process.

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=100000000000 \
    python bench/bench_inference.py [--backbone lite0+lite2] [--runs 100] [--threads 2]

The model is the default recipe's architecture (ImageNet features, a species head, mirror
averaging and temperature in the graph); trained weights do not change the timing. Prints the
median and 95th percentile per image and the torch/ORT ratio; on a shared machine compare the
ratio rather than the absolute times.

Then ORT per image for batches of 2, 4 and 8 against batch 1: what micro-batching requests that
arrive together could gain (the service predicts one image per request; see the README).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch
from PIL import Image

from champipy.model.backbone import SpeciesNet
from champipy.model.calibrate import Calibration
from champipy.model.classifier import Classifier
from champipy.model.export import export_serving_model, serving_module
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


if __name__ == "__main__":
    main()
