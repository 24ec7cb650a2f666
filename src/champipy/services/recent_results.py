"""An in-process memory of facts about images that never change once true.

The store is the cache that survives restarts and is shared between processes; this sits in
front of it so a repeated image costs no store reads. It only holds what cannot go stale: the
results computed for (image SHA-256, model version), and the images known to be kept for
training (images are never deleted). Bounded, least recently used first out.

So each API replica may keep its own copy without any coordination: no other replica can make
an entry here wrong, because no replica ever changes a fact once it holds. (What can change,
such as a token's user, is remembered elsewhere and revoked across replicas:
services/token_revocations.py.)
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..store.base import OpenSetVerdict, SpeciesScore

K = TypeVar("K")
V = TypeVar("V")


class _Lru(Generic[K, V]):
    """A bounded mapping that drops the least recently used key first. Not thread-safe."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.max_entries:
            self._items.popitem(last=False)


@dataclass(frozen=True)
class Computed:
    """What the model computed for one image: every species ranked, and the open-set verdict
    (None: the version has no open-set score)."""

    results: tuple[SpeciesScore, ...]
    open_set: OpenSetVerdict | None = None


class RecentResults:
    def __init__(self, max_entries: int = 20_000):
        self._results: _Lru[tuple[str, str], Computed] = _Lru(max_entries)
        self._kept: _Lru[str, bool] = _Lru(max_entries)
        self._lock = threading.Lock()

    def results(self, sha256: str, model_version: str) -> Computed | None:
        with self._lock:
            return self._results.get((sha256, model_version))

    def remember_results(self, sha256: str, model_version: str, results: Computed) -> None:
        with self._lock:
            self._results.put((sha256, model_version), results)

    def is_kept(self, sha256: str) -> bool:
        with self._lock:
            return self._kept.get(sha256) is not None

    def remember_kept(self, sha256: str) -> None:
        with self._lock:
            self._kept.put(sha256, True)
