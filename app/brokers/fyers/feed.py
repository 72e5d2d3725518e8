"""Fyers' order socket (docs/brokers.md §11.2; myapi.fyers.in/docsv3 "Order Websocket Usage Guide").

1. Connect to FYERS_WS_URL (`wss://socket.fyers.in/trade/v3`) with the header `Authorization: <app_id>:<token>`;
   a wrong token is refused at the handshake with HTTP 403 (the guide's "Handshake status 403 Forbidden").
2. Send `{"T":"SUB_ORD","SLIST":["orders"],"SUB_T":1}`; the answer is `{"code":1605,"message":"Successfully
   subscribed","s":"ok"}`, checked as it arrives (an `"s":"error"` answer with a token error code is a refusal).
3. Send the text frame `ping` every FYERS_PING_SECONDS (the SDK's loop: every 10 s); the library's WebSocket ping
   runs too, so a socket that stops answering is closed and reconnected (FEEDS_PING_SECONDS).
4. `{"orders": {...}, "s": "ok"}` frames (short keys as sent; the SDK's long ones accepted) go to the fyers adapter;
   trades, positions and the rest are skipped.
"""

from __future__ import annotations

import logging
from typing import Any

from websockets.asyncio.client import ClientConnection

from app.brokers.feed import FeedAuthError, FeedConnector, json_text, parse_json
from app.brokers.fyers.spec import FEED

log = logging.getLogger("workers.feeds")

#: The subscription of order updates only (SUB_T 1 subscribes, -1 unsubscribes).
SUBSCRIBE = json_text({"T": "SUB_ORD", "SLIST": ["orders"], "SUB_T": 1})
PING = "ping"
#: Text frames that are keepalive chatter, not JSON.
CHATTER = frozenset({"ping", "pong"})
#: "Successfully subscribed".
SUBSCRIBED_CODE = 1605
#: Token errors of the API's error table (-8 expired, -15 invalid, -16 cannot authenticate, -17 invalid or expired).
AUTH_ERROR_CODES = frozenset({-8, -15, -16, -17})


class FyersConnector(FeedConnector):
    """The order socket of one Fyers login: the header, SUB_ORD, the `ping` text keepalive."""

    spec = FEED
    auth_hint = "log in again on the Accounts page (or set a fresh FYERS_ACCESS_TOKEN) and restart the feeds process"

    def load_settings(self) -> None:
        """FYERS_PING_SECONDS."""
        self.ping_seconds = self.variables["FYERS_PING_SECONDS"]

    def authorization(self) -> str:
        """`<app_id>:<access_token>`, as the REST calls send it."""
        return f"{self.variables['FYERS_APP_ID']}:{self.variables['FYERS_ACCESS_TOKEN']}"

    def connect_options(self) -> dict[str, Any]:
        """The shared options plus the Authorization header of the handshake."""
        return {**super().connect_options(), "additional_headers": {"Authorization": self.authorization()}}

    async def login(self, ws: ClientConnection) -> None:
        """Subscribe to order updates; the answer is checked as it arrives (order_payloads)."""
        await ws.send(SUBSCRIBE)

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """The `ping` text frame every FYERS_PING_SECONDS."""
        return [self.repeat(self.ping_seconds, lambda: ws.send(PING))]

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """The order of an `orders` frame; a refusing answer raises FeedAuthError; the rest is skipped."""
        text = message.decode("utf-8", errors="replace") if isinstance(message, bytes) else message
        if text.strip().lower() in CHATTER:
            return []
        frame = parse_json(message)
        if not isinstance(frame, dict):
            raise ValueError("a Fyers frame is a JSON object")
        orders = frame.get("orders")
        if isinstance(orders, dict):
            return [orders]
        if isinstance(orders, list):
            return [item for item in orders if isinstance(item, dict)]
        self._check_answer(frame)
        return []

    def _check_answer(self, frame: dict[str, Any]) -> None:
        """The subscribe answer is logged; a token error is a refusal; another error is logged."""
        code = _code(frame)
        if code == SUBSCRIBED_CODE:
            log.info("%s feed: subscribed to order updates", self.label)
            return
        if str(frame.get("s", "")).lower() != "error":
            return
        message = self.redact(str(frame.get("message", "")))[:120]
        if code in AUTH_ERROR_CODES:
            raise FeedAuthError(f"the broker refused the token (code {code}, {message!r})")
        log.warning("%s feed: the broker sent an error (code %s, %r)", self.label, code, message)


def _code(frame: dict[str, Any]) -> int | None:
    """A frame's numeric `code`, when it has one."""
    try:
        return int(frame.get("code"))
    except (TypeError, ValueError):
        return None
