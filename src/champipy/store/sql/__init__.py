"""The SQL backend: SQLite (default, one file) or PostgreSQL, through SQLAlchemy 2.

``SqlStore`` is the ``Store`` facade over one mixin per aggregate (``users``, ``images``,
``predictions``, ``observations``, ``parameters``, ``jobs``), all sharing the engine and sessions of
``engine.SqlBase``. Tables are in ``champipy.store.sql_models``, migrations in
``champipy.store/migrations``.
"""

from __future__ import annotations

from ..base import Store
from .engine import MIGRATIONS_DIR, SqlBase, alembic_config, engine_url, new_id
from .images import SqlImages
from .jobs import SqlJobs
from .observations import SqlObservations
from .parameters import SqlParameters
from .predictions import SqlPredictions
from .users import SqlUsers

__all__ = ["MIGRATIONS_DIR", "SqlBase", "SqlStore", "alembic_config", "engine_url", "new_id"]


class SqlStore(SqlUsers, SqlImages, SqlPredictions, SqlObservations, SqlParameters, SqlJobs, Store):
    """Everything ChampiPy persists, in SQLite or PostgreSQL."""
