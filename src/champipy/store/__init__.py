"""Storage: pick the backend from the database URL's scheme."""

from __future__ import annotations

from .base import Store


def open_store(url: str) -> Store:
    if url.startswith("sqlite:") or url.startswith("postgresql"):
        from .sql import SqlStore

        return SqlStore(url)
    if url.startswith("mongodb:"):
        from .mongo import MongoStore

        return MongoStore(url)
    raise ValueError(f"Unsupported database URL scheme: {url.split(':', 1)[0]}")


__all__ = ["Store", "open_store"]
