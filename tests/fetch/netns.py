"""Run a command inside a throw-away Linux network namespace that has only loopback.

Tests that name non-loopback addresses run there, so that even a broken guard cannot send
a packet off this machine: with no interface but ``lo`` and no route, connect() fails with
"network unreachable" before anything is sent. Needs root and iproute2's ``ip netns``.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

# Set (to the namespace name) only in processes started by run_in_namespace.
INSIDE_ENV = "CHAMPIPY_TEST_NETNS"


class NamespaceUnavailable(RuntimeError):
    pass


def ip_command() -> str:
    ip = shutil.which("ip") or next(
        (p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip") if os.access(p, os.X_OK)), None
    )
    if ip is None:
        raise NamespaceUnavailable("`ip` not found: install iproute2 (Debian package iproute2).")
    return ip


def _run(argv: Sequence[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NamespaceUnavailable(
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()} "
            "(network namespaces need root or CAP_SYS_ADMIN, and iproute2)"
        )


@contextmanager
def loopback_only_namespace() -> Iterator[str]:
    """Create ``champipy-<random>`` with ``lo`` up, yield its name, delete it afterwards."""
    ip = ip_command()
    name = f"champipy-{secrets.token_hex(6)}"
    _run([ip, "netns", "add", name])
    try:
        _run([ip, "-n", name, "link", "set", "lo", "up"])
        yield name
    finally:
        subprocess.run([ip, "netns", "delete", name], capture_output=True, timeout=30)


def run_in_namespace(
    name: str,
    argv: Sequence[str],
    *,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {}), INSIDE_ENV: name}
    return subprocess.run(
        [ip_command(), "netns", "exec", name, *argv],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def told_we_are_inside() -> bool:
    return bool(os.environ.get(INSIDE_ENV))


def interfaces() -> list[str]:
    return sorted(name for _, name in socket.if_nameindex())


def assert_loopback_only() -> None:
    """Fail unless this process's network namespace has no interface but ``lo``.

    Reads the interface list only, so it sends nothing even when run in the wrong place.
    """
    found = interfaces()
    if found != ["lo"]:
        raise AssertionError(f"not in a loopback-only network namespace: interfaces {found}")
