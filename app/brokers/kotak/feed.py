"""Kotak Neo's order & position stream (docs/brokers.md §13).

1. Connect to `wss://<baseUrl host>/realtime` (the session's baseUrl; KOTAK_WS_URL when it names none).
2. Send `{"type":"cn","Authorization":<token>,"Sid":<sid>,"src":"WEB"}`. Kotak's own client sends it as JSON;
   its doc asks for the same keys unquoted (`{type:cn,Authorization:…}`). KOTAK_LOGIN_FORM picks one; unset, JSON
   is tried first and each unacknowledged attempt switches form, until one is acknowledged (then it is kept).
3. The ack `{"ak":"ok","type":"cn",…}` must come within KOTAK_ACK_SECONDS: a socket that stays open without ever
   authenticating looks like a quiet market, so a missing ack drops the connection (reconnect); an ack that is not
   `ok` is a refusal. An order frame before the ack also proves the login (and is kept).
4. `{"type":"hb"}` every KOTAK_HEARTBEAT_SECONDS (30, as Kotak's client does), beside the library's pings.
5. `{"type":"order","data":{…}}` frames go to the kotak adapter; `position` frames and the rest are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from websockets.asyncio.client import ClientConnection

from app.brokers.feed import FeedAuthError, FeedConnector, FeedDisconnected, json_text, parse_json
from app.brokers.kotak.session import parse_session, realtime_url
from app.brokers.kotak.spec import FEED

log = logging.getLogger("workers.feeds")

HEARTBEAT = json_text({"type": "hb"})
#: Of FEEDS_LOGIN_TIMEOUT_SECONDS, the part the ack may take: the missing ack is then named, not a bare timeout.
ACK_SHARE = 0.8


class KotakConnector(FeedConnector):
    """The `cn` login with an ack deadline, the heartbeat, `order` frames."""

    spec = FEED
    auth_hint = "log in to Kotak Neo again (a new session) and restart the feeds process"

    def load_settings(self) -> None:
        """The session's parts (redacted everywhere), the heartbeat, the ack deadline and the login form."""
        self.session_parts = parse_session(self.variables["KOTAK_SESSION"])
        if self.session_parts is not None:
            self.add_secret(self.session_parts.token)
            self.add_secret(self.session_parts.sid)
        self.heartbeat_seconds = self.variables["KOTAK_HEARTBEAT_SECONDS"]
        self.ack_seconds = min(self.variables["KOTAK_ACK_SECONDS"], self.settings.login_timeout * ACK_SHARE)
        configured = self.variables["KOTAK_LOGIN_FORM"]
        self.login_form = configured or "json"
        #: True once the form is known: pinned by KOTAK_LOGIN_FORM, or acknowledged once.
        self.form_known = bool(configured)

    async def url(self) -> str:
        """The realtime socket of the session's baseUrl; a session that cannot be read is a refusal."""
        if self.session_parts is None:
            raise FeedAuthError("KOTAK_SESSION is not <token>|<sid>|<baseUrl>: log in again or paste it so")
        if self.session_parts.base_url:
            return realtime_url(self.session_parts.base_url)
        return self.variables[self.url_variable]

    def login_frame(self) -> str:
        """The `cn` frame in the chosen form, keys in the documented order."""
        assert self.session_parts is not None
        token, sid = self.session_parts.token, self.session_parts.sid
        if self.login_form == "raw":
            return f"{{type:cn,Authorization:{token},Sid:{sid},src:WEB}}"
        return json_text({"type": "cn", "Authorization": token, "Sid": sid, "src": "WEB"})

    async def login(self, ws: ClientConnection) -> None:
        """Send `cn`, then wait (bounded) for its ack; an order frame meanwhile proves the login too."""
        await ws.send(self.login_frame())
        try:
            await asyncio.wait_for(self._await_ack(ws), timeout=self.ack_seconds)
        except TimeoutError:
            detail = (
                f"no cn ack within {self.ack_seconds:g} s of the {self.login_form} login: open, never authenticated"
            )
            if not self.form_known:
                self.login_form = "raw" if self.login_form == "json" else "json"
                raise FeedDisconnected(f"{detail}; reconnecting with the {self.login_form} form") from None
            raise FeedDisconnected(detail) from None
        self.form_known = True  # this form works: a later missing ack is not the form's fault

    async def _await_ack(self, ws: ClientConnection) -> None:
        """Read until the `cn` answer (ok, or a refusal) or an order frame; other frames are handled as usual."""
        while True:
            message = await ws.recv()
            try:
                frame = parse_json(message)
            except ValueError:
                continue
            if not isinstance(frame, dict):
                continue
            if frame.get("type") == "cn" or "ak" in frame:
                self._check_ack(frame)
                return
            if frame.get("type") == "order":
                log.info("%s feed: an order frame before the ack: logged in", self.label)
                await self.on_message(message)
                return

    def _check_ack(self, ack: dict[str, Any]) -> None:
        """`ak: ok` accepts the login; anything else refuses it."""
        if str(ack.get("ak", "")).lower() == "ok":
            log.info("%s feed: login accepted", self.label)
            return
        detail = self.redact(str(ack.get("msg") or ack.get("message") or ""))[:120]
        raise FeedAuthError(f"the broker refused the cn login (ak={ack.get('ak')!r}, {detail!r})")

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """`{"type":"hb"}` every KOTAK_HEARTBEAT_SECONDS."""
        return [self.repeat(self.heartbeat_seconds, lambda: ws.send(HEARTBEAT))]

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """The `data` of an `order` frame; positions, acks and notices are skipped."""
        frame = parse_json(message)
        if not isinstance(frame, dict):
            raise ValueError("a Kotak frame is a JSON object")
        if frame.get("type") != "order":
            return []
        data = frame.get("data")
        if not isinstance(data, dict):
            raise ValueError("a Kotak order frame carries its order in `data`")
        return [data]
