"""What one user can make the service write: kept photos at a bounded size (the original bytes'
hash still their key), and a daily quota of predictions."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from champipy.api.app import create_app
from champipy.images import sha256_hex
from champipy.model.backbone import IMAGE_SIZES
from champipy.settings import Settings
from champipy.store import open_store
from support.accounts import make_account
from support.live_server import client, live_server
from support.trained_model import BACKBONE

MODEL_INPUT = IMAGE_SIZES[BACKBONE]  # the short side the session's model reads


def big_jpeg(seed: int, size=(3000, 2000)) -> bytes:
    """A real mushroom photo blown up to camera size: noise would be (rightly) not recognised by
    the open-set check, and an unrecognised photo is never kept under its predicted label."""
    photos = sorted(Path(Settings().eval_dir or "").rglob("*.jpg"))
    assert photos, "CHAMPIPY_EVAL_DIR must hold the evaluation photos"
    photo = photos[int(np.random.default_rng(seed).integers(len(photos)))]
    buffer = io.BytesIO()
    Image.open(photo).convert("RGB").resize(size, Image.BICUBIC).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def upload(c, data: bytes):
    return c.post("/predictions", files={"file": ("photo.jpg", data, "image/jpeg")})


@pytest.fixture
def start(tmp_path, trained_registry):
    stores = []

    def run(**overrides):
        settings = trained_registry.settings_for(tmp_path / "data", **overrides)
        store = open_store(settings.resolved_database_url)
        stores.append(store)
        return (
            settings,
            store,
            make_account(store),
            make_account(store, prefix="other"),
            live_server(create_app(settings)),
        )

    yield run
    for store in stores:
        store.close()


def test_kept_photos_are_stored_shrunk_and_keyed_by_the_original_bytes(start):
    settings, store, user, _, running = start(store_threshold=0.0)  # every photo is kept
    small = next(p for p in sorted(Path(settings.eval_dir).rglob("*.jpg"))).read_bytes()
    large = big_jpeg(1)
    with running as url, client(url, auth=user.auth) as c:
        answers = [upload(c, data).json() for data in (small, large)]
    assert [a["kept_for_training"] for a in answers] == [True, True]
    assert answers[1]["image_sha256"] == sha256_hex(large)
    stored_small, stored_large = (store.get_image_bytes(sha256_hex(data)) for data in (small, large))
    assert stored_small == small, "a photo within the bound is kept byte for byte"
    shrunk = Image.open(io.BytesIO(stored_large))
    # Decoded at the size the model needs (1/8 of 3000x2000 here), and kept at that size.
    assert max(shrunk.size) <= settings.kept_image_max_side and min(shrunk.size) >= MODEL_INPUT
    assert shrunk.size[0] / shrunk.size[1] == pytest.approx(1.5, abs=0.01)
    assert len(stored_large) < len(large) / 3


def test_uncertain_photos_wait_in_the_spool_shrunk_and_feedback_stores_that_copy(start):
    settings, store, user, _, running = start(store_threshold=1.0)  # nothing kept at prediction time
    large = big_jpeg(2)
    with running as url, client(url, auth=user.auth) as c:
        answer = upload(c, large).json()
        species = answer["results"][0]["species"]
        spooled = (settings.data_dir / "spool" / answer["image_sha256"]).read_bytes()
        feedback = c.post(f"/predictions/{answer['id']}/feedback", json={"species": species})
    assert feedback.status_code == 200
    spooled_size = Image.open(io.BytesIO(spooled)).size
    assert max(spooled_size) <= settings.kept_image_max_side and min(spooled_size) >= MODEL_INPUT
    assert store.get_image_bytes(sha256_hex(large)) == spooled
    assert store.get_image(sha256_hex(large)).label == species


def test_the_daily_quota_refuses_with_429_and_spares_other_users(start):
    settings, store, user, other, running = start(daily_predictions_per_user=3)
    photo = next(p for p in sorted(Path(settings.eval_dir).rglob("*.jpg"))).read_bytes()
    with running as url:
        with client(url, auth=user.auth) as c:
            codes = [upload(c, photo).status_code for _ in range(4)]
            refused = upload(c, photo)
        with client(url, auth=other.auth) as c:
            others = upload(c, photo)
    assert codes == [200, 200, 200, 429]
    assert refused.json()["error"] == "quota_exceeded" and int(refused.headers["retry-after"]) > 3600
    assert others.status_code == 200
    assert store.count_predictions() == 4, "refused requests store nothing"
