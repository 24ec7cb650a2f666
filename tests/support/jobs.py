"""Waiting for a background job over HTTP."""

from __future__ import annotations

import time


def wait_for_job(c, job_id: str, seconds: float = 600) -> dict:
    """Poll GET /jobs/{id} until the job succeeded or failed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = c.get(f"/jobs/{job_id}").json()
        if job["state"] in ("succeeded", "failed"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")
