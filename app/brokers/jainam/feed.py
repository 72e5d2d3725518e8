"""Jainam protrade order-status WebSocket (docs/brokers.md §6; seed 000).

1. `GET {JAINAM_API_URL}/ws/createWsToken` with `Authorization: Bearer <JAINAM_BEARER_TOKEN>` gives
   `result[0].orderToken` (a fresh one for every connection); 401/403 is an authentication refusal.
2. Connect to JAINAM_WS_URL and send `{"orderToken":…,"userId":…}`; the answer is `{"status":"Ok"}`
   (any other status is a refusal).
3. Send `{"heartbeat":"h","userId":…}` every JAINAM_HEARTBEAT_SECONDS (default 60: "every minute, or the
   connection is closed").
4. `ORD_NRML` (order) and `TRD_MSG` (trade) messages go to the jainam adapter; MKT_STAT and the rest
   are skipped.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import requests
from websockets.asyncio.client import ClientConnection

from app.brokers.feed import FeedAuthError, FeedConnector, json_text, parse_json
from app.brokers.jainam.spec import FEED

log = logging.getLogger("workers.feeds")

ORDER_MESSAGE_TYPES = frozenset({"ORD_NRML", "TRD_MSG"})
AUTH_WORDS = ("401", "403", "unauthor", "forbidden", "invalid token", "expired")


class JainamConnector(FeedConnector):
    """Token exchange over HTTPS, then the order socket with a heartbeat."""

    spec = FEED

    def load_settings(self) -> None:
        """JAINAM_HEARTBEAT_SECONDS (docs/interface.md default 60)."""
        self.heartbeat_seconds = self.variables["JAINAM_HEARTBEAT_SECONDS"]
        self.order_token = ""

    @property
    def user_id(self) -> str:
        """The protrade user id sent with the token and every heartbeat."""
        return self.variables["JAINAM_USER_ID"]

    async def url(self) -> str:
        """Fetch a fresh order token first; the socket URL itself carries no credential."""
        self.order_token = await asyncio.to_thread(self.fetch_order_token)
        self.add_secret(self.order_token)
        return self.variables[self.url_variable]

    def fetch_order_token(self) -> str:
        """GET ws/createWsToken -> result[0].orderToken (blocking; run in a thread)."""
        url = self.variables["JAINAM_API_URL"].rstrip("/") + "/ws/createWsToken"
        headers = {"Authorization": f"Bearer {self.variables['JAINAM_BEARER_TOKEN']}", "Accept": "application/json"}
        try:
            response = requests.get(url, headers=headers, timeout=self.settings.connect_timeout)
        except requests.RequestException as exc:
            raise ConnectionError(f"createWsToken failed ({type(exc).__name__})") from None
        if response.status_code in (401, 403):
            raise FeedAuthError(f"createWsToken refused the bearer token with HTTP {response.status_code}")
        if response.status_code != 200:
            raise ConnectionError(f"createWsToken answered HTTP {response.status_code}")
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
        """The heartbeat every JAINAM_HEARTBEAT_SECONDS."""
        return [self.repeat(self.heartbeat_seconds, lambda: ws.send(self.heartbeat_frame()))]

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """ORD_NRML/TRD_MSG objects (one, or a list); a non-Ok status answer is a refusal."""
        frame = parse_json(message)
        items = frame if isinstance(frame, list) else [frame]
        payloads = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("a Jainam message is a JSON object")
            kind = str(item.get("MessageType") or item.get("messageType") or "").upper()
            if kind in ORDER_MESSAGE_TYPES:
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
