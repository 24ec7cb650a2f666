"""Stopping the server processes tests start."""

from __future__ import annotations

import os
import signal
import subprocess
import time


def stop_process(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def stop_process_group(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """End a process started with ``start_new_session=True`` and every process of its group
    (the children it started): SIGKILL, since some of them ignore SIGTERM, then wait until the
    group is empty."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(process.pid, 0)  # does anyone of the group still exist?
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise RuntimeError(f"processes of group {process.pid} outlived SIGKILL for {timeout} s")
