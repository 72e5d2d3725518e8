"""Lenient field types for broker wire schemas: numbers, quantities and text as brokers really send them."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import fields

MAX_ABS_NUMBER = 1e15


def blank_to_none(value: Any) -> Any:
    """Empty and whitespace-only strings mean null on every broker (docs/brokers.md §1)."""
    if isinstance(value, str) and not value.strip():
        return None
    return value


class LenientField(fields.Field):
    """Broker fields are optional unless declared required: a missing one loads as None.

    `convert` is the whole conversion of a present, non-null value (marshmallow's `_deserialize` calls
    it; app/wire/loader.py calls it directly on the request path).
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


class LenientNumber(LenientField):
    """A number that may arrive as a JSON number or a numeric string; blanks are null.

    A numeric string must be ASCII: float() also reads Arabic-Indic, Devanagari or full-width digits
    ("१०" is 10.0), which no broker sends and an attacker could use to slip past a filter
    (docs/ingest.md, Edges of the request contract).
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


class LenientStr(LenientField):
    """Text that may arrive as a number; blanks are null, surrounding space is dropped.

    Any length and any character is taken: a broker does not resend a refused update, so its text must
    never cost the update. The event's text is fitted for storage afterwards (app/brokers/base.py
    fit_text: NUL replaced, cut to MAX_TEXT_LENGTH) and `raw` keeps the body as sent (docs/ingest.md,
    Text from brokers); the body limit (64 KiB) bounds a postback's strings.
    """

    default_error_messages = {
        "invalid": "Not a valid string: text or a number expected, not a list, object or boolean."
    }

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
        return text or None


class LenientCode(LenientStr):
    """A broker's code word (status, exchange, product...): ASCII only.

    "ﬁlled" (a ligature) upper-cases to "FILLED": a status word must not be read as one it only
    resembles (docs/ingest.md, Edges of the request contract). Adapters' status fields should use this type.
    """

    default_error_messages = {"invalid": "Not a valid code: ASCII text expected."}

    def convert(self, value: Any) -> Any:
        """The stripped ASCII text, or None for a blank."""
        text = super().convert(value)
        if text is not None and not text.isascii():
            raise self.make_error("invalid")
        return text


def is_ascii_text(value: Any) -> bool:
    """True for None or ASCII text: status words and numbers are compared as ASCII (docs/ingest.md)."""
    return value is None or (isinstance(value, str) and value.isascii())
