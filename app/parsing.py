"""Lenient, hostile-input-safe parsing shared by every broker adapter (docs/brokers.md §1 finding 4)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from marshmallow import Schema, ValidationError, fields, missing

from app.exceptions import PostbackPayloadError

IST = timezone(timedelta(hours=5, minutes=30), "IST")
MAX_ABS_NUMBER = 1e15


def _reject_constant(name: str) -> Any:
    """JSON has no NaN or Infinity; Python's json module would accept them."""
    raise ValueError(f"{name} is not a valid JSON number")


def decode_text(body: bytes) -> str:
    """UTF-8 text of a body (a BOM is tolerated), or a 400 that says so."""
    try:
        return body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PostbackPayloadError(f"body is not valid UTF-8 (byte {exc.start})") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object whose keys are all different: a repeated key would let two readers see two values."""
    data = dict(pairs)
    if len(data) != len(pairs):
        seen: set[str] = set()
        repeated = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise ValueError(f"key {repeated!r} appears twice")
    return data


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def loads(text: str, *, unique_keys: bool = False) -> Any:
    """json.loads that turns every kind of hostile input into a 400; `unique_keys` refuses a repeated key."""
    try:
        hook = _unique_keys if unique_keys else None
        data = json.loads(text, parse_constant=_reject_constant, object_pairs_hook=hook)
        if _SURROGATE_ESCAPE.search(text):
            # A lone surrogate escape decodes to text no database or consumer can take; pairs are fine.
            json.dumps(data, ensure_ascii=False).encode()
        return data
    except UnicodeEncodeError:
        raise PostbackPayloadError("body is not valid JSON: it escapes a lone UTF-16 surrogate") from None
    except RecursionError:
        raise PostbackPayloadError("body is nested too deeply to be an order update") from None
    except ValueError as exc:
        raise PostbackPayloadError(f"body is not valid JSON: {exc}") from None


def loads_object(body: bytes, *, lenient: bool = False, strict_keys: bool = False) -> dict[str, Any]:
    """Parse a body that must hold one JSON object; `lenient` repairs keys with no value, `strict_keys`
    refuses a key given twice (a signed body must not let two readers see two values)."""
    text = decode_text(body)
    if not text.strip():
        raise PostbackPayloadError("body is empty; send the broker's JSON order update as the raw POST body")
    if lenient:
        text = repair_missing_values(text)
    data = loads(text, unique_keys=strict_keys)
    if not isinstance(data, dict):
        raise PostbackPayloadError(f"body must be a JSON object, not {type(data).__name__}")
    return data


def repair_missing_values(text: str) -> str:
    """Insert null where a key has no value (`"legName": ,`), as in Dhan's own sample (docs/brokers.md §4.1)."""
    out: list[str] = []
    in_string = escaped = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        out.append(ch)
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == ":":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in ",}]" or j == n:
                out.append(" null")
        i += 1
    return "".join(out)


_CANONICAL: dict[str, str] = {}
_CANONICAL_CACHE_SIZE = 4096  # brokers use a few hundred key spellings; hostile keys are not kept


def canonical_key(key: str) -> str:
    """`orderId`, `order_id`, `OrderId` and `ORDER_ID` are one field (docs/brokers.md §4.2: docs differ from wire)."""
    folded = _CANONICAL.get(key)
    if folded is None:
        folded = key.replace("_", "").replace("-", "").lower()
        if len(_CANONICAL) < _CANONICAL_CACHE_SIZE and len(key) <= 64:
            _CANONICAL[key] = folded
    return folded


def canonical_keys(data: dict[str, Any], *, strict: bool = False) -> dict[str, Any]:
    """Top-level keys folded with canonical_key; on a clash the first spelling wins, or (strict) a 400.

    Strict matters for Kite: the checksum and the schema must read the very same order_id. Unsigned
    brokers are parsed leniently (docs/brokers.md §1: their docs even repeat keys).
    """
    # Fast path: one comprehension over the cache, kept only when no two keys fold alike (a clash needs
    # the loop below for first-wins or the 400). 34-key Kite body: 11 -> 3 us per call (timeit, this machine).
    get = _CANONICAL.get
    try:
        folded = {get(key) or canonical_key(key): value for key, value in data.items()}
    except (AttributeError, TypeError):  # a key that is not a string (feeds may hand other dicts)
        folded = {}
    if len(folded) == len(data):
        return folded
    folded = {}
    spelled: dict[str, str] = {}
    for key, value in data.items():
        name = canonical_key(str(key))
        if name in folded:
            if strict:
                raise PostbackPayloadError(f"fields {spelled[name]!r} and {key!r} are the same field given twice")
            continue
        folded[name] = value
        spelled[name] = str(key)
    return folded


def blank_to_none(value: Any) -> Any:
    """Empty and whitespace-only strings mean null on every broker (docs/brokers.md §1)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class _Optional(fields.Field):
    """Broker fields are optional unless declared required: a missing one loads as None.

    `convert` is the whole conversion of a present, non-null value (marshmallow's `_deserialize` calls
    it; `compile_loader` calls it directly on the request path).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if not kwargs.get("required"):
            kwargs.setdefault("load_default", None)
        super().__init__(*args, **kwargs)

    def convert(self, value: Any) -> Any:
        """The field's value from the wire value; ValidationError (via make_error) when it is not one."""
        raise NotImplementedError

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self.convert(value)


class LenientNumber(_Optional):
    """A number that may arrive as a JSON number or a numeric string; blanks are null.

    A numeric string must be ASCII: float() also reads Arabic-Indic, Devanagari or full-width digits
    ("१०" is 10.0), which no broker sends and an attacker could use to slip past a filter (issue 12).
    """

    integral = False
    default_error_messages = {
        "invalid": "Not a valid number.",
        "range": "Number is out of range.",
    }

    def convert(self, value: Any) -> Any:
        """The number, or None for a blank."""
        kind = type(value)
        if kind is str:
            text = value.strip()
            if not text:
                return None
            if not text.isascii():
                raise self.make_error("invalid")
            try:
                number = float(text.replace(",", ""))
            except (ValueError, OverflowError):
                raise self.make_error("invalid") from None
        elif kind is int or kind is float or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            try:
                number = float(value)
            except OverflowError:
                raise self.make_error("invalid") from None
        else:
            raise self.make_error("invalid")
        if not math.isfinite(number) or abs(number) > MAX_ABS_NUMBER:
            raise self.make_error("range")
        if self.integral:
            if number != int(number) or number < 0:  # quantities: whole and never negative
                raise self.make_error("invalid")
            return int(number)
        return number


class LenientInt(LenientNumber):
    """A whole quantity: 5, 5.0, "5" and "5.0" all read as 5."""

    integral = True
    default_error_messages = {"invalid": "Not a valid whole, non-negative number.", "range": "Number is out of range."}


class LenientStr(_Optional):
    """Text that may arrive as a number; blanks are null, surrounding space is dropped."""

    default_error_messages = {"invalid": "Not a valid string."}

    def convert(self, value: Any) -> Any:
        """The stripped text, or None for a blank."""
        if type(value) is str:  # the common case first (str): one type check instead of four
            text = value.strip()
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.make_error("invalid")
        elif isinstance(value, float) and not math.isfinite(value):
            raise self.make_error("invalid")
        else:
            text = str(value).strip()
        if not text:
            return None
        if len(text) > 1024 or "\x00" in text:
            raise self.make_error("invalid")
        return text


class LenientCode(LenientStr):
    """A broker's code word (status, exchange, product...): ASCII only.

    "ﬁlled" (a ligature) upper-cases to "FILLED": a status word must not be read as one it only
    resembles (issue 12). Adapters' status fields should use this type.
    """

    default_error_messages = {"invalid": "Not a valid code: ASCII text expected."}

    def convert(self, value: Any) -> Any:
        """The stripped ASCII text, or None for a blank."""
        text = super().convert(value)
        if text is not None and not text.isascii():
            raise self.make_error("invalid")
        return text


def is_ascii_text(value: Any) -> bool:
    """True for None or ASCII text: status words and numbers are compared as ASCII (issue 12)."""
    return value is None or (isinstance(value, str) and value.isascii())


_MISSING = object()


def compile_loader(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """`schema.load` for valid input at a fraction of its cost; anything unusual goes to `schema.load`.

    Built once per schema. It only applies to schemas made of this module's lenient fields with no
    hooks and no validators (else it is `schema.load` itself); the first missing required field, null
    or invalid value hands the whole input to `schema.load`, so errors (and their messages) are
    marshmallow's. Measured on the 21-field Kite schema: 56 -> 15 us per load (timeit, this machine).
    """
    plan = []
    if any(schema._hooks.values()):  # pre_load and friends: only marshmallow knows the order they run in
        return schema.load
    for name, field in schema.load_fields.items():
        if (
            not isinstance(field, _Optional)
            or field.validators
            or field.pre_load
            or field.post_load
            or callable(field.load_default)
        ):
            return schema.load
        key = field.data_key if field.data_key is not None else name
        attr = field.attribute or name
        default = None if field.load_default is missing else field.load_default
        plan.append((key, attr, field.convert, field.required, field.allow_none, default))

    def load(data: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, attr, convert, required, allow_none, default in plan:
            value = data.get(key, _MISSING)
            if value is _MISSING:
                if required:
                    return schema.load(data)
                out[attr] = default
            elif value is None:
                if not allow_none:
                    return schema.load(data)
                out[attr] = None
            else:
                try:
                    out[attr] = convert(value)
                except ValidationError:
                    return schema.load(data)
        return out

    return load


_LOADERS: dict[int, tuple[Schema, Callable[[dict[str, Any]], dict[str, Any]]]] = {}


def loader_for(schema: Schema) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """compile_loader(schema), compiled on first use and kept for the process."""
    entry = _LOADERS.get(id(schema))
    if entry is None or entry[0] is not schema:
        entry = _LOADERS[id(schema)] = (schema, compile_loader(schema))
    return entry[1]


# Sentinels meaning "no time" (docs/brokers.md §4.1: "0000-00-00 00:00:00"; Tiqs: "01-01-1980 00:00:00").
_NULL_TIME = re.compile(r"^(0000-00-00|0001-01-01|01-01-1980|1980-01-01)")


def ist_to_utc_iso(value: Any, formats: tuple[str, ...]) -> str | None:
    """An exchange time in IST (as brokers send it) as UTC ISO 8601, or None for blanks and sentinels."""
    if isinstance(value, str) and len(value) <= 40:
        return _ist_text_to_utc_iso(value, formats)
    return _ist_to_utc_iso(value, formats)


@lru_cache(maxsize=4096)
def _ist_text_to_utc_iso(value: str, formats: tuple[str, ...]) -> str | None:
    """Cached: updates of one burst share their seconds, and strptime is slow."""
    return _ist_to_utc_iso(value, formats)


def _ist_to_utc_iso(value: Any, formats: tuple[str, ...]) -> str | None:
    """The uncached conversion."""
    value = blank_to_none(value)
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_to_utc_iso(value)
    text = str(value).strip()
    if _NULL_TIME.match(text):
        return None
    for fmt in formats:
        try:
            parsed = datetime.strptime(text, fmt)
        except ValueError:
            continue
        return utc_iso(parsed.replace(tzinfo=IST))
    return None


def epoch_to_utc_iso(value: Any) -> str | None:
    """Epoch seconds (number or numeric string) as UTC ISO 8601."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(seconds) or seconds <= 0 or seconds > 1e10:
        return None
    return utc_iso(datetime.fromtimestamp(seconds, tz=UTC))


def utc_iso(moment: datetime) -> str:
    """UTC ISO 8601 with a Z, the one time format in every event."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def utc_now_iso() -> str:
    """Now, as every `received_at` is written."""
    return utc_iso(datetime.now(UTC))
