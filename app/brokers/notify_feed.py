"""The order-notify WebSocket protocol Jainam protrade and AliceBlue both speak (docs/brokers.md §6; seed 000).

One protocol, two brokers: Codifi built both front ends (docs/brokers.md §6 "Lineage", §12), and both publish
the same three steps word for word.

1. `GET <token URL>/ws/createWsToken` with `Authorization: Bearer <the day's token>` gives
   `{"status":"Ok","message":"200","result":[{"orderToken":…}]}`, a fresh token for every connection; HTTP
   401/403, or a not-Ok answer about authorization, is an authentication refusal. An empty 200 answer means
   the order feed is not enabled for the account (AliceBlue, docs/brokers.md §12).
2. Connect to the socket and send `{"orderToken":…,"userId":…}`; the answer is `{"status":"Ok"}` (any other
   status is a refusal).
3. Send `{"heartbeat":"h","userId":…}` every minute, or the broker closes the connection.

What arrives after the login differs: Jainam sends ODIN `ORD_NRML`/`TRD_MSG` objects, AliceBlue Noren `t: "om"`
frames. A broker's connector (app/brokers/<name>/feed.py) subclasses OrderNotifyConnector and names its
variables and how to tell an order frame (`frame_kind`, `order_kinds`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, ClassVar

import requests
from websockets.asyncio.client import ClientConnection

from app.brokers.feed import FeedAuthError, FeedConnector, json_text, parse_json

log = logging.getLogger("workers.feeds")

TOKEN_PATH = "/ws/createWsToken"
#: Words in a not-Ok createWsToken answer that mean the bearer token itself was refused.
AUTH_WORDS = ("401", "403", "unauthor", "forbidden", "invalid token", "expired")


class OrderNotifyConnector(FeedConnector):
    """Token exchange over HTTPS, then the order socket with a heartbeat; subclasses declare the rest."""

    #: The variable holding the REST base that serves `/ws/createWsToken`.
    token_url_variable: ClassVar[str] = ""
    #: The variable holding the bearer token (the day's session).
    bearer_variable: ClassVar[str] = ""
    #: The variable holding the user id sent with the order token and every heartbeat.
    user_variable: ClassVar[str] = ""
    #: The variable holding the heartbeat period in seconds.
    heartbeat_variable: ClassVar[str] = ""
    #: Frame kinds (as frame_kind spells them) that are order updates.
    order_kinds: ClassVar[frozenset[str]] = frozenset()

    def frame_kind(self, item: dict[str, Any]) -> str:
        """The kind of one received object ("" when it names none, as the login answer does)."""
        raise NotImplementedError(f"{type(self).__name__} must implement frame_kind()")

    def load_settings(self) -> None:
        """The heartbeat period; the order token is fetched before each connection."""
        self.heartbeat_seconds = self.variables[self.heartbeat_variable]
        self.order_token = ""

    @property
    def user_id(self) -> str:
        """The user id sent with the token and every heartbeat."""
        return self.variables[self.user_variable]

    async def url(self) -> str:
        """Fetch a fresh order token first; the socket URL itself carries no credential."""
        self.order_token = await asyncio.to_thread(self.fetch_order_token)
        self.add_secret(self.order_token)
        return self.variables[self.url_variable]

    def fetch_order_token(self) -> str:
        """GET ws/createWsToken -> result[0].orderToken (blocking; run in a thread)."""
        url = self.variables[self.token_url_variable].rstrip("/") + TOKEN_PATH
        headers = {"Authorization": f"Bearer {self.variables[self.bearer_variable]}", "Accept": "application/json"}
        try:
            response = requests.get(url, headers=headers, timeout=self.settings.connect_timeout)
        except requests.RequestException as exc:
            raise ConnectionError(f"createWsToken failed ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise FeedAuthError(f"createWsToken refused the bearer token with HTTP {response.status_code}")
        if response.status_code != 200:
            raise ConnectionError(f"createWsToken answered HTTP {response.status_code}")
        if not response.content.strip():
            raise ConnectionError(
                "createWsToken answered an empty body: the order status feed is not enabled for this account "
                "(ask the broker to enable it)"
            )
        try:
            body = response.json()
        except ValueError:
            raise ConnectionError("createWsToken answered with something that is not JSON") from None
        return self._token_from(body)

    def _token_from(self, body: Any) -> str:
        """result[0].orderToken of an Ok answer; a not-Ok answer about authorization is a refusal."""
        if not isinstance(body, dict):
            raise ConnectionError("createWsToken answered with an unexpected JSON shape")
        status = str(body.get("status", "")).lower()
        if status != "ok":
            message = self.redact(str(body.get("message", "")))[:120]
            if any(word in message.lower() for word in AUTH_WORDS):
                raise FeedAuthError(f"createWsToken refused the bearer token ({message!r})")
            raise ConnectionError(f"createWsToken answered status {body.get('status')!r} ({message!r})")
        result = body.get("result")
        first = result[0] if isinstance(result, list) and result else None
        token = first.get("orderToken") if isinstance(first, dict) else None
        if not isinstance(token, str) or not token:
            raise ConnectionError("createWsToken answered Ok without result[0].orderToken")
        return token

    def login_frame(self) -> str:
        """The subscribe message with the fresh order token."""
        return json_text({"orderToken": self.order_token, "userId": self.user_id})

    def heartbeat_frame(self) -> str:
        """The keepalive the server requires every minute."""
        return json_text({"heartbeat": "h", "userId": self.user_id})

    async def login(self, ws: ClientConnection) -> None:
        """Send the token; its answer (`{"status":"Ok"}`) is checked as it arrives (order_payloads)."""
        await ws.send(self.login_frame())

    def keepalives(self, ws: ClientConnection) -> list[Any]:
        """The heartbeat every heartbeat period."""
        return [self.repeat(self.heartbeat_seconds, lambda: ws.send(self.heartbeat_frame()))]

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """Order objects (one, or a list); a non-Ok status answer is a refusal; other kinds are skipped."""
        frame = parse_json(message)
        items = frame if isinstance(frame, list) else [frame]
        payloads = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("an order-notify message is a JSON object")
            kind = self.frame_kind(item)
            if kind in self.order_kinds:
                payloads.append(item)
            elif not kind and "status" in item:
                self._check_status_answer(item)
        return payloads

    def _check_status_answer(self, answer: dict[str, Any]) -> None:
        """`{"status":"Ok"}` accepts the login; any other status refuses it."""
        if str(answer.get("status", "")).lower() == "ok":
            log.info("%s feed: login accepted", self.label)
            return
        message = self.redact(str(answer.get("message", "")))[:120]
        raise FeedAuthError(f"the broker refused the order token (status {answer.get('status')!r}, {message!r})")
