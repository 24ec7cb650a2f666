"""An in-process memory of facts about images that never change once true.

The store is the cache that survives restarts and is shared between processes; this sits in
front of it so a repeated image costs no store reads. It only holds what cannot go stale: the
results computed for (image SHA-256, model version), and the images known to be kept for
training (images are never deleted). Bounded, least recently used first out.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from ..store.base import SpeciesScore


class RecentResults:
    def __init__(self, max_entries: int = 20_000):
        self.max_entries = max_entries
        self._results: OrderedDict[tuple[str, str], tuple[SpeciesScore, ...]] = OrderedDict()
        self._kept: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def results(self, sha256: str, model_version: str) -> tuple[SpeciesScore, ...] | None:
        key = (sha256, model_version)
        with self._lock:
            found = self._results.get(key)
            if found is not None:
                self._results.move_to_end(key)
            return found

    def remember_results(self, sha256: str, model_version: str, results: tuple[SpeciesScore, ...]) -> None:
        with self._lock:
            self._results[(sha256, model_version)] = results
            self._results.move_to_end((sha256, model_version))
            while len(self._results) > self.max_entries:
                self._results.popitem(last=False)

    def is_kept(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._kept

    def remember_kept(self, sha256: str) -> None:
        with self._lock:
            self._kept[sha256] = None
            self._kept.move_to_end(sha256)
            while len(self._kept) > self.max_entries:
                self._kept.popitem(last=False)
