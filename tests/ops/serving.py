"""A live API on the session's trained model, with outbound fetches kept on this machine."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from champipy.api.app import create_app
from champipy.fetch import SafeFetcher
from champipy.settings import Settings
from champipy.store import Store, open_store
from support.accounts import Account, make_account
from support.live_server import client, live_server
from support.processes import stop_process

LOOPBACK = "127.0.0.1"


def loopback_resolver(host: str, port: int) -> list[str]:
    """Only 127.0.0.1 resolves: fuzzed or mistyped URLs never reach DNS or another machine."""
    if host.strip("[]") == LOOPBACK:
        return [LOOPBACK]
    raise OSError(f"tests resolve no host but {LOOPBACK} (asked for {host!r})")


@dataclass
class Served:
    url: str
    app: object
    settings: Settings
    store: Store
    user: Account
    admin: Account
    user_token: str

    def client(self, **kwargs) -> httpx.Client:
        """Signed in as the user with an API token (cheap to check, unlike a password hash)."""
        return client(self.url, headers={"Authorization": f"Bearer {self.user_token}"}, **kwargs)

    @property
    def container(self):
        return self.app.state.container


@contextmanager
def serve(trained_registry, data_dir: Path, **overrides) -> Iterator[Served]:
    settings = trained_registry.settings_for(data_dir, **overrides)
    store = open_store(settings.resolved_database_url)
    try:
        user, admin = make_account(store), make_account(store, admin=True, prefix="admin")
        app = create_app(settings)
        with live_server(app) as base_url:
            predictor = app.state.container.predictor
            real_fetcher, predictor.fetcher = predictor.fetcher, SafeFetcher(settings, resolver=loopback_resolver)
            real_fetcher.close()
            with client(base_url, auth=user.auth) as c:
                answer = c.post("/tokens", json={"name": "ops-tests"})
                answer.raise_for_status()
            yield Served(base_url, app, settings, store, user, admin, answer.json()["token"])
            predictor.fetcher.close()
    finally:
        store.close()


def dataset_photos(settings: Settings, per_species: int = 4) -> list[tuple[str, bytes]]:
    """(species, bytes) of a few evaluation photos per species."""
    photos = []
    for folder in sorted(p for p in Path(settings.eval_dir).iterdir() if p.is_dir()):
        for path in sorted(folder.iterdir())[:per_species]:
            photos.append((folder.name, path.read_bytes()))
    return photos


def variant(jpeg: bytes, rng: random.Random) -> bytes:
    """The same picture with different bytes (data after the JPEG end marker is ignored by
    decoders): a new image hash, so a prediction that cannot come from the cache."""
    return jpeg + b"champipy-variant" + rng.randbytes(16)


def upload(c: httpx.Client, data: bytes, top_k: int = 3, filename: str = "photo.jpg") -> httpx.Response:
    return c.post("/predictions", files={"file": (filename, data, "image/jpeg")}, data={"top_k": str(top_k)})


@contextmanager
def serve_process(settings: Settings, log_path: Path, timeout: float = 120.0) -> Iterator[str]:
    """``champipy serve`` in its own process (as deployed: JSON logs, own GIL); yields its URL.

    Settings travel as CHAMPIPY_* variables; stderr (the JSON log) goes to ``log_path``.
    """
    with serve_process_and_pid(settings, log_path, timeout) as (url, _pid):
        yield url


@contextmanager
def serve_process_and_pid(settings: Settings, log_path: Path, timeout: float = 120.0) -> Iterator[tuple[str, int]]:
    """``serve_process``, also giving the server's process id (to read its memory in /proc)."""
    import os
    import subprocess
    import sys
    import time

    from support.live_server import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAMPIPY_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"CHAMPIPY_{name.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    env.update(CHAMPIPY_HOST=LOOPBACK, CHAMPIPY_PORT=str(port))
    champipy = Path(sys.executable).with_name("champipy")
    with log_path.open("w") as log:
        process = subprocess.Popen([str(champipy), "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"champipy serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{url}/status", timeout=2, trust_env=False).json()["model"]["loaded"]:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"champipy serve loaded no model in {timeout} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url, process.pid
    finally:
        stop_process(process, timeout=15)
