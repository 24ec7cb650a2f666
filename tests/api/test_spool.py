"""The spool of images kept for later feedback stays within its bound, oldest out first."""

from __future__ import annotations

import hashlib
import os

from champipy.services.spool import ImageSpool


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
