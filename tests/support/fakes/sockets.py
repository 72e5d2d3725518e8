"""Each broker's side of its order-update WebSocket, as docs/brokers.md describes it."""

from __future__ import annotations

import json
import secrets
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response
from websockets.protocol import State

from app.brokers.flattrade.spec import BROKER as FLATTRADE
from app.brokers.noren.family import FRAME_A, FRAME_C, QUERY, NorenBroker
from tests.support.fakes.socket_server import FakeSocketBroker, Session


class FakeKiteSocket(FakeSocketBroker):
    """ws.kite.trade: credentials in the query; a wrong token is refused at the handshake with 403 (§3.2)."""

    def __init__(self, api_key: str, access_token: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.access_token = access_token

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        if query.get("api_key") != [self.api_key] or query.get("access_token") != [self.access_token]:
            return ws.respond(HTTPStatus.FORBIDDEN, "Invalid `api_key` or `access_token`.\n")
        return None


class FakeDhanSocket(FakeSocketBroker):
    """api-order-update.dhan.co: a JSON login first; a bad token is closed with 4001 (the fake's choice)."""

    def __init__(self, client_id: str, token: str) -> None:
        super().__init__()
        self.client_id = client_id
        self.token = token

    async def handle(self, session: Session, message: str | bytes) -> None:
        if len(session.messages) != 1:
            return
        login = json.loads(message)["LoginReq"]
        if login.get("ClientId") != self.client_id or login.get("Token") != self.token:
            await session.ws.close(4001, "invalid token")


class FakeDhanWebSocket(FakeSocketBroker):
    """order-feed.dhan.co: a 703-byte binary login frame first; an unknown frame is closed with 1008."""

    def __init__(self, accepted_frames: set[bytes]) -> None:
        super().__init__()
        self.accepted_frames = accepted_frames

    async def handle(self, session: Session, message: str | bytes) -> None:
        if len(session.messages) == 1 and message not in self.accepted_frames:
            await session.ws.close(1008, "login failed")


class FakeNorenSocket(FakeSocketBroker):
    """A Noren OMS socket as one broker of the family declares it (docs/brokers.md §5; Flattrade unless told):
    the `a`/`c` login frame -> `ak`/`ck` (or the credentials in the query -> `{"status": ...}`, Firstock), the
    subscription acked with `{"t":"ok"}` where the broker acks it, heartbeat -> `hk`."""

    def __init__(self, uid: str, token: str, broker: NorenBroker | None = None) -> None:
        super().__init__()
        self.uid = uid
        self.token = token
        self.broker = broker or FLATTRADE
        self.path = urlsplit(self.broker.ws_url).path or "/"
        #: Login forms this deployment knows; another form is answered NOT_OK ("unknown request").
        self.known_forms = {FRAME_A, FRAME_C}
        #: False: the subscription is never acknowledged, even where the broker acks it.
        self.ack_subscriptions = True

    def _query_login_ok(self, session: Session) -> bool:
        """Firstock: the user id and token in the socket URL's query."""
        query = parse_qs(urlsplit(session.path).query)
        return query.get("userId") == [self.uid] and query.get("jKey") == [self.token]

    async def on_open(self, session: Session) -> None:
        if self.broker.login_forms[0] != QUERY:
            return
        if self._query_login_ok(session) and not self.refuse_login:
            await session.ws.send(json.dumps({"status": "success", "message": "Authentication successful"}))
        else:
            await session.ws.send(json.dumps({"status": "failed", "message": "unauthenticated"}))

    async def handle(self, session: Session, message: str | bytes) -> None:
        frame = json.loads(message)
        kind = frame.get("t")
        if kind in ("c", "a"):
            given = frame.get("susertoken") if kind == "c" else frame.get("accesstoken")
            ok = frame.get("uid") == self.uid and given == self.token and kind in self.known_forms
            answer = {"t": kind + "k", "s": "OK"}
            if not ok:
                emsg = "Invalid Session Key" if kind in self.known_forms else "unknown request"
                answer = {"t": kind + "k", "s": "NOT_OK", "emsg": emsg}
            await session.ws.send(json.dumps(answer))
        elif kind == "o" and self.broker.subscribe_ack and self.ack_subscriptions:
            await session.ws.send(json.dumps({"t": "ok"}))
        elif kind == "h":
            await session.ws.send(json.dumps({"t": "hk"}))

    def order_frame(self, update: dict) -> dict:
        """An order update as this broker frames it: `t:"om"`, or Firstock's feed frame without `t`; the product
        under the broker's key."""
        frame = dict(update)
        if self.broker.product_key != "prd" and "prd" in frame:
            frame[self.broker.product_key] = frame.pop("prd")
        if self.broker.subscribes:
            frame = {"t": "om", **frame}
        return frame


class FakeJainamSocket(FakeSocketBroker):
    """protrade: HTTP ws/createWsToken (bearer) on the same port, then the order socket with {"status":"Ok"} (§6)."""

    path = "/omo/odrest/websocket"

    def __init__(self, bearer: str, user_id: str) -> None:
        super().__init__()
        self.bearer = bearer
        self.user_id = user_id
        self.issued: list[str] = []
        self.token_requests = 0

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if not request.path.endswith("/ws/createWsToken"):
            return None
        self.token_requests += 1
        if request.headers.get("Authorization") != f"Bearer {self.bearer}":
            return ws.respond(HTTPStatus.UNAUTHORIZED, '{"status":"Not_Ok","message":"401"}')
        token = secrets.token_hex(32)
        self.issued.append(token)
        body = {"status": "Ok", "message": "200", "result": [{"orderToken": token}]}
        return ws.respond(HTTPStatus.OK, json.dumps(body))

    async def handle(self, session: Session, message: str | bytes) -> None:
        frame = json.loads(message)
        if "orderToken" in frame:
            ok = frame["orderToken"] in self.issued and frame.get("userId") == self.user_id and not self.refuse_login
            answer = {"status": "Ok"} if ok else {"status": "Not_Ok", "message": "invalid token"}
            await session.ws.send(json.dumps(answer))


def _open(session: Session) -> bool:
    """True while a session's connection is open."""
    return session.ws.state is State.OPEN


def dhan_order_alert(client: str, order_no: str) -> dict:
    """An `order_alert` frame of a new limit order for one client, as Dhan pushes it (docs/brokers.md §4.2)."""
    return {
        "Type": "order_alert",
        "Data": {
            "exchange": "NSE",
            "segment": "E",
            "clientId": client,
            "orderNo": order_no,
            "exchOrderNo": "1" + order_no,
            "product": "C",
            "txnType": "B",
            "orderType": "LMT",
            "quantity": "10",
            "tradedQty": "0",
            "remainingQuantity": "10",
            "price": "101.50",
            "status": "Pending",
            "symbol": "INFY",
            "lastUpdatedTime": "2025-03-12 10:21:07",
        },
    }


class FakeDhanAccounts(FakeSocketBroker):
    """api-order-update.dhan.co serving many accounts: client id -> token; a wrong token is closed with 4001.
    Every accepted login is in `logins`."""

    def __init__(self, tokens: dict[str, str] | None = None, *, accept_any: bool = False) -> None:
        super().__init__()
        self.tokens = dict(tokens or {})
        #: Any client id logs in with any token (the bench's 500 accounts).
        self.accept_any = accept_any
        self.logins: list[tuple[str, str]] = []
        self.by_client: dict[str, list[Session]] = {}
        self.refused: list[tuple[str, str]] = []

    async def handle(self, session: Session, message: str | bytes) -> None:
        if len(session.messages) != 1:
            return
        login = json.loads(message)["LoginReq"]
        client, token = str(login.get("ClientId")), str(login.get("Token"))
        if not self.accept_any and self.tokens.get(client) != token:
            self.refused.append((client, token))
            await session.ws.close(4001, "invalid token")
            return
        self.logins.append((client, token))
        self.by_client.setdefault(client, []).append(session)

    def open_sessions(self, client: str) -> list[Session]:
        """The client's logged-in connections still open."""
        return [s for s in self.by_client.get(client, []) if _open(s)]

    def connected_clients(self) -> set[str]:
        """Clients with at least one open logged-in connection."""
        return {client for client in self.by_client if self.open_sessions(client)}

    async def push_to(self, client: str, message: dict) -> None:
        """Send a frame to the client's open connection."""
        await self.open_sessions(client)[-1].ws.send(json.dumps(message))


class FakeKiteAccounts(FakeSocketBroker):
    """ws.kite.trade serving many accounts: api_key -> access_token; a wrong pair is refused with 403 at the
    handshake, as the real one refuses an expired token (docs/brokers.md §3.2)."""

    def __init__(self, tokens: dict[str, str]) -> None:
        super().__init__()
        self.tokens = dict(tokens)
        #: Every handshake: (api_key, access_token, accepted).
        self.attempts: list[tuple[str, str, bool]] = []

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        query = parse_qs(urlsplit(request.path).query)
        key, token = (query.get("api_key") or [""])[0], (query.get("access_token") or [""])[0]
        accepted = bool(key) and self.tokens.get(key) == token
        self.attempts.append((key, token, accepted))
        if not accepted:
            return ws.respond(HTTPStatus.FORBIDDEN, "Invalid `api_key` or `access_token`.\n")
        return None

    def attempts_by(self, key: str) -> list[tuple[str, bool]]:
        """The handshakes made with this api_key: (token, accepted)."""
        return [(token, ok) for k, token, ok in self.attempts if k == key]

    def open_sessions(self, key: str) -> list[Session]:
        """Open connections made with this api_key."""
        return [s for s in self.sessions if parse_qs(urlsplit(s.path).query).get("api_key") == [key] and _open(s)]
