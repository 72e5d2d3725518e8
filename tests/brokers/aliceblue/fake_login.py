"""A fake AliceBlue login page and session API on one loopback port (docs/brokers.md "Accounts and daily logins").

`GET /?appcode=…` shows a login form; submitting it sends the browser to the registered redirect URL with
`authCode` and `userId`. `POST /open-api/od/v1/vendor/getUserDetails` (JSON `checkSum` = hex SHA-256(userId +
authCode + apiSecret)) answers `{"stat":"Ok","clientId","userSession"}` for a code it issued and not yet used,
else `{"stat":"Not_ok","emsg":…}` as AliceBlue's page shows.
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

SESSION_PATH = "/open-api/od/v1/vendor/getUserDetails"


@dataclass
class FakeAliceBlue:
    """The broker's side: app codes and their secrets, issued auth codes, the session requests it saw."""

    redirect_url: str = ""
    #: app_code -> api_secret.
    apps: dict[str, str] = field(default_factory=dict)
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)  # authCode -> (app_code, userId)
    requests: list[dict] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def login_redirect(self, app_code: str, user_id: str) -> str:
        """The registered redirect URL with a fresh authCode."""
        code = secrets.token_urlsafe(24)
        with self.lock:
            self.issued[code] = (app_code, user_id)
        return f"{self.redirect_url}?{urlencode({'authCode': code, 'userId': user_id})}"

    def user_details(self, body: dict) -> dict:
        """POST vendor/getUserDetails: the checksum must be one of an issued, unused code."""
        self.requests.append(dict(body))
        given = str(body.get("checkSum", ""))
        with self.lock:
            for code, (app_code, user_id) in list(self.issued.items()):
                secret = self.apps.get(app_code, "")
                expected = hashlib.sha256((user_id + code + secret).encode()).hexdigest()
                if hmac.compare_digest(expected, given):
                    del self.issued[code]
                    session = "eyJ" + secrets.token_urlsafe(48)
                    self.sessions.append(session)
                    return {"stat": "Ok", "clientId": user_id, "userSession": session}
        return {"stat": "Not_ok", "emsg": "Invalid auth code"}


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>ANT - login (fake)</title></head>
<body><h1>ALICEBLUE</h1><form method="post" action="/login">
<input type="hidden" name="appcode" value="{app_code}">
<label>User ID <input name="userId" id="userId" value=""></label>
<button type="submit" id="login">Login</button></form></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeAliceBlue."""

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        fake: FakeAliceBlue = self.server.fake
        query = dict(parse_qsl(urlsplit(self.path).query))
        if query.get("appcode") not in fake.apps:
            return self._send(400, "text/plain", b"invalid appcode")
        return self._send(200, "text/html; charset=utf-8", PAGE.format(app_code=html.escape(query["appcode"])).encode())

    def do_POST(self):
        fake: FakeAliceBlue = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = urlsplit(self.path).path
        if path == "/login":
            form = dict(parse_qsl(raw.decode()))
            self.send_response(302)
            self.send_header("Location", fake.login_redirect(form.get("appcode", ""), form.get("userId", "")))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == SESSION_PATH:
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            return self._send(200, "application/json", json.dumps(fake.user_details(body)).encode())
        return self._send(404, "text/plain", b"not found")

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def aliceblue_server(fake: FakeAliceBlue) -> HttpFake:
    """The fake AliceBlue as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)
