"""What an observation of 3 uncached photos costs against one uncached photo, in one process.

    CHAMPIPY_EVAL_DIR=/path/to/eval python bench/bench_observation_cost.py [--rounds 20] [--backbone lite2]

The services are the real ones (PredictionService, ObservationService, the safe fetcher, ONNX
Runtime, a SQLite store); the model is the default recipe's architecture exported untrained
(weights do not change the timing), served through a one-version registry stand-in. Photos
are eval photos made distinct per request (a nonce in the JPEG comment) so nothing is
answered from the cache, fetched by URL from a local image server. Rounds alternate one
photo and one 3-photo observation so that drift hits both alike; the ratio of the medians is
the number (goal: <= 3.3, i.e. fetches, decodes and inference overlap where the cores allow).
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from champipy.model.backbone import SpeciesNet  # noqa: E402
from champipy.model.calibrate import Calibration  # noqa: E402
from champipy.model.classifier import Classifier  # noqa: E402
from champipy.model.export import export_serving_model  # noqa: E402
from champipy.model.train import TrainConfig, TrainedModel, use_fast_malloc  # noqa: E402
from champipy.services.observations import ObservationService, Photo  # noqa: E402
from champipy.services.predict import PredictionService  # noqa: E402
from champipy.services.serving import ModelProvider  # noqa: E402
from champipy.services.spool import ImageSpool  # noqa: E402
from champipy.settings import Settings  # noqa: E402
from champipy.store import open_store  # noqa: E402
from champipy.store.base import Role  # noqa: E402
from support.image_server import ImageServer  # noqa: E402


class OneVersion:
    """The registry as ModelProvider reads it: one version, always at the alias."""

    def __init__(self, directory: Path):
        self.directory = directory

    def alias_version(self, alias: str) -> str:
        return "1"

    def download_serving_model(self, version: str) -> Path:
        return self.directory


def distinct_jpeg(path: Path, nonce: int) -> bytes:
    out = io.BytesIO()
    image = Image.open(path).convert("RGB")
    image.save(out, "JPEG", quality=90, comment=f"bench {nonce}".encode())
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--backbone", default=TrainConfig().backbone)
    args = parser.parse_args()
    base = Settings()
    if base.eval_dir is None:
        sys.exit("Set CHAMPIPY_EVAL_DIR.")
    use_fast_malloc()
    eval_photos = sorted(Path(base.eval_dir).rglob("*.jpg"))
    config = TrainConfig(backbone=args.backbone)
    labels = [f"species {i}" for i in range(10)]
    trained = TrainedModel(
        SpeciesNet(config.backbone, 10).eval(), labels, config, Calibration(1.0, 0, 0, 0, 0), [], {}, [], None
    )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model_dir = export_serving_model(trained, root / "model")
        need = args.rounds * 4 + 8
        files = {
            f"/p/{i}.jpg": (200, distinct_jpeg(eval_photos[i % len(eval_photos)], i), "image/jpeg") for i in range(need)
        }
        with ImageServer(files) as images:
            settings = Settings(
                data_dir=root / "data", fetch_allow_hosts=images.host, bootstrap_model=False, url_cache_ttl_seconds=0
            )
            settings.ensure_data_dir()
            store = open_store(settings.resolved_database_url)
            provider = ModelProvider(
                OneVersion(model_dir),
                lambda d: Classifier.load(d, threads=settings.inference_threads),
                model_name="champipy",
                alias="production",
                poll_seconds=3600,
            )
            provider.refresh()
            from champipy.fetch import SafeFetcher

            fetcher = SafeFetcher(settings)
            spool = ImageSpool(root / "spool", 10_000, 10**9)
            predictor = PredictionService(settings, store, provider, fetcher, spool)
            observations = ObservationService(settings, store, predictor)
            user = store.add_user("bench", "not-a-hash", (Role.USER,))
            urls = iter(images.url(path) for path in files)
            for _ in range(2):  # warm-up: sessions, threads, SQLite
                predictor.predict_url(next(urls), 3, user)
                observations.identify([Photo(url=next(urls))], 3, user)
            single, triple = [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                predictor.predict_url(next(urls), 3, user)
                single.append(time.perf_counter() - started)
                photos = [Photo(url=next(urls)) for _ in range(3)]
                started = time.perf_counter()
                outcome = observations.identify(photos, 3, user)
                triple.append(time.perf_counter() - started)
                assert all(p.outcome is not None and not p.outcome.prediction.cached for p in outcome.photos)
            observations.close()
            fetcher.close()
            store.close()
    one, three = statistics.median(single) * 1000, statistics.median(triple) * 1000
    print(
        f"{args.backbone}, {settings.inference_threads} ORT threads, {args.rounds} rounds: one photo {one:.0f} ms "
        f"(p90 {np.percentile(single, 90) * 1000:.0f}), an observation of 3 {three:.0f} ms "
        f"(p90 {np.percentile(triple, 90) * 1000:.0f}); ratio {three / one:.2f} (goal <= 3.3)"
    )


if __name__ == "__main__":
    main()
