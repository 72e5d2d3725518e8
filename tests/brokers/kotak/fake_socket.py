"""A fake Kotak Neo order & position stream on 127.0.0.1 (docs/brokers.md §13): it plays Kotak's side.

The first frame must be the `cn` login with the session's token and sid, as JSON or in the doc's raw form
(`{type:cn,Authorization:…,Sid:…,src:WEB}`); `accepts` says which forms it answers. A good login is acked
`{"ak":"ok","type":"cn",…}`; a wrong token or sid gets `ak` "nok" (or, with `silent_refusal`, nothing); with
`never_ack` it never answers at all and keeps the socket open, the failure the ack deadline is for.
"""

from __future__ import annotations

import json
import re

from tests.brokers.kotak.samples import ACK
from tests.support.fakes.socket_server import FakeSocketBroker, Session

RAW_LOGIN = re.compile(r"^\{type:cn,Authorization:(?P<token>[^,]*),Sid:(?P<sid>[^,]*),src:WEB\}$")


def parse_login(message: str | bytes) -> tuple[str, dict[str, str]] | None:
    """("json" or "raw", the login's fields), or None when the frame is no `cn` login."""
    text = message.decode() if isinstance(message, bytes) else message
    try:
        frame = json.loads(text)
    except ValueError:
        match = RAW_LOGIN.match(text)
        return ("raw", {"Authorization": match["token"], "Sid": match["sid"]}) if match else None
    if isinstance(frame, dict) and frame.get("type") == "cn":
        return "json", frame
    return None


class FakeKotakStream(FakeSocketBroker):
    """wss://<baseUrl host>/realtime: the cn login, its ack, then whatever the test pushes."""

    path = "/realtime"

    def __init__(self, token: str, sid: str, *, accepts: tuple[str, ...] = ("json", "raw")) -> None:
        super().__init__()
        self.token = token
        self.sid = sid
        self.accepts = accepts
        self.never_ack = False
        self.logins: list[str] = []
        self.heartbeats: list[Session] = []

    async def handle(self, session: Session, message: str | bytes) -> None:
        if len(session.messages) == 1:
            await self._login(session, message)
        elif message == '{"type":"hb"}':
            self.heartbeats.append(session)

    async def _login(self, session: Session, message: str | bytes) -> None:
        login = parse_login(message)
        if login is None or self.never_ack:
            return
        form, fields = login
        self.logins.append(form)
        if form not in self.accepts:
            return  # a form this deployment does not read: it says nothing, the socket stays open
        good = fields.get("Authorization") == self.token and fields.get("Sid") == self.sid and not self.refuse_login
        answer = ACK if good else {"ak": "nok", "type": "cn", "task": "cn", "msg": "invalid session"}
        await session.ws.send(json.dumps(answer))
