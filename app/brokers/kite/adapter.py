"""Zerodha Kite Connect postbacks, WebSocket order updates and order-book rows (one field set).

Docs: https://kite.trade/docs/connect/v3/postbacks/; docs/brokers.md §3.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from app.brokers.base import BrokerAdapter, BrokerSchema, by_quantity, code_from
from app.brokers.kite.spec import SPEC
from app.brokers.spec import status_word
from app.events import OrderEvent, OrderStatus
from app.exceptions import AccountsUnavailableError, PostbackPayloadError, PostbackVerificationError
from app.times import ist_to_utc_iso
from app.wire.fields import LenientInt, LenientNumber, LenientStr
from app.wire.keys import canonical_key, canonical_keys

if TYPE_CHECKING:
    from app.ingest.postback_accounts import PostbackAccounts, PostbackOwner

# "YYYY-MM-DD HH:MM:SS" in IST (docs/brokers.md §3).
KITE_TIME_FORMATS = ("%Y-%m-%d %H:%M:%S",)


class KiteOrderSchema(BrokerSchema):
    """The postback field set (seed 004); the WebSocket `data` object carries the same fields."""

    order_id = LenientStr(data_key="orderid", required=True)
    status = LenientStr(data_key="status", required=True)
    user_id = LenientStr(data_key="userid")
    account_id = LenientStr(data_key="accountid")  # current order-book dicts (docs/brokers.md §3)
    app_id = LenientStr(data_key="appid")
    exchange_order_id = LenientStr(data_key="exchangeorderid")
    status_message = LenientStr(data_key="statusmessage")
    order_timestamp = LenientStr(data_key="ordertimestamp")
    exchange_update_timestamp = LenientStr(data_key="exchangeupdatetimestamp")
    exchange_timestamp = LenientStr(data_key="exchangetimestamp")
    exchange = LenientStr(data_key="exchange")
    tradingsymbol = LenientStr(data_key="tradingsymbol")
    order_type = LenientStr(data_key="ordertype")
    transaction_type = LenientStr(data_key="transactiontype")
    product = LenientStr(data_key="product")
    quantity = LenientInt(data_key="quantity")
    filled_quantity = LenientInt(data_key="filledquantity")
    pending_quantity = LenientInt(data_key="pendingquantity")
    price = LenientNumber(data_key="price")
    trigger_price = LenientNumber(data_key="triggerprice")
    average_price = LenientNumber(data_key="averageprice")
    tag = LenientStr(data_key="tag")


class KiteAdapter(BrokerAdapter):
    """Kite signs its postbacks with sha256(order_id + order_timestamp + api_secret)."""

    # Status words, the modification words and the signed route come from the spec (kite/spec.py).
    spec = SPEC
    schema = KiteOrderSchema()

    def parse_body(self, body: bytes) -> dict[str, Any]:
        """JSON as parsers read it (a repeated key: the last wins), except a signed field given twice differently.

        Kite's own documentation sample repeats `status_message`, so repeats are read, not refused; the
        checksum covers order_id and order_timestamp only (docs/brokers.md §3), so a second, different copy
        of either (in any spelling that folds to it) would let the verifier and the reader see two values.
        """
        payload = super().parse_body(body)
        if _may_repeat_signed_field(body):
            _refuse_conflicting_signed_fields(body)
        return payload

    def verify(
        self,
        body: bytes,
        payload: dict[str, Any],
        headers: Mapping[str, str],
        *,
        accounts: PostbackAccounts | None = None,
    ) -> PostbackOwner | None:
        """Checksum over the strings as received, before anything else in the payload is trusted.

        A postback of the environment's apps (its app_id in KITE_APPS, or KITE_API_KEY's, or none) is
        verified with the environment's secret, without a database read. One whose app_id is the api_key
        of accounts added as data must verify with their api_secret, and answers those accounts: it must
        name one of their users (docs/accounts.md "Postbacks"). Any other app_id falls back to
        KITE_API_SECRET, as before accounts were data.
        """
        # The very values the schema will read (keys folded the same way; parse_body refused conflicts).
        fields = canonical_keys(payload)
        checksum = fields.get("checksum")
        if checksum is None or checksum == "":
            raise PostbackVerificationError(
                "Kite postback called without a checksum; Kite signs every postback", status_code=401
            )
        order_id, order_timestamp = fields.get("orderid"), fields.get("ordertimestamp")
        if not isinstance(order_id, (str, int)) or isinstance(order_id, bool) or not isinstance(order_timestamp, str):
            raise PostbackPayloadError("Kite postback needs order_id and order_timestamp to verify its checksum")
        app_id = _app_id(fields)
        given = checksum.strip().lower().encode() if isinstance(checksum, str) else b""
        apps: list = []
        unavailable: AccountsUnavailableError | None = None
        if accounts is not None and not self._environment_app(app_id):
            try:
                apps = accounts.kite_apps(app_id or "")
            except AccountsUnavailableError as exc:
                unavailable = exc  # the database is away: the environment's secret may still verify it
        for app in apps:
            if _matches(given, kite_checksum(str(order_id), order_timestamp, app.api_secret)):
                return app.owner
        secret = None if apps else self.config.kite_secret_for(app_id)
        if secret and _matches(given, kite_checksum(str(order_id), order_timestamp, secret)):
            return None
        if unavailable is not None:
            raise unavailable  # perhaps a data account's app: let the broker retry rather than refuse it
        if not secret and not apps:
            raise PostbackVerificationError(
                f"no api_secret configured for Kite app_id {app_id!r} "
                "(check the KITE_API_SECRET or KITE_APPS setting, or the api_key of the Kite account added for it)",
                status_code=403,
            )
        raise PostbackVerificationError(
            "Kite postback has an incorrect checksum (check the KITE_API_SECRET or KITE_APPS setting, "
            "or the api_secret of the Kite account added for this app)",
            status_code=403,
        )

    def _environment_app(self, app_id: str | None) -> bool:
        """True when the environment names this app (KITE_APPS, KITE_API_KEY) or the postback names none."""
        return app_id is None or app_id in self.config.kite_apps or app_id == self.config.broker("kite")["KITE_API_KEY"]

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """Kite fields map almost one to one; the status needs the quantities (docs/brokers.md §3)."""
        broker_status = data["status"]
        quantity, filled = data["quantity"], data["filled_quantity"]
        status, modified = self._status(broker_status, data["order_type"], quantity, filled)
        return OrderEvent(
            broker=self.name,
            source=source,
            order_id=data["order_id"],
            status=status,
            broker_status=broker_status,
            received_at=received_at,
            raw=raw,
            account_id=data["user_id"] or data["account_id"],
            exchange_order_id=data["exchange_order_id"],
            side=_side(data["transaction_type"]),
            exchange=code_from({}, data["exchange"]),
            symbol=data["tradingsymbol"],
            product=code_from({}, data["product"]),
            order_type=code_from({}, data["order_type"]),
            quantity=quantity,
            filled_quantity=filled,
            pending_quantity=data["pending_quantity"],
            price=data["price"],
            trigger_price=data["trigger_price"],
            average_price=data["average_price"],
            reason=data["status_message"],
            tag=data["tag"],
            exchange_time=ist_to_utc_iso(
                data["exchange_update_timestamp"] or data["exchange_timestamp"], KITE_TIME_FORMATS
            ),
            modified=modified,
        )

    def _status(
        self, broker_status: str, order_type: str | None, quantity: int | None, filled: int | None
    ) -> tuple[str, bool]:
        """Normalized status and the modified flag for a Kite status word."""
        key = status_word(broker_status)
        status = self.map_status(key) or self.unmapped_status(broker_status, quantity, filled)
        modified = key in self.MODIFY_STATUSES and not (filled and filled > 0 and key == "UPDATE")
        if modified and (order_type or "").upper() in ("SL", "SL-M"):
            status = OrderStatus.TRIGGER_PENDING
        return by_quantity(status, quantity, filled), modified


#: Keys (canonical) the checksum covers: a second copy with another value is refused.
SIGNED_FIELDS = frozenset({"orderid", "ordertimestamp"})


def _may_repeat_signed_field(body: bytes) -> bool:
    """Cheap pre-check: a signed key could appear twice (or hide behind a \\u escape) in this body."""
    folded = body.replace(b"_", b"").replace(b"-", b"").lower()
    return b"\\u" in body or folded.count(b'"orderid"') > 1 or folded.count(b'"ordertimestamp"') > 1


def _refuse_conflicting_signed_fields(body: bytes) -> None:
    """400 when a signed field appears twice at the top level with two different values."""
    seen: dict[str, Any] = {}
    top = json.loads(body.decode("utf-8-sig"), object_pairs_hook=lambda pairs: pairs)
    for key, value in top if isinstance(top, list) else ():
        name = canonical_key(str(key))
        if name not in SIGNED_FIELDS:
            continue
        value = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else value
        if name in seen and seen[name] != value:  # 220303000308932 and "220303000308932" are one value
            raise PostbackPayloadError(
                f"{key!r} is given twice with different values; Kite's checksum covers it, so one copy is expected"
            )
        seen.setdefault(name, value)


def kite_checksum(order_id: str, order_timestamp: str, api_secret: str) -> str:
    """sha256(order_id + order_timestamp + api_secret), hex: Kite's postback checksum (not an HMAC)."""
    return hashlib.sha256((order_id + order_timestamp + api_secret).encode()).hexdigest()


def _matches(given: bytes, expected: str) -> bool:
    """The checksum given equals the expected one (constant-time)."""
    return bool(given) and hmac.compare_digest(expected.encode(), given)


def _app_id(fields: dict[str, Any]) -> str | None:
    """The app a postback is for (KITE_APPS selects the secret by it); fields are canonical keys."""
    app_id = fields.get("appid")
    return None if app_id is None or isinstance(app_id, (dict, list)) else str(app_id)


def _side(value: str | None) -> str | None:
    """BUY/SELL from Kite's transaction_type."""
    value = (value or "").upper()
    return value if value in ("BUY", "SELL") else None
