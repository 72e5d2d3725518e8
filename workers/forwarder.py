"""Forwarding in a worker process: one lane per consumer, fed by fresh batches and by due retries.

A lane sends the deliveries handed to it concurrently (workers/sending.py) and records each outcome
when its attempt ends, together with the others ended by then, in one transaction (app/delivery). A
lane holds at most `capacity` deliveries; what does not fit stays due in Redis, where the scanner
claims it once the lane has room. So a slow or dead consumer fills only its own lane and never delays
another consumer, nor storage.

Claims: every delivery a lane holds is claimed in Redis for as long as the lane may need to send it
(its rounds ahead x the timeout, doubled, + 5 s; an attempt never outlasts its deadline,
workers/deadline.py): if the process dies, the claim lapses and any worker attempts it again; while
the process lives, nobody else does. A lane never takes a delivery it already holds: should a claim
lapse all the same (the database slow to record), the delivery is not sent a second time from here.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import redis
from standardwebhooks.webhooks import Webhook

from app.consumers.directory import ConsumerDirectory
from app.consumers.model import API, REDIS_STREAM, RQ, Consumer
from app.consumers.probe import record_test, take_tests
from app.consumers.revision import ChangeWatch
from app.consumers.routes import forget_consumers
from app.delivery import DeliveryTry, Outcome, claim_due, fail_all, load_tries, record_outcomes, resync_pending
from app.delivery.schedule import consumer_ids
from app.rawlog import with_raw
from app.redis_keys import CONSUMERS_KEY, RESYNC_PERIOD_KEY, due_key
from app.store import StoredBatch, consumer_id
from app.times import utc_iso
from workers.sending import ConsumerSender, RqSender, StreamSender
from workers.signing import event_body, signing_keys

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)
_GONE = object()  # not sent: the consumer answered 410 Gone after the delivery was handed in
_CANCELLED = object()  # not sent: the process is stopping (the claim lapses; it is retried)

RESYNC_SECONDS = 30.0
#: What the forwarder does with a consumer's deliveries (Forwarder.state_of).
SEND, HOLD, GONE = "send", "hold", "gone"
Sender = ConsumerSender | RqSender | StreamSender


def _destination(consumer: Consumer) -> tuple:
    """Where a consumer's deliveries go (a change means a new sender)."""
    return (consumer.type, consumer.url, consumer.queue, consumer.function, consumer.stream)


class Lane:
    """One consumer's deliveries in this process: a bounded backlog, sent concurrently, recorded as they end."""

    def __init__(self, forwarder: Forwarder, consumer: Consumer) -> None:
        self.forwarder, self.cid, self.consumer = forwarder, consumer.id, consumer
        self.url = consumer.target
        config = forwarder.services.config
        self.timeout = config.forward_timeout
        self.parallel = forwarder.parallel
        self.capacity = forwarder.capacity
        self.sender = forwarder.sender_for(consumer)
        self.where = self.sender.where  # for logs: a consumer URL may carry a token
        # Recording waits for the database (SQLite: for the write lock); sending goes on meanwhile.
        self.recorder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="record")
        self.lock = threading.Lock()
        self.backlog = 0
        self.held: set[int] = set()  # ids handed to the sending threads and not yet recorded
        #: Attempts that ended and wait for the recorder, and whether a drain of them is already queued.
        self.finished: list[tuple[DeliveryTry, object]] = []
        self.drain_queued = False
        self.gone_at = 0.0

    def refresh(self, consumer: Consumer) -> None:
        """The consumer changed (its URL or destination, or its secrets): send what comes next accordingly.

        A new destination gets a new sender; attempts queued on the old one are cancelled (their claims lapse
        and they are sent to the new one), those under way end where they started.
        """
        if consumer is self.consumer:
            return
        old = self.consumer
        self.consumer, self.url = consumer, consumer.target
        if _destination(old) != _destination(consumer):
            previous, self.sender = self.sender, self.forwarder.sender_for(consumer)
            self.where = self.sender.where
            previous.close()
        elif old.secrets != consumer.secrets:
            self.sender.signers = self.forwarder.signers_for(consumer)

    def reserve(self, wanted: int) -> tuple[int, float]:
        """Room for up to `wanted` deliveries: (how many, for how many seconds to claim them)."""
        with self.lock:
            taken = max(0, min(wanted, self.capacity - self.backlog))
            self.backlog += taken
            rounds = math.ceil(self.backlog / self.parallel)
        return taken, 2 * rounds * (self.timeout + 0.5) + 5

    def release(self, count: int) -> None:
        """Give back reserved room that was not used."""
        with self.lock:
            self.backlog -= count

    def finish(self, tries: list[DeliveryTry]) -> None:
        """These deliveries are recorded (or left to lapse): no longer held, their room given back."""
        with self.lock:
            self.held.difference_update(t.id for t in tries)
            self.backlog -= len(tries)

    def _not_held(self, tries: list[DeliveryTry]) -> list[DeliveryTry]:
        """The deliveries this lane does not hold already (their room is given back); now held."""
        with self.lock:
            fresh = [t for t in tries if t.id not in self.held]
            self.held.update(t.id for t in fresh)
            self.backlog -= len(tries) - len(fresh)
        return fresh

    def take(self, tries: list[DeliveryTry]) -> None:
        """Send these (reserved and claimed) deliveries now, each on the consumer's sending threads. Each
        outcome is recorded as soon as the recorder is free, together with every other outcome finished by
        then (one transaction): a slow consumer's attempt shows in the delivery log seconds after it ended,
        not when the slowest attempt of its round ends, and a fast consumer's answers still share commits."""
        tries = self._not_held(tries)
        if not tries:
            return
        handed_at = time.monotonic()
        for item in tries:
            future = self.sender.pool.submit(self._send, item, handed_at)
            future.add_done_callback(functools.partial(self._done, item))

    def _done(self, item: DeliveryTry, future) -> None:
        """One attempt ended: queue its outcome, and have the recorder drain the queue unless it is due to."""
        outcome = _CANCELLED if future.cancelled() else future.result()
        with self.lock:
            self.finished.append((item, outcome))
            if self.drain_queued:
                return
            self.drain_queued = True
        try:
            self.recorder.submit(self._record_finished)
        except RuntimeError:  # shutting down: the claims lapse and the deliveries are retried
            self.finish(self._take_finished()[0])

    def _take_finished(self) -> tuple[list[DeliveryTry], list]:
        """Every outcome queued so far (the next one queues a new drain)."""
        with self.lock:
            finished, self.finished, self.drain_queued = self.finished, [], False
        return [item for item, _ in finished], [outcome for _, outcome in finished]

    def _record_finished(self) -> None:
        """The recorder's task: record what has finished since the last drain, in one transaction."""
        tries, outcomes = self._take_finished()
        if tries:
            self._record(tries, outcomes)

    def _send(self, item: DeliveryTry, handed_at: float):
        """One attempt, unless the consumer said 410 Gone after this delivery was handed in."""
        if handed_at <= self.gone_at:
            return _GONE
        return self.sender.attempt(item)

    @property
    def idle(self) -> bool:
        """Nothing held."""
        return self.backlog == 0

    def _record(self, tries: list[DeliveryTry], outcomes: list) -> None:
        """These outcomes in one transaction; a failure to record lets the claims lapse (retried)."""
        services = self.forwarder.services
        try:
            sent = [(t, o) for t, o in zip(tries, outcomes, strict=True) if isinstance(o, Outcome)]
            gone = [t.id for t, o in zip(tries, outcomes, strict=True) if o is _GONE]
            if gone:
                fail_all(services.engine, services.redis, self.cid, gone, "consumer disabled after 410 Gone")
            if sent:
                summary = record_outcomes(
                    services.engine, services.redis, services.config.forward_retry_schedule, self.cid, sent
                )
                if summary.gone_url:
                    self.gone_at = time.monotonic()
        except Exception:  # noqa: BLE001 - the database or Redis may be away; the claims lapse and retry
            log.exception("could not record %d forward attempts to %s; they will be retried", len(tries), self.where)
        finally:
            self.finish(tries)

    def close(self) -> None:
        """Stop after the round in hand."""
        self.sender.close()
        self.recorder.shutdown(wait=False)


class Forwarder:
    """The lanes of one worker process, and the scanner that feeds them due deliveries."""

    def __init__(self, services: Services, parallel: int | None = None, capacity: int | None = None) -> None:
        self.services = services
        config = services.config
        self.parallel = parallel or config.delivery.parallel
        self.capacity = capacity or config.delivery.lane_capacity
        self.signers = signing_keys(config.forward_secret) if config.forward_secret else []
        self.urls = {consumer_id(url): url for url in config.forward_urls}
        self.directory = ConsumerDirectory(config, services.engine)
        #: A consumer changed in another process is routed and signed by from this process's next batch or scan.
        self.changes = ChangeWatch(services.redis, self.forget_consumers)
        self.lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()
        self._last_resync = 0.0

    def forget_consumers(self) -> None:
        """Read the routing table and the consumers (their secrets) again at their next use."""
        forget_consumers()
        self.directory.forget()

    def sender_for(self, consumer: Consumer) -> Sender:
        """How this consumer's deliveries are sent: by HTTP, or written to the service's Redis."""
        client = self.services.redis
        if consumer.type == RQ:
            return RqSender(client, consumer.queue or "", consumer.function or "", consumer.id, self.parallel)
        if consumer.type == REDIS_STREAM:
            maxlen = self.services.config.delivery.stream_maxlen
            return StreamSender(client, consumer.stream or "", maxlen, self.parallel)
        return ConsumerSender(
            consumer.url or "",
            self.signers_for(consumer),
            self.services.config.forward_timeout,
            self.parallel,
            unsigned_refused=consumer.source == API,
        )

    def signers_for(self, consumer: Consumer) -> list[Webhook]:
        """The keys that sign this consumer's deliveries: its own (both during a rotation), or FORWARD_SECRET's."""
        if consumer.read_only:
            return self.signers
        return signing_keys(" ".join(consumer.secrets)) if consumer.secrets else []

    def lane(self, cid: str) -> Lane | None:
        """The consumer's lane (made on first use, brought up to date with the consumer); None when no consumer
        has that id (any more)."""
        consumer = self.directory.get(cid)
        if consumer is None:
            return None
        lane = self.lanes.get(cid)
        if lane is None:
            with self._lock:
                lane = self.lanes.get(cid)
                if lane is None:
                    lane = self.lanes[cid] = Lane(self, consumer)
        lane.refresh(consumer)
        return lane

    def state_of(self, cid: str) -> str:
        """`send`, `hold` (switched off, or not known yet: its deliveries wait, due) or `gone` (removed)."""
        consumer = self.directory.get(cid)
        if consumer is None:
            return GONE if self.directory.loaded else HOLD
        return SEND if consumer.enabled else HOLD

    # Fresh deliveries of a stored batch:

    def plan(self, batch: StoredBatch) -> tuple[list[tuple[Lane, list[DeliveryTry]]], dict[str, dict[str, float]]]:
        """Split a batch's deliveries into what lanes take now (claimed) and what stays due now; returns
        the hand-offs and the due-set scores to write (with the batch's ack, in one round trip)."""
        if not batch.deliveries:
            return [], {}
        bodies: dict[str, bytes] = {}
        events = {event["id"]: event for event in batch.events}
        per_consumer: dict[str, list[DeliveryTry]] = {}
        for d in batch.deliveries:
            body = bodies.get(d.event_id)
            if body is None:
                body = bodies[d.event_id] = event_body(with_raw(events[d.event_id], batch.bodies[d.event_id]))
            per_consumer.setdefault(d.consumer_id, []).append(
                DeliveryTry(d.id, d.event_id, d.consumer_id, d.url, 0, 0, body)
            )
        now = time.time()
        handoffs, scores = [], {}
        for cid, tries in per_consumer.items():
            state = self.state_of(cid)
            lane = self.lane(cid) if state == SEND else None
            if lane is None:  # switched off or removed since the batch was routed: due now, the scan decides
                scores[cid] = {str(t.id): now for t in tries}
                continue
            taken, visibility = lane.reserve(len(tries))
            members = {str(t.id): now + visibility for t in tries[:taken]}
            members.update({str(t.id): now for t in tries[taken:]})
            scores[cid] = members
            if taken:
                handoffs.append((lane, tries[:taken]))
        return handoffs, scores

    # Due deliveries (retries, and what lanes had no room for):

    def scan(self) -> int:
        """Claim what is due for every consumer whose lane has room; returns how many were handed on."""
        client = self.services.redis
        self.changes.check()
        self.send_tests()
        handed = 0
        for cid in set(consumer_ids(client)) | set(self.urls):
            state = self.state_of(cid)
            if state == HOLD:
                continue
            if state == GONE:
                self._end_removed(cid)
                continue
            lane = self.lanes.get(cid)
            room, visibility = lane.reserve(self.capacity) if lane else (self.capacity, 0.0)
            if room <= 0:
                continue
            if lane is None:
                rounds = math.ceil(room / self.parallel)
                visibility = 2 * rounds * (self.services.config.forward_timeout + 0.5) + 5
            try:
                ids = claim_due(client, cid, room, visibility)
            except Exception:
                if lane:
                    lane.release(room)
                raise
            if not ids:
                if lane:
                    lane.release(room)
                continue
            handed += self._hand_due(cid, ids, lane, room)
        return handed

    def _hand_due(self, cid: str, ids: list[int], lane: Lane | None, reserved: int) -> int:
        """Load claimed deliveries and give them to the lane (dropping stale ones, failing a disabled consumer's)."""
        services = self.services
        try:
            tries, stale, reason = load_tries(services.engine, ids, event_body)
        except Exception:
            if lane:
                lane.release(reserved)
            raise
        if stale:
            services.redis.zrem(due_key(cid), *[str(i) for i in stale])
        if tries and lane is None:
            lane = self.lane(cid)
            if lane is None:  # removed meanwhile: the next scan ends its deliveries
                return 0
            with lane.lock:
                lane.backlog += len(tries)
            reserved = len(tries)
        if lane is None:
            return 0
        lane.refresh(self.directory.get(cid) or lane.consumer)
        lane.release(reserved - len(tries))
        if not tries:
            return 0
        if reason is not None:
            lane.release(len(tries))
            fail_all(services.engine, services.redis, cid, [t.id for t in tries], f"consumer disabled ({reason})")
            return 0
        lane.take(tries)
        return len(tries)

    def _end_removed(self, cid: str) -> None:
        """A removed consumer's deliveries that were still made or due (routed before its removal reached this
        process) end as failed, and its lane closes."""
        client = self.services.redis
        ids = [int(raw) for raw in client.zrange(due_key(cid), 0, 999)]
        if ids:
            fail_all(self.services.engine, client, cid, ids, "consumer removed")
        else:
            client.srem(CONSUMERS_KEY, cid)
        with self._lock:
            lane = self.lanes.pop(cid, None)
        if lane is not None:
            lane.close()

    # Test deliveries (app/consumers/probe.py):

    def send_tests(self) -> int:
        """Send the test deliveries asked for, each once on its consumer's sender; the outcome is kept a day."""
        client = self.services.redis
        requests = take_tests(client)
        for cid, event in requests:
            lane = self.lane(cid)
            if lane is None:
                record_test(client, cid, {"event_id": event.get("id"), "ok": False, "error": "no such consumer"})
                continue
            item = DeliveryTry(0, str(event.get("id")), cid, lane.url, 0, 0, event_body(event))
            future = lane.sender.pool.submit(lane.sender.attempt, item)
            future.add_done_callback(functools.partial(self._tested, cid, item.event_id))
        return len(requests)

    def _tested(self, cid: str, event_id: str, future) -> None:
        """Keep a test delivery's outcome."""
        if future.cancelled():
            return
        outcome: Outcome = future.result()
        result = {
            "event_id": event_id,
            "ok": outcome.ok,
            "status_code": outcome.status_code,
            "error": outcome.error,
            "latency_ms": round(outcome.latency_ms, 1),
            "sent_at": utc_iso(datetime.fromtimestamp(outcome.started_at or time.time(), UTC)),
        }
        try:
            record_test(self.services.redis, cid, result)
        except redis.RedisError:
            log.warning("could not keep the outcome of consumer %s's test delivery", cid)

    def resync_now_and_then(self) -> None:
        """Every RESYNC_SECONDS, one process (the first to SET NX the period's key) resyncs pending deliveries."""
        if time.monotonic() - self._last_resync < RESYNC_SECONDS:
            return
        self._last_resync = time.monotonic()
        client = self.services.redis
        try:
            if client.set(RESYNC_PERIOD_KEY, "1", nx=True, ex=int(RESYNC_SECONDS)):
                resync_pending(client, self.services.engine)
        except redis.RedisError:
            raise
        except Exception:  # noqa: BLE001 - the database may be away; the next pass retries
            log.warning("could not resync pending deliveries (database unavailable?)")

    def idle(self) -> bool:
        """No lane holds a delivery."""
        return all(lane.idle for lane in list(self.lanes.values()))

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every lane is idle (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.idle():
                return True
            time.sleep(0.005)
        return self.idle()

    def close(self) -> None:
        """Stop every lane."""
        for lane in list(self.lanes.values()):
            lane.close()
