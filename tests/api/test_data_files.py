"""The embedded databases are private to the service's user, like the secret key."""

from __future__ import annotations

import stat

from champipy.container import build_container
from champipy.settings import Settings


def test_embedded_databases_are_owner_only_and_work(tmp_path):
    settings = Settings(data_dir=tmp_path / "data", bootstrap_model=False)
    container = build_container(settings)
    try:
        container.store.add_user("camille", "not-a-real-hash", ("user",))
        assert container.store.get_user("camille") is not None
    finally:
        container.close()
    for name in ("champipy.db", "mlflow.db", "jobs.db"):
        mode = stat.S_IMODE((tmp_path / "data" / name).stat().st_mode)
        assert mode == 0o600, f"{name} is {oct(mode)}"
