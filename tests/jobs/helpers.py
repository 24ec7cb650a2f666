"""Small builders for job tests: generated JPEG datasets and polling for a job's end."""

from __future__ import annotations

import io
import time
from pathlib import Path

from PIL import Image

from champipy.store.base import Job, JobState, Store

FINISHED = (JobState.SUCCEEDED, JobState.FAILED)


def write_dataset(root: Path, species: dict[str, int]) -> Path:
    """``root/<species>/<n>.jpg``, every image different; returns ``root``."""
    shade = 0
    for name, count in species.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for n in range(count):
            shade += 1
            (folder / f"{n}.jpg").write_bytes(jpeg(shade))
    return root


def jpeg(shade: int, size: tuple[int, int] = (24, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (shade % 256, (shade * 7) % 256, (shade * 13) % 256)).save(out, format="JPEG")
    return out.getvalue()


def wait_for(store: Store, job_id: str, states=FINISHED, timeout: float = 20.0) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        job = store.get_job(job_id)
        if job is not None and job.state in states:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.state if job else 'missing'} after {timeout} s")
        time.sleep(0.05)
