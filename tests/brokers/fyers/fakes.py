"""Fyers' side, on loopback (docs/brokers.md §11): the order socket and one HTTP server for the login page,
validate-authcode, the profile and the order book, as the FYERS API v3 reference describes them.

- Socket: a handshake whose `Authorization` is not an issued `<app_id>:<token>` is refused with HTTP 403; `SUB_ORD`
  is answered `{"code":1605,"message":"Successfully subscribed","s":"ok"}`; a `ping` text frame gets `pong`.
- HTTP: `GET /api/v3/generate-authcode` shows a login form for a registered app and redirect URI; submitting it sends
  the browser to the redirect URI with `s=ok&code=200&auth_code=…&state=…`. `POST /api/v3/validate-authcode` takes
  an issued auth code once, with appIdHash = SHA-256("<app_id>:<app_secret>"). `GET /api/v3/profile` and
  `GET /api/v3/orders[?id=]` need `Authorization: <app_id>:<token>`; an unknown order is code -51.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from tests.brokers.fyers.samples import SUBSCRIBED
from tests.support.fakes.kite_login import HttpFake
from tests.support.fakes.socket_server import FakeSocketBroker, Session

#: The answer to a request whose token Fyers does not take ("Common API Error Codes": -16).
REFUSED = {"s": "error", "code": -16, "message": "Could not authenticate the user"}


@dataclass
class FakeFyers:
    """The broker's records: apps, issued auth codes and tokens, each user's orders, every request."""

    #: app_id -> app_secret.
    apps: dict[str, str] = field(default_factory=dict)
    #: The registered redirect URI (our callback).
    redirect_url: str = ""
    #: Who logs in on the login page.
    user_id: str = "XP0001"
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # auth code -> (app_id, user)
    #: "<app_id>:<token>" -> user: what the socket and the REST calls accept.
    authorizations: dict[str, str] = field(default_factory=dict)
    #: user -> order id -> its current row (Fyers keeps no history).
    orders: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    #: HTTP statuses to answer the next order-book requests with first.
    fail_next: list[int] = field(default_factory=list)
    #: Seconds the tokens validate-authcode hands out live, in their JWT `exp` (None: opaque tokens without one).
    token_lifetime: float | None = None
    #: Where the registered redirect URI's host really is for the test's browser (its scheme and host replaced by
    #: this base, as a proxy in front of the web would): "" keeps the URI as registered.
    land_on: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def issue_token(self, app_id: str, user: str) -> str:
        """A token for this app and user, as a validate-authcode would hand out."""
        token = "eyJ0eXAi." + secrets.token_urlsafe(24)
        if self.token_lifetime is not None:
            claims = {"iss": "api.fyers.in", "fy_id": user, "jti": secrets.token_hex(8)}
            claims["exp"] = int(time.time() + self.token_lifetime)
            token = jwt.encode(claims, secrets.token_hex(16), algorithm="HS256")
        with self.lock:
            self.authorizations[f"{app_id}:{token}"] = user
        return token

    def expire(self, app_id: str, token: str) -> None:
        """The token stops working everywhere (the day's rollover)."""
        with self.lock:
            self.authorizations.pop(f"{app_id}:{token}", None)

    def put_order(self, user: str, row: dict[str, Any]) -> None:
        """An order's current row in the user's book."""
        with self.lock:
            self.orders.setdefault(user, {})[str(row["id"])] = dict(row)

    def callback_for(self, login_url: str) -> str:
        """Where the login page would send the browser after a successful login (without the browser)."""
        query = dict(parse_qsl(urlsplit(login_url).query))
        return self.redirect(query.get("client_id", ""), query.get("redirect_uri", ""), query.get("state", ""))

    def redirect(self, app_id: str, redirect_uri: str, state: str) -> str:
        """The redirect URI with a fresh auth code."""
        code = "eyJhdXRoIjo." + secrets.token_urlsafe(24)
        with self.lock:
            self.codes[code] = (app_id, self.user_id)
        if self.land_on:
            redirect_uri = self.land_on.rstrip("/") + urlsplit(redirect_uri).path
        return f"{redirect_uri}?{urlencode({'s': 'ok', 'code': '200', 'auth_code': code, 'state': state})}"

    def validate(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST /api/v3/validate-authcode."""
        self.exchanges.append(dict(body))
        with self.lock:
            issued = self.codes.pop(str(body.get("code", "")), None)
        if body.get("grant_type") != "authorization_code" or issued is None:
            return 400, {"s": "error", "code": -413, "message": "invalid auth code"}
        app_id, user = issued
        expected = hashlib.sha256(f"{app_id}:{self.apps.get(app_id, '')}".encode()).hexdigest()
        if app_id not in self.apps or not hmac.compare_digest(expected, str(body.get("appIdHash", ""))):
            return 400, {"s": "error", "code": -371, "message": "invalid app id hash"}
        token = self.issue_token(app_id, user)
        return 200, {"s": "ok", "code": 200, "message": "", "access_token": token, "refresh_token": "eyJyZWZyZXNo"}

    def user_of(self, authorization: str | None) -> str | None:
        """The user an Authorization header logs in as, or None."""
        with self.lock:
            return self.authorizations.get(authorization or "")

    def api(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """GET /api/v3/profile and /api/v3/orders[?id=]."""
        parts = urlsplit(path)
        user = self.user_of(authorization)
        if parts.path == "/api/v3/orders" and self.fail_next:
            with self.lock:
                return self.fail_next.pop(0), {"s": "error", "code": -429, "message": "fake failure"}
        if user is None:
            return 401, REFUSED
        if parts.path == "/api/v3/profile":
            return 200, {"s": "ok", "code": 200, "message": "", "data": {"fy_id": user, "name": "FAKE USER"}}
        if parts.path == "/api/v3/orders":
            with self.lock:
                book = self.orders.get(user, {})
                wanted = dict(parse_qsl(parts.query)).get("id")
                if wanted is None:
                    return 200, {"s": "ok", "code": 200, "message": "", "orderBook": list(book.values())}
                if wanted not in book:
                    return 400, {"s": "error", "code": -51, "message": "Invalid order id"}
                return 200, {"s": "ok", "code": 200, "message": "", "orderBook": [book[wanted]]}
        return 404, {"s": "error", "code": -404, "message": "not found"}


PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>FYERS - login (fake)</title></head>
<body><h1>FYERS</h1><form method="post" action="/login">
<input type="hidden" name="client_id" value="{client_id}"><input type="hidden" name="state" value="{state}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<label>Client ID <input name="fy_id" id="fy_id" value="{user_id}"></label>
<button type="submit" id="login">Login</button></form></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeFyers."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        fake: FakeFyers = self.server.fake
        fake.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
        parts = urlsplit(self.path)
        if parts.path == "/api/v3/generate-authcode":
            query = dict(parse_qsl(parts.query))
            if query.get("client_id") not in fake.apps or query.get("response_type") != "code":
                return self._json(400, {"s": "error", "code": -352, "message": "Invalid App ID"})
            if query.get("redirect_uri") != fake.redirect_url:
                return self._json(400, {"s": "error", "code": -50, "message": "redirect_uri mismatch"})
            page = PAGE.format(
                client_id=html.escape(query["client_id"]),
                state=html.escape(query.get("state", "")),
                redirect_uri=html.escape(query["redirect_uri"]),
                user_id=html.escape(fake.user_id),
            )
            return self._send(200, "text/html; charset=utf-8", page.encode())
        status, body = fake.api(self.path, self.headers.get("Authorization"))
        return self._json(status, body)

    def do_POST(self):
        fake: FakeFyers = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fake.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": raw})
        path = urlsplit(self.path).path
        if path == "/login":
            form = dict(parse_qsl(raw.decode()))
            if form.get("fy_id"):
                fake.user_id = form["fy_id"]
            location = fake.redirect(form.get("client_id", ""), form.get("redirect_uri", ""), form.get("state", ""))
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/api/v3/validate-authcode":
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            return self._json(*fake.validate(body if isinstance(body, dict) else {}))
        return self._json(404, {"s": "error", "code": -404, "message": "not found"})

    def _json(self, status: int, body: dict[str, Any]) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def fyers_server(fake: FakeFyers) -> HttpFake:
    """The fake Fyers HTTP side as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)


class FakeFyersSocket(FakeSocketBroker):
    """wss://socket.fyers.in/trade/v3: the header checked at the handshake (403), SUB_ORD acked, ping -> pong."""

    path = "/trade/v3"

    def __init__(self, broker: FakeFyers) -> None:
        super().__init__()
        self.broker = broker
        #: Every handshake: (Authorization, accepted).
        self.attempts: list[tuple[str, bool]] = []
        #: Sessions by the user they logged in as.
        self.by_user: dict[str, list[Session]] = {}
        #: Answer SUB_ORD with a token error instead of the ack.
        self.refuse_subscribe = False

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        authorization = request.headers.get("Authorization", "")
        user = self.broker.user_of(authorization)
        self.attempts.append((authorization, user is not None))
        if user is None:
            return ws.respond(HTTPStatus.FORBIDDEN, "")
        return None

    async def handle(self, session: Session, message: str | bytes) -> None:
        if message == "ping":
            await session.ws.send("pong")
            return
        frame = json.loads(message)
        if frame.get("T") == "SUB_ORD":
            if self.refuse_subscribe:
                await session.ws.send(json.dumps({"s": "error", "code": -15, "message": "Please provide valid token"}))
                return
            user = self.broker.user_of(session.headers.get("Authorization"))
            self.by_user.setdefault(user or "", []).append(session)
            await session.ws.send(json.dumps(SUBSCRIBED))

    def subscribed(self, user: str) -> list[Session]:
        """The user's sessions that subscribed, still open."""
        from websockets.protocol import State

        return [s for s in self.by_user.get(user, []) if s.ws.state is State.OPEN]

    async def push_order(self, user: str, order: dict[str, Any]) -> None:
        """An `orders` frame to the user's latest subscribed session."""
        await self.subscribed(user)[-1].ws.send(json.dumps({"orders": order, "s": "ok"}))
