"""What never leaves the service: the secret keys a broker's spec declares (Kite's checksum), blanked in `raw`.

Its own module because adapters (app/brokers/base.py), the API and the raw log all need it, while
app/brokers/__init__.py loads the adapters: docs/brokers.md §3 says why the checksum must never leave.
"""

from __future__ import annotations

import re
from typing import Any

from app.brokers.registry import BY_NAME
from app.wire.keys import canonical_key

#: What a redacted value becomes: blank, as Kite itself sends the checksum on its WebSocket.
REDACTED = ""
_MAX_REDACT_DEPTH = 32


def redact_raw(broker: str, raw: Any) -> Any:
    """The payload with every non-blank secret value its broker declares (Kite's checksum) blanked.

    Takes parsed JSON (dicts and lists are walked, a copy is made only when something is blanked) or the
    JSON text/bytes as stored; anything else is returned unchanged.
    """
    spec = BY_NAME.get(broker)
    if spec is None or not spec.redact_keys:
        return raw
    keys = frozenset(spec.redact_keys)
    if isinstance(raw, (str, bytes)):
        return _redact_text(raw, keys)
    return _redact(raw, keys, 0)


def _fold(key: Any) -> str:
    """Keys compared as the adapters read them: case, "_" and "-" ignored (app/wire/keys.py canonical_key)."""
    return canonical_key(key) if isinstance(key, str) else canonical_key(str(key))


#: Per redact-key set: raw key -> whether it folds to one of them (bounded; a broker uses a few hundred keys).
_KEY_HITS: dict[frozenset[str], dict[Any, bool]] = {}
_KEY_HITS_SIZE = 4096


def _is_redacted_key(key: Any, keys: frozenset[str]) -> bool:
    """Whether a key folds to a redacted one, memoized: this runs for every key of every Kite update."""
    hits = _KEY_HITS.setdefault(keys, {})
    hit = hits.get(key)
    if hit is None:
        hit = _fold(key) in keys
        if len(hits) < _KEY_HITS_SIZE and isinstance(key, str) and len(key) <= 64:
            hits[key] = hit
    return hit


def _redact(value: Any, keys: frozenset[str], depth: int) -> Any:
    """Walk dicts and lists; a changed container is copied, an unchanged one returned as is."""
    if depth > _MAX_REDACT_DEPTH:
        return value
    if isinstance(value, dict):
        out = None
        for key, item in value.items():
            if _is_redacted_key(key, keys):
                if item is None or (isinstance(item, str) and not item.strip()):
                    continue
                new = REDACTED
            elif isinstance(item, (dict, list)):
                new = _redact(item, keys, depth + 1)
                if new is item:
                    continue
            else:
                continue
            out = dict(value) if out is None else out
            out[key] = new
        return value if out is None else out
    if isinstance(value, list):
        items = [_redact(item, keys, depth + 1) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def _redact_text(text: str | bytes, keys: frozenset[str]) -> str | bytes:
    """JSON text with `"key": "value"` pairs of the redacted keys blanked (any spelling that folds to them)."""
    is_bytes = isinstance(text, bytes)
    source = text.decode("utf-8", errors="replace") if is_bytes else text

    def blank(match: re.Match[str]) -> str:
        return match.group(1) + '""' if _fold(match.group(2)) in keys else match.group(0)

    result = _PAIR.sub(blank, source)
    if result == source:
        return text
    return result.encode("utf-8") if is_bytes else result


_PAIR = re.compile(r'("((?:[^"\\]|\\.)*)"\s*:\s*)"(?:[^"\\]|\\.)*"')
