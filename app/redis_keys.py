"""Every Redis key name and Lua script of the worker side, in one place.

The request path's own names (the `oh:ingest` stream, the `oh:dedup:` prefix) belong to app/ingest.py
and are re-exported here so worker code has one module to import names from.
"""

from __future__ import annotations

from app.ingest import DEDUP_PREFIX, STREAM

__all__ = [
    "CLAIM_DUE",
    "CONSUMERS_KEY",
    "DEAD_STREAM",
    "DEDUP_PREFIX",
    "DUE_PREFIX",
    "GROUP",
    "MARK_STALLED",
    "RESYNC_LEASE_KEY",
    "STALLED_KEY",
    "STATS_KEY",
    "STREAM",
]

#: Consumer group of the ingest stream; each worker process reads as its own consumer in it.
GROUP = "persist"
#: Entries that cannot be stored (undecodable, or refused by the database), kept with the reason.
DEAD_STREAM = "oh:ingest:dead"
#: Sorted set per forward consumer: delivery id -> when it is next due (or when its claim lapses).
DUE_PREFIX = "oh:due:"
#: Ids of every consumer that has a due set.
CONSUMERS_KEY = "oh:consumers"
#: At most one resync of pending deliveries from the database per interval, whichever process comes first.
RESYNC_LEASE_KEY = "oh:resync:lease"
#: {"reason", "since"} while the pipeline cannot make progress (Redis OOM, database away); TTL refreshed.
STALLED_KEY = "oh:pipeline:stalled"
#: Counters for /metrics: events_stored, deliveries_delivered, deliveries_failed, deliveries_retried.
STATS_KEY = "oh:stats"

# Claim up to ARGV[2] members due by ARGV[1], pushing each to ARGV[3] (the visibility deadline): a
# claimed delivery becomes due again by itself if its worker dies mid-attempt.
CLAIM_DUE = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[3], id) end
return ids
"""

# Set the stalled marker even when Redis is at maxmemory under noeviction: a script's first write
# is the only one checked against maxmemory, and PEXPIRE (a write that needs no memory) goes first.
# KEYS: the marker. ARGV: JSON value, TTL ms.
MARK_STALLED = """
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""
