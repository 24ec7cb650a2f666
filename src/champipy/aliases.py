"""Registry alias names: one spelling everywhere, whatever the caller typed."""

from __future__ import annotations

from .errors import InvalidInput

MAX_ALIAS_LENGTH = 64


def alias_key(name: str) -> str:
    """MLflow aliases are case-sensitive; ours are not ("Production" was the original's stage)."""
    return name.strip().lower()


def normalise_alias(name: str | None, default: str) -> str:
    """A user-given alias or stage name, checked and in its stored spelling; empty means ``default``."""
    name = (name or default).strip()
    if not name or len(name) > MAX_ALIAS_LENGTH or not name.replace("-", "").replace("_", "").isalnum():
        raise InvalidInput("stage must be an alias name such as 'production'.")
    return alias_key(name)
