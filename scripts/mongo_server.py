"""Serve the MongoDB wire protocol with mongoeco, for tests and local runs without mongod.

Run it with the Python 3.13 virtualenv made by ``scripts/setup_mongo_venv.sh``:

    .venv-mongo/bin/python scripts/mongo_server.py --port 27018 [--sqlite PATH]

It prints ``READY mongodb://HOST:PORT/?directConnection=true`` once it accepts connections,
and stops cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from mongoeco.engines.memory import MemoryEngine
from mongoeco.engines.sqlite import SQLiteEngine
from mongoeco.wire.proxy import AsyncMongoEcoProxyServer


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=27017, help="0 picks a free port")
    parser.add_argument(
        "--sqlite",
        metavar="PATH",
        help="keep the data in this SQLite file (default: in memory, lost on exit)",
    )
    return parser.parse_args(argv)


async def serve(host: str, port: int, sqlite_path: str | None) -> None:
    engine = SQLiteEngine(sqlite_path) if sqlite_path else MemoryEngine()
    server = AsyncMongoEcoProxyServer(engine=engine, host=host, port=port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    address = await server.start()
    try:
        print(f"READY {address.uri}", flush=True)
        await stop.wait()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.sqlite))
    return 0


if __name__ == "__main__":
    sys.exit(main())
