"""The session-end check that no process started by the tests outlives them."""

from __future__ import annotations

import subprocess
import time

from support.leftovers import kill, leftover_processes, now_in_ticks

MARKER = "champipy-leftover-probe"


def test_an_orphaned_child_is_found_and_ended():
    since = now_in_ticks()
    time.sleep(0.05)
    # The shell exits at once: its background sleep is re-parented, as a killed server's workers are.
    subprocess.run(["bash", "-c", f"exec >/dev/null 2>&1; (exec -a {MARKER} sleep 60) & exit 0"], check=True)
    deadline = time.monotonic() + 5
    found = []
    while not found and time.monotonic() < deadline:
        found = leftover_processes(since, (MARKER,))
        time.sleep(0.05)
    try:
        assert [f.command.split()[0] for f in found] == [MARKER]
    finally:
        kill(found)
    deadline = time.monotonic() + 5
    while leftover_processes(since, (MARKER,)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftover_processes(since, (MARKER,)) == []


def test_a_live_child_of_this_process_counts_and_older_processes_do_not():
    before = subprocess.Popen(["bash", "-c", f"exec -a {MARKER}-old sleep 60"])
    time.sleep(0.05)
    since = now_in_ticks()
    time.sleep(0.05)
    child = subprocess.Popen(["bash", "-c", f"exec -a {MARKER}-child sleep 60"])
    try:
        deadline = time.monotonic() + 5
        commands: list[str] = []
        while MARKER + "-child 60" not in commands and time.monotonic() < deadline:
            commands = [f.command for f in leftover_processes(since, (MARKER,))]
            time.sleep(0.05)
        assert commands == [f"{MARKER}-child 60"]  # started before the session: not ours to report
    finally:
        for process in (before, child):
            process.kill()
            process.wait()
