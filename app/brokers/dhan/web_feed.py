"""Dhan's web order feed `wss://order-feed.dhan.co` (docs/brokers.md §4.3; seed 003). Unofficial.

The 703-byte binary login frame is captured from a browser session by the user and stored through
`PUT /api/feeds/dhan-web/login-frame` (app/secrets_store.py: its own encrypted table). This connector
sends it as the first binary message, pings with payload b"\\x00" every DHAN_WEB_PING_SECONDS (30 s,
§4.3), and reads JSON `order_alert` frames with snake_case keys (`order_no`, `status` "Pending" /
"Traded", `traded_qty`, `avg_traded_price`, `serial_no`, …). The orders are broker `dhan`, so they merge
with Dhan postbacks and the official feed. Storing a new frame reconnects with it: the connector polls
the stored frame's version every FEEDS_FRAME_POLL_SECONDS.

The frame embeds a hash of today's date (§4.3), so it goes stale daily: store a fresh one each day.
Binary order packets (the 2024 format) are not decoded; they are counted and ignored.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from websockets.asyncio.client import ClientConnection

from app.brokers.dhan.feed import order_alert_data
from app.brokers.dhan.spec import WEB_FEED
from app.brokers.feed import FeedConnector, FeedDisconnected, with_query
from app.brokers.feed_status import FeedState
from app.crypto import SecretKeyUnavailable
from app.secrets_store import DhanWebFrameStore, StoredFrameUnreadable
from app.times import utc_now_iso

log = logging.getLogger("workers.feeds")

NO_FRAME = "no login frame stored: PUT its base64 text to /api/feeds/dhan-web/login-frame"
#: Entity id inside the frame (struct offset 3, 30 bytes, NUL-padded; docs/brokers.md §4.3).
ENTITY_ID = slice(3, 33)


class DhanWebConnector(FeedConnector):
    """The browser's order feed, logged in with the stored frame."""

    spec = WEB_FEED
    ping_interval = None  # its own b"\x00" ping below
    origin = "https://web.dhan.co"  # what the browser sends (seed 003)
    auth_hint = "store a fresh login frame (PUT /api/feeds/dhan-web/login-frame); the feed retries with it"

    def load_settings(self) -> None:
        """The frame store and the keepalive/poll periods."""
        self.store = DhanWebFrameStore(self.config)
        self.ping_seconds = self.variables["DHAN_WEB_PING_SECONDS"]
        self.poll_seconds = self.settings.frame_poll
        self.frame: bytes | None = None
        self.frame_version: tuple[int, int, int] | None = None
        self._binary_noted = False

    async def run(self) -> None:
        """The shared loop, plus a watcher that wakes it when a new frame is stored."""
        watcher = asyncio.ensure_future(self._watch_frame())
        try:
            await super().run()
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)

    async def _watch_frame(self) -> None:
        """Poll the stored frame's version; a change means new credentials."""
        while True:
            await asyncio.sleep(self.poll_seconds)
            version = await asyncio.to_thread(self.store.version)
            if version is not None and version != self.frame_version:
                self.wake.set()

    async def prepare(self) -> bool:
        """Load the stored frame; without one, wait (state `waiting`) until one is stored."""
        version = await asyncio.to_thread(self.store.version)
        try:
            frame = await asyncio.to_thread(self.store.load)
            problem = None if frame else NO_FRAME
        except (SecretKeyUnavailable, StoredFrameUnreadable) as exc:
            frame, problem = None, str(exc)
        self.frame_version = version
        self.wake.clear()
        if frame is None:
            log.warning("%s feed waiting: %s", self.label, problem)
            await self.status.update(state=FeedState.WAITING, last_error=problem, last_error_at=utc_now_iso())
            await self.wait_for_wake()
            return False
        self.frame = frame
        return True

    async def after_auth_failure(self) -> bool:
        """A refused frame is replaced by storing a new one: wait for it, then carry on."""
        await self.wait_for_wake()
        return not self.stop.is_set()

    async def url(self) -> str:
        """DHAN_WEB_WS_URL as configured; without `id`, the frame's entity id is added (`?src=W&id=…`)."""
        url = self.variables[self.url_variable]
        if "id" in dict(parse_qsl(urlsplit(url).query)) or self.frame is None:
            return url
        entity = self.frame[ENTITY_ID].split(b"\x00", 1)[0].decode("ascii", errors="ignore")
        return with_query(url, src="W", id=entity) if entity else url

    async def login(self, ws: ClientConnection) -> None:
        """The stored frame, as the first (binary) message."""
        if self.frame is None:
            raise FeedDisconnected("no login frame loaded")
        await ws.send(self.frame)

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """A WebSocket ping with payload b"\\x00" every DHAN_WEB_PING_SECONDS (docs/brokers.md §4.3)."""
        return [self.repeat(self.ping_seconds, lambda: self._ping(ws))]

    async def _ping(self, ws: ClientConnection) -> None:
        """Ping and expect the pong before the next one is due."""
        pong = await ws.ping(b"\x00")
        try:
            await asyncio.wait_for(pong, timeout=self.ping_seconds)
        except TimeoutError:
            raise FeedDisconnected(f"no answer to the keepalive ping within {self.ping_seconds:g} s") from None

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """JSON `order_alert` frames (text, or JSON in a binary frame); binary packets are skipped."""
        if isinstance(message, bytes):
            try:
                return order_alert_data(message)
            except ValueError:
                if not self._binary_noted:
                    log.info("%s feed: binary order packets are not decoded; skipping them", self.label)
                    self._binary_noted = True
                return []
        return order_alert_data(message)
