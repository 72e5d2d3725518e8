"""Deliveries as domain code: retry policy, the due schedule in Redis, and the bookkeeping that the
worker, the API (app/api/deliveries.py) and the CLI (app/cli.py) share without importing workers/."""

from __future__ import annotations

from app.delivery.bookkeeping import (
    DeliveryTry,
    disable_consumer,
    disabled_reason,
    enable_consumer,
    fail_all,
    failed_ids,
    load_tries,
    of_removed_consumers,
    record_outcomes,
    redrive,
    redrive_many,
)
from app.delivery.policy import Outcome, host_and_port, next_delay, parse_retry_after
from app.delivery.schedule import claim_due, has_due, resync_pending, schedule_now

__all__ = [
    "DeliveryTry",
    "Outcome",
    "claim_due",
    "disable_consumer",
    "disabled_reason",
    "enable_consumer",
    "fail_all",
    "failed_ids",
    "has_due",
    "host_and_port",
    "load_tries",
    "next_delay",
    "of_removed_consumers",
    "parse_retry_after",
    "record_outcomes",
    "redrive",
    "redrive_many",
    "resync_pending",
    "schedule_now",
]
