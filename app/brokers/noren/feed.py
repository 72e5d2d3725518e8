"""The Noren family's order socket (docs/brokers.md §5.1, §5.5), one connector for Flattrade, Shoonya, Zebu, Firstock.

What differs is the broker's `NorenBroker` declaration (app/brokers/noren/family.py):

- the login: `{"t":"a","uid",…,"actid",…,"source":"API","accesstoken",…}` (answer `ak`) or
  `{"t":"c","uid",…,"actid",…,"susertoken",…,"source":"API"}` (answer `ck`), the answer's `s` must be `OK`. The
  declaration's first form is tried first and, unless `<PREFIX>_LOGIN_MODE` names one, a refused form is followed by
  the other once before it counts as a refusal (deployments differ, docs/brokers.md §5.1: "support both forms").
  Firstock takes `userId`, `jKey` and `source=developer-api` in the socket URL's query instead and answers
  `{"status":"success"}` (or `failed` / `unauthenticated`, a refusal);
- the subscription `{"t":"o","actid":…}`: sent by all but Firstock (which pushes once connected); Shoonya and Zebu
  answer it `{"t":"ok"}`, which is waited for, Flattrade sends no ack;
- the heartbeat `{"t":"h"}` as a text frame every `<PREFIX>_HEARTBEAT_SECONDS` (30 s, as OpenAlgo and the Flattrade
  doc do); Firstock has none (WebSocket pings keep it, as for every feed).

Order updates are `t:"om"` frames, or (Firstock's order update feed) frames without `t` that carry `norenordno`;
acks (ok, hk, uok) and position updates are skipped.
"""

from __future__ import annotations

from typing import Any, ClassVar

from websockets.asyncio.client import ClientConnection

from app.brokers.feed import FeedAuthError, FeedConnector, FeedDisconnected, json_text, parse_json, with_query
from app.brokers.noren.family import FRAME_C, QUERY, NorenBroker

LOGIN_ACKS = ("ck", "ak")
SUBSCRIBE_ACK = "ok"
HEARTBEAT = json_text({"t": "h"})
#: Firstock's socket names the API client in the query (docs/brokers.md §5.5).
FIRSTOCK_SOURCE = "developer-api"
#: Firstock's answers that refuse the credentials.
QUERY_REFUSALS = ("failed", "unauthenticated")


class NorenConnector(FeedConnector):
    """Noren order feed: login (frame or query), subscribe (acked or not), heartbeat."""

    #: The broker's declaration (its package's spec.py BROKER).
    family: ClassVar[NorenBroker]

    def var(self, suffix: str) -> Any:
        """This broker's variable for `suffix` (NOREN_TOKEN for Flattrade, SHOONYA_TOKEN for Shoonya...)."""
        return self.variables[self.family.var(suffix)]

    def load_settings(self) -> None:
        """The login forms to try (<PREFIX>_LOGIN_MODE pins one) and the heartbeat period."""
        forms = self.family.login_forms
        configured = self.var("LOGIN_MODE") if len(forms) > 1 else ""
        self.login_mode = configured or forms[0]
        self.other_form_to_try = "" if configured or len(forms) < 2 else forms[1]
        self.heartbeat_seconds = self.var("HEARTBEAT_SECONDS") if self.family.text_heartbeat else None

    @property
    def account_id(self) -> str:
        """<PREFIX>_ACCOUNT_ID, else the user id (Noren accounts usually share it)."""
        return self.var("ACCOUNT_ID") or self.var("USER_ID")

    async def url(self) -> str:
        """The socket URL; Firstock's carries the user id and token in its query."""
        base = self.variables[self.url_variable]
        if self.login_mode != QUERY:
            return base
        return with_query(base, userId=self.var("USER_ID"), jKey=self.var("TOKEN"), source=FIRSTOCK_SOURCE)

    def login_frame(self) -> str:
        """The login in the current form, keys in the documented order."""
        uid, token = self.var("USER_ID"), self.var("TOKEN")
        if self.login_mode == FRAME_C:
            return json_text({"t": "c", "uid": uid, "actid": self.account_id, "susertoken": token, "source": "API"})
        return json_text({"t": "a", "uid": uid, "actid": self.account_id, "source": "API", "accesstoken": token})

    def subscribe_frame(self) -> str:
        """Order updates for the account."""
        return json_text({"t": "o", "actid": self.account_id})

    async def login(self, ws: ClientConnection) -> None:
        """Log in (a frame, or wait for the query login's answer), then subscribe where the broker needs it."""
        if self.login_mode == QUERY:
            await self._query_login(ws)
        else:
            await self._frame_login(ws)
        if self.family.subscribes:
            await ws.send(self.subscribe_frame())
            if self.family.subscribe_ack:
                await self.receive_json(ws, lambda m: isinstance(m, dict) and m.get("t") == SUBSCRIBE_ACK)

    async def _frame_login(self, ws: ClientConnection) -> None:
        """Send the login frame, wait for ck/ak (either, as NorenRestApi accepts); a refusal may try the other form."""
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

    async def _query_login(self, ws: ClientConnection) -> None:
        """Firstock: the answer to the credentials in the query, `{"status":"success"}` or a refusal."""
        answer = await self.receive_json(ws, lambda m: isinstance(m, dict) and "status" in m and "norenordno" not in m)
        status = str(answer.get("status", "")).lower()
        message = str(answer.get("message", ""))
        if status != "success":
            if status in QUERY_REFUSALS or message.lower() in QUERY_REFUSALS:
                raise FeedAuthError(f"the broker refused the login (status={status!r}, message={message[:120]!r})")
            raise FeedDisconnected(f"the broker answered the login with status {status[:40]!r}")

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """`{"t":"h"}` as a text frame every <PREFIX>_HEARTBEAT_SECONDS, where the broker has it."""
        if self.heartbeat_seconds is None:
            return []
        return [self.repeat(self.heartbeat_seconds, lambda: ws.send(HEARTBEAT))]

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """`t: om` frames, and Firstock's frames without `t` naming a norenordno; acks and the rest are skipped."""
        frame = parse_json(message)
        if not isinstance(frame, dict):
            raise ValueError("a Noren frame is a JSON object")
        kind = frame.get("t")
        if kind == "om" or (kind is None and "norenordno" in frame):
            return [frame]
        return []
