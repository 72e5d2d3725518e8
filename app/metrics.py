"""Prometheus metrics: postback counters and ack latency per process, pipeline figures read from Redis.

Counters and the latency histogram live in prometheus_client's multiprocess mode when
PROMETHEUS_MULTIPROC_DIR is set (gunicorn.conf.py sets it for the web): each gunicorn worker writes
its own memory-mapped file and a scrape sums them, so `/metrics` counts across all workers whichever
worker answers. Chosen over counters in Redis because it adds no network round trip to a postback
(bench/metrics_overhead.py prints both costs; docs/operations.md has the figures).

Everything the worker side owns (backlog, deliveries, feeds, reconciliation, a stalled pipeline) is
read from Redis at scrape time with the probe client (app/redis_conn.py: sub-second timeouts), so a
frozen Redis makes a scrape say `orderhook_redis_up 0` quickly instead of holding a web greenlet; the
backlog and the stall come from app/pipeline_status.py, which /readyz reads too.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from flask import Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from app.config import KNOWN_FEEDS, Config
from app.pipeline_status import ingest_backlog, pipeline_stalled, unix_seconds
from app.redis_conn import probe_client
from app.redis_keys import RECONCILE_STATUS_PREFIX, STATS_KEY, feed_status_key

log = logging.getLogger(__name__)
refusal_log = logging.getLogger("orderhook.postbacks")

DELIVERY_OUTCOMES = ("delivered", "failed", "retried")
POSTBACK_ENDPOINT = "postbacks.receive"

POSTBACKS = Counter(
    "orderhook_postbacks",
    "Postbacks answered, by broker and outcome (accepted = new 202, duplicate = 200, refused = any 4xx/5xx).",
    ["broker", "outcome"],
)
ACK_LATENCY = Histogram(
    "orderhook_ingest_ack_seconds",
    "Seconds from a postback's arrival in the app to its 202/200 answer (verify, validate, queue).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


def init_app(app: Flask) -> None:
    """Count every postback answer, time the acknowledged ones, log every refusal with its reason."""
    app.after_request(_count_postback)


def _count_postback(response: Response) -> Response:
    """after_request hook: outcome from the status (202 accepted, 200 duplicate, anything else refused)."""
    if request.url_rule is None or request.url_rule.endpoint != POSTBACK_ENDPOINT:
        if not request.path.startswith("/postbacks/"):
            return response
    broker = _broker_label()
    status = response.status_code
    if status == 202:
        outcome = "accepted"
    elif status == 200:
        outcome = "duplicate"
    else:
        outcome = "refused"
        refusal_log.warning(
            "postback refused: broker=%s status=%s reason=%s",
            broker,
            status,
            _refusal_reason(response),
            extra={"broker": broker, "status": status},
        )
    POSTBACKS.labels(broker=broker, outcome=outcome).inc()
    started = getattr(g, "request_started", None)
    if outcome != "refused" and started is not None:
        ACK_LATENCY.observe(time.perf_counter() - started)
    return response


def _broker_label() -> str:
    """The broker from the URL if it is one we serve, else 'unknown' (labels must stay few)."""
    broker = (request.view_args or {}).get("broker") if request.view_args else None
    if broker is None:
        parts = request.path.split("/")
        broker = parts[2] if len(parts) > 2 else ""
    adapters = current_app.extensions["orderhook"].adapters
    return broker if broker in adapters else "unknown"


def _refusal_reason(response: Response) -> str:
    """The error message the sender got (messages never carry secrets; the log formatter redacts anyway)."""
    message = getattr(g, "error_message", None)
    if message:
        return str(message)[:300]
    try:
        body = response.get_json(silent=True) if not response.is_streamed else None
    except Exception:  # noqa: BLE001 - a reason is best effort, the log line is not
        body = None
    if isinstance(body, dict) and body.get("error"):
        return str(body["error"])[:300]
    return "(no reason recorded)"


def render(config: Config, redis_client: redis.Redis | None = None) -> tuple[bytes, str]:
    """The Prometheus text of this service: counters from every worker plus the Redis-side figures."""
    from prometheus_client import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(_LocalCollector())
    registry.register(RedisCollector(redis_client or probe_client(config)))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _LocalCollector:
    """This process's own counters (single-process mode: tests, `flask run`)."""

    def collect(self) -> Iterator[Metric]:
        """The postback counter and latency histogram as they stand."""
        yield from POSTBACKS.collect()
        yield from ACK_LATENCY.collect()


class RedisCollector:
    """Figures the worker and feeds processes keep in Redis, read at scrape time."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def collect(self) -> Iterator[Metric]:
        """Backlog, deliveries, pipeline stall, feeds and reconciliation; `orderhook_redis_up` says if read."""
        up = GaugeMetricFamily("orderhook_redis_up", "1 when Redis answered this scrape's reads.")
        try:
            families = list(self._families())
        except (redis.RedisError, OSError) as exc:
            log.warning("metrics: Redis did not answer (%s); pipeline figures left out", type(exc).__name__)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        """Every Redis-side family (raises on a Redis failure, handled by collect)."""
        backlog = ingest_backlog(self.client)
        gauge = GaugeMetricFamily(
            "orderhook_ingest_backlog", "Updates acknowledged but not yet stored (entries left in oh:ingest)."
        )
        gauge.add_metric([], backlog["length"])
        yield gauge
        pending = GaugeMetricFamily("orderhook_ingest_pending", "Entries a persist job has read but not yet stored.")
        pending.add_metric([], backlog["pending"])
        yield pending
        age = GaugeMetricFamily("orderhook_ingest_oldest_age_seconds", "Age of the oldest unstored update (0: none).")
        age.add_metric([], backlog["oldest_age_seconds"] or 0.0)
        yield age
        yield self._deliveries()
        yield from self._stalled()
        yield from self._feeds()
        yield from self._reconcile()

    def _deliveries(self) -> Metric:
        """oh:stats hash fields deliveries_<outcome>, HINCRBY'd by the forwarding worker."""
        values = self.client.hmget(STATS_KEY, [f"deliveries_{o}" for o in DELIVERY_OUTCOMES])
        family = CounterMetricFamily("orderhook_deliveries", "Forward attempts by outcome.", labels=["outcome"])
        for outcome, value in zip(DELIVERY_OUTCOMES, values, strict=True):
            family.add_metric([outcome], _number(value))
        return family

    def _stalled(self) -> Iterator[Metric]:
        """oh:pipeline:stalled (JSON {reason, since}) set by the worker side while it cannot progress."""
        stalled = pipeline_stalled(self.client)
        family = GaugeMetricFamily(
            "orderhook_pipeline_stalled", "1 while the worker reports the pipeline stalled.", labels=["reason"]
        )
        family.add_metric([stalled["reason"] if stalled else ""], 1 if stalled else 0)
        yield family
        if stalled and stalled.get("since_timestamp") is not None:
            since = GaugeMetricFamily("orderhook_pipeline_stalled_since_seconds", "Unix time the stall began.")
            since.add_metric([], stalled["since_timestamp"])
            yield since

    def _feeds(self) -> Iterator[Metric]:
        """Each connector that ever published a state: hash oh:feeds:<name> with fields state, connected
        ("1"/"0"), reconnects and events, as the feeds process writes it (app/brokers/feed_status.py)."""
        feed = ["feed"]
        connected = GaugeMetricFamily("orderhook_feed_connected", "1 while a connector is connected.", labels=feed)
        state = GaugeMetricFamily("orderhook_feed_state", "1 for a connector's current state.", labels=[*feed, "state"])
        reconnects = CounterMetricFamily("orderhook_feed_reconnects", "Reconnects since the feed started.", labels=feed)
        events = CounterMetricFamily("orderhook_feed_events", "Updates queued by the feed since start.", labels=feed)
        pipe = self.client.pipeline(transaction=False)
        for name in KNOWN_FEEDS:
            pipe.hmget(feed_status_key(name), ["state", "connected", "reconnects", "events"])
        for name, values in zip(KNOWN_FEEDS, pipe.execute(), strict=True):
            if not any(v is not None for v in values):
                continue
            feed_state = values[0].decode(errors="replace")[:40] if values[0] is not None else "unknown"
            connected.add_metric([name], 1 if values[1] == b"1" else 0)
            state.add_metric([name, feed_state], 1)
            reconnects.add_metric([name], _number(values[2]))
            events.add_metric([name], _number(values[3]))
        yield from (connected, state, reconnects, events)

    def _reconcile(self) -> Iterator[Metric]:
        """oh:reconcile:status:<broker> hashes (runs, errors, finished_at), if reconciliation ran."""
        broker_label = ["broker"]
        runs = CounterMetricFamily("orderhook_reconcile_runs", "Reconciliation runs per broker.", labels=broker_label)
        errors = CounterMetricFamily("orderhook_reconcile_errors", "Failed reconciliation runs.", labels=broker_label)
        finished = GaugeMetricFamily(
            "orderhook_reconcile_last_finished_seconds", "Unix time of the last finished run.", labels=broker_label
        )
        # One series per broker, summed over its accounts (`<broker>` and `<broker>:<account>` hashes,
        # docs/reconcile.md): a platform's hundreds of accounts must not make hundreds of series.
        totals: dict[str, list[float]] = {}
        latest: dict[str, float] = {}
        for key in sorted(self.client.scan_iter(match=RECONCILE_STATUS_PREFIX + "*", count=100)):
            broker = key.decode(errors="replace")[len(RECONCILE_STATUS_PREFIX) :].split(":", 1)[0]
            if not broker.isidentifier():
                continue
            raw = self.client.hmget(key, ["runs", "errors", "finished_at"])
            total = totals.setdefault(broker, [0.0, 0.0])
            total[0] += _number(raw[0])
            total[1] += _number(raw[1])
            stamp = unix_seconds(raw[2])
            if stamp is not None:
                latest[broker] = max(stamp, latest.get(broker, stamp))
        for broker, (run_count, error_count) in totals.items():
            runs.add_metric([broker], run_count)
            errors.add_metric([broker], error_count)
        for broker, stamp in latest.items():
            finished.add_metric([broker], stamp)
        yield from (runs, errors, finished)


def _number(value: Any) -> float:
    """A Redis counter value, 0 when absent or not a number."""
    try:
        return float(value) if value is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
