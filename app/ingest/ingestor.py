"""Ingestor.submit: the one step after validation, for postbacks and feeds alike.

Redis first (one Lua call: dedup + XADD). When Redis cannot take the update (down, restarting,
refusing writes), the circuit opens and the update goes to the fallbacks in order (the database,
then the opt-in local spool), still acknowledged; the replayer feeds it to Redis once Redis answers.
Only when every fallback fails does the sender get 503 (docs/interface.md: 503 only when the update could
not be kept durably).
"""

from __future__ import annotations

import os
from pathlib import Path

import redis
from sqlalchemy.engine import Engine

from app.events import OrderEvent
from app.exceptions import NotDurableError
from app.ingest.circuit import Circuit
from app.ingest.fallback import DatabaseFallback, Fallback, FallbackError, SpoolFallback
from app.ingest.queue import QueuedUpdate, RedisQueue
from app.ingest.replay import Replayer, replay_pending
from app.ingest.serialize import event_json
from app.redis_keys import DEDUP_PREFIX


class Ingestor:
    """Queues normalized events for the workers; one instance per process (safe across a fork)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        dedup_ttl: int,
        engine: Engine | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.queue = RedisQueue(client, dedup_ttl=dedup_ttl)
        self.fallbacks: list[Fallback] = []
        if engine is not None:
            self.fallbacks.append(DatabaseFallback(engine))
        if spool_dir is not None:
            self.fallbacks.append(SpoolFallback(spool_dir))
        self.circuit = Circuit()
        self.replayer = Replayer(self.queue, self.fallbacks, self.circuit)
        self._pid: int | None = None  # the replayer starts in the process that serves (after any fork)

    def submit(self, event: OrderEvent, raw_body: bytes) -> bool:
        """True if the update is new (queued, or kept by a fallback), False if it is a duplicate;
        NotDurableError if neither Redis nor any fallback could keep it."""
        if self._pid != os.getpid():
            self._start_in_this_process()
        key = DEDUP_PREFIX + event.dedup_key
        payload = event_json(event)
        if not self.circuit.is_open:
            try:
                return self.queue.queue(key, event.id, payload, raw_body)
            except redis.RedisError as exc:
                if not self.fallbacks:
                    raise NotDurableError(
                        f"the update could not be queued durably ({type(exc).__name__}); please retry"
                    ) from exc
                self.circuit.trip(exc, " then ".join(f.name for f in self.fallbacks))
                self.replayer.wake()
        return self._keep(QueuedUpdate(key, event.id, payload, raw_body))

    def submit_together(self, items: list[tuple[OrderEvent, bytes]]) -> list[bool]:
        """Submit several updates (one order's history) so they reach the stream back to back, in this
        order; what `submit` answers for each. While Redis cannot take them, each goes the usual way."""
        if self._pid != os.getpid():
            self._start_in_this_process()
        updates = [
            QueuedUpdate(DEDUP_PREFIX + event.dedup_key, event.id, event_json(event), body) for event, body in items
        ]
        if updates and not self.circuit.is_open:
            try:
                return self.queue.queue_together(updates)
            except redis.RedisError:
                pass  # submit() below trips the circuit and keeps each update in a fallback
        return [self.submit(event, body) for event, body in items]

    def start(self) -> None:
        """Start this process's replayer now (it feeds in what stopped processes kept aside)."""
        if self._pid != os.getpid():
            self._start_in_this_process()

    def replay_now(self) -> tuple[int, int]:
        """Feed what the fallbacks keep (this process's and stopped processes') into Redis now;
        (queued, duplicates). For the worker's own schedule; Redis or database errors raise."""
        return replay_pending(self.queue, self.fallbacks)

    def close(self) -> None:
        """Stop this process's replayer (what the fallbacks keep stays there for any other process)."""
        self.replayer.stop()

    @property
    def spooling(self) -> bool:
        """True while updates go to a fallback instead of Redis."""
        return self.circuit.is_open

    def _keep(self, update: QueuedUpdate) -> bool:
        """The first fallback that keeps the update answers; 503 when none can."""
        for fallback in self.fallbacks:
            try:
                kept = fallback.keep(update)
            except FallbackError:
                continue
            self.replayer.wake()
            return kept
        raise NotDurableError(
            "the update could not be kept durably (Redis unavailable and its fallback failed); please retry"
        )

    def _start_in_this_process(self) -> None:
        """First update in this process (a new gunicorn worker, say): fresh per-process state, and a
        replayer that first feeds in what stopped processes kept aside."""
        if self._pid is not None:
            self.circuit.reset_after_fork()
            self.replayer.reset_after_fork()
            for fallback in self.fallbacks:
                if isinstance(fallback, SpoolFallback):
                    fallback.reset_after_fork()
        self._pid = os.getpid()
        self.replayer.ensure_running()
