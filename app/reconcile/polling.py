"""Polled order books (docs/reconcile.md "Polled order books"): brokers whose push cannot be used are reconciled
every few seconds instead of every RECONCILE_INTERVAL_SECONDS.

A broker declares it in its AccountSpec (`poll_variable`, e.g. GROWW_POLL_SECONDS); the scheduler of
workers/reconcile.py then runs each of its accounts that often, through the same engine: book rows that differ
from the stored state are queued with source "reconcile" and the ingestor's dedup drops what is known, so a poll
of an unchanged book stores nothing. Each read still waits its turn in the account's rate window
(app/brokers/rest.py), so a short period never exceeds the broker's limit.
"""

from __future__ import annotations

from app.brokers.registry import BY_NAME
from app.config import Config

#: The shortest period honoured, whatever a variable says: one book read a second per account at most.
MIN_POLL_SECONDS = 1.0


def poll_seconds(config: Config, broker: str) -> float | None:
    """How often the broker's accounts' books are read, or None when the broker is not polled."""
    spec = BY_NAME.get(broker)
    accounts = spec.accounts if spec is not None else None
    if accounts is None or not accounts.polled:
        return None
    return max(MIN_POLL_SECONDS, float(config.broker(broker)[accounts.poll_variable]))
