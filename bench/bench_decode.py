"""Large photos: what decoding costs, and whether the answer depends on the photo's size.

    python bench/bench_decode.py [--model-dir DIR] [--runs 30]

Experts paste 640-px or original-size Mushroom Observer URLs, while the training photos are
MO thumbnails (mostly 160x120 and 320x240). Two measurements, both on the evaluation photos
(CHAMPIPY_EVAL_DIR):

1. Decode + model input (``decode_image`` then ``resize_and_crop``) of one photo re-encoded as a
   640x480 and a 4000x3000 (12-megapixel) JPEG, full decode against the reduced decode serving
   uses (``min_short_side`` = the model's input: Pillow's draft mode). Prints medians and the
   12-MP / 640-px ratio for each.
2. Top-1 and top-3 of a model (the default recipe trained on CHAMPIPY_DATASET_DIR, or the one
   in ``--model-dir``) on the eval photos as they are, downscaled to half, and upscaled
   (Lanczos, JPEG quality 90) to a 640-px and a 2,000-px long side, decoded as serving decodes.
   Each with its Wilson 95% interval: the eval set is small (one photo is 0.45 points).
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_inference import timings
from PIL import Image

from champipy.images import decode_image
from champipy.intervals import wilson
from champipy.model.classifier import Classifier
from champipy.model.preprocess import resize_and_crop
from champipy.settings import Settings


def jpeg(image: Image.Image, long_side: int) -> bytes:
    scale = long_side / max(image.size)
    resized = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    resized.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def model_dir(args: argparse.Namespace, settings: Settings, tmp: str) -> Path:
    if args.model_dir:
        return Path(args.model_dir)
    from champipy.model.data import examples_from_folder
    from champipy.model.export import export_serving_model
    from champipy.model.train import config_for, train_model

    started = time.perf_counter()
    trained = train_model(examples_from_folder(settings.dataset_dir), config_for(settings))
    print(f"trained the default recipe ({trained.config.backbone}) in {time.perf_counter() - started:.0f} s")
    return export_serving_model(trained, Path(tmp) / "model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", help="an exported model (model.onnx + champipy_model.json)")
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    settings = Settings()
    photos = sorted(p for p in Path(settings.eval_dir).glob("*/*") if p.is_file())
    with tempfile.TemporaryDirectory() as tmp:
        classifier = Classifier.load(model_dir(args, settings, tmp))
        side = classifier.image_size

        source = Image.open(photos[0]).convert("RGB")
        sizes = {"640 px": jpeg(source, 640), "12 MP": jpeg(source, 4000)}
        decode = {}
        for way, floor in (("full decode", None), ("reduced decode", side)):
            decode[way] = {
                name: float(
                    np.median(
                        timings(
                            lambda data=data, floor=floor: resize_and_crop(
                                decode_image(data, min_short_side=floor).image, side
                            ),
                            args.runs,
                        )
                    )
                )
                for name, data in sizes.items()
            }
        print(f"decode + model input ({side} px), median of {args.runs}:")
        for way, times in decode.items():
            print(
                f"  {way:15s} 640 px {times['640 px']:6.1f} ms, 12 MP {times['12 MP']:6.1f} ms: "
                f"{times['12 MP'] / times['640 px']:.1f}x"
            )

        labels = classifier.labels
        variants = {"as stored": None, "half size": 0.5, "640 px": 640, "2000 px": 2000}
        results = {}
        for name, target in variants.items():
            batch, truth = [], []
            for path in photos:
                image = Image.open(path).convert("RGB")
                data = path.read_bytes()
                if target == 0.5:
                    data = jpeg(image, max(16, round(max(image.size) / 2)))
                elif target:
                    data = jpeg(image, int(target))
                decoded = decode_image(data, min_short_side=side).image
                batch.append(classifier.preprocess(decoded))
                truth.append(labels.index(path.parent.name))
            probabilities = np.concatenate(
                [classifier.predict_batch(np.stack(batch[i : i + 16])) for i in range(0, len(batch), 16)]
            )
            order = np.argsort(-probabilities, axis=1)
            targets = np.array(truth)
            top1 = int((order[:, 0] == targets).sum())
            top3 = int((order[:, :3] == targets[:, None]).any(axis=1).sum())
            results[name] = {"top1": top1 / len(targets), "top3": top3 / len(targets), "n": len(targets)}
            rate = wilson(top1, len(targets))
            print(
                f"  {name:10s} top-1 {rate.rate:.3f} [{rate.low:.3f}, {rate.high:.3f}]  top-3 {top3 / len(targets):.3f}"
            )
    print(json.dumps({"bench": "decode", "decode_ms": decode, "accuracy": results}))


if __name__ == "__main__":
    main()
