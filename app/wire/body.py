"""Hostile-input-safe JSON bodies: every malformed, repeated-key or unstorable body becomes a 400."""

from __future__ import annotations

import json
import re
from typing import Any

from app.exceptions import PostbackPayloadError


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
