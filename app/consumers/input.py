"""What a consumer request may hold, checked once for the API and the CLI (docs/consumers.md "API").

Each refusal is a BadInput whose message says what to fix (the API answers it 400, the CLI as a usage error).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from app.brokers.registry import BROKER_NAMES
from app.consumers.filters import BadFilters, Filters, parse_filters
from app.consumers.model import (
    HTTP,
    REDIS_STREAM,
    RQ,
    TYPES,
    Consumer,
    function_problem,
    queue_problem,
    shown_url,
    stream_problem,
    url_problem,
)
from app.events import SOURCES, OrderStatus

MAX_DESCRIPTION = 500
FORBIDDEN = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
#: The fields each type's destination takes.
DESTINATION = {HTTP: ("url",), RQ: ("queue", "function"), REDIS_STREAM: ("stream",)}
COMMON = ("type", "description", "filters", "enabled")
CHANGEABLE = ("description", "filters", "enabled", "url")


class BadInput(ValueError):
    """A refused request (400); the message says what to fix."""


def known_values() -> dict[str, frozenset[str]]:
    """What brokers, statuses and sources a filter may name (accounts are free text)."""
    return {
        "brokers": frozenset(BROKER_NAMES),
        "statuses": frozenset(OrderStatus.ALL),
        "sources": frozenset(SOURCES),
    }


def new_consumer(payload: dict[str, Any]) -> dict[str, Any]:
    """POST /api/consumers: the keyword arguments of ConsumerStore.create (the type first)."""
    kind = payload.get("type")
    if kind not in TYPES:
        raise BadInput(f"type must be one of {list(TYPES)}")
    allowed = set(COMMON) | set(DESTINATION[kind])
    unknown = sorted(set(payload) - allowed)
    if unknown:
        raise BadInput(f"unknown fields {unknown} for {_a(kind)} consumer; it takes {sorted(allowed)}")
    for name in DESTINATION[kind]:
        if name not in payload:
            needed = " and ".join(f'"{field}"' for field in DESTINATION[kind])
            raise BadInput(f"{_a(kind)} consumer needs {needed}")
    problem = {
        "url": url_problem,
        "queue": queue_problem,
        "function": function_problem,
        "stream": stream_problem,
    }
    for name in DESTINATION[kind]:
        text = problem[name](payload[name])
        if text:
            raise BadInput(text)
    made: dict[str, Any] = {"kind": kind, **{name: payload[name] for name in DESTINATION[kind]}}
    made["description"] = description(payload.get("description", ""))
    made["filters"] = filters(payload.get("filters"))
    made["enabled"] = boolean(payload.get("enabled", True), "enabled")
    return made


def _a(kind: str) -> str:
    """The type with its article: "an http", "an rq", "a redis_stream"."""
    return f"an {kind}" if kind in (HTTP, RQ) else f"a {kind}"


def consumer_change(consumer: Consumer, payload: dict[str, Any]) -> dict[str, Any]:
    """PATCH /api/consumers/<id>: the keyword arguments of ConsumerStore.update."""
    unknown = sorted(set(payload) - set(CHANGEABLE))
    if unknown:
        raise BadInput(f"unknown fields {unknown}; a consumer's {list(CHANGEABLE)} can change")
    if not payload:
        raise BadInput(f"send at least one of {list(CHANGEABLE)}")
    changes: dict[str, Any] = {}
    if "description" in payload:
        changes["description"] = description(payload["description"])
    if "filters" in payload:
        changes["filters"] = changed_filters(consumer.filters, payload["filters"])
    if "enabled" in payload:
        changes["enabled"] = boolean(payload["enabled"], "enabled")
    if "url" in payload and consumer.url != payload["url"] == shown_url(consumer.url):
        payload = {k: v for k, v in payload.items() if k != "url"}  # the view's masked URL sent back: unchanged
    if "url" in payload:
        if consumer.type != HTTP:
            raise BadInput(f"url is for http consumers; this one is {consumer.type} (remove it and add another)")
        text = url_problem(payload["url"])
        if text:
            raise BadInput(text)
        changes["url"] = payload["url"]
    return changes


def description(value: Any) -> str:
    """Free text, at most MAX_DESCRIPTION characters, no control characters."""
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION or FORBIDDEN.search(value):
        raise BadInput(f"description must be text of at most {MAX_DESCRIPTION} characters without control characters")
    return value


def filters(value: Any) -> Filters:
    """The filters, each list checked against what events can hold."""
    try:
        return parse_filters(value, known=known_values())
    except BadFilters as exc:
        raise BadInput(str(exc)) from None


def changed_filters(current: Filters, value: Any) -> Filters:
    """A PATCH's filters: each list named replaces that list ([] clears it), the others keep their value; null
    clears all four (docs/consumers.md "Filters")."""
    given = filters(value)
    if value is None:
        return given
    return replace(current, **{name: getattr(given, name) for name in value})


def boolean(value: Any, name: str) -> bool:
    """true or false only."""
    if not isinstance(value, bool):
        raise BadInput(f"{name} must be true or false")
    return value
