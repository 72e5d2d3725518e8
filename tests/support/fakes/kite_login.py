"""A fake Kite login page and /session/token on one loopback port, as Kite Connect documents them.

`GET /connect/login?v=3&api_key=…&redirect_params=…` shows a login form; submitting it (POST) sends the browser
to the app's registered redirect URL with `action=login&type=login&status=success&request_token=…` plus the
redirect_params keys. `POST /session/token` (form api_key, request_token, checksum; header X-Kite-Version: 3)
answers `data.access_token` and `data.user_id` when the checksum is hex SHA-256(api_key + request_token +
api_secret) of a request token it issued and not yet exchanged, else 403 TokenException. The same server
serves as KITE_LOGIN_URL and KITE_API_URL.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit


@dataclass
class FakeKite:
    """The broker's side: registered apps, issued request tokens, the token exchanges it saw."""

    redirect_url: str = ""
    #: api_key -> api_secret.
    apps: dict[str, str] = field(default_factory=dict)
    #: The user id the next login logs in as (what the form's field defaults to).
    user_id: str = "AB1234"
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)  # request_token -> (api_key, user_id)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login_redirect(self, api_key: str, redirect_params: str, user_id: str) -> str:
        """Where a successful login sends the browser: the registered redirect URL with a fresh request token."""
        request_token = secrets.token_urlsafe(16)
        with self.lock:
            self.issued[request_token] = (api_key, user_id)
        query = {"action": "login", "type": "login", "status": "success", "request_token": request_token}
        query |= dict(parse_qsl(redirect_params))
        return f"{self.redirect_url}?{urlencode(query)}"

    def session_token(self, form: dict[str, str], version: str | None) -> tuple[int, dict]:
        """POST /session/token: the access token for a right checksum of an unused request token."""
        self.exchanges.append(dict(form))
        if version != "3":
            return 400, _error("InputException", "X-Kite-Version header missing")
        api_key, request_token = form.get("api_key", ""), form.get("request_token", "")
        with self.lock:
            issued = self.issued.pop(request_token, None)
        secret = self.apps.get(api_key)
        if issued is None or secret is None or issued[0] != api_key:
            return 403, _error("TokenException", "Token is invalid or has expired.")
        expected = hashlib.sha256((api_key + request_token + secret).encode()).hexdigest()
        if not hmac.compare_digest(expected, form.get("checksum", "")):
            return 403, _error("TokenException", "Invalid `checksum`.")
        token = "kite-access-" + secrets.token_urlsafe(16)
        self.tokens.append(token)
        data = {"user_id": issued[1], "user_name": "Test Trader", "api_key": api_key, "access_token": token}
        return 200, {"status": "success", "data": data | {"public_token": "pub", "login_time": "2026-12-03 09:00:00"}}


def _error(kind: str, message: str) -> dict:
    """Kite's error answer."""
    return {"status": "error", "message": message, "error_type": kind, "data": None}


LOGIN_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Kite - login (fake)</title></head>
<body style="font-family: sans-serif; max-width: 26em; margin: 4em auto">
<h1>Kite by Zerodha</h1><p>Login to <b>Orderhook test app</b> ({api_key})</p>
<form method="post" action="/connect/login">
<input type="hidden" name="api_key" value="{api_key}">
<input type="hidden" name="redirect_params" value="{redirect_params}">
<label>User ID <input name="user_id" id="userid" value="{user_id}"></label>
<label>Password <input name="password" id="password" type="password" value="secret"></label>
<button type="submit" id="login">Login</button>
</form></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeKite."""

    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        if parts.path != "/connect/login" or query.get("v") != "3" or query.get("api_key") not in self.server.fake.apps:
            return self._send(400, "text/plain", b"invalid api_key or v")
        page = LOGIN_PAGE.format(
            api_key=html.escape(query["api_key"]),
            redirect_params=html.escape(query.get("redirect_params", "")),
            user_id=html.escape(self.server.fake.user_id),
        )
        return self._send(200, "text/html; charset=utf-8", page.encode())

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        path = urlsplit(self.path).path
        if path == "/connect/login":
            location = self.server.fake.login_redirect(
                form.get("api_key", ""), form.get("redirect_params", ""), form.get("user_id", "")
            )
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/session/token":
            status, body = self.server.fake.session_token(form, self.headers.get("X-Kite-Version"))
            return self._send(status, "application/json", json.dumps(body).encode())
        return self._send(404, "text/plain", b"not found")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeKite


class HttpFake:
    """A loopback HTTP server around a fake broker object, in a thread; `url` is its base."""

    def __init__(self, fake, handler: type[BaseHTTPRequestHandler]) -> None:
        self.fake = fake
        self.server = _Server(("127.0.0.1", 0), handler)
        self.server.fake = fake
        self.thread = threading.Thread(target=self.server.serve_forever, name="fake-broker-http", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> HttpFake:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def kite_server(fake: FakeKite) -> HttpFake:
    """The fake Kite as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)
