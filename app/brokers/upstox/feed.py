"""Upstox's Portfolio Stream Feed, order updates only (docs/brokers.md §10.2).

1. `GET {UPSTOX_FEED_AUTHORIZE_URL}?update_types=order` with `Authorization: Bearer <token>` answers
   `data.authorized_redirect_uri`, a `wss://…/order-updates/feed?requestId=…&code=…` URL whose code is single-use:
   it is fetched again for every connection (the `url()` hook runs before each dial). A 401/403 or an
   invalid-token error code there is the token refused: the account needs a login.
2. Connect to that URL; nothing is sent. The server pushes one JSON text frame per update, the webhook's payload
   (`update_type` "order"; position, holding and GTT frames are skipped).
3. No application heartbeat is documented: the library's WebSocket ping (FEEDS_PING_SECONDS) keeps the connection
   alive and finds a mute one.

The authorize step judges the token; a refusal of the one-time URL itself (its handshake, or an auth close code)
is a drop, so the next attempt fetches a fresh URL and the authorize step says whether the token still holds.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests

from app.brokers.feed import FeedAuthError, FeedConnector, FeedDisconnected, parse_json
from app.brokers.upstox.rest import AUTH_ERROR_CODES, error_codes, error_text
from app.brokers.upstox.spec import FEED
from app.wire.keys import canonical_key

log = logging.getLogger("workers.feeds")

#: Only order updates are asked for (update_types values: order, gtt_order, position, holding).
UPDATE_TYPES = "order"
ORDER_UPDATE = "order"
SOCKET_SCHEMES = ("ws", "wss")


class UpstoxConnector(FeedConnector):
    """The authorize step for a fresh single-use URL before every connection, then a read-only socket."""

    spec = FEED
    auth_hint = "log in again (Upstox tokens end at 03:30 IST), or renew UPSTOX_ACCESS_TOKEN"

    def load_settings(self) -> None:
        """No settings of its own; the authorize step's outcome and the current URL's secrets are tracked."""
        self.authorized = False
        self.url_secrets: set[str] = set()

    async def url(self) -> str:
        """A fresh authorized URL (blocking HTTP, in a thread); its code and request id are redacted everywhere."""
        self.authorized = False
        url = await asyncio.to_thread(self.authorize)
        self.remember_url_secrets({value for _, value in parse_qsl(urlsplit(url).query)})
        self.authorized = True
        return url

    def remember_url_secrets(self, values: set[str]) -> None:
        """Redact this URL's code and request id; the last URL's are forgotten (used up, and a process that
        reconnects for weeks must not keep every one)."""
        self._runtime_secrets.difference_update(self.url_secrets - values)
        self.url_secrets = values
        for value in values:
            self.add_secret(value)

    def authorize(self) -> str:
        """GET the authorize endpoint -> data.authorized_redirect_uri; FeedAuthError when the token is refused."""
        headers = {"Authorization": f"Bearer {self.variables['UPSTOX_ACCESS_TOKEN']}", "Accept": "application/json"}
        try:
            response = requests.get(
                self.variables[self.url_variable],
                params={"update_types": UPDATE_TYPES},
                headers=headers,
                timeout=self.settings.connect_timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            raise ConnectionError(f"the feed's authorize step failed ({type(exc).__name__})") from None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.status_code in (401, 403) or error_codes(body) & AUTH_ERROR_CODES:
            why = self.redact(error_text(body))
            raise FeedAuthError(f"the authorize step refused the access token (HTTP {response.status_code}, {why!r})")
        if response.status_code != 200 or not isinstance(body, dict):
            raise ConnectionError(f"the feed's authorize step answered HTTP {response.status_code}")
        return self._socket_url(body)

    def _socket_url(self, body: dict[str, Any]) -> str:
        """The authorized ws(s) URL of a success answer (either spelling the docs show)."""
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        url = data.get("authorized_redirect_uri") or data.get("authorizedRedirectUri")
        if body.get("status") != "success" or not isinstance(url, str) or urlsplit(url).scheme not in SOCKET_SCHEMES:
            raise ConnectionError("the feed's authorize step answered without an authorized ws(s) URL")
        return url

    async def session(self) -> None:
        """One connection; after a successful authorize step a refusal of the one-time URL is only a drop."""
        try:
            await super().session()
        except FeedAuthError as exc:
            if not self.authorized:
                raise
            raise FeedDisconnected(f"{exc}; the token was just accepted, so a fresh URL is fetched") from None

    def order_payloads(self, message: str | bytes) -> list[dict[str, Any]]:
        """Order updates (one object, or a list of them); other update types and frames without an order are skipped."""
        frame = parse_json(message)
        items = frame if isinstance(frame, list) else [frame]
        payloads = []
        for item in items:
            if not isinstance(item, dict):
                raise ValueError("an Upstox portfolio frame is a JSON object")
            kind = str(item.get("update_type") or item.get("updateType") or ORDER_UPDATE).strip().lower()
            if kind == ORDER_UPDATE and any(canonical_key(str(key)) == "orderid" for key in item):
                payloads.append(item)
        return payloads
