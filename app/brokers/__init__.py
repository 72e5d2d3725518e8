"""Brokers, one package each (app/brokers/<name>/: spec, adapter, feed, REST client); the registry is registry.py.

Importing this package loads the specs only (plain data): app/config.py and app/events.py derive their
constants from them, while adapters and connectors, which import the config, are loaded on first use.
"""

from __future__ import annotations

import importlib
import math
import re
from typing import TYPE_CHECKING, Any

from app.brokers.registry import BY_NAME, SPECS
from app.brokers.spec import MODIFIED, status_word
from app.wire.keys import canonical_key

if TYPE_CHECKING:
    from app.brokers.base import BrokerAdapter
    from app.brokers.feed import FeedConnector

#: What a redacted value becomes: blank, as Kite itself sends the checksum on its WebSocket.
REDACTED = ""
_MAX_REDACT_DEPTH = 32


def load(path: str) -> Any:
    """The object a spec names as "module:attribute"."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


def adapter_classes() -> dict[str, type[BrokerAdapter]]:
    """Broker name -> adapter class, from the specs."""
    return {spec.name: load(spec.adapter) for spec in SPECS}


def connector_classes() -> dict[str, type[FeedConnector]]:
    """FEEDS name -> connector class, from the specs (only the feeds process needs these)."""
    return {feed.name: load(feed.connector) for spec in SPECS for feed in spec.feeds}


def rest_client_classes() -> dict[str, Any]:
    """Broker name -> REST order-book client class, for the brokers whose spec names one."""
    return {spec.name: load(spec.rest) for spec in SPECS if spec.rest}


def postback_brokers() -> list[tuple[str, str]]:
    """(broker, route) for every broker that takes HTTP postbacks, e.g. ("dhan", "/postbacks/dhan/<POSTBACK_TOKEN>")."""
    return [(spec.name, spec.postback_route) for spec in SPECS if spec.postback_route]


def is_known_status(broker: str, broker_status: Any) -> bool:
    """True when the broker's status word (or code) is one its spec maps; unknown words are stored but counted.

    For Jainam the default numeric table is used; a deployment's JAINAM_STATUS_MAP is known to its adapter,
    so prefer `services.adapters[broker].is_known_status(...)` where an adapter is at hand.
    """
    spec = BY_NAME.get(broker)
    if spec is None or broker_status is None:
        return False
    return _status_key(broker_status) in spec.status_map


def _status_key(broker_status: Any) -> str:
    """A status as the maps spell it: words folded, numbers (5, "5", 5.0) as their integer text."""
    word = status_word(broker_status)
    try:
        number = float(word)
    except ValueError:
        return word
    return str(int(number)) if math.isfinite(number) and number == int(number) else word


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
    """Keys compared as the adapters read them: case, "_" and "-" ignored (app/parsing.py canonical_key)."""
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

__all__ = [
    "MODIFIED",
    "SPECS",
    "adapter_classes",
    "connector_classes",
    "is_known_status",
    "load",
    "postback_brokers",
    "redact_raw",
    "rest_client_classes",
]


def __getattr__(name: str) -> Any:
    """ADAPTERS (broker -> adapter class), built on first use so importing specs never imports the config."""
    if name == "ADAPTERS":
        return adapter_classes()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
