"""Parameters in SQL: one row per name."""

from __future__ import annotations

from ..ports import ParameterRepository
from ..sql_models import ParameterRow
from .engine import SqlBase, insert_for


class SqlParameters(SqlBase, ParameterRepository):
    def get_parameter(self, name: str) -> str | None:
        with self._reading() as session:
            row = session.get(ParameterRow, name)
            return row.value if row else None

    def set_parameter(self, name: str, value: str) -> None:
        with self._writing() as session:
            upsert = (
                insert_for(session, ParameterRow)
                .values(name=name, value=value)
                .on_conflict_do_update(index_elements=[ParameterRow.name], set_={"value": value})
            )
            session.execute(upsert)
