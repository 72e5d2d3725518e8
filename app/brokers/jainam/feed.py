"""Jainam protrade order-status WebSocket (docs/brokers.md §6; seed 000).

The transport is the shared order-notify protocol (app/brokers/notify_feed.py): createWsToken with
JAINAM_BEARER_TOKEN at JAINAM_API_URL, then JAINAM_WS_URL with `{"orderToken":…,"userId":JAINAM_USER_ID}` and a
heartbeat every JAINAM_HEARTBEAT_SECONDS (default 60: "every minute, or the connection is closed").
`ORD_NRML` (order) and `TRD_MSG` (trade) messages go to the jainam adapter; MKT_STAT and the rest are skipped.
"""

from __future__ import annotations

from typing import Any

from app.brokers.jainam.spec import FEED
from app.brokers.notify_feed import OrderNotifyConnector

ORDER_MESSAGE_TYPES = frozenset({"ORD_NRML", "TRD_MSG"})


class JainamConnector(OrderNotifyConnector):
    """The order-notify protocol with Jainam's variables; ODIN MessageType names an order frame."""

    spec = FEED
    token_url_variable = "JAINAM_API_URL"
    bearer_variable = "JAINAM_BEARER_TOKEN"
    user_variable = "JAINAM_USER_ID"
    heartbeat_variable = "JAINAM_HEARTBEAT_SECONDS"
    order_kinds = ORDER_MESSAGE_TYPES

    def frame_kind(self, item: dict[str, Any]) -> str:
        """ODIN's MessageType (ORD_NRML, TRD_MSG, MKT_STAT...), upper-cased."""
        return str(item.get("MessageType") or item.get("messageType") or "").upper()
