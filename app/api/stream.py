"""GET /api/stream: the blotter's live channel, Server-Sent Events fed by one Redis subscriber per process.

Under gunicorn's gevent workers an open stream costs a greenlet, not a worker, so dashboards never
hold up postbacks. Each web worker process runs ONE subscriber (a greenlet, started on the first
stream) on `oh:live:<db>` and copies every message to the queues of its connected streams; browsers
never cost a Redis connection each. Streams send a `retry:` hint, a heartbeat comment every 15 s so
proxies keep idle connections, and end within a second of SIGTERM so a restart is quick; the
browser's EventSource then reconnects by itself and the page takes a fresh snapshot.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections.abc import Iterator

import redis
from flask import Blueprint, Response, current_app

from app.api.auth import UNCHECKED_RETRY_AFTER, authenticated_by_session, current_session, unauthorized
from app.api.responses import error_response
from app.redis_conn import database_of
from app.redis_keys import SESSION_PREFIX, live_channel

log = logging.getLogger(__name__)

bp = Blueprint("stream", __name__, url_prefix="/api")

HEARTBEAT_SECONDS = 15.0
TICK_SECONDS = 1.0  # how often a stream looks at the shutdown flag and its session
RETRY_MS = 2000
QUEUE_SIZE = 2000  # a browser this far behind is cut off; it reconnects and takes a snapshot
MAX_STREAM_SECONDS = 3600.0
SUBSCRIBE_WAIT_SECONDS = 5.0  # streams are renewed hourly, so a long-lived tab re-checks its session


class Hub:
    """The process's fan-out: one subscriber, many stream queues."""

    def __init__(self) -> None:
        self.queues: set[queue.Queue] = set()
        self.lock = threading.Lock()
        self.started = False
        self.subscribed = threading.Event()  # set while the subscriber listens on the channel
        self.closing = False
        self.client: redis.Redis | None = None

    def start(self, client: redis.Redis) -> None:
        """Start the subscriber once per process (after the fork: it runs on first use, in the worker)."""
        with self.lock:
            if self.started:
                return
            self.started = True
            self.client = client
        _chain_shutdown_signals(self)
        threading.Thread(target=self._listen, name="live-subscriber", daemon=True).start()

    def join(self) -> queue.Queue:
        """A queue that receives every message from now on."""
        box: queue.Queue = queue.Queue(maxsize=QUEUE_SIZE)
        with self.lock:
            self.queues.add(box)
        return box

    def leave(self, box: queue.Queue) -> None:
        """Stop copying messages to a closed stream."""
        with self.lock:
            self.queues.discard(box)

    def close(self) -> None:
        """Shutdown: every stream ends at its next tick."""
        self.closing = True

    def cut_all(self) -> None:
        """End every open stream (its browser reconnects and takes a fresh snapshot)."""
        with self.lock:
            boxes, self.queues = list(self.queues), set()
        for box in boxes:
            box.queue.clear()
            box.put_nowait(None)

    def fan_out(self, data: str) -> None:
        """Copy one message to every stream; a stream that stopped reading is cut off."""
        with self.lock:
            boxes = list(self.queues)
        for box in boxes:
            try:
                box.put_nowait(data)
            except queue.Full:
                self.leave(box)
                box.queue.clear()
                box.put_nowait(None)

    def _listen(self) -> None:
        """Subscribe and fan out forever, resubscribing after Redis errors."""
        delay = 0.5
        while not self.closing:
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                pubsub.subscribe(live_channel(database_of(self.client)))
                delay = 0.5
                while not self.closing:
                    message = pubsub.get_message(timeout=TICK_SECONDS)
                    if not message:
                        continue
                    if message.get("type") == "subscribe":
                        self.subscribed.set()  # Redis confirmed: every later PUBLISH reaches us
                    elif message.get("type") == "message":
                        data = message["data"]
                        self.fan_out(data.decode() if isinstance(data, bytes) else str(data))
            except redis.RedisError as exc:
                self.subscribed.clear()
                self.cut_all()  # messages may be lost until we resubscribe: pages reconnect and re-snapshot
                log.warning("live subscriber lost Redis (%s); resubscribing in %.1fs", exc, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)
            except Exception:  # noqa: BLE001 - the subscriber must outlive any one bad message
                log.exception("live subscriber failed; restarting it")
                time.sleep(delay)
            finally:
                if pubsub is not None:
                    try:
                        pubsub.close()
                    except redis.RedisError:
                        pass


HUB = Hub()


def _chain_shutdown_signals(hub: Hub) -> None:
    """On SIGTERM/SIGINT, end the streams too, then let gunicorn's own handler run."""
    # Only the main OS thread may set handlers: greenlets under gevent run there; a threaded server's don't.
    for signum in (signal.SIGTERM, signal.SIGINT):
        previous = signal.getsignal(signum)

        def handler(sig, frame, previous=previous):
            hub.close()
            if callable(previous):
                previous(sig, frame)
            elif previous == signal.SIG_DFL:
                raise SystemExit(128 + sig)

        try:
            signal.signal(signum, handler)
        except ValueError:
            return
        log.debug("live streams end on signal %d", signum)


@bp.get("/stream")
def stream():
    """text/event-stream of `order` messages (see app/live.py); cookie or bearer auth (Redis away: 503, the
    page retries; never 401, which would sign the blotter out)."""
    refusal = unauthorized()
    if refusal is not None:
        return refusal
    services = current_app.extensions["orderhook"]
    HUB.start(services.redis)
    box = HUB.join()
    # The page snapshots when the stream opens, so open it only once messages flow: nothing falls in between.
    if not HUB.subscribed.wait(SUBSCRIBE_WAIT_SECONDS):
        HUB.leave(box)
        response = error_response(503, "the live channel is not connected to Redis yet; the page retries by itself")
        response.headers["Retry-After"] = str(UNCHECKED_RETRY_AFTER)
        return response
    session = current_session() if authenticated_by_session() else None  # checked above: no Redis call
    response = Response(
        _events(box, services.redis, session.sid if session else None),
        mimetype="text/event-stream",
    )
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Accel-Buffering"] = "no"
    return response


def _events(box: queue.Queue, client: redis.Redis, sid: str | None) -> Iterator[str]:
    """The stream body: retry hint, then messages and heartbeats until shutdown, sign-out or renewal."""
    started = last_beat = time.monotonic()
    try:
        yield f"retry: {RETRY_MS}\n: connected\n\n"
        while not HUB.closing and time.monotonic() - started < MAX_STREAM_SECONDS:
            try:
                data = box.get(timeout=TICK_SECONDS)
            except queue.Empty:
                data = ""
            if data is None:
                return  # cut off: fell behind, or the subscriber lost Redis
            if data:
                yield f"data: {data}\n\n"
                continue
            if time.monotonic() - last_beat >= HEARTBEAT_SECONDS:
                if sid is not None and not _session_alive(client, sid):
                    yield "event: signed-out\ndata: {}\n\n"
                    return
                last_beat = time.monotonic()
                yield ": heartbeat\n\n"
    finally:
        HUB.leave(box)


def _session_alive(client: redis.Redis, sid: str) -> bool:
    """The stream's session still exists (sign-out elsewhere ends the stream); Redis trouble keeps it open."""
    try:
        return bool(client.exists(SESSION_PREFIX + sid))
    except redis.RedisError:
        return True
