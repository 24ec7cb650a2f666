"""The ``Server-Timing`` response header: each stage the request went through (timing.py) and
``app``, the time from the request reaching the app to its answer starting.

A client's own latency minus ``app`` is what the HTTP stack and the network cost; ``app`` minus
the stages is routing, validation and serialisation. bench/bench_peers.py reads it to say where an
uncached prediction's time goes.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import timing

HEADER = b"server-timing"


def header_value(stages: dict[str, float], app_ms: float) -> bytes:
    entries = [f"{name};dur={ms:.2f}" for name, ms in stages.items()]
    entries.append(f"app;dur={app_ms:.2f}")
    return ", ".join(entries).encode("latin-1")


class ServerTimingMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        stages, token = timing.begin()
        started = time.perf_counter()

        async def send_with_timing(message: Message) -> None:
            if message["type"] == "http.response.start":
                value = header_value(stages, (time.perf_counter() - started) * 1000)
                message = {**message, "headers": [*message.get("headers", []), (HEADER, value)]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_timing)
        finally:
            timing.end(token)
