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
from typing import TYPE_CHECKING

import redis

from app.delivery import DeliveryTry, Outcome, claim_due, fail_all, load_tries, record_outcomes, resync_pending
from app.delivery.schedule import consumer_ids
from app.rawlog import with_raw
from app.redis_keys import RESYNC_PERIOD_KEY, due_key
from app.store import StoredBatch, consumer_id
from workers.sending import ConsumerSender
from workers.signing import event_body, signing_keys

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)
_GONE = object()  # not sent: the consumer answered 410 Gone after the delivery was handed in
_CANCELLED = object()  # not sent: the process is stopping (the claim lapses; it is retried)

RESYNC_SECONDS = 30.0


class Lane:
    """One consumer's deliveries in this process: a bounded backlog, sent concurrently, recorded as they end."""

    def __init__(self, forwarder: Forwarder, cid: str, url: str) -> None:
        self.forwarder, self.cid, self.url = forwarder, cid, url
        config = forwarder.services.config
        self.timeout = config.forward_timeout
        self.parallel = forwarder.parallel
        self.capacity = forwarder.capacity
        self.sender = ConsumerSender(url, forwarder.signers, self.timeout, self.parallel)
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
        self.lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()
        self._last_resync = 0.0

    def lane(self, cid: str, url: str) -> Lane:
        """The consumer's lane (made on first use)."""
        lane = self.lanes.get(cid)
        if lane is None:
            with self._lock:
                lane = self.lanes.get(cid)
                if lane is None:
                    lane = self.lanes[cid] = Lane(self, cid, url)
        return lane

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
            lane = self.lane(cid, tries[0].url)
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
        handed = 0
        for cid in set(consumer_ids(client)) | set(self.urls):
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
            lane = self.lane(cid, tries[0].url)
            with lane.lock:
                lane.backlog += len(tries)
            reserved = len(tries)
        if lane is None:
            return 0
        lane.release(reserved - len(tries))
        if not tries:
            return 0
        if reason is not None:
            lane.release(len(tries))
            fail_all(services.engine, services.redis, cid, [t.id for t in tries], f"consumer disabled ({reason})")
            return 0
        lane.take(tries)
        return len(tries)

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
