"""A fake Upstox on loopback: the Portfolio Stream Feed's authorize step and socket, the order book, the login.

`FakeUpstoxSocket` is the socket (websockets, in the test's event loop): it takes only a URL the authorize step
issued, once (a reused or made-up code is refused at the handshake with 403). `FakeUpstox` is the HTTP side (a
thread), as docs/brokers.md §10 describes it:

- `GET /v2/feed/portfolio-stream-feed/authorize?update_types=order` with `Authorization: Bearer <token>` answers
  a fresh `data.authorized_redirect_uri` on the socket, or 401 with `errors[].errorCode` UDAPI100050;
- `GET /v2/order/retrieve-all` and `GET /v2/order/history?order_id=` serve each user's `Book`;
- `GET /v2/login/authorization/dialog?response_type=code&client_id&redirect_uri&state` shows a login form whose
  POST sends the browser to the redirect URI with a single-use `code` and the `state`;
- `POST /v2/login/authorization/token` (form code, client_id, client_secret, redirect_uri,
  grant_type=authorization_code) answers the profile with `access_token` and `user_id`.
"""

from __future__ import annotations

import html
import json
import secrets
import threading
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qsl, urlencode, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.protocol import State

from tests.support.fakes.kite_login import HttpFake
from tests.support.fakes.rest import Book
from tests.support.fakes.socket_server import FakeSocketBroker

FEED_PATH = "/upstox-developer-api/order-updates/feed"
INVALID_TOKEN = {
    "status": "error",
    "errors": [
        {
            "errorCode": "UDAPI100050",
            "message": "Invalid token used to access API",
            "propertyPath": None,
            "invalidValue": None,
            "error_code": "UDAPI100050",
            "property_path": None,
            "invalid_value": None,
        }
    ],
}


def upstox_error(code: str, message: str) -> dict:
    """Upstox's error envelope (the error-codes page)."""
    return {"status": "error", "errors": [{"errorCode": code, "message": message, "error_code": code}]}


class FakeUpstoxSocket(FakeSocketBroker):
    """The order-updates socket: a handshake must carry a requestId and code the authorize step issued, unused."""

    path = FEED_PATH

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        #: code -> (requestId, the bearer token it was issued for).
        self.codes: dict[str, tuple[str, str]] = {}
        self.used: set[str] = set()
        #: Handshakes refused (a reused, made-up or missing code).
        self.refused: list[str] = []
        #: The token of each accepted connection, in order.
        self.connected_tokens: list[str] = []
        #: Refuse this many more handshakes even with a fresh code (a broker-side hiccup after the authorize step).
        self.refuse_handshakes = 0

    def issue(self, token: str) -> str:
        """A fresh single-use URL for one connection (called by the authorize step, from its thread)."""
        code, request_id = str(secrets.token_hex(16)), str(secrets.token_hex(8))
        with self.lock:
            self.codes[code] = (request_id, token)
        return f"ws://127.0.0.1:{self.port}{FEED_PATH}?{urlencode({'requestId': request_id, 'code': code})}"

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        query = dict(parse_qsl(urlsplit(request.path).query))
        code, request_id = query.get("code", ""), query.get("requestId", "")
        with self.lock:
            issued = self.codes.get(code)
            fresh = issued is not None and issued[0] == request_id and code not in self.used
            if fresh and self.refuse_handshakes > 0:
                self.refuse_handshakes -= 1
                self.used.add(code)
                fresh = False
            if fresh:
                self.used.add(code)
                self.connected_tokens.append(issued[1])
            else:
                self.refused.append(code)
        if not fresh:
            return ws.respond(HTTPStatus.FORBIDDEN, "invalid or used code\n")
        return None

    def tokens_of_open_sessions(self) -> list[str]:
        """The token each open connection was authorized with (sessions and tokens line up in order)."""
        with self.lock:
            tokens = list(self.connected_tokens)
        return [tokens[i] for i, s in enumerate(self.sessions) if i < len(tokens) and s.ws.state is State.OPEN]


@dataclass
class FakeUpstox:
    """The broker's HTTP side: registered apps, users' tokens and books, issued codes, what it was asked."""

    socket: FakeUpstoxSocket | None = None
    #: api_key -> (api_secret, the registered redirect URI).
    apps: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: access token -> user id (tokens the API accepts).
    tokens: dict[str, str] = field(default_factory=dict)
    #: user id -> that user's orders.
    books: dict[str, Book] = field(default_factory=dict)
    #: The user the next login logs in as (the form's default).
    user_id: str = "UP1234"
    codes: dict[str, tuple[str, str]] = field(default_factory=dict)  # code -> (api_key, user_id)
    exchanges: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)
    rest_requests: list[dict[str, str]] = field(default_factory=list)
    #: The origin the browser is sent back to instead of the redirect URI's (the test's loopback web standing in for
    #: the public PUBLIC_BASE_URL host, as a proxy in front of it would); None: the redirect URI as registered.
    browser_origin: str | None = None
    #: Statuses the next authorize answers take (e.g. [503]).
    authorize_fail_next: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def book(self, user_id: str) -> Book:
        """The user's book (made on first use)."""
        with self.lock:
            return self.books.setdefault(user_id, Book())

    def user_of(self, authorization: str) -> str | None:
        """The user whose bearer token this is, or None."""
        token = authorization.removeprefix("Bearer ") if authorization.startswith("Bearer ") else ""
        with self.lock:
            return self.tokens.get(token) if token else None

    def authorize(self, query: dict[str, str], authorization: str) -> tuple[int, dict]:
        """GET /v2/feed/portfolio-stream-feed/authorize."""
        with self.lock:
            self.authorize_requests.append({"update_types": query.get("update_types", ""), "auth": authorization})
            failing = self.authorize_fail_next.pop(0) if self.authorize_fail_next else None
        if failing is not None:
            return failing, upstox_error("UDAPI100500", "Something went wrong... please contact us")
        if self.user_of(authorization) is None:
            return 401, INVALID_TOKEN
        assert self.socket is not None
        url = self.socket.issue(authorization.removeprefix("Bearer "))
        return 200, {"status": "success", "data": {"authorized_redirect_uri": url, "authorizedRedirectUri": url}}

    def rest(self, path: str, query: dict[str, str], authorization: str) -> tuple[int, dict]:
        """The order book and one order's history."""
        self.rest_requests.append({"path": path, **query})
        user = self.user_of(authorization)
        if user is None:
            return 401, INVALID_TOKEN
        book = self.book(user)
        if path == "/v2/order/retrieve-all":
            return 200, {"status": "success", "data": book.book()}
        rows = book.history(query.get("order_id", ""))
        if rows is None:
            return 400, upstox_error("UDAPI100010", "Order not found")
        return 200, {"status": "success", "data": rows}

    def login_redirect(self, api_key: str, redirect_uri: str, state: str, user_id: str) -> str:
        """Where a successful login sends the browser: the redirect URI with a fresh code and the state."""
        code = secrets.token_urlsafe(6)
        with self.lock:
            self.codes[code] = (api_key, user_id or self.user_id)
        query = {"code": code, **({"state": state} if state else {})}
        if self.browser_origin:
            redirect_uri = self.browser_origin + urlsplit(redirect_uri).path
        return f"{redirect_uri}?{urlencode(query)}"

    def token(self, form: dict[str, str]) -> tuple[int, dict]:
        """POST /v2/login/authorization/token: the code is used up whatever the outcome (as documented)."""
        self.exchanges.append(dict(form))
        with self.lock:
            issued = self.codes.pop(form.get("code", ""), None)
        app = self.apps.get(form.get("client_id", ""))
        if form.get("grant_type") != "authorization_code" or issued is None or app is None:
            return 400, upstox_error("UDAPI100016", "Invalid Credentials")
        if issued[0] != form["client_id"] or app != (form.get("client_secret"), form.get("redirect_uri")):
            return 400, upstox_error("UDAPI100016", "Invalid Credentials")
        token = secrets.token_urlsafe(24)
        with self.lock:
            self.tokens[token] = issued[1]
        profile = {
            "email": "******",
            "exchanges": ["NSE", "NFO", "BSE", "CDS", "BFO", "BCD"],
            "products": ["D", "CO", "I"],
            "broker": "UPSTOX",
            "user_id": issued[1],
            "user_name": "******",
            "order_types": ["MARKET", "LIMIT", "SL", "SL-M"],
            "user_type": "individual",
            "poa": False,
            "is_active": True,
            "access_token": token,
            "extended_token": None,
        }
        return 200, profile

    def latest_token(self, user_id: str) -> str:
        """The last token issued to a user."""
        with self.lock:
            return [token for token, user in self.tokens.items() if user == user_id][-1]


LOGIN_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Upstox - login (fake)</title></head>
<body><h1>UPSTOX</h1><form method="post" action="/login">
<input type="hidden" name="client_id" value="{client_id}">
<input type="hidden" name="redirect_uri" value="{redirect_uri}">
<input type="hidden" name="state" value="{state}">
<label>UCC <input name="user_id" id="user_id" value="{user_id}"></label>
<button type="submit" id="login">Continue</button></form></body></html>
"""


class _Handler(BaseHTTPRequestHandler):
    """HTTP side of FakeUpstox."""

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_GET(self):
        fake: FakeUpstox = self.server.fake
        parts = urlsplit(self.path)
        query = dict(parse_qsl(parts.query))
        auth = self.headers.get("Authorization") or ""
        if parts.path == "/v2/feed/portfolio-stream-feed/authorize":
            return self._json(*fake.authorize(query, auth))
        if parts.path in ("/v2/order/retrieve-all", "/v2/order/history"):
            return self._json(*fake.rest(parts.path, query, auth))
        if parts.path == "/v2/login/authorization/dialog":
            app = fake.apps.get(query.get("client_id", ""))
            if query.get("response_type") != "code" or app is None or app[1] != query.get("redirect_uri"):
                return self._json(400, upstox_error("UDAPI100068", "Check your 'client_id' and 'redirect_uri'"))
            page = LOGIN_PAGE.format(
                client_id=html.escape(query["client_id"]),
                redirect_uri=html.escape(query["redirect_uri"]),
                state=html.escape(query.get("state", "")),
                user_id=html.escape(fake.user_id),
            )
            return self._send(200, "text/html; charset=utf-8", page.encode())
        return self._json(404, upstox_error("UDAPI10000", "This request is not supported by Upstox API"))

    def do_POST(self):
        fake: FakeUpstox = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        path = urlsplit(self.path).path
        if path == "/login":
            location = fake.login_redirect(
                form.get("client_id", ""), form.get("redirect_uri", ""), form.get("state", ""), form.get("user_id", "")
            )
            self.send_response(302)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        if path == "/v2/login/authorization/token":
            return self._json(*fake.token(form))
        return self._json(404, upstox_error("UDAPI10000", "This request is not supported by Upstox API"))

    def _json(self, status: int, body: dict) -> None:
        self._send(status, "application/json", json.dumps(body).encode())

    def _send(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def upstox_server(fake: FakeUpstox) -> HttpFake:
    """The fake Upstox's HTTP side as a server (use as a context manager)."""
    return HttpFake(fake, _Handler)
