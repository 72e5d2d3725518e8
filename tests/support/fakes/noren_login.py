"""A fake Noren login API on one loopback port: QuickAuth (Shoonya, Zebu) and Firstock's /V1/login
(docs/brokers.md "Accounts and daily logins").

`POST <prefix>/QuickAuth` takes the body `jData=<json>` (no jKey) and checks what the OMS checks: `pwd` = hex
SHA-256(password), `factor2` = the TOTP code of this moment (pyotp, one step either side allowed), `vc`, `appkey` =
hex SHA-256(uid|api_secret), `source` API; it answers `{"stat":"Ok","susertoken",…}` or `{"stat":"Not_Ok","emsg"}`.
`POST /V1/login` takes JSON `userId`, `password` (SHA-256), `TOTP`, `vendorCode`, `apiKey` and answers
`{"status":"success","data":{"susertoken",…}}` or `{"status":"failed","message"}`. `fail_with` makes the next answers
an HTTP error (the OMS down at its start of day).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

import pyotp

from tests.support.fakes.kite_login import HttpFake


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class NorenUser:
    """One user at the fake broker."""

    uid: str
    password: str
    totp_secret: str
    vendor_code: str
    api_secret: str


@dataclass
class FakeNorenLogin:
    """The broker's side: its users, every login request it saw, the tokens it issued."""

    users: dict[str, NorenUser] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    raw_bodies: list[bytes] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    #: HTTP status of the next answers (0: answer normally).
    fail_with: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, user: NorenUser) -> None:
        self.users[user.uid] = user

    def _totp_ok(self, user: NorenUser, code: str) -> bool:
        return pyotp.TOTP(user.totp_secret).verify(code, valid_window=1)

    def _issue(self) -> str:
        token = secrets.token_hex(32)
        self.tokens.append(token)
        return token

    def quickauth(self, jdata: dict) -> dict:
        """POST …/QuickAuth."""
        user = self.users.get(str(jdata.get("uid", "")))
        if user is None:
            return {"stat": "Not_Ok", "emsg": "Invalid Input : Invalid User"}
        if jdata.get("source") != "API" or not jdata.get("apkversion") or not jdata.get("imei"):
            return {"stat": "Not_Ok", "emsg": "Invalid Input : source, apkversion or imei is Missing."}
        if not hmac.compare_digest(str(jdata.get("pwd", "")), _sha(user.password)):
            return {"stat": "Not_Ok", "emsg": "Invalid Input : Wrong Password"}
        if jdata.get("vc") != user.vendor_code:
            return {"stat": "Not_Ok", "emsg": "Invalid Input : Invalid Vendor code"}
        if not hmac.compare_digest(str(jdata.get("appkey", "")), _sha(f"{user.uid}|{user.api_secret}")):
            return {"stat": "Not_Ok", "emsg": "Invalid Input : Invalid App Key"}
        if not self._totp_ok(user, str(jdata.get("factor2", ""))):
            return {"stat": "Not_Ok", "emsg": "Invalid Input : Wrong TOTP"}
        return {"stat": "Ok", "susertoken": self._issue(), "uid": user.uid, "actid": user.uid, "brkname": "FAKE"}

    def firstock(self, body: dict) -> dict:
        """POST /V1/login."""
        user = self.users.get(str(body.get("userId", "")))
        if user is None:
            return {"status": "failed", "message": "Invalid userId"}
        if not hmac.compare_digest(str(body.get("password", "")), _sha(user.password)):
            return {"status": "failed", "error": {"field": "password", "message": "Invalid password"}}
        if body.get("vendorCode") != user.vendor_code or body.get("apiKey") != user.api_secret:
            return {"status": "failed", "message": "Invalid vendorCode or apiKey"}
        if not self._totp_ok(user, str(body.get("TOTP", ""))):
            return {"status": "failed", "message": "Invalid TOTP"}
        return {"status": "success", "message": "Login successful", "data": {"susertoken": self._issue()}}


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeNorenLogin."""

    def log_message(self, *args) -> None:  # noqa: D102 - quiet
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        fake: FakeNorenLogin = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with fake.lock:
            fake.raw_bodies.append(raw)
            failing = fake.fail_with
        if failing:
            return self._send(failing, b"<html>Service Unavailable</html>")
        if self.path.endswith("/QuickAuth"):
            text = raw.decode()
            if not text.startswith("jData="):
                return self._json({"stat": "Not_Ok", "emsg": "Invalid Input : Missing jData"})
            try:  # the SDKs send the JSON as it is, not form-encoded: read it so
                jdata = json.loads(text.removeprefix("jData="))
            except ValueError:
                return self._json({"stat": "Not_Ok", "emsg": "Invalid Input : jData is not valid json object"})
            fake.requests.append(jdata)
            return self._json(fake.quickauth(jdata))
        if self.path.endswith("/V1/login"):
            try:
                body = json.loads(raw)
            except ValueError:
                return self._json({"status": "failed", "message": "invalid JSON"}, 400)
            fake.requests.append(body)
            return self._json(fake.firstock(body))
        return self._send(404, b"not found")

    def _json(self, body: dict, status: int = 200) -> None:
        self._send(status, json.dumps(body).encode(), "application/json")

    def _send(self, status: int, body: bytes, kind: str = "text/html") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def noren_login_server(fake: FakeNorenLogin) -> HttpFake:
    """The fake login API as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)
