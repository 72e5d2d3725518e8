"""A fake Flattrade login page and token API on one loopback port (docs/brokers.md "Accounts and daily logins").

`GET /?app_key=…` shows a login form; submitting it sends the browser to the registered redirect URL with
`code` (the request code) and `client`. `POST /trade/apitoken` (JSON api_key, request_code, api_secret =
hex SHA-256(api_key + request_code + api_secret)) answers `{"stat": "Ok", "token", "client"}` for a code it
issued and not yet exchanged, else `{"stat": "Not_Ok", "emsg": …}`.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.support.fakes.kite_login import HttpFake


@dataclass
class FakeFlattrade:
    """The broker's side: registered API keys, issued request codes, the exchanges it saw."""

    redirect_url: str = ""
    #: api_key -> api_secret.
    apps: dict[str, str] = field(default_factory=dict)
    user_id: str = "FT012345"
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (api_key, client)
    exchanges: list[dict] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login_redirect(self, api_key: str, client: str) -> str:
        """The registered redirect URL with a fresh request code."""
        code = secrets.token_hex(16)
        with self.lock:
            self.issued[code] = (api_key, client)
        return f"{self.redirect_url}?{urlencode({'code': code, 'client': client})}"

    def apitoken(self, body: dict) -> dict:
        """POST /trade/apitoken."""
        self.exchanges.append(dict(body))
        api_key, code = str(body.get("api_key", "")), str(body.get("request_code", ""))
        with self.lock:
            issued = self.issued.pop(code, None)
        secret = self.apps.get(api_key)
        if issued is None or secret is None or issued[0] != api_key:
            return {"stat": "Not_Ok", "emsg": "Invalid Request Code", "token": "", "client": ""}
        expected = hashlib.sha256((api_key + code + secret).encode()).hexdigest()
        if not hmac.compare_digest(expected, str(body.get("api_secret", ""))):
            return {"stat": "Not_Ok", "emsg": "Invalid API Secret", "token": "", "client": ""}
        token = secrets.token_hex(32)
        self.tokens.append(token)
        return {"token": token, "client": issued[1], "stat": "Ok", "emsg": ""}


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Flattrade - login (fake)</title></head>
<body><h1>FLATTRADE</h1><form method="post" action="/login">
<input type="hidden" name="app_key" value="{app_key}">
<label>Client ID <input name="client" id="client" value="{client}"></label>
<button type="submit" id="login">Login</button></form></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeFlattrade."""

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        fake: FakeFlattrade = self.server.fake
        query = dict(parse_qsl(urlsplit(self.path).query))
        if query.get("app_key") not in fake.apps:
            return self._send(400, "text/plain", b"invalid app_key")
        page = PAGE.format(app_key=html.escape(query["app_key"]), client=html.escape(fake.user_id))
        return self._send(200, "text/html; charset=utf-8", page.encode())

    def do_POST(self):
        fake: FakeFlattrade = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == "/login":
            form = dict(parse_qsl(raw.decode()))
            self.send_response(302)
            self.send_header("Location", fake.login_redirect(form.get("app_key", ""), form.get("client", "")))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/trade/apitoken":
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            return self._send(200, "application/json", json.dumps(fake.apitoken(body)).encode())
        return self._send(404, "text/plain", b"not found")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def flattrade_server(fake: FakeFlattrade) -> HttpFake:
    """The fake Flattrade as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)
