"""Alembic environment shared by SQLite and PostgreSQL.

``SqlStore`` runs ``upgrade head`` itself and hands its connection over in
``config.attributes["connection"]``. To write a new revision by hand, against a database
already at head:

    python -c "from alembic import command; from champipy.store.sql import alembic_config; \
command.revision(alembic_config('sqlite:///dev.db'), 'what changed', autogenerate=True)"
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection

from champipy.store.sql_models import Base


def configure_and_run(**options: Any) -> None:
    context.configure(target_metadata=Base.metadata, compare_type=True, **options)
    with context.begin_transaction():
        context.run_migrations()


def run_online(connection: Connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    configure_and_run(connection=connection, render_as_batch=connection.dialect.name == "sqlite")


def main() -> None:
    config = context.config
    connection = config.attributes.get("connection")
    if connection is not None:
        run_online(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("No database: set sqlalchemy.url (see champipy.store.sql.alembic_config)")
    if context.is_offline_mode():
        configure_and_run(url=url, literal_binds=True)
        return
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            run_online(connection)
    finally:
        engine.dispose()


main()
