"""A fake Symphony XTS interactive server: python-socketio's AsyncServer (the client's own library family, Socket.IO
v2 / Engine.IO 3) on aiohttp, playing XTS's side of /interactive/socket.io (docs/brokers.md §14.1).

It checks the query's token and userID (a wrong token is refused at the handshake with HTTP 401, as python-socketio
refuses a connect handler that returns False), emits `joined` (unless told to stay mute), and lets a test emit
`order`, `trade`, `logout` or `error`, or drop a connection.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import socketio
from aiohttp import web

from tests.support.fakes.socket_server import wait_until


class _Manager(socketio.AsyncManager):
    """AsyncManager whose emit awaits each send in turn: 4.6.1's hands bare coroutines to asyncio.wait, which
    Python 3.11 refuses (the library's client side is not concerned)."""

    async def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, **kwargs):  # noqa: ANN001
        """Send `event` to every participant of `room`."""
        for sid in list(self.get_participants(namespace, room)):
            if sid != skip_sid:
                await self.server._emit_internal(sid, event, data, namespace, None)


@dataclass
class Session:
    """One accepted connection: its sid and the query it came with."""

    sid: str
    query: dict[str, str]
    path: str


@dataclass
class FakeXtsServer:
    """The fake; `async with` starts it on a free loopback port."""

    token: str
    user_id: str
    #: False: accept the connection but never send `joined` (a mute socket).
    join: bool = True
    sessions: list[Session] = field(default_factory=list)
    refused: int = 0

    async def __aenter__(self) -> FakeXtsServer:
        self.sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=_Manager(), logger=False)
        self.sio.on("connect", self._connect)
        self.sio.on("disconnect", self._disconnect)
        app = web.Application()
        self.sio.attach(app, socketio_path="/interactive/socket.io")
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.connected: set[str] = set()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def _connect(self, sid: str, environ: dict[str, Any]) -> bool:
        """Accept the right token and user; anything else is refused at the handshake."""
        query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
        if query.get("token") != self.token or query.get("userID") != self.user_id:
            self.refused += 1
            return False
        self.sessions.append(Session(sid, query, environ.get("PATH_INFO", "")))
        self.connected.add(sid)
        if self.join:
            asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self._joined(sid)))
        return True

    async def _joined(self, sid: str) -> None:
        """XTS's greeting once the token is accepted."""
        await self.sio.emit("joined", "Joined Successfully!", room=sid)

    async def _disconnect(self, sid: str) -> None:
        self.connected.discard(sid)

    async def wait_sessions(self, count: int) -> Session:
        """The count-th accepted session, once it exists (and is still connected)."""
        await wait_until(lambda: len(self.sessions) >= count, f"{count} XTS session(s)")
        return self.sessions[count - 1]

    async def emit(self, event: str, data: Any, *, as_text: bool = True) -> None:
        """Send an event to every connected client; order/trade data as JSON text, as XTS does."""
        payload = json.dumps(data) if as_text and not isinstance(data, str) else data
        for sid in list(self.connected):
            await self.sio.emit(event, payload, room=sid)

    async def drop(self) -> None:
        """End every connection from the server's side."""
        for sid in list(self.connected):
            await self.sio.disconnect(sid)
