"""Every Redis key, stream, consumer group and channel name Orderhook uses, and the worker side's Lua scripts.

A module that reads or writes Redis imports its names from here, so one module can read another's keys
without spelling them. RQ's own keys (`rq:*`) are RQ's, made from the queue names in workers/queues.py;
limits makes the rate-limit keys under RATE_LIMIT_PREFIX. The values never change: the data in a running
Redis must stay readable across a deploy.
"""

from __future__ import annotations

__all__ = [
    "ALERTS_GROUP",
    "ALERTS_LOCK_KEY",
    "ALERTS_PARTS_KEY",
    "ALERTS_SEEN_PREFIX",
    "ALERTS_STATUS_KEY",
    "ALERTS_STREAM",
    "ALERTS_WATERMARK_KEY",
    "ALIVE_PREFIX",
    "AUTO_LOGIN_PREFIX",
    "CLAIM_DUE",
    "CONSUMERS_KEY",
    "CONSUMERS_REVISION_KEY",
    "CONSUMER_TESTS_KEY",
    "CONSUMER_TEST_PREFIX",
    "DEAD_STREAM",
    "DEDUP_PREFIX",
    "DEV_SIGNIN_PREFIX",
    "DUE_PREFIX",
    "FEED_LEASE_PREFIX",
    "FEED_PROCESSES_KEY",
    "FEED_STATUS_PREFIX",
    "GROUP",
    "LIVE_CHANNEL",
    "MARK_STALLED",
    "RATE_LIMIT_PREFIX",
    "READY_KEY_PREFIX",
    "RECONCILE_STATUS_PREFIX",
    "RESYNC_PERIOD_KEY",
    "RETENTION_PERIOD_KEY",
    "SESSION_PREFIX",
    "STALLED_KEY",
    "STALLED_PROBE_KEY",
    "STATS_KEY",
    "STREAM",
    "alive_key",
    "consumer_test_key",
    "due_key",
    "feed_lease_key",
    "feed_status_key",
    "live_channel",
    "reconcile_lock_key",
    "reconcile_request_key",
    "reconcile_status_key",
    "reconcile_unconfirmed_key",
]

# Ingest and storage (docs/ingest.md, docs/pipeline.md).

#: The stream every accepted update is appended to; the worker reads it through the consumer group GROUP.
STREAM = "oh:ingest"
#: Prefix of the dedup keys: SET NX on the update's content key, kept `Config.dedup_ttl_seconds` (3 days).
DEDUP_PREFIX = "oh:dedup:"
#: Consumer group of the ingest stream; each worker process reads as its own consumer in it.
GROUP = "persist"
#: Entries that cannot be stored (undecodable, or refused by the database), kept with the reason.
DEAD_STREAM = "oh:ingest:dead"
#: {"reason", "since"} while the pipeline cannot make progress (Redis OOM, database away); TTL refreshed.
STALLED_KEY = "oh:pipeline:stalled"
#: The small write that tells the worker, after an OOM, that Redis takes writes again.
STALLED_PROBE_KEY = "oh:pipeline:stalled:probe"
#: Counters for /metrics: events_stored, deliveries_delivered, deliveries_failed, deliveries_retried, unknown_status.
STATS_KEY = "oh:stats"
#: Prefix of each pipeline loop's liveness key (per consumer of GROUP), refreshed with a short TTL.
ALIVE_PREFIX = "oh:pipeline:alive:"


def alive_key(consumer: str) -> str:
    """The liveness key of one consumer of GROUP: gone means what it holds can be taken over at once."""
    return ALIVE_PREFIX + consumer


# Forwarding (docs/pipeline.md).

#: Sorted set per forward consumer: delivery id -> when it is next due (or when its claim lapses).
DUE_PREFIX = "oh:due:"
#: Ids of every consumer that has a due set.
CONSUMERS_KEY = "oh:consumers"
#: Set NX, expiring with the period, by the one process that resyncs pending deliveries this period.
RESYNC_PERIOD_KEY = "oh:resync:lease"
#: Set NX, expiring with the period, by the one process that prunes this period (RETENTION_DAYS).
RETENTION_PERIOD_KEY = "oh:retention:lease"


def due_key(consumer_id: str) -> str:
    """The due set of one forward consumer."""
    return DUE_PREFIX + consumer_id


#: A counter moved by every change of the consumers (add, change, switch, remove, rotate): each worker reads it once
#: a batch and once a scan, and re-reads its routing table and signing keys when it moved (app/consumers/revision.py).
CONSUMERS_REVISION_KEY = "oh:consumers:revision"
#: List of test deliveries asked for (POST /api/consumers/<id>/test), JSON {"consumer_id", "event"}: a worker's
#: forwarder pops and sends each once (docs/consumers.md "Test").
CONSUMER_TESTS_KEY = "oh:consumers:tests"
#: Prefix of each consumer's last test result (a hash, kept a day).
CONSUMER_TEST_PREFIX = "oh:consumers:test:"


def consumer_test_key(consumer_id: str) -> str:
    """The last test delivery's result of one consumer."""
    return CONSUMER_TEST_PREFIX + consumer_id


# Reconciliation (docs/reconcile.md).

#: Hashes of each broker's last run (started_at, finished_at, orders_seen, updates_found, last_error, runs...).
RECONCILE_STATUS_PREFIX = "oh:reconcile:status:"


def reconcile_request_key(broker: str) -> str:
    """A run asked for (value: why); the worker's scheduler takes it with GETDEL."""
    return f"oh:reconcile:request:{broker}"


def reconcile_lock_key(broker: str) -> str:
    """The redis-py Lock that keeps one run per broker at a time, across processes and machines."""
    return f"oh:reconcile:lease:{broker}"


def reconcile_status_key(broker: str) -> str:
    """The hash of a broker's last run, for GET /api/reconcile, /metrics and the alert watcher."""
    return RECONCILE_STATUS_PREFIX + broker


def reconcile_unconfirmed_key(broker: str) -> str:
    """Orders whose postback terminal could not be confirmed (hash: order_id -> JSON {since, error})."""
    return f"oh:reconcile:unconfirmed:{broker}"


# Feeds (docs/feeds.md).

#: Hashes of each connector's state, written by the feeds process.
FEED_STATUS_PREFIX = "oh:feeds:"


def feed_status_key(name: str) -> str:
    """The state hash of one feed connector."""
    return FEED_STATUS_PREFIX + name


#: Prefix of each connection's lease (SET NX PX, value: the holding feeds process's id).
FEED_LEASE_PREFIX = "oh:feed-lease:"
#: Sorted set of live feeds processes: process id -> when its presence lapses (ms since the epoch).
FEED_PROCESSES_KEY = "oh:feed-processes"


def feed_lease_key(name: str) -> str:
    """The lease of one connection (its feed status name): held by exactly one feeds process at a time."""
    return FEED_LEASE_PREFIX + name


# Alerts (docs/alerts.md).

#: Announcement lines waiting for the Telegram sender.
ALERTS_STREAM = "oh:alerts"
#: The sender's consumer group of ALERTS_STREAM.
ALERTS_GROUP = "telegram"
#: Prefix of the keys that make each announcement once-only.
ALERTS_SEEN_PREFIX = "oh:alerts:seen:"
#: The redis-py Lock that keeps one sender per deployment.
ALERTS_LOCK_KEY = "oh:alerts:lease"
#: Hash of what the sender last did (last_sent_at, last_error, sent, dropped).
ALERTS_STATUS_KEY = "oh:alerts:status"
#: Hash of alert entry id → characters of that over-long line Telegram has accepted (sent in parts).
ALERTS_PARTS_KEY = "oh:alerts:parts"
#: How far the dead-letter watcher has read the deliveries table.
ALERTS_WATERMARK_KEY = "oh:alerts:watermark:deliveries"

# Web: sessions, throttling, readiness, live updates (docs/frontend.md, docs/operations.md).

#: Browser sessions by id (the cookie).
SESSION_PREFIX = "oh:session:"
#: limits' key prefix for the sign-in and bearer-token throttles (limits adds ":" and the rest).
RATE_LIMIT_PREFIX = "oh:ratelimit"
#: Single-use development sign-in codes.
DEV_SIGNIN_PREFIX = "oh:dev-signin:"
#: A redirect login in progress (app/accounts/login.py): `<prefix><browser session digest>:<state>`, and the latest
#: one per broker for brokers that send no state back, `<prefix><browser session digest>:latest:<broker>`.
LOGIN_STATE_PREFIX = "oh:login:"
#: The automatic (TOTP) login of an account (app/accounts/auto_login.py): `<prefix><account id>` a hash of its
#: failures and when it may try next, `<prefix><account id>:lock` held while one process logs it in.
AUTO_LOGIN_PREFIX = "oh:autologin:"
#: /readyz's write check, one key per host and process.
READY_KEY_PREFIX = "oh:readyz:"
#: Pub/sub channel of stored order changes, from the worker to the web's stream hub (see live_channel).
LIVE_CHANNEL = "oh:live"


def live_channel(db: int) -> str:
    """The live channel of one Redis database: pub/sub ignores database numbers, so two deployments (or test
    runs) on one server's databases would otherwise see each other's orders."""
    return f"{LIVE_CHANNEL}:{db}"


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
