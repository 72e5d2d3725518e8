"""Each account's last reconciliation, kept in Redis for GET /api/reconcile and /metrics, by the account's reconcile
name: the broker for the environment's account (as before accounts were data), `<broker>:<id>` for the others."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import redis

from app.redis_keys import reconcile_status_key, reconcile_unconfirmed_key

#: Hash fields other parts may read (docs/reconcile.md): counters are integers, times ISO 8601 UTC.
FIELDS = (
    "started_at",
    "finished_at",
    "reason",
    "orders_seen",
    "updates_found",
    "confirmations",
    "last_error",
    "last_error_at",
    "runs",
    "errors",
    "duration_ms",
    "account",
    "account_id",
)
INT_FIELDS = frozenset({"orders_seen", "updates_found", "confirmations", "runs", "errors", "duration_ms"})


@dataclass
class RunResult:
    """What one reconciliation of one account did; `name` keys its status (the broker's, by default)."""

    broker: str
    reason: str
    started_at: str
    name: str = ""
    #: The account's id and the broker's client id, for an account added as data ("" for the environment's).
    account: str = ""
    account_id: str = ""
    finished_at: str | None = None
    orders_seen: int = 0
    differing: int = 0
    updates_found: int = 0
    confirmations: int = 0
    error: str | None = None
    unconfirmed: dict[str, str] = field(default_factory=dict)
    resolved: set[str] = field(default_factory=set)
    duration_ms: int = 0

    def __post_init__(self) -> None:
        """The environment's account is keyed by the broker's name."""
        self.name = self.name or self.broker


def mark_started(client: redis.Redis, name: str, started_at: str, reason: str) -> None:
    """Note that a run began (finished_at stays the previous run's until this one ends)."""
    client.hset(reconcile_status_key(name), mapping={"started_at": started_at, "reason": reason[:200]})


def note_account(client: redis.Redis, result: RunResult) -> None:
    """Which account the status is of (GET /api/reconcile shows it; never a secret)."""
    client.hset(reconcile_status_key(result.name), mapping={"account": result.account, "account_id": result.account_id})


def mark_finished(client: redis.Redis, result: RunResult) -> None:
    """Record the run's outcome; last_error is empty when the run succeeded."""
    key = reconcile_status_key(result.name)
    pipe = client.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "finished_at": result.finished_at or "",
            "orders_seen": result.orders_seen,
            "updates_found": result.updates_found,
            "confirmations": result.confirmations,
            "last_error": result.error or "",
            "duration_ms": result.duration_ms,
        },
    )
    pipe.hincrby(key, "runs", 1)
    if result.error:
        pipe.hincrby(key, "errors", 1)
        pipe.hset(key, "last_error_at", result.finished_at or "")
    unconfirmed = reconcile_unconfirmed_key(result.name)
    if result.resolved:
        pipe.hdel(unconfirmed, *sorted(result.resolved))
    if result.unconfirmed:
        pipe.hset(
            unconfirmed,
            mapping={
                order_id: json.dumps({"since": result.finished_at, "error": why})
                for order_id, why in result.unconfirmed.items()
            },
        )
    pipe.execute()


def read_status(client: redis.Redis, name: str) -> dict[str, Any] | None:
    """The last run of the account reconciled as `name` as plain values, or None before its first run."""
    raw = client.hgetall(reconcile_status_key(name))
    if not raw:
        return None
    status: dict[str, Any] = {}
    for name in FIELDS:
        value = raw.get(name.encode())
        text = value.decode() if value is not None else None
        if name in INT_FIELDS:
            status[name] = int(text) if text and text.lstrip("-").isdigit() else 0
        else:
            status[name] = text or None
    return status


def read_unconfirmed(client: redis.Redis, name: str, limit: int = 100) -> list[dict[str, Any]]:
    """Orders whose postback terminal could not be confirmed, with why (at most `limit`)."""
    items = []
    for order_id, value in client.hgetall(reconcile_unconfirmed_key(name)).items():
        try:
            detail = json.loads(value)
        except ValueError:
            detail = {}
        items.append({"order_id": order_id.decode(), "since": detail.get("since"), "error": detail.get("error")})
        if len(items) >= limit:
            break
    return sorted(items, key=lambda item: item["order_id"])
