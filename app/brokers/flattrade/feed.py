"""Flattrade (Noren OMS) order-update WebSocket (docs/brokers.md §5.1).

Login `{"t":"c","uid",…,"actid",…,"susertoken",…,"source":"API"}` (old) or
`{"t":"a","uid",…,"actid",…,"source":"API","accesstoken",…}` (new, NorenRestApi 0.0.29, which
Flattrade's own SDK ships), chosen by NOREN_LOGIN_MODE. Unset, it starts with `a` and, if that form is
refused, tries `c` once before calling it an authentication refusal (deployments differ, docs/brokers.md §5.1:
"support both forms"). The answer `ck`/`ak` must carry `s: "OK"`; anything else is a refusal.
Then subscribe `{"t":"o","actid":…}` (Flattrade sends no ack), heartbeat `{"t":"h"}` as a text frame every
NOREN_HEARTBEAT_SECONDS (30 s, as OpenAlgo and the Flattrade doc do), and read `t:"om"` order updates
with the Noren keys the flattrade adapter knows.
"""

from __future__ import annotations

from typing import Any

from websockets.asyncio.client import ClientConnection

from app.brokers.feed import FeedAuthError, FeedConnector, FeedDisconnected, json_text, parse_json
from app.brokers.flattrade.spec import FEED

LOGIN_ACKS = ("ck", "ak")
HEARTBEAT = json_text({"t": "h"})


class FlattradeConnector(FeedConnector):
    """Noren order feed: login, subscribe, heartbeat."""

    spec = FEED

    def load_settings(self) -> None:
        """NOREN_LOGIN_MODE (a|c) and NOREN_HEARTBEAT_SECONDS."""
        configured = self.variables["NOREN_LOGIN_MODE"]
        self.login_mode = configured or "a"
        self.other_form_to_try = "" if configured else "c"
        self.heartbeat_seconds = self.variables["NOREN_HEARTBEAT_SECONDS"]

    @property
    def account_id(self) -> str:
        """NOREN_ACCOUNT_ID, else the user id (Noren accounts usually share it)."""
        return self.variables["NOREN_ACCOUNT_ID"] or self.variables["NOREN_USER_ID"]

    def login_frame(self) -> str:
        """The login in the configured form, keys in the documented order."""
        uid, token = self.variables["NOREN_USER_ID"], self.variables["NOREN_TOKEN"]
        if self.login_mode == "c":
            return json_text({"t": "c", "uid": uid, "actid": self.account_id, "susertoken": token, "source": "API"})
        return json_text({"t": "a", "uid": uid, "actid": self.account_id, "source": "API", "accesstoken": token})

    def subscribe_frame(self) -> str:
        """Order updates for the account."""
        return json_text({"t": "o", "actid": self.account_id})

    async def login(self, ws: ClientConnection) -> None:
        """Log in, wait for ck/ak (either, as NorenRestApi accepts), then subscribe."""
        await ws.send(self.login_frame())
        ack = await self.receive_json(ws, lambda m: isinstance(m, dict) and m.get("t") in LOGIN_ACKS)
        if str(ack.get("s", "")).upper() != "OK":
            detail = f"t={ack.get('t')!r}, s={ack.get('s')!r}"
            if ack.get("emsg"):
                detail += f", emsg={str(ack['emsg'])[:120]!r}"
            if self.other_form_to_try:
                self.login_mode, self.other_form_to_try = self.other_form_to_try, ""
                raise FeedDisconnected(f"login form refused ({detail}); reconnecting with the other form")
            raise FeedAuthError(f"the broker refused the login ({detail})")
        self.other_form_to_try = ""  # this form works: a later refusal is a real one
        await ws.send(self.subscribe_frame())

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """`{"t":"h"}` as a text frame every NOREN_HEARTBEAT_SECONDS."""
        return [self.repeat(self.heartbeat_seconds, lambda: ws.send(HEARTBEAT))]

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """`t: om` frames are order updates; acks (ok, hk, uok) and anything else are skipped."""
        frame = parse_json(message)
        if not isinstance(frame, dict):
            raise ValueError("a Noren frame is a JSON object")
        return [frame] if frame.get("t") == "om" else []
