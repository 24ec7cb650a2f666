"""A folder of recent images that were not kept for training, bounded in files and bytes.

An expert may confirm or correct the label of any prediction, including uncertain ones
whose image the store did not keep; the spool keeps those bytes for a while so the
confirmed image can still be stored.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from ..settings import Settings

SHA256 = re.compile(r"^[0-9a-f]{64}$")  # spooled images are named by their content


class Spool(Protocol):
    """What predictions and feedback need of a spool: this folder, or a bucket (object_spool.py)."""

    def put(self, sha256: str, data: bytes) -> None: ...

    def get(self, sha256: str) -> bytes | None: ...


class SpoolCaps:
    """A spool's caps in entries and bytes, and what this process knows of its size.

    Listing the spool costs a few ms at 2000 entries, so ``trim`` lists it only when this
    process's counts say a cap may be reached (what other processes wrote is seen then), and
    deletes the oldest entries until it fits. Entries are ``(order, size, name)``: oldest
    ``order`` first.
    """

    def __init__(self, max_files: int, max_bytes: int):
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._count: int | None = None  # entries there, as far as this process knows
        self._bytes = 0  # and their size

    def trim(
        self,
        added_bytes: int,
        listed: Callable[[], list[tuple[Any, int, str]]],
        delete: Callable[[list[str]], None],
    ) -> None:
        with self._lock:
            if self._count is not None and self._count < self.max_files and self._bytes + added_bytes <= self.max_bytes:
                self._count += 1
                self._bytes += added_bytes
                return
            entries = sorted(listed())
            total = sum(size for _, size, _ in entries)
            doomed = []
            while entries and (len(entries) > self.max_files or total > self.max_bytes):
                _, size, name = entries.pop(0)
                doomed.append(name)
                total -= size
            if doomed:
                delete(doomed)
            self._count, self._bytes = len(entries), total


class ImageSpool:
    def __init__(self, directory: Path, max_files: int = 2000, max_bytes: int = 200 * 1024 * 1024):
        self.directory = directory
        self.caps = SpoolCaps(max_files, max_bytes)
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if not SHA256.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.directory / sha256

    def put(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self.caps.trim(len(data), self._files, self._delete)

    def get(self, sha256: str) -> bytes | None:
        try:
            return self._path(sha256).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def _files(self) -> list[tuple[Any, int, str]]:
        files = []
        for path in self.directory.iterdir():
            if SHA256.match(path.name):
                try:
                    stat = path.stat()
                except FileNotFoundError:  # trimmed by another process meanwhile
                    continue
                files.append((stat.st_mtime, stat.st_size, path.name))
        return files

    def _delete(self, names: list[str]) -> None:
        for name in names:
            (self.directory / name).unlink(missing_ok=True)


def open_spool(settings: Settings) -> Spool:
    """The folder in data_dir, or the bucket of ``CHAMPIPY_SPOOL_URL`` shared by replicas."""
    if settings.spool_url:
        from .object_spool import ObjectSpool, s3_client

        return ObjectSpool(
            s3_client(settings.s3_endpoint_url), settings.spool_url, settings.spool_max_files, settings.spool_max_bytes
        )
    return ImageSpool(settings.data_dir / "spool", settings.spool_max_files, settings.spool_max_bytes)
