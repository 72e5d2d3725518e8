"""The template every broker adapter fills in: check the gate, parse, verify, validate, normalize.

Adapters are framework-free: they see bytes, headers and the config, and raise PostbackError
subclasses whose status codes come from docs/interface.md. The HTTP handler and the WebSocket feeds both
end in `normalize`, so a postback and a feed message of the same update become the same event.
Each adapter's name, route kind and status words come from its package's spec (app/brokers/<name>/spec.py).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import TYPE_CHECKING, Any, ClassVar

from marshmallow import EXCLUDE, Schema, ValidationError

from app.brokers.redaction import redact_raw
from app.brokers.spec import PATH_TOKEN, BrokerSpec, status_word
from app.config import Config
from app.events import OrderEvent, OrderStatus
from app.exceptions import PostbackPayloadError, UnknownTokenError
from app.wire.body import loads_object
from app.wire.fields import is_ascii_text
from app.wire.keys import canonical_key, canonical_keys
from app.wire.loader import loader_for

if TYPE_CHECKING:
    from app.ingest.postback_accounts import PostbackAccounts, PostbackOwner

log = logging.getLogger(__name__)


class BrokerSchema(Schema):
    """Base for wire-shape schemas: keys arrive folded by canonical_key; unknown keys are kept in raw only."""

    class Meta:
        unknown = EXCLUDE


class BrokerAdapter:
    """One broker's postback dialect: its gate, parsing, verification and status map."""

    #: The broker's declaration; name, route kind and status words below are derived from it.
    spec: ClassVar[BrokerSpec | None] = None
    #: Broker name as it appears in URLs and events.
    name: ClassVar[str] = ""
    #: False for brokers without an HTTP postback: no route then.
    http_postbacks: ClassVar[bool] = True
    #: Unsigned brokers (docs/brokers.md §1) are gated by the secret POSTBACK_TOKEN in the path.
    path_token: ClassVar[bool] = True
    #: Repair keys without values before parsing (Dhan's documented sample, docs/brokers.md §4).
    lenient_json: ClassVar[bool] = False
    #: Refuse a key given twice or in two spellings (no broker needs it now: Kite checks its signed fields itself).
    strict_keys: ClassVar[bool] = False
    #: Raw status word (as status_word folds it) -> normalized status.
    STATUS_MAP: ClassVar[dict[str, str]] = {}
    #: Raw status words that announce a modification of a live order (the event's `modified` flag).
    MODIFY_STATUSES: ClassVar[frozenset[str]] = frozenset()
    #: marshmallow schema for the wire shape, over canonical keys.
    schema: ClassVar[Schema | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take name, route kind and status words from the spec a subclass declares."""
        super().__init_subclass__(**kwargs)
        spec = cls.__dict__.get("spec")
        if spec is not None:
            cls.name = spec.name
            cls.http_postbacks = spec.postback is not None
            cls.path_token = spec.postback == PATH_TOKEN
            cls.STATUS_MAP = dict(spec.status_map)
            cls.MODIFY_STATUSES = spec.modify_statuses

    def __init__(self, config: Config) -> None:
        self.config = config
        # Names of the schema's required fields (a blank one is as good as missing), looked up once.
        self._required = tuple(
            name for name, declared in (self.schema.fields if self.schema else {}).items() if declared.required
        )

    # Subclass implementation:

    def verify(
        self,
        body: bytes,
        payload: dict[str, Any],
        headers: Mapping[str, str],
        *,
        accounts: PostbackAccounts | None = None,
    ) -> PostbackOwner | None:
        """Check the broker's signature, if it has one; raise PostbackVerificationError. A secret of accounts
        added as data answers the accounts the postback may name (docs/accounts.md "Postbacks")."""
        return None

    def normalize(self, data: dict[str, Any], raw: Any, *, source: str, received_at: str) -> OrderEvent:
        """Turn validated fields into the normalized event."""
        raise NotImplementedError(f"{type(self).__name__} must implement normalize()")

    # Shared steps (subclasses shouldn't need to override):

    def check_token(self, token: str | None, accounts: PostbackAccounts | None = None) -> PostbackOwner | None:
        """None for one of POSTBACK_TOKEN's (constant-time, no database), the account for an account's own token
        of this broker; 404 otherwise (docs/accounts.md "Postbacks")."""
        if not self.path_token:
            return None
        given = (token or "").encode("utf-8", errors="surrogatepass")
        # any() may stop early: that only reveals *which* configured token matched, never its bytes.
        if given and any(hmac.compare_digest(given, t.encode()) for t in self.config.postback_tokens):
            return None
        owner = accounts.by_token(self.name, token) if accounts is not None and token else None
        if owner is None:
            raise UnknownTokenError(
                "unknown postback URL: check the token in the path against POSTBACK_TOKEN or the account's own URL"
            )
        return owner

    def parse_body(self, body: bytes) -> dict[str, Any]:
        """The body as a JSON object (400 otherwise)."""
        return loads_object(body, lenient=self.lenient_json, strict_keys=self.strict_keys)

    def validate(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Run the wire schema over canonical keys; a ValidationError becomes a 400 naming the fields."""
        if self.schema is None:
            raise NotImplementedError(f"{type(self).__name__} must declare a schema")
        try:
            # The schema compiled once into a fast loader; errors still come from
            # marshmallow (app/wire/loader.py compile_loader: 56 -> 15 us per Kite body).
            data = loader_for(self.schema)(canonical_keys(payload, strict=self.strict_keys))
        except ValidationError as exc:
            messages = exc.messages if isinstance(exc.messages, dict) else {"body": exc.messages}
            spelled = _spellings(payload)
            named = {spelled.get(key, key): value for key, value in messages.items()}
            raise PostbackPayloadError(f"invalid {self.name} order update: {_flatten(named)}") from None
        # A status word must be ASCII: "ﬁlled" upper-cases to "FILLED" (docs/ingest.md).
        if not is_ascii_text(data.get("status")):
            raise PostbackPayloadError(f"invalid {self.name} order update: the status must be ASCII text")
        for name in self._required:
            if data.get(name) is None:
                key = self.schema.fields[name].data_key or name
                raise PostbackPayloadError(
                    f"invalid {self.name} order update: {_spellings(payload).get(key, key)} is blank"
                )
        return data

    def event_from_payload(self, payload: dict[str, Any], *, source: str, received_at: str) -> OrderEvent:
        """Validate and normalize one parsed payload (the path postbacks and feeds share)."""
        event = self.normalize(self.validate(payload), self.redact(payload), source=source, received_at=received_at)
        _check_storable(self.name, event)
        return fit_text(event)

    def receive(
        self,
        body: bytes,
        headers: Mapping[str, str],
        *,
        token: str | None,
        received_at: str,
        accounts: PostbackAccounts | None = None,
    ) -> OrderEvent:
        """The whole postback path up to (not including) the queue: gate, parse, verify, normalize, and (for a
        postback let in by an account's token or secret) its account_id checked against that account's."""
        owner = self.check_token(token, accounts)
        payload = self.parse_body(body)
        owner = self.verify(body, payload, headers, accounts=accounts) or owner
        event = self.event_from_payload(payload, source="postback", received_at=received_at)
        return owner.claim(event) if owner is not None else event

    # Helpers for subclasses:

    def map_status(self, raw_status: str | None) -> str | None:
        """Normalized status for a raw one via STATUS_MAP, or None when unknown."""
        if raw_status is None:
            return None
        return self.STATUS_MAP.get(status_word(raw_status))

    def is_known_status(self, raw_status: Any) -> bool:
        """True when this adapter maps the status word; an unknown one is stored but should be counted and alerted."""
        return raw_status is not None and self.map_status(raw_status) is not None

    def redact(self, raw: Any) -> Any:
        """The payload as it may leave the service: the spec's secret keys (Kite's checksum) blanked."""
        return redact_raw(self.name, raw) if self.spec is not None and self.spec.redact_keys else raw

    def status_of(self, raw_status: str | None, quantity: int | None, filled: int | None) -> str:
        """The mapped status (or the unmapped one's), with PARTIALLY_FILLED and FILLED from the quantities
        (docs/brokers.md §2)."""
        return by_quantity(
            self.map_status(raw_status) or self.unmapped_status(raw_status, quantity, filled), quantity, filled
        )

    def unmapped_status(self, raw_status: str | None, quantity: int | None, filled: int | None) -> str:
        """A status word not in the map: keep the update, never let it move the state (docs/brokers.md §2).

        The event is stored with the raw word in broker_status and a status that cannot advance the
        order: PENDING (the lowest rank), or what the quantities prove when something is filled.
        """
        log.warning("%s: unknown order status %r; stored, state not advanced by it", self.name, raw_status)
        if filled and filled > 0:
            return by_quantity(OrderStatus.OPEN, quantity, filled)
        return OrderStatus.PENDING


def code_from(table: dict[str, str], value: str | None) -> str | None:
    """A broker code in our words via a table (upper-cased; unknown codes pass through upper-cased)."""
    if not value:
        return None
    return table.get(value.upper(), value.upper())


def pending_from(status: str, quantity: int | None, filled: int | None, reported: int | None = None) -> int | None:
    """The broker's pending figure if it sent one; else none on a closed order, or quantity - filled."""
    if reported is not None:
        return reported
    if status in OrderStatus.TERMINAL:
        return 0
    if quantity is not None and filled is not None:
        return max(quantity - filled, 0)
    return None


def by_quantity(status: str, quantity: int | None, filled: int | None) -> str:
    """PARTIALLY_FILLED comes from quantities (0 < filled < quantity), not from status words (docs/brokers.md §2)."""
    if status in (OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED):
        if quantity and filled is not None and 0 < filled < quantity:
            return OrderStatus.PARTIALLY_FILLED
        if quantity and filled is not None and filled >= quantity:
            return OrderStatus.FILLED
    return status


def _spellings(payload: dict[str, Any]) -> dict[str, str]:
    """Canonical key -> the key as the broker spelled it (for error messages)."""
    return {canonical_key(str(key)): str(key) for key in payload}


MAX_ID_LENGTH = 128  # the width of the order_id and account_id columns (app/db.py)
#: Fields that identify an order: refused when they cannot be stored as sent (an altered id is another order).
ID_FIELDS = ("order_id", "account_id", "exchange_order_id")
#: The longest text an event keeps in any other field; longer is cut (docs/ingest.md, Text from brokers).
MAX_TEXT_LENGTH = 2048
#: Ends a cut text, so a reader knows there was more (the whole text stays in `raw`).
CUT_MARKER = "\u2026"
#: What a NUL in a text field becomes: PostgreSQL text cannot hold U+0000 (docs/ingest.md, Text from brokers).
NUL_REPLACEMENT = "\ufffd"
#: The event's text fields that fit_text may change: everything but the ids and what the service writes itself.
TEXT_FIELDS = tuple(
    f.name
    for f in dataclass_fields(OrderEvent)
    if f.type in ("str | None", "str") and f.name not in (*ID_FIELDS, "broker", "source", "status", "received_at")
)


def _check_storable(broker: str, event: OrderEvent) -> None:
    """Refuse (400) what could be acknowledged but never stored: an empty, over-long or NUL-holding id."""
    if not event.order_id:
        raise PostbackPayloadError(f"invalid {broker} order update: the order id is blank")
    for name in ID_FIELDS:
        value = getattr(event, name)
        if value is None:
            continue
        if len(value) > MAX_ID_LENGTH:
            raise PostbackPayloadError(
                f"invalid {broker} order update: {name} is longer than {MAX_ID_LENGTH} characters ({len(value)})"
            )
        if "\x00" in value:
            raise PostbackPayloadError(
                f"invalid {broker} order update: {name} contains a NUL character (U+0000), which no id has"
            )


def fit_text(event: OrderEvent) -> OrderEvent:
    """The event with its broker text storable: NUL replaced, cut at MAX_TEXT_LENGTH (raw keeps it whole).

    A broker does not resend a refused update, so text never costs one (docs/ingest.md, Text from brokers).
    """
    changes = {}
    for name in TEXT_FIELDS:
        value = getattr(event, name)
        if value is not None and (len(value) > MAX_TEXT_LENGTH or "\x00" in value):
            changes[name] = fitted_text(value)
    return replace(event, **changes) if changes else event


def fitted_text(text: str) -> str:
    """One text as an event keeps it: NUL as U+FFFD, at most MAX_TEXT_LENGTH characters, a cut one ending in …."""
    text = text.replace("\x00", NUL_REPLACEMENT)
    if len(text) > MAX_TEXT_LENGTH:
        text = text[: MAX_TEXT_LENGTH - len(CUT_MARKER)] + CUT_MARKER
    return text


def _flatten(messages: Any) -> str:
    """marshmallow's nested error dict as one readable line."""
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(_flatten(m) for m in messages)
    return json.dumps(messages) if not isinstance(messages, str) else messages
