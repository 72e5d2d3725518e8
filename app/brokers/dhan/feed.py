"""Dhan's official order-update WebSocket (docs/brokers.md §4.2, dhanhq.co/docs/v2/order-update).

First text frame `{"LoginReq":{"MsgCode":42,"ClientId":…,"Token":…},"UserType":"SELF"}`; then
`{"Type":"order_alert","Data":{…}}` frames whose keys come camelCase on the wire and PascalCase in the
docs (the dhan adapter accepts both). Other frames, such as the login ack, are ignored. No app-level
heartbeat is documented: the library's WebSocket ping keeps the connection alive (OpenAlgo: 20 s).
Dhan documents no login answer, so a refusal is recognised only by an auth close code or an HTTP
401/403 at the handshake (app/brokers/feed.py).
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.client import ClientConnection

from app.brokers.dhan.spec import FEED
from app.brokers.feed import FeedConnector, json_text, parse_json

#: The login message code of the self (non-partner) login.
LOGIN_MSG_CODE = 42


def order_alert_data(message: str | bytes) -> list[dict[str, Any]]:
    """The Data object of an `order_alert` frame (envelope keys in any case), else nothing."""
    frame = parse_json(message)
    if not isinstance(frame, dict):
        raise ValueError("a Dhan frame is a JSON object")
    keys = {str(k).lower(): k for k in frame}
    kind = frame.get(keys.get("type", "type"))
    data = frame.get(keys.get("data", "data"))
    if str(kind).lower() == "order_alert" and isinstance(data, dict):
        return [data]
    return []


class DhanConnector(FeedConnector):
    """DhanHQ v2 self login with the client id and access token."""

    spec = FEED

    def login_frame(self) -> str:
        """The login text frame, compact JSON with MsgCode as a number (as DhanHQ-py sends it)."""
        return json_text(
            {
                "LoginReq": {
                    "MsgCode": LOGIN_MSG_CODE,
                    "ClientId": self.variables["DHAN_CLIENT_ID"],
                    "Token": self.variables["DHAN_ACCESS_TOKEN"],
                },
                "UserType": "SELF",
            }
        )

    async def login(self, ws: ClientConnection) -> None:
        """One text frame; Dhan sends no documented answer."""
        await ws.send(self.login_frame())

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """`order_alert` frames carry one order each."""
        return order_alert_data(message)
