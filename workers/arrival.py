"""Arrival order: a batch is stored with every unstored earlier arrival of its orders, in entry-id order.

An update's arrival is its ingest stream entry id: Redis assigns it, increasing, at the XADD that comes
before the acknowledgment (docs/ingest.md), whichever web process took it. Loops read disjoint runs of
the stream but may commit in any order (and a killed loop's run is stored by another later), so before
storing, a loop looks at what other consumers hold (pending in the group: read, not yet acknowledged).
Every such entry of one of the batch's orders that arrived before one of the batch's joins the batch,
and the batch is stored in entry-id order. Every entry that arrived before one of ours is either
acknowledged (stored or dead-lettered) or pending, because the group hands entries out in id order; so
an order's stored events are always its earliest arrivals, and `sequence` and the state fold follow
arrival (app/store.py). The holder stores it too or finds it stored: the store skips known event ids.
"""

from __future__ import annotations

import json

import redis

from app.redis_keys import GROUP, STREAM

OrderKey = tuple[str, str]


def entry_order(entry_id: bytes | str) -> tuple[int, int]:
    """A stream entry id as a sortable pair: (milliseconds, sequence)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


def in_arrival_order(entries: list) -> list:
    """(id, fields) pairs sorted by entry id, each id once."""
    unique = {entry_id: fields for entry_id, fields in entries}
    return sorted(unique.items(), key=lambda entry: entry_order(entry[0]))


def order_key(fields: dict | None) -> OrderKey | None:
    """(broker, order_id) of a queued entry; None for one that cannot be decoded (it is dead-lettered)."""
    try:
        event = json.loads(fields[b"e"])
        return str(event["broker"]), str(event["order_id"])
    except (KeyError, TypeError, ValueError):
        return None


def pending_counts(client: redis.Redis) -> tuple[int, dict[str, int]]:
    """Entries pending in the group, in all and per consumer holding any (the XPENDING summary)."""
    summary = client.xpending(STREAM, GROUP)
    counts = {}
    for consumer in summary.get("consumers") or []:
        name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
        counts[name] = int(consumer["pending"])
    return int(summary.get("pending") or 0), counts


def earlier_arrivals(client: redis.Redis, me: str, entries: list) -> list:
    """Entries pending outside `entries` (held by other consumers) that arrived before one of theirs of the
    same order."""
    latest: dict[OrderKey, tuple[int, int]] = {}
    for entry_id, fields in entries:
        key = order_key(fields)
        if key is not None:
            latest[key] = max(latest.get(key, (0, 0)), entry_order(entry_id))
    if not latest:
        return []
    ours = {entry_id for entry_id, _ in entries}
    total, counts = pending_counts(client)
    if not any(n for name, n in counts.items() if name != me) and counts.get(me, 0) <= len(ours):
        return []  # nothing pending but this batch (an entry moves between consumers only from a holder)
    ms, seq = max(latest.values())
    # One snapshot of everything pending up to our newest, whoever holds it (entries may move meanwhile).
    pending = client.xpending_range(STREAM, GROUP, "-", f"{ms}-{seq}", total)
    held = {item["message_id"] for item in pending} - ours
    if not held:
        return []
    ordered = sorted(held, key=entry_order)
    found = []
    # The stream between the first and last held entry holds pending entries only (acked ones are deleted).
    for entry_id, fields in client.xrange(STREAM, ordered[0], ordered[-1]):
        if entry_id not in held:
            continue
        key = order_key(fields)
        if key in latest and entry_order(entry_id) < latest[key]:
            found.append((entry_id, fields))
    return found
