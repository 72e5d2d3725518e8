"""Symphony XTS interactive socket over socket.io (docs/brokers.md §14.1), run by the shared connector's loop.

1. socket.io (Engine.IO protocol 3, websocket transport) to `{root}/?token=…&userID=…&apiType=INTERACTIVE`
   with path `/interactive/socket.io`, as the official SDKs connect; python-socketio's AsyncClient speaks it.
2. The server emits `joined` once it accepted the token: no `joined` within FEEDS_LOGIN_TIMEOUT_SECONDS is a
   mute socket, dropped and dialled again. A handshake answered 401/403 refuses the token (account needs login).
3. `order` and `trade` events (JSON text, or an object) go to the xts adapter; `logout` means the session
   was ended elsewhere, a refusal; `error`, `position` and `tradeConversion` are logged or skipped.
4. Engine.IO's own ping/pong (the server's pingInterval and pingTimeout) closes a dead socket: the
   library's `disconnect` ends the session and the shared loop reconnects with backoff.

The shared FeedConnector keeps everything else: backoff, refusals marking an account's session, pacing,
redaction, status, and the connected hooks that ask for a reconciliation after each (re)connect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import engineio.asyncio_client
import socketio

from app.brokers.feed import (
    AUTH_HTTP_STATUSES,
    FeedAuthError,
    FeedConnector,
    FeedDisconnected,
    json_text,
    pace_connect,
    parse_json,
    with_query,
)
from app.brokers.xts.root import deployment_root
from app.brokers.xts.spec import FEED
from app.times import utc_now_iso

log = logging.getLogger("workers.feeds")

#: The path every XTS deployment serves its interactive socket on (the SDKs' socketio_path).
SOCKET_PATH = "/interactive/socket.io"
#: Events that carry order updates; the others are named so the library does not warn about them.
ORDER_EVENTS = ("order", "trade")
IGNORED_EVENTS = ("position", "tradeConversion")
#: socket.io's and engine.io's loggers: their DEBUG lines carry the URL with the token (docs/feeds.md).
SOCKETIO_LOG = logging.getLogger("workers.feeds.wire.socketio")
SOCKETIO_LOG.setLevel(logging.ERROR)
# engineio 3.x puts its own SIGINT handler on the loop at its first connect (one that stops the loop at once),
# replacing the feeds process's clean stop (workers/feeds/__main__.py): its flag says it is set already.
engineio.asyncio_client.async_signal_handler_set = True


def handshake_status(exc: BaseException) -> int | None:
    """The HTTP status that refused the websocket handshake, found in the library's chain of exceptions."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        status = getattr(current, "status", None)
        if isinstance(status, int):
            return status
        current = current.__cause__ or current.__context__
    return None


class XtsConnector(FeedConnector):
    """One account's interactive socket.io connection; the session is the library's, the loop is the shared one."""

    spec = FEED
    #: Engine.IO pings by itself (the server's pingInterval/pingTimeout); FEEDS_PING_SECONDS does not apply.
    ping_interval = None
    auth_hint = "log in again (the XTS app key and secret) or paste a new token"

    def load_settings(self) -> None:
        """Nothing beyond the shared settings."""
        self.client: socketio.AsyncClient | None = None

    async def url(self) -> str:
        """The socket URL with the token, the user and the api type in the query (the SDKs' connection_url)."""
        base = deployment_root(self.variables)
        return with_query(
            base + "/",
            token=self.variables["XTS_TOKEN"],
            userID=self.variables["XTS_USER_ID"],
            apiType="INTERACTIVE",
            publishFormat="JSON",
        )

    async def session(self) -> None:
        """One connection: dial, wait for `joined`, then handle events until the socket ends."""
        await pace_connect(self.broker, self.settings.connect_rate or self.connect_rate)
        try:
            url = await self.url()
        except ValueError as exc:
            raise FeedDisconnected(str(exc)) from None
        events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        client = self._client(events)
        try:
            await self._dial(client, url)
            await self._wait_joined(events)
            await self.status.update(connected=True, connected_at=utc_now_iso())
            log.info("%s feed connected", self.label)
            await self._announce_connected()
            while True:
                name, data = await events.get()
                await self._handle(name, data)
        finally:
            await self._close(client)

    def _client(self, events: asyncio.Queue[tuple[str, Any]]) -> socketio.AsyncClient:
        """A client whose handlers queue every event for the session; the shared loop reconnects, not the library."""
        client = socketio.AsyncClient(reconnection=False, logger=SOCKETIO_LOG, engineio_logger=SOCKETIO_LOG)
        for name in ("joined", "logout", "error", *ORDER_EVENTS, *IGNORED_EVENTS):
            client.on(name, _queue_event(events, name))
        client.on("disconnect", lambda: events.put_nowait(("disconnect", None)))
        self.client = client
        return client

    async def _dial(self, client: socketio.AsyncClient, url: str) -> None:
        """Connect over the websocket transport; a 401/403 handshake is a refusal of the token."""
        try:
            await asyncio.wait_for(
                client.connect(url, transports=["websocket"], socketio_path=SOCKET_PATH),
                timeout=self.settings.connect_timeout,
            )
        except socketio.exceptions.ConnectionError as exc:
            status = handshake_status(exc)
            if status in AUTH_HTTP_STATUSES:
                raise FeedAuthError(f"the broker refused the socket's token with HTTP {status}") from None
            raise FeedDisconnected(
                "the socket.io connection failed" + (f" (HTTP {status})" if status else " (no handshake answer)")
            ) from None

    async def _wait_joined(self, events: asyncio.Queue[tuple[str, Any]]) -> None:
        """The `joined` event within the login timeout; a logout or a close before it ends the attempt."""
        deadline = self.settings.login_timeout
        try:
            async with asyncio.timeout(deadline):
                while True:
                    name, data = await events.get()
                    if name == "joined":
                        log.info("%s feed: joined", self.label)
                        return
                    await self._handle(name, data)
        except TimeoutError:
            raise FeedDisconnected(f"no 'joined' event within {deadline:g} s: a mute socket, dialling again") from None

    async def _handle(self, name: str, data: Any) -> None:
        """One event: orders and trades are ingested; logout refuses; a disconnect ends the session."""
        if name in ORDER_EVENTS:
            await self.on_message(data if isinstance(data, str | bytes) else json_text(data))
        elif name == "logout":
            raise FeedAuthError("the broker logged the session out (another login, or the token ended)")
        elif name == "disconnect":
            raise FeedDisconnected("the broker closed the socket.io connection")
        elif name == "error":
            log.warning("%s feed: the broker sent an error event: %s", self.label, self.redact(str(data))[:200])
        else:
            await self.status.count("messages", last_message_at=utc_now_iso())

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """An order or trade object (or a list of them); ValueError when it is not JSON objects."""
        frame = parse_json(message)
        items = frame if isinstance(frame, list) else [frame]
        if not all(isinstance(item, dict) for item in items):
            raise ValueError("an XTS order event is a JSON object")
        return items

    async def _close(self, client: socketio.AsyncClient) -> None:
        """Disconnect and free the library's HTTP session (it stays open after a failed connect)."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), timeout=2)
        http = getattr(client.eio, "http", None)
        if http is not None and not http.closed:
            with contextlib.suppress(Exception):
                await http.close()
        self.client = None


def _queue_event(events: asyncio.Queue[tuple[str, Any]], name: str):
    """A handler that queues (name, data) for the session (data is None for an event sent without one)."""

    def handler(data: Any = None, *_: Any) -> None:
        events.put_nowait((name, data))

    return handler
