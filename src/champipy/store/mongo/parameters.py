"""Parameters in MongoDB: the original's ``parameters`` collection {param_name, param_value}."""

from __future__ import annotations

from ..ports import ParameterRepository
from .client import MongoBase


class MongoParameters(MongoBase, ParameterRepository):
    def get_parameter(self, name: str) -> str | None:
        with self._guard():
            doc = self._parameters.find_one({"param_name": name})
        if doc is None or doc.get("param_value") is None:
            return None
        return str(doc["param_value"])

    def set_parameter(self, name: str, value: str) -> None:
        # update_many: should the original have left duplicates, they all agree afterwards.
        with self._guard():
            self._parameters.update_many({"param_name": name}, {"$set": {"param_value": value}}, upsert=True)
