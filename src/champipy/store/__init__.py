"""Storage: pick the backend from the database URL's scheme (see ``backends.BACKENDS``)."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import cast

from .backends import BACKENDS, backend_for, known_schemes, scheme_of
from .base import Store

__all__ = ["BACKENDS", "Store", "open_store"]


def open_store(url: str) -> Store:
    backend = backend_for(url)
    if backend is None:
        raise ValueError(
            f"Unsupported database URL scheme: {scheme_of(url) or url!r}; "
            f"expected a URL starting with {known_schemes()}"
        )
    opener = getattr(import_module(backend.module), backend.class_name)
    return cast(Callable[[str], Store], opener)(url)
