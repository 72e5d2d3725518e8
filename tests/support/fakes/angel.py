"""Angel One's side, on loopback: the order-status socket and one REST server for the login, the book and details.

The socket (docs/brokers.md §9.2) checks `Authorization: Bearer <jwtToken>` at the handshake (a token it does not
know is refused with HTTP 401, or, with `refuse_in_ack`, accepted and answered with a non-200 ack), sends the
`AB00` acknowledgement first and answers pings (websockets does). The REST server (§9.5 and "Accounts and daily
logins") takes `loginByPassword` with the client code, PIN and a TOTP code valid for the secret now (pyotp), issues
a new jwtToken per login (the socket's `tokens` follow when it is given the same set), and serves getOrderBook and
details/{uniqueorderid} for that token only.
"""

from __future__ import annotations

import json
import secrets
from http import HTTPStatus
from typing import Any

import pyotp
from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from app.brokers.angel.login import LOGIN_PATH
from app.brokers.angel.rest import BOOK_PATH, DETAILS_PATH
from tests.support.fakes.rest import FakeRestBroker
from tests.support.fakes.socket_server import FakeSocketBroker, Session

ACK_ROW = {"orderid": "", "orderstatus": "", "filledshares": "", "unfilledshares": "", "quantity": "0"}
INVALID_TOKEN = {"success": False, "message": "Invalid Token", "errorCode": "AG8001", "data": ""}


def frame(client: str, code: str, row: dict[str, Any]) -> dict[str, Any]:
    """An order-status frame as Angel pushes it (docs/brokers.md §9.2)."""
    return {"user-id": client, "status-code": "200", "order-status": code, "error-message": "", "orderData": row}


class FakeAngelSocket(FakeSocketBroker):
    """tns.angelone.in/smart-order-update for the bearer tokens in `tokens` (a set the REST fake may share)."""

    path = "/smart-order-update"

    def __init__(self, client: str, tokens: set[str] | None = None) -> None:
        super().__init__()
        self.client = client
        self.tokens: set[str] = tokens if tokens is not None else set()
        #: Accept any handshake, then answer an unknown token with a `status-code` 401 ack (instead of HTTP 401).
        self.refuse_in_ack = False
        #: Every handshake's headers, accepted or not.
        self.requests: list[dict[str, str]] = []

    def _known(self, headers: Any) -> bool:
        """The handshake's bearer token is one this fake issued, and the client code is its client's."""
        token = str(headers.get("Authorization") or "").removeprefix("Bearer ")
        return token in self.tokens and headers.get("x-client-code") == self.client and not self.refuse_login

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        self.requests.append(dict(request.headers.raw_items()))
        if self.refuse_in_ack or self._known(request.headers):
            return None
        return ws.respond(HTTPStatus.UNAUTHORIZED, "Unauthorized\n")

    async def _handler(self, ws: ServerConnection) -> None:
        """The AB00 ack first (a 401 one for an unknown token when refusing in the ack), then the base's loop."""
        assert ws.request is not None
        if self._known(ws.request.headers):
            await ws.send(json.dumps(frame(self.client, "AB00", ACK_ROW)))
        else:
            refusal = frame("", "", {})
            refusal.update({"status-code": "401", "error-message": "Invalid Token"})
            await ws.send(json.dumps(refusal))
            await ws.close(1000, "invalid token")
            return
        await super()._handler(ws)

    async def push_update(self, code: str, row: dict[str, Any], session: Session | None = None) -> None:
        """One order frame to the latest connection."""
        await self.push(frame(self.client, code, row), session)


class FakeAngelRest(FakeRestBroker):
    """apiconnect.angelone.in for one client: loginByPassword, getOrderBook, details (book rows as histories)."""

    book_path = BOOK_PATH
    huge_wrap = (b'{"status":true,"message":"SUCCESS","errorcode":"","data":[', b"]}")

    def __init__(self, client: str, api_key: str, pin: str, totp_secret: str, tokens: set[str] | None = None) -> None:
        super().__init__()
        self.client, self.api_key, self.pin, self.totp_secret = client, api_key, pin, totp_secret
        #: Every jwtToken issued (shared with the socket fake so it takes them).
        self.issued: set[str] = tokens if tokens is not None else set()
        #: Every login body received (the TOTP code among them).
        self.logins: list[dict[str, Any]] = []
        #: Headers of each login request.
        self.login_headers: list[dict[str, str]] = []
        #: Statuses to answer the next logins with before taking them (e.g. [503]).
        self.login_fail_next: list[int] = []

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if method == "POST" and path == LOGIN_PATH:
            return self._login(headers, body)
        bearer = str(headers.get("Authorization") or "").removeprefix("Bearer ")
        if self.expired or not bearer or bearer != self.token or headers.get("X-PrivateKey") != self.api_key:
            with self.lock:
                self.auth_failures += 1
            return 401, INVALID_TOKEN
        if method == "GET" and path == BOOK_PATH:
            rows = self.book()
            return 200, {"status": True, "message": "SUCCESS", "errorcode": "", "data": rows or None}
        if method == "GET" and path.startswith(DETAILS_PATH):
            unique = path.removeprefix(DETAILS_PATH)
            for row in self.book():
                if row.get("uniqueorderid") == unique:
                    return 200, {"status": True, "message": "SUCCESS", "errorcode": "", "data": row}
            return 200, {"status": False, "message": "Order not found", "errorcode": "AB1007", "data": None}
        return 404, {"status": False, "message": "not found", "errorcode": "AB9999", "data": None}

    def _login(self, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        """A new jwtToken for the right client code, PIN and a TOTP code valid now."""
        try:
            sent = json.loads(body)
        except ValueError:
            sent = {}
        with self.lock:
            self.logins.append(sent if isinstance(sent, dict) else {})
            self.login_headers.append(dict(headers))
            failing = self.login_fail_next.pop(0) if self.login_fail_next else None
        if failing is not None:
            return failing, {"status": False, "message": "Something Went Wrong", "errorcode": "AB1004", "data": None}
        if not isinstance(sent, dict) or headers.get("X-PrivateKey") != self.api_key:
            return 200, {"status": False, "message": "Invalid API Key", "errorcode": "AG8004", "data": None}
        if sent.get("clientcode") != self.client or sent.get("password") != self.pin:
            return 200, {
                "status": False,
                "message": "Invalid clientcode or password",
                "errorcode": "AB1011",
                "data": None,
            }
        if not pyotp.TOTP(self.totp_secret).verify(str(sent.get("totp") or ""), valid_window=1):
            return 200, {"status": False, "message": "Invalid totp", "errorcode": "AB1050", "data": None}
        token = "eyJhbGciOiJIUzUxMiJ9." + secrets.token_urlsafe(24)
        with self.lock:
            self.token, self.expired = token, False
            self.issued.add(token)
        data = {"jwtToken": token, "refreshToken": secrets.token_urlsafe(16), "feedToken": secrets.token_hex(8)}
        return 200, {"status": True, "message": "SUCCESS", "errorcode": "", "data": data}
