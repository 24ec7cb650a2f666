"""A real MLflow tracking server on 127.0.0.1, for the tests of a shared registry.

Its own process group: the server starts a job runner and Huey consumers that killing the
server alone left running after the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from .live_server import free_port
from .processes import stop_process_group


class MlflowServer:
    """``start()`` runs it and waits until /health answers; ``stop()`` kills its group."""

    def __init__(self, backend_uri: str, log: Path, artifacts: str, *, serve_artifacts: bool = False, env=None):
        self.backend_uri, self.log_path, self.artifacts = backend_uri, log, artifacts
        self.serve_artifacts, self.env = serve_artifacts, env
        self.process: subprocess.Popen | None = None
        self.url = ""

    def start(self, timeout: float = 90.0) -> str:
        port = free_port()
        mlflow = os.path.join(os.path.dirname(sys.executable), "mlflow")
        # Proxied artifacts: clients reach the bucket only through the server.
        where = ["--artifacts-destination", self.artifacts, "--serve-artifacts"]
        if not self.serve_artifacts:
            where = ["--default-artifact-root", self.artifacts]
        command = [mlflow, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                [*command, "--backend-store-uri", self.backend_uri, *where],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=None if self.env is None else {**os.environ, **self.env},
            )
        self.url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the MLflow server exited:\n{self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the MLflow server did not answer in {timeout} s:\n{self.log_path.read_text()[-2000:]}"
                )
            time.sleep(0.5)

    def stop(self) -> None:
        if self.process is not None:
            stop_process_group(self.process)  # also when the server itself already exited
            self.process = None
