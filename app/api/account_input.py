"""What an account request may hold, checked once for the API and the CLI (docs/accounts.md "API").

marshmallow checks the JSON types and sizes; what a broker needs (its credentials, whether its login names the
account id) is checked against its `AccountSpec` (app/brokers/<name>/spec.py), so a refusal says what is
missing or unknown for that broker. Text never holds control characters or lone surrogates (PostgreSQL and the
encryption refuse them: a 500 otherwise).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from app.accounts.environment import environment_accounts
from app.accounts.model import SESSION_CREDENTIAL, Account, SessionState
from app.accounts.store import AccountExists
from app.api.orders import BadQuery, parse_time
from app.brokers.registry import BY_NAME, SPECS
from app.brokers.spec import REDIRECT, AccountSpec
from app.db import utcnow
from app.reconcile import request_reconcile

if TYPE_CHECKING:
    from app.services import Services

#: The accounts table's column sizes (app/db.py).
MAX_ACCOUNT_ID = 128
MAX_LABEL = 200
#: A credential or a day's token (Dhan's JWT is about 300 characters; Kite's 32).
MAX_SECRET = 4096
#: C0 and C1 controls, DEL and lone surrogates.
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: A broker's client id: printable ASCII without spaces.
ACCOUNT_ID = re.compile(r"^[!-~]+$")


class BadInput(Exception):
    """A request the API answers 400 (the CLI: a usage error); the message says what to fix."""


def clean_text(value: str) -> None:
    """Refuse control characters and lone surrogates."""
    if FORBIDDEN.search(value):
        raise ValidationError("must not hold control characters")


class StrictBoolean(fields.Field):
    """true or false only (marshmallow's Boolean also takes 1, "yes", "on")."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        """The boolean itself."""
        if not isinstance(value, bool):
            raise ValidationError("must be true or false")
        return value


def _text(maximum: int, **kwargs: Any) -> fields.String:
    """A string field of at most `maximum` characters without controls."""
    return fields.String(validate=[validate.Length(max=maximum), clean_text], **kwargs)


class NewAccount(Schema):
    """POST /api/accounts."""

    class Meta:
        unknown = RAISE

    broker = fields.String(required=True, validate=validate.Length(max=32))
    account_id = _text(MAX_ACCOUNT_ID, load_default="")
    label = _text(MAX_LABEL, load_default="")
    credentials = fields.Dict(
        keys=fields.String(validate=validate.Length(max=64)), values=fields.Raw(), load_default={}
    )
    feed = StrictBoolean(load_default=True)
    reconcile = StrictBoolean(load_default=True)


class AccountChange(Schema):
    """PATCH /api/accounts/<id>."""

    class Meta:
        unknown = RAISE

    label = _text(MAX_LABEL)
    credentials = fields.Dict(keys=fields.String(validate=validate.Length(max=64)), values=fields.Raw(allow_none=True))
    feed = StrictBoolean()
    reconcile = StrictBoolean()


class NewSession(Schema):
    """PUT /api/accounts/<id>/session."""

    class Meta:
        unknown = RAISE

    access_token = fields.Raw(required=True)
    expires_at = fields.Raw(load_default=None)


@dataclass(frozen=True)
class AccountRequest:
    """A checked POST: what AccountStore.create takes."""

    broker: str
    account_id: str
    label: str
    credentials: dict[str, str]
    feed: bool
    reconcile: bool
    session_token: str | None


def store_new_account(services: Services, wanted: AccountRequest) -> Account:
    """Store a checked new account (AccountExists on a duplicate); one given a token is reconciled at once,
    since what happened before it was added is only in the broker's order book."""
    twin = environment_twin(services, wanted)
    if twin is not None:
        raise EnvironmentTwin(
            f"{wanted.broker} account {wanted.account_id} is the environment's account ({twin.id}): its feed and "
            "reconciliation already run; remove its variables from the environment first to manage it here"
        )
    made = services.accounts.create(
        wanted.broker,
        wanted.account_id,
        label=wanted.label,
        credentials=wanted.credentials,
        feed=wanted.feed,
        reconcile=wanted.reconcile,
        session_token=wanted.session_token,
    )
    if made.session.state == SessionState.ACTIVE and made.reconcile:
        request_reconcile(services.redis, made.reconcile_name, "new session")
    return made


class EnvironmentTwin(AccountExists):
    """The account is the environment's already (its message says what to do)."""


def environment_twin(services: Services, wanted: AccountRequest) -> Account | None:
    """The environment's account of this broker with this client id: adding it again would connect it twice."""
    if not wanted.account_id:
        return None
    for account in environment_accounts(services.config):
        if account.broker == wanted.broker and account.account_id.strip().lower() == wanted.account_id.lower():
            return account
    return None


def decode_body(raw: bytes) -> dict[str, Any]:
    """The body as a JSON object; BadInput for anything else (invalid UTF-8, NaN, too deep, not an object)."""
    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise BadInput("the body must be a JSON object (UTF-8)") from None
    if not isinstance(payload, dict):
        raise BadInput("the body must be a JSON object")
    return payload


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON."""
    raise ValueError(name)


def _load(schema: Schema, payload: dict[str, Any]) -> dict[str, Any]:
    """marshmallow's load, its errors as one line."""
    try:
        return schema.load(payload)
    except ValidationError as exc:
        raise BadInput(flatten(exc.messages)) from None


def flatten(messages: Any) -> str:
    """marshmallow's nested error dict as one readable line (field: message)."""
    if isinstance(messages, dict):
        return "; ".join(f"{key}: {flatten(value)}" for key, value in messages.items())
    if isinstance(messages, list):
        return " ".join(flatten(m) for m in messages)
    return str(messages)


def account_spec(broker: str) -> AccountSpec:
    """The broker's AccountSpec; BadInput naming the brokers that take accounts."""
    spec = BY_NAME.get(broker)
    if spec is None or spec.accounts is None:
        known = ", ".join(s.name for s in SPECS if s.accounts is not None)
        if spec is None:
            raise BadInput(f"unknown broker {broker[:40]!r}: use one of {known}")
        raise BadInput(f"{broker} accounts cannot be added: use one of {known}")
    return spec.accounts


def account_id_required(spec: AccountSpec) -> bool:
    """False only for a redirect login whose answer names the account (Kite's user_id)."""
    return not (spec.login == REDIRECT and not spec.account_variable)


def secret_value(name: str, value: Any) -> str:
    """A credential or token: a non-blank string without controls, surrounding whitespace dropped."""
    if not isinstance(value, str):
        raise BadInput(f"{name} must be a string")
    value = value.strip()
    if not value:
        raise BadInput(f"{name} is blank")
    if len(value) > MAX_SECRET:
        raise BadInput(f"{name} is longer than {MAX_SECRET} characters")
    if FORBIDDEN.search(value):
        raise BadInput(f"{name} holds control characters: paste the value alone")
    return value


def _credential_names(broker: str, spec: AccountSpec) -> str:
    """The names a broker's account takes, for messages."""
    names = [c.name for c in spec.credentials] + [SESSION_CREDENTIAL]
    return ", ".join(names) if names else "none"


def new_account(payload: dict[str, Any]) -> AccountRequest:
    """A checked POST /api/accounts body; BadInput says what is missing or unknown for that broker."""
    data = _load(NewAccount(), payload)
    broker = data["broker"]
    spec = account_spec(broker)
    account_id = data["account_id"].strip()
    if not account_id and account_id_required(spec):
        raise BadInput(f"account_id is required for {broker}: the broker's client id of this account")
    if account_id and not ACCOUNT_ID.match(account_id):
        raise BadInput("account_id must be the broker's client id: printable ASCII without spaces")
    given = dict(data["credentials"])
    token = secret_value(SESSION_CREDENTIAL, given.pop(SESSION_CREDENTIAL)) if SESSION_CREDENTIAL in given else None
    credentials = _credentials(broker, spec, given)
    missing = [c.name for c in spec.credentials if c.required and c.name not in credentials]
    if missing:
        raise BadInput(f"{broker} accounts need credentials {', '.join(missing)}")
    return AccountRequest(
        broker=broker,
        account_id=account_id,
        label=data["label"].strip(),
        credentials=credentials,
        feed=data["feed"],
        reconcile=data["reconcile"],
        session_token=token,
    )


def _credentials(broker: str, spec: AccountSpec, given: dict[str, Any]) -> dict[str, str]:
    """Known credential names with string values; BadInput naming an unknown one."""
    unknown = sorted(name for name in given if spec.credential(name) is None)
    if unknown:
        shown = ", ".join(repr(name[:40]) for name in unknown[:5])
        raise BadInput(f"unknown {broker} credentials {shown}: {broker} takes {_credential_names(broker, spec)}")
    return {name: secret_value(f"credentials.{name}", value) for name, value in given.items()}


def account_change(broker: str, payload: dict[str, Any]) -> dict[str, Any]:
    """A checked PATCH body as AccountStore.update's keywords (credentials: null removes an optional one)."""
    data = _load(AccountChange(), payload)
    if not data:
        raise BadInput("name at least one of label, credentials, feed, reconcile")
    spec = account_spec(broker)
    if "credentials" in data:
        given = data["credentials"]
        if SESSION_CREDENTIAL in given:
            raise BadInput("the day's access_token is a session: PUT it to /api/accounts/<id>/session")
        removed = {name for name, value in given.items() if value is None}
        kept = _credentials(broker, spec, {k: v for k, v in given.items() if v is not None})
        required = sorted(name for name in removed if (c := spec.credential(name)) is not None and c.required)
        if required:
            raise BadInput(f"{broker} accounts need credentials {', '.join(required)}: they cannot be removed")
        unknown = sorted(name for name in removed if spec.credential(name) is None)
        if unknown:
            raise BadInput(f"unknown {broker} credentials {', '.join(repr(n[:40]) for n in unknown[:5])}")
        data["credentials"] = {**kept, **dict.fromkeys(removed)}
    if "label" in data:
        data["label"] = data["label"].strip()
    return data


def new_session(payload: dict[str, Any], now: datetime | None = None) -> tuple[str, datetime | None]:
    """A checked PUT session body: the token and its expiry (naive = UTC; a past one is refused)."""
    data = _load(NewSession(), payload)
    token = secret_value("access_token", data["access_token"])
    expires_at = parse_expiry(data["expires_at"], now)
    return token, expires_at


def parse_expiry(value: Any, now: datetime | None = None) -> datetime | None:
    """ISO 8601 (no zone = UTC), in the future, or None."""
    if value is None:
        return None
    try:
        moment = parse_time(value, "expires_at")
    except BadQuery as exc:
        raise BadInput(str(exc)) from None
    if moment <= (now or utcnow()):
        raise BadInput("expires_at is in the past: give the token's real expiry, or leave it out")
    return moment
