"""Processes that outlive the test session: the suite must end everything it starts.

Read from /proc (Linux): a leftover is a process of this user, started after the session
began, whose command line names this checkout or its virtualenv, and that is either still
our descendant or was orphaned (re-parented to init or a subreaper) — as the children of a
server killed without its process group are.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Leftover:
    pid: int
    command: str


def now_in_ticks() -> int:
    """The moment, in the clock ticks since boot that /proc/<pid>/stat counts start times in."""
    return int(float(Path("/proc/uptime").read_text().split()[0]) * CLOCK_TICKS)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in ticks), or None when the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # the name, in parentheses, may hold spaces
    return int(fields[1]), int(fields[19])


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _is_descendant(pid: int, ancestor: int, parents: dict[int, int]) -> bool:
    seen = set()
    while pid in parents and pid not in seen:
        seen.add(pid)
        pid = parents[pid]
        if pid == ancestor:
            return True
    return False


def leftover_processes(started_after: int, markers: tuple[str, ...], me: int | None = None) -> list[Leftover]:
    me = me or os.getpid()
    uid = os.getuid()
    parents: dict[int, int] = {}
    starts: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        parents[pid], starts[pid] = stat
    commands = {pid: _command(pid) for pid in starts}
    found = []
    for pid, start in starts.items():
        command = commands[pid]
        if pid == me or start < started_after or not any(marker in command for marker in markers):
            continue
        if _is_descendant(pid, me, parents) or _orphaned(pid, started_after, markers, parents, starts, commands):
            found.append(Leftover(pid, command))
    return found


def _orphaned(
    pid: int,
    started_after: int,
    markers: tuple[str, ...],
    parents: dict[int, int],
    starts: dict[int, int],
    commands: dict[int, str],
) -> bool:
    """Re-parented to init or to a long-lived reaper, rather than started by another live
    session (a second pytest run from this checkout, whose own children are its business)."""
    parent = parents[pid]
    if parent == 1 or parent not in starts:
        return True
    reaper = starts[parent] < started_after and not any(marker in commands[parent] for marker in markers)
    return reaper and "pytest" not in commands[pid]


def wait_for_leftovers(started_after: int, markers: tuple[str, ...], grace_seconds: float) -> list[Leftover]:
    """Leftovers still there after ``grace_seconds`` (a browser's helpers take a moment to exit)."""
    deadline = time.monotonic() + grace_seconds
    while True:
        found = leftover_processes(started_after, markers)
        if not found or time.monotonic() >= deadline:
            return found
        time.sleep(0.2)


def kill(leftovers: list[Leftover]) -> None:
    for leftover in leftovers:
        try:
            os.kill(leftover.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
