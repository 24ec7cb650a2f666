"""Which backend serves which database URL scheme: one table, read by ``open_store`` and by the
settings check. It names the backends without importing them, so reading it (as the settings
do) loads neither SQLAlchemy nor pymongo.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Backend:
    module: str  # imported only when a store is opened
    class_name: str
    example: str  # how a URL of this scheme starts, for error messages


_SQL = ("champipy.store.sql", "SqlStore")
BACKENDS: dict[str, Backend] = {
    "sqlite": Backend(*_SQL, "sqlite:///"),
    "postgresql": Backend(*_SQL, "postgresql://"),
    "postgresql+psycopg": Backend(*_SQL, "postgresql+psycopg://"),
    "mongodb": Backend("champipy.store.mongo", "MongoStore", "mongodb://"),
    # A fresh, empty store in this process for each open: the fake of the fast unit tests.
    "memory": Backend("champipy.store.memory", "MemoryStore", "memory://"),
}


def scheme_of(url: str) -> str:
    """The scheme of a database URL: what comes before the first colon, lower-cased."""
    return url.split(":", 1)[0].lower() if ":" in url else ""


def backend_for(url: str) -> Backend | None:
    return BACKENDS.get(scheme_of(url))


def known_schemes() -> str:
    """The URL beginnings the backends accept, for error messages."""
    examples = list(dict.fromkeys(backend.example for backend in BACKENDS.values()))
    return ", ".join(examples[:-1]) + " or " + examples[-1]
