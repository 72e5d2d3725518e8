"""Angel One's order-status WebSocket (docs/brokers.md §9.2; smartapi-python SmartApi/smartWebSocketOrderUpdate.py).

`ANGEL_WS_URL` (wss://tns.angelone.in/smart-order-update) with the handshake headers `Authorization: Bearer
<jwtToken>` (the one Angel's announcement names), `x-api-key` and `x-client-code` (which the SDK adds; its
`x-feed-token` is left out: the day's session keeps the jwtToken only). The first frame is the `AB00`
acknowledgement with an empty orderData; a frame whose `status-code` is not 200 there is a refusal. Then every
order change is one text frame `{"user-id", "status-code", "order-status": "AB01".."AB11", "orderData": {…}}`.

Keepalive as the SDK does it: a WebSocket ping with payload "ping" every ANGEL_PING_SECONDS (10 s); a ping left
unanswered for as long again closes a mute socket (the SDK closes after two intervals without a pong). At most 3
connections per client code are allowed, and one account is one connection here (a lease, workers/feeds).
"""

from __future__ import annotations

import asyncio
from typing import Any

from websockets.asyncio.client import ClientConnection

from app.brokers.angel.adapter import CONNECT_ACK
from app.brokers.angel.spec import FEED, MODIFY_STATUSES
from app.brokers.feed import FeedAuthError, FeedConnector, FeedDisconnected, json_text, parse_json
from app.reconcile import request_reconcile

#: The SDK's ping payload (HEARTBEAT_MESSAGE).
PING_PAYLOAD = b"ping"
#: The ack's `status-code` when the connection is accepted.
ACCEPTED = "200"


class AngelConnector(FeedConnector):
    """One account's order-status socket: bearer headers, the AB00 ack, pings with "ping"."""

    spec = FEED
    # The connector pings itself with the SDK's payload and period (keepalives below).
    ping_interval = None
    auth_hint = "log in again (the jwtToken expired or was refused)"
    # Angel's login and socket limits are per client code; dials per second across accounts stay modest.
    connect_rate = 5.0

    def load_settings(self) -> None:
        """ANGEL_PING_SECONDS."""
        self.ping_seconds = self.variables["ANGEL_PING_SECONDS"]

    def connect_options(self) -> dict[str, Any]:
        """The shared options plus the bearer headers (smartapi-python smartWebSocketOrderUpdate.connect)."""
        headers = {
            "Authorization": f"Bearer {self.variables['ANGEL_JWT_TOKEN']}",
            "x-client-code": self.variables["ANGEL_CLIENT_CODE"],
        }
        if self.variables["ANGEL_API_KEY"]:
            headers["x-api-key"] = self.variables["ANGEL_API_KEY"]
        return {**super().connect_options(), "additional_headers": headers}

    async def login(self, ws: ClientConnection) -> None:
        """Wait for the AB00 acknowledgement; a non-200 status-code in it is a refusal of the token."""
        ack = await self.receive_json(ws, lambda frame: isinstance(frame, dict) and "status-code" in frame)
        status = str(ack.get("status-code") or "").strip()
        code = str(ack.get("order-status") or "").strip().upper()
        if status != ACCEPTED:
            message = str(ack.get("error-message") or "")[:120]
            raise FeedAuthError(f"the broker refused the connection (status-code {status!r}, {message!r})")
        if code != CONNECT_ACK:
            # An update before the ack: take it, the ack may come later or never (docs/brokers.md §9.2).
            await self.on_message(_as_text(ack))

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """A "ping" ping every ANGEL_PING_SECONDS; one unanswered for as long again drops the connection."""
        return [self.repeat(self.ping_seconds, lambda: self._ping(ws))]

    async def _ping(self, ws: ClientConnection) -> None:
        """One ping; its pong must come back within the period, or the socket is mute."""
        pong = await ws.ping(PING_PAYLOAD)
        try:
            await asyncio.wait_for(pong, timeout=self.ping_seconds)
        except TimeoutError:
            raise FeedDisconnected(f"no pong within {self.ping_seconds:g} s: the socket is mute") from None

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """Frames with an orderData row and an order id; the AB00 ack (and a text pong) carry none."""
        if isinstance(message, bytes):
            message = message.decode("utf-8")
        if message.strip().lower() in ("pong", "ping"):
            return []
        frame = parse_json(message)
        if not isinstance(frame, dict):
            raise ValueError("an Angel One frame is a JSON object")
        data = frame.get("orderData")
        if str(frame.get("order-status") or "").upper() == CONNECT_ACK or not isinstance(data, dict):
            return []
        if not str(data.get("orderid") or "").strip():
            return []
        return [frame]

    async def ingest(self, payload: dict[str, Any], raw: bytes) -> None:
        """Queue the update; a modification's figures are stale (docs/brokers.md §9.4), so the account is
        reconciled and its book row brings the new price and quantity."""
        await super().ingest(payload, raw)
        if _is_modification(payload):
            await asyncio.to_thread(
                request_reconcile, self.services.redis, self.reconcile_name, "an Angel One modification"
            )


def _is_modification(frame: dict[str, Any]) -> bool:
    """A frame whose code or word says modify."""
    code = str(frame.get("order-status") or "").strip().upper()
    data = frame.get("orderData") if isinstance(frame.get("orderData"), dict) else {}
    word = " ".join(str(data.get("orderstatus") or data.get("status") or "").upper().split())
    return code in MODIFY_STATUSES or word in MODIFY_STATUSES


def _as_text(frame: dict[str, Any]) -> str:
    """A parsed frame as JSON text again (an update that came before the ack)."""
    return json_text(frame)
