"""The ONNX Runtime session the server builds follows the serving settings: its idle intra-op
threads busy-wait (ORT's default, the lower latency) unless CHAMPIPY_INFERENCE_SPINNING=false
(the higher throughput under concurrent requests; bench/bench_server_settings.py measures both)."""

from __future__ import annotations

import pytest

from champipy.container import build_server_container

SPINNING = "session.intra_op.allow_spinning"


@pytest.mark.parametrize(("overrides", "expected"), [({}, "1"), ({"inference_spinning": False}, "0")])
def test_the_served_session_spins_unless_told_not_to(tmp_path, trained_registry, overrides, expected) -> None:
    container = build_server_container(trained_registry.settings_for(tmp_path / "data", **overrides))
    try:
        assert container.models is not None and container.models.refresh()
        session = container.models.current().classifier._session
        assert session.get_session_options().get_session_config_entry(SPINNING) == expected
    finally:
        container.close()
