"""AliceBlue's order status feed (docs/brokers.md §12): seed 000's order-notify protocol, Noren frames.

The transport is the one Jainam's feed speaks (app/brokers/notify_feed.py): createWsToken at ALICEBLUE_NOTIFY_URL
with `Authorization: Bearer <ALICEBLUE_SESSION>`, then ALICEBLUE_WS_URL with `{"orderToken":…,"userId":…}`
(userId is the client id, ALICEBLUE_USER_ID) and a heartbeat every ALICEBLUE_HEARTBEAT_SECONDS (55: "every
minute", as AliceBlue's pya3 SDK does). What arrives are Noren `t: "om"` frames for the aliceblue adapter.
"""

from __future__ import annotations

from typing import Any

from app.brokers.aliceblue.spec import FEED
from app.brokers.notify_feed import OrderNotifyConnector


class AliceBlueConnector(OrderNotifyConnector):
    """The order-notify protocol with AliceBlue's variables; Noren's `t` names an order frame."""

    spec = FEED
    token_url_variable = "ALICEBLUE_NOTIFY_URL"
    bearer_variable = "ALICEBLUE_SESSION"
    user_variable = "ALICEBLUE_USER_ID"
    heartbeat_variable = "ALICEBLUE_HEARTBEAT_SECONDS"
    order_kinds = frozenset({"om"})
    auth_hint = "log in to AliceBlue again (a new userSession) and restart the feeds process"

    def frame_kind(self, item: dict[str, Any]) -> str:
        """Noren's frame type `t` ("om" for an order update); the login answer has none."""
        return str(item.get("t") or "")
