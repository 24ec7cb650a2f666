"""The spool of images kept for later feedback stays within its bound, oldest out first."""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest
from pydantic import ValidationError

from champipy.services.object_spool import ObjectSpool
from champipy.services.spool import ImageSpool, open_spool
from champipy.settings import Settings


def test_the_spool_keeps_at_most_max_files_dropping_the_oldest(tmp_path):
    spool = ImageSpool(tmp_path / "spool", max_files=3)
    shas = [hashlib.sha256(bytes([i])).hexdigest() for i in range(6)]
    for age, sha in enumerate(shas):
        spool.put(sha, sha.encode())
        os.utime(tmp_path / "spool" / sha, ns=(age * 10**9, age * 10**9))  # distinct, increasing times
    kept = sorted(p.name for p in (tmp_path / "spool").iterdir())
    assert kept == sorted(shas[-3:])
    assert spool.get(shas[0]) is None and spool.get(shas[-1]) == shas[-1].encode()


def test_files_written_by_another_process_count_towards_the_bound(tmp_path):
    folder = tmp_path / "spool"
    first, second = ImageSpool(folder, max_files=4), ImageSpool(folder, max_files=4)
    shas = [hashlib.sha256(bytes([i])).hexdigest() for i in range(10)]
    for age, sha in enumerate(shas):
        (first if age % 2 else second).put(sha, b"x")
        os.utime(folder / sha, ns=(age * 10**9, age * 10**9))
    # each process re-lists the folder when its own count reaches the cap, and then sees all files
    assert sorted(p.name for p in folder.iterdir()) == sorted(shas[-4:])


def test_the_spool_keeps_at_most_max_bytes_dropping_the_oldest(tmp_path):
    """2,000 files of 15 MB each would be 30 GB: the byte cap bounds the folder whatever the count."""
    folder = tmp_path / "spool"
    spool = ImageSpool(folder, max_files=1000, max_bytes=10_000)
    shas = [hashlib.sha256(bytes([i])).hexdigest() for i in range(8)]
    for age, sha in enumerate(shas):
        spool.put(sha, b"x" * 3000)
        os.utime(folder / sha, ns=(age * 10**9, age * 10**9))
        assert sum(p.stat().st_size for p in folder.iterdir()) <= 10_000
    assert sorted(p.name for p in folder.iterdir()) == sorted(shas[-3:])


# --- the spool in a bucket, for replicas that share no disk (a real SeaweedFS S3 gateway) -----
def _bucket_spool(object_storage, prefix: str, **caps) -> ObjectSpool:
    return ObjectSpool(object_storage.client(), f"s3://{object_storage.bucket}/{prefix}", **caps)


def _spooled(object_storage, prefix: str) -> list[dict]:
    listing = object_storage.client().list_objects_v2(Bucket=object_storage.bucket, Prefix=f"{prefix}/")
    return listing.get("Contents", [])


def test_an_image_spooled_by_one_replica_is_read_by_another(object_storage):
    prefix = f"spool-{uuid.uuid4().hex[:12]}"
    a, b = _bucket_spool(object_storage, prefix), _bucket_spool(object_storage, prefix)
    sha = hashlib.sha256(b"photo").hexdigest()
    a.put(sha, b"photo")
    assert b.get(sha) == b"photo"
    assert b.get(hashlib.sha256(b"never spooled").hexdigest()) is None
    assert b.get("../../etc/passwd") is None  # keys are content hashes, nothing else


def test_replicas_sharing_a_bucket_keep_it_within_both_caps(object_storage):
    prefix = f"spool-{uuid.uuid4().hex[:12]}"
    first = _bucket_spool(object_storage, prefix, max_files=4, max_bytes=10_000)
    second = _bucket_spool(object_storage, prefix, max_files=4, max_bytes=10_000)
    shas = [hashlib.sha256(bytes([i])).hexdigest() for i in range(12)]
    for i, sha in enumerate(shas):
        spool = first if i % 2 else second
        spool.put(sha, b"x" * (3000 if i >= 8 else 100))
        assert spool.get(sha) is not None  # the image just written is never the one trimmed
    objects = _spooled(object_storage, prefix)
    # Each replica lists the bucket once its own count reaches a cap; after the last writes of
    # 3000 bytes, the byte cap holds 3 of them.
    assert len(objects) <= 4 and sum(o["Size"] for o in objects) <= 10_000
    assert first.get(shas[-1]) is not None


def test_the_bucket_refuses_a_wrong_key(object_storage):
    # The gateway checks signatures: the tests talk to it as a deployment's replicas would.
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError):
        object_storage.client(secret_key="not-the-key").list_objects_v2(Bucket=object_storage.bucket)


def test_an_unreachable_bucket_loses_the_spooled_image_not_the_prediction(caplog):
    from champipy.services.object_spool import s3_client

    spool = ObjectSpool(s3_client("http://127.0.0.1:1"), "s3://nowhere/spool")  # nothing listens
    sha = hashlib.sha256(b"photo").hexdigest()
    spool.put(sha, b"photo")  # logged, not raised: the prediction that spools it still answers
    assert spool.get(sha) is None
    assert "could not spool image" in caplog.text


def test_the_settings_choose_the_bucket_and_refuse_other_urls(object_storage, tmp_path, monkeypatch):
    for name, value in object_storage.env().items():
        monkeypatch.setenv(name, value)
    settings = Settings(data_dir=tmp_path, spool_url=f"s3://{object_storage.bucket}/from-settings")
    spool = open_spool(settings)
    assert isinstance(spool, ObjectSpool) and spool.prefix == "from-settings/"
    assert isinstance(open_spool(Settings(data_dir=tmp_path)), ImageSpool)
    with pytest.raises(ValidationError, match="s3://bucket"):
        Settings(data_dir=tmp_path, spool_url="/var/spool")
