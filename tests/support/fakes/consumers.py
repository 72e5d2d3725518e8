"""Hostile local HTTP consumers (127.0.0.1 only): real sockets that answer as slowly as they like."""

from __future__ import annotations

import socket
import socketserver
import threading
import time


class DrippingConsumer:
    """Reads each POST whole, then drips its answer one byte every `interval` seconds.

    `phase="body"`: the status line and headers at once (`200 OK`, Content-Length `body_bytes`), then
    the body a byte at a time. `phase="headers"`: the status line and headers themselves a byte at a
    time. It records every request's `webhook-id` and, per connection, whether the client hung up
    before the answer was complete.
    """

    def __init__(self, phase: str = "body", interval: float = 0.5, body_bytes: int = 200) -> None:
        self.phase, self.interval, self.body_bytes = phase, interval, body_bytes
        self.webhook_ids: list[str] = []
        self.hung_up = 0
        self.lock = threading.Lock()
        consumer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                conn = self.request
                reader = conn.makefile("rb")
                while consumer._read_request(reader):
                    if not consumer._drip(conn):
                        with consumer.lock:
                            consumer.hung_up += 1
                        return

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
        self.server.daemon_threads = True
        self.server.allow_reuse_address = True
        self.server.request_queue_size = 128
        self.server.server_bind()
        self.server.server_activate()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=consumer-secret-token"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _read_request(self, reader) -> bool:
        """One request's head and body; False when the client closed the connection."""
        headers: dict[str, str] = {}
        line = reader.readline()
        if not line:
            return False
        while True:
            line = reader.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        reader.read(int(headers.get("content-length", "0")))
        with self.lock:
            self.webhook_ids.append(headers.get("webhook-id", ""))
        return True

    def _drip(self, conn: socket.socket) -> bool:
        """The answer, slowly; False when the client hung up before it was complete."""
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {self.body_bytes}\r\n\r\n".encode()
        if self.phase == "body":
            conn.sendall(head)
            slow = b"x" * self.body_bytes
        else:
            slow = head + b"x" * self.body_bytes
        try:
            for byte in slow:
                time.sleep(self.interval)
                conn.sendall(bytes([byte]))
        except OSError:  # the client shut the connection down: a broken pipe or a reset
            return False
        return True

    def count(self, webhook_id: str) -> int:
        """How many requests carried this webhook-id."""
        with self.lock:
            return self.webhook_ids.count(webhook_id)

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
