"""A bounded folder of recent images that were not kept for training.

An expert may confirm or correct the label of any prediction, including uncertain ones
whose image the store did not keep; the spool keeps those bytes for a while so the
confirmed image can still be stored.
"""

from __future__ import annotations

import os
import re
import threading
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ImageSpool:
    def __init__(self, directory: Path, max_files: int = 2000):
        self.directory = directory
        self.max_files = max_files
        self._lock = threading.Lock()
        self._count: int | None = None  # files here, as far as this process knows
        directory.mkdir(parents=True, exist_ok=True)

    def _path(self, sha256: str) -> Path:
        if not _SHA256.match(sha256):
            raise ValueError("not a SHA-256 hex digest")
        return self.directory / sha256

    def put(self, sha256: str, data: bytes) -> None:
        path = self._path(sha256)
        if path.exists():
            return
        tmp = path.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        self._trim()

    def get(self, sha256: str) -> bytes | None:
        try:
            return self._path(sha256).read_bytes()
        except (FileNotFoundError, ValueError):
            return None

    def _trim(self) -> None:
        # Listing the folder costs a few ms at 2000 files, so it happens only when this
        # process's count says the cap may be reached (other processes' files are seen then).
        with self._lock:
            if self._count is not None and self._count < self.max_files:
                self._count += 1
                return
            files = [p for p in self.directory.iterdir() if _SHA256.match(p.name)]
            if len(files) > self.max_files:
                files.sort(key=lambda p: p.stat().st_mtime)
                for old in files[: len(files) - self.max_files]:
                    old.unlink(missing_ok=True)
            self._count = min(len(files), self.max_files)
