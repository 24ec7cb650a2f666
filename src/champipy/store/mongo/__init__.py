"""The MongoDB backend, in the original ChampiPy layout so an existing database keeps working.

Database ``champipy_db`` (or the one named in the URL): ``users`` {username, hashed_password,
access}, ``predictions`` {user, url, filename, datetime, results: [{name, proba (percent)}]},
``parameters`` {param_name, param_value} and the GridFS bucket ``img_store`` whose files
carry top-level {classname, user}, linked to predictions by file name. ChampiPy adds fields
to those documents and the collections ``api_tokens``, ``events`` and ``jobs``; documents
written by the original, which lack the new fields, are read with defaults.

``MongoStore`` is the ``Store`` facade over one mixin per aggregate (``users``, ``images``,
``predictions``, ``parameters``, ``jobs``), all sharing the client of ``client.MongoBase``.
"""

from __future__ import annotations

from ..base import Store
from .client import DEFAULT_DATABASE, IMAGE_BUCKET, MongoBase
from .images import LEGACY_LABEL_SOURCE, MongoImages
from .jobs import MongoJobs
from .observations import MongoObservations
from .parameters import MongoParameters
from .predictions import MongoPredictions
from .users import MongoUsers

__all__ = ["DEFAULT_DATABASE", "IMAGE_BUCKET", "LEGACY_LABEL_SOURCE", "MongoBase", "MongoStore"]


class MongoStore(MongoUsers, MongoImages, MongoPredictions, MongoObservations, MongoParameters, MongoJobs, Store):
    """Everything ChampiPy persists, in MongoDB and GridFS."""
