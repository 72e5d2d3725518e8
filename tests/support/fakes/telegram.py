"""Telegram's side of `sendMessage` on loopback: records messages, answers per a programmable plan."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOT_TOKEN = "123456:telegram-test-token"
CHAT_ID = "-1001234567890"

#: (status, JSON body) for the n-th request (1-based).
Plan = Callable[[int], tuple[int, dict]]


def ok(_number: int) -> tuple[int, dict]:
    """Telegram's success answer."""
    return 200, {"ok": True, "result": {"message_id": 1}}


class FakeTelegram:
    """A Bot API server on 127.0.0.1 that checks the token in the path and keeps every message."""

    def __init__(self, plan: Plan = ok, token: str = BOT_TOKEN) -> None:
        self.messages: list[dict] = []
        self.refused_paths: list[str] = []
        self.requests = 0
        self.plan = plan
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path != f"/bot{token}/sendMessage":
                    with fake.lock:
                        fake.refused_paths.append(self.path)
                    self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
                    return
                with fake.lock:
                    fake.requests += 1
                    status, answer = fake.plan(fake.requests)
                    if status == 200:
                        fake.messages.append(dict(json.loads(body), at=time.time()))
                self._answer(status, answer)

            def _answer(self, status: int, answer: dict) -> None:
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def texts(self) -> list[str]:
        """Every line received, in order (a message may hold several lines)."""
        with self.lock:
            return [line for message in self.messages for line in message["text"].split("\n")]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
