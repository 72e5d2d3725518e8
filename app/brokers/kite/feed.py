"""Kite order updates over WebSocket ("postbacks over WebSocket", docs/brokers.md §3.2).

`KITE_WS_URL?api_key=…&access_token=…`; no subscription: a connected socket receives the account's
order updates as text frames `{"type":"order","data":{…postback fields…}}`. Market data is binary and
ignored. The checksum is blank on the WebSocket (discussion/6808), so it is not checked; the adapter
normalizes the same fields a postback carries, so both arrivals of an update are one event.
"""

from __future__ import annotations

import logging
from typing import Any

from app.brokers.feed import FeedConnector, parse_json, with_query
from app.brokers.kite.spec import FEED

log = logging.getLogger("workers.feeds")


class KiteConnector(FeedConnector):
    """KiteTicker's order channel; an invalid token is refused at the handshake (HTTP 403)."""

    spec = FEED

    async def url(self) -> str:
        """Credentials go in the query (pykiteconnect ticker.py ROOT_URI)."""
        return with_query(
            self.variables[self.url_variable],
            api_key=self.variables["KITE_API_KEY"],
            access_token=self.variables["KITE_ACCESS_TOKEN"],
        )

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """`type: order` frames; a frame without `data` is the order itself (forum 7454, docs/brokers.md §3.3)."""
        if isinstance(message, bytes):
            return []  # binary = market data ticks
        frame = parse_json(message)
        if not isinstance(frame, dict):
            raise ValueError("a Kite frame is a JSON object")
        kind = frame.get("type")
        if kind == "order":
            data = frame.get("data")
            if isinstance(data, dict):
                return [data]
            return [{k: v for k, v in frame.items() if k != "type"}]
        if kind == "error":
            log.warning("%s feed: the broker sent an error: %s", self.label, self.redact(str(frame.get("data")))[:200])
        return []
