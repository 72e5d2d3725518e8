"""A WebSocket server on 127.0.0.1 that records what a connector sends and lets a test push, drop or refuse."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

#: Every wait in the fakes is bounded by this many seconds unless a test says otherwise.
WAIT_SECONDS = 5.0


async def wait_until(condition: Callable[[], Any], what: str, timeout: float = WAIT_SECONDS) -> Any:
    """Poll until truthy; AssertionError naming `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Session:
    """One accepted connection: its request and every message it sent, with arrival times."""

    path: str
    headers: Headers
    ws: ServerConnection
    messages: list[tuple[float, str | bytes]] = field(default_factory=list)
    pings: list[tuple[float, bytes]] = field(default_factory=list)

    @property
    def first(self) -> str | bytes | None:
        """The first message (the login)."""
        return self.messages[0][1] if self.messages else None

    def texts(self) -> list[str]:
        """The text messages in order."""
        return [m for _, m in self.messages if isinstance(m, str)]


class _RecordingConnection(ServerConnection):
    """Notes the pings a client sends (websockets answers them itself and does not surface them)."""

    on_ping: Callable[[ServerConnection, bytes], None] | None = None

    def process_event(self, event: Any) -> None:
        if isinstance(event, Frame) and event.opcode is Opcode.PING and self.on_ping is not None:
            self.on_ping(self, bytes(event.data))
        super().process_event(event)


class FakeSocketBroker:
    """Base fake: subclasses answer messages (`handle`) and vet handshakes (`check_request`)."""

    path = "/"

    def __init__(self) -> None:
        self.sessions: list[Session] = []
        self.server: Server | None = None
        self.port = 0
        self.refuse_login = False
        #: Handshakes attempted (accepted or refused).
        self.handshakes = 0
        #: The port to listen on (0: any free one; set it to restart a fake on the same address).
        self.bind_port = 0

    # Broker behaviour (override):

    def check_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """A Response refuses the handshake (or answers plain HTTP); None accepts it."""
        return None

    async def handle(self, session: Session, message: str | bytes) -> None:
        """Answer one message from the connector."""

    async def on_open(self, session: Session) -> None:
        """Greet a connection before reading from it (a broker that answers the handshake's credentials)."""

    # Test controls:

    @property
    def url(self) -> str:
        """ws:// URL of this fake."""
        return f"ws://127.0.0.1:{self.port}{self.path}"

    @property
    def http_url(self) -> str:
        """http:// base URL of this fake (same port)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def current(self) -> Session:
        """The latest session."""
        return self.sessions[-1]

    async def push(self, message: Any, session: Session | None = None) -> None:
        """Send a message (dict/list as JSON text) to the latest connection."""
        if isinstance(message, (dict, list)):
            message = json.dumps(message)
        await (session or self.current).ws.send(message)

    def drop(self) -> None:
        """Cut the latest connection without a closing handshake, as a network failure does."""
        transport = self.current.ws.transport
        if transport is not None:
            transport.abort()

    def mute(self, session: Session | None = None) -> None:
        """Stop reading the connection (the latest by default): it stays open, but nothing it sends is answered,
        not even a ping (a broker connected but mute, as a half-open TCP connection is)."""
        transport = (session or self.current).ws.transport
        if transport is not None:
            transport.pause_reading()

    async def close(self, code: int, reason: str = "") -> None:
        """Close the latest connection with a code."""
        await self.current.ws.close(code, reason)

    async def wait_for(self, condition: Callable[[], Any], timeout: float = WAIT_SECONDS, what: str = "") -> Any:
        """Poll `condition` until it is truthy; AssertionError after `timeout`."""
        return await wait_until(condition, what or str(condition), timeout)

    async def wait_sessions(self, count: int, timeout: float = WAIT_SECONDS, *, logged_in: bool = True) -> Session:
        """Wait for the `count`-th connection (and, with `logged_in`, its first message)."""
        await self.wait_for(
            lambda: len(self.sessions) >= count and (self.sessions[count - 1].messages or not logged_in),
            timeout,
            f"{count} sessions",
        )
        return self.sessions[count - 1]

    # Server plumbing:

    async def __aenter__(self) -> FakeSocketBroker:
        self.server = await serve(
            self._handler,
            "127.0.0.1",
            self.bind_port,
            process_request=self._process_request,
            create_connection=self._make_connection,
            ping_interval=None,
        )
        self.port = next(iter(self.server.sockets)).getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await asyncio.wait_for(self.server.wait_closed(), WAIT_SECONDS)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        if "upgrade" in request.headers.get("Connection", "").lower():
            self.handshakes += 1
        return self.check_request(ws, request)

    def _make_connection(self, *args: Any, **kwargs: Any) -> ServerConnection:
        connection = _RecordingConnection(*args, **kwargs)
        connection.on_ping = self._note_ping
        return connection

    def _note_ping(self, ws: ServerConnection, data: bytes) -> None:
        for session in self.sessions:
            if session.ws is ws:
                session.pings.append((time.monotonic(), data))

    async def _handler(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        session = Session(path=ws.request.path, headers=ws.request.headers, ws=ws)
        self.sessions.append(session)
        try:
            await self.on_open(session)
            async for message in ws:
                session.messages.append((time.monotonic(), message))
                await self.handle(session, message)
        except ConnectionClosed:
            pass
