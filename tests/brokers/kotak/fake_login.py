"""A fake Kotak Neo login API on one loopback port (docs/brokers.md "Accounts and daily logins", Kotak Neo).

`POST /login/1.0/tradeApiLogin` checks `Authorization` (the dashboard token), `neo-fin-key`, and the JSON
`mobileNumber`, `ucc` and `totp` (against the TOTP secret, as an authenticator would) and answers a view token and
sid; `POST /login/1.0/tradeApiValidate` checks those as `Auth`/`sid` headers and the `mpin`, and answers the trade
token, sid and `baseUrl`. Refusals are Kotak's `{"status":"error","message",…}`; `fail_next` answers 503s first.
"""

from __future__ import annotations

import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pyotp

from tests.support.fakes.kite_login import HttpFake


@dataclass
class FakeKotakLogin:
    """Kotak's side of one client: its dashboard token, mobile, UCC, MPIN and TOTP secret."""

    api_token: str
    mobile: str
    ucc: str
    mpin: str
    totp_secret: str
    base_url: str = "https://e21.kotaksecurities.com"
    views: dict[str, str] = field(default_factory=dict)  # view sid -> view token
    trades: list[tuple[str, str]] = field(default_factory=list)
    calls: list[tuple[str, dict, dict]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, path: str, headers: dict[str, str], body: dict) -> tuple[int, dict]:
        """One call of the login API."""
        self.calls.append((path, dict(headers), dict(body)))
        if self.fail_next:
            return self.fail_next.pop(0), {}
        if headers.get("authorization") != self.api_token or headers.get("neo-fin-key") != "neotradeapi":
            return 401, {"status": "error", "message": "Invalid access token.", "errorCode": "401"}
        if path.endswith("/tradeApiLogin"):
            return self._login(body)
        if path.endswith("/tradeApiValidate"):
            return self._validate(headers, body)
        return 404, {"status": "error", "message": "not found"}

    def _login(self, body: dict) -> tuple[int, dict]:
        good = body.get("mobileNumber") == self.mobile and body.get("ucc") == self.ucc
        if not good or not pyotp.TOTP(self.totp_secret).verify(str(body.get("totp", "")), valid_window=1):
            return 401, {"status": "error", "message": "Invalid credentials or TOTP.", "errorCode": "401"}
        sid, token = secrets.token_hex(8), "eyJview." + secrets.token_urlsafe(16)
        with self.lock:
            self.views[sid] = token
        return 200, {"data": {"token": token, "sid": sid, "rid": "r1", "kType": "View", "status": "success"}}

    def _validate(self, headers: dict[str, str], body: dict) -> tuple[int, dict]:
        with self.lock:
            view = self.views.pop(headers.get("sid", ""), None)
        if view is None or view != headers.get("auth") or body.get("mpin") != self.mpin:
            return 401, {"status": "error", "message": "Invalid MPIN.", "errorCode": "401"}
        token, sid = "eyJtrade." + secrets.token_urlsafe(16), secrets.token_hex(8)
        self.trades.append((token, sid))
        data = {
            "token": token,
            "sid": sid,
            "rid": "r2",
            "baseUrl": self.base_url,
            "kType": "Trade",
            "status": "success",
        }
        return 200, {"data": data}


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeKotakLogin."""

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_POST(self):
        fake: FakeKotakLogin = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        headers = {key.lower(): value for key, value in self.headers.items()}
        status, answer = fake.answer(self.path, headers, body if isinstance(body, dict) else {})
        payload = json.dumps(answer).encode() if answer else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def kotak_login_server(fake: FakeKotakLogin) -> HttpFake:
    """The fake Kotak login API as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)
