"""A remote that answers 200 and then drips its body a byte at a time, until told to stop:
the slow URL that holds a download connection for as long as the read timeout allows."""

from __future__ import annotations

import socket
import threading


class DripServer:
    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.host = f"127.0.0.1:{self.port}"
        self.connections = 0
        self._threads: list[threading.Thread] = []

    def url(self, path: str = "/slow.jpg") -> str:
        return f"http://{self.host}{path}"

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._drip, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            try:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n")
                while not self._stop.wait(self.interval):
                    conn.sendall(b"x")
            except OSError:
                pass

    def __enter__(self) -> DripServer:
        self._accept_thread = threading.Thread(target=self._accept, daemon=True)
        self._accept_thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._listener.close()
        self._accept_thread.join(5)
        for thread in self._threads:
            thread.join(5)
