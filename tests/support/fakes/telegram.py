"""Telegram's side of `sendMessage` on loopback: records messages, answers per a programmable plan.

Like Telegram, it refuses a text over 4,096 UTF-16 code units (an emoji counts 2) or blank with a
400 (core.telegram.org/bots/api#sendmessage), so a sender that cuts or overfills a message is caught.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BOT_TOKEN = "123456:telegram-test-token"
CHAT_ID = "-1001234567890"
#: Telegram's limit on one message's text, in UTF-16 code units.
TEXT_LIMIT = 4096

#: (status, JSON body) for the n-th request (1-based).
Plan = Callable[[int], tuple[int, dict]]


def ok(_number: int) -> tuple[int, dict]:
    """Telegram's success answer."""
    return 200, {"ok": True, "result": {"message_id": 1}}


def bad_request(description: str) -> tuple[int, dict]:
    """Telegram's answer to a message it will not take."""
    return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {description}"}


def utf16_units(text: str) -> int:
    """A text's length as Telegram counts it."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


class FakeTelegram:
    """A Bot API server on 127.0.0.1 that checks the token in the path and keeps every message."""

    def __init__(self, plan: Plan = ok, token: str = BOT_TOKEN, limit: int = TEXT_LIMIT) -> None:
        self.messages: list[dict] = []
        self.refused_paths: list[str] = []
        #: Texts answered 400 (too long or blank): never delivered.
        self.refused_texts: list[str] = []
        self.requests = 0
        self.plan = plan
        self.limit = limit
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
                message = json.loads(body)
                with fake.lock:
                    fake.requests += 1
                    status, answer = fake.check(str(message.get("text", ""))) or fake.plan(fake.requests)
                    if status == 200:
                        fake.messages.append(dict(message, at=time.time()))
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

    def check(self, text: str) -> tuple[int, dict] | None:
        """Telegram's 400 for a text it refuses whatever the plan says; None for a text it takes."""
        if utf16_units(text) > self.limit:
            self.refused_texts.append(text)
            return bad_request("message is too long")
        if not text.strip():
            self.refused_texts.append(text)
            return bad_request("message text is empty")
        return None

    def texts(self) -> list[str]:
        """Every line received, in order (a message may hold several lines)."""
        with self.lock:
            return [line for message in self.messages for line in message["text"].split("\n")]

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
