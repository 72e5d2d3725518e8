"""Sending: HTTP over one keep-alive connection pool and a few threads per consumer; rq and redis_stream
consumers written to the service's Redis (docs/consumers.md "Destinations").

Each consumer has its own `requests` HTTPAdapter (a urllib3 pool of `parallel` connections) and its
own threads, so a consumer that answers slowly or not at all only ever holds its own. An attempt has
ONE deadline, FORWARD_TIMEOUT_SECONDS, for the whole answer: connecting, the status and headers, and
the body (workers/deadline.py); past it the attempt is a failure, retried per the schedule, and its
thread is free again. The proxy and CA bundle of the environment are looked up once per consumer
(its URL is fixed): a Session with `trust_env` re-reads them per request (545-563 us of CPU per POST
against 398-444 us without); .netrc credentials are never sent to consumers.

An attempt's error is a sentence for the trader reading the blotter ("connection refused by
127.0.0.1:9", "no complete answer within 5 s", "answered 500"). It names the consumer by host and
port only: a consumer URL may carry a token in its path or query string (docs/pipeline.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import ssl
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.client import RemoteDisconnected

import redis
import requests
from requests.structures import CaseInsensitiveDict
from rq import Queue
from rq.exceptions import DuplicateJobError
from standardwebhooks.webhooks import Webhook
from urllib3.exceptions import HTTPError, NameResolutionError, ProtocolError
from urllib3.util import Timeout

from app.delivery import DeliveryTry, Outcome, host_and_port, parse_retry_after
from workers.deadline import DeadlineAdapter, DeadlineWatch
from workers.signing import webhook_headers

log = logging.getLogger(__name__)

#: An answer's body is read to its end (so the connection is reused) up to this size; a longer one is
#: dropped unread and its connection closed: a consumer's answer is its status, the body is never used.
MAX_ANSWER_BYTES = 64 * 1024


class ConsumerSender:
    """Sends deliveries to one consumer concurrently over kept-alive connections.

    `signers` may be replaced while it runs (a rotated secret); `unsigned_refused`: a consumer added as data
    whose secret could not be read is never sent to unsigned (each attempt fails, and is retried).
    """

    def __init__(
        self, url: str, signers: list[Webhook], timeout: float, parallel: int, *, unsigned_refused: bool = False
    ) -> None:
        self.url, self.signers, self.timeout, self.parallel = url, signers, timeout, parallel
        self.unsigned_refused = unsigned_refused
        self.where = host_and_port(url)
        self.adapter = DeadlineAdapter(pool_connections=1, pool_maxsize=parallel, max_retries=0)
        self.deadlines = DeadlineWatch()
        self.proxies = requests.utils.get_environ_proxies(url)
        self.verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.base = requests.PreparedRequest()
        self.base.prepare(method="POST", url=url, headers={}, data=b"")
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="send")

    def attempt(self, item: DeliveryTry) -> Outcome:
        """One signed POST under the deadline; never raises (a failure of any kind is an outcome to record
        and retry)."""
        started_at = time.time()
        started = time.perf_counter()
        if self.unsigned_refused and not self.signers:
            error = "not sent: the consumer's secret could not be read (FEEDS_SECRET_KEY changed?); rotate it"
            return Outcome(None, _ms(started), error, None, started_at)
        with self.deadlines.bound(self.timeout) as deadline:
            try:
                code, retry_after = self._post(item, started_at)
            except requests.ConnectTimeout:
                error = f"no connection to {self.where} within {self.timeout:g} s"
                return Outcome(None, _ms(started), error, None, started_at)
            except (requests.RequestException, HTTPError, OSError) as exc:
                error = self._late() if deadline.passed else failure_text(exc, self.where)
                return Outcome(None, _ms(started), error, None, started_at)
            except Exception as exc:  # noqa: BLE001 - never let one delivery stall the consumer's queue
                log.exception("forward attempt to a consumer failed unexpectedly")
                error = f"could not send to {self.where} ({type(exc).__name__})"
                return Outcome(None, _ms(started), error, None, started_at)
            if deadline.passed:  # the socket was shut down at the deadline: the answer may look complete
                return Outcome(None, _ms(started), self._late(), None, started_at)
        error = None if 200 <= code < 300 else answered_text(code)
        return Outcome(code, _ms(started), error, retry_after, started_at)

    def _post(self, item: DeliveryTry, started_at: float) -> tuple[int, float | None]:
        """Send, then read the whole answer: its status and Retry-After (on 429/503)."""
        response = self.adapter.send(
            self.prepare(item, started_at),
            stream=True,  # the body is read below, under the deadline
            timeout=Timeout(total=self.timeout),  # the connect, and each read, within the deadline too
            verify=self.verify,
            proxies=self.proxies,
        )
        try:
            code = response.status_code
            retry_after = parse_retry_after(response.headers.get("Retry-After")) if code in (429, 503) else None
            for _ in _body(response):
                pass
        finally:
            response.close()  # after a body read to its end the connection is already back in the pool
        return code, retry_after

    def _late(self) -> str:
        """The error of an attempt whose answer did not complete by the deadline."""
        return f"no complete answer within {self.timeout:g} s"

    def prepare(self, item: DeliveryTry, started_at: float) -> requests.PreparedRequest:
        """The signed request, copied from one prepared per consumer (URL parsed once).

        Sent through the adapter, not a Session: a Session re-merges environment, cookies and hooks
        per request (407-426 us of CPU per keep-alive POST against 264-268 us this way, 1,500 POSTs to
        bench/consumer.py); redirects are not followed either way, and `responses` still intercepts.
        """
        prepared = self.base.copy()
        headers = webhook_headers(self.signers, item.event_id, item.body, started_at)
        headers["Content-Length"] = str(len(item.body))
        prepared.headers = CaseInsensitiveDict(headers)
        prepared.body = item.body
        return prepared

    def close(self) -> None:
        """Stop the threads and close the connections."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.adapter.close()
        self.deadlines.close()


class RqSender:
    """Enqueues deliveries as RQ jobs on the service's Redis: queue `queue`, calling `function` by name (the
    service never imports it) with the event dict, job id `<event id>-<consumer id>` (docs/consumers.md "rq").

    RQ 2.12 takes job ids of letters, digits, `_` and `-` only (rq/job.py JOB_ID_PATTERN), hence the `-`.
    `unique=True` makes RQ refuse a job id that exists (its Lua check and save are one step,
    rq/scripts.py save_unique_job): a retried enqueue of a job already there counts as delivered and never
    makes a second job. A finished job is deleted at once (result_ttl=0), so a replay enqueues it again.
    """

    def __init__(self, client: redis.Redis, queue_name: str, function: str, consumer_id: str, parallel: int) -> None:
        self.function, self.consumer_id = function, consumer_id
        self.where = f"rq queue {queue_name}"
        self.queue = Queue(queue_name, connection=client)
        self.signers: list[Webhook] = []
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="enqueue")

    def attempt(self, item: DeliveryTry) -> Outcome:
        """One enqueue; never raises."""
        started_at = time.time()
        started = time.perf_counter()
        try:
            self.queue.enqueue_call(
                self.function,
                args=(json.loads(item.body),),
                job_id=rq_job_id(item.event_id, self.consumer_id),
                description=f"orderhook event {item.event_id}",
                result_ttl=0,
                unique=True,
            )
        except DuplicateJobError:
            pass  # enqueued before (the outcome was not recorded): the job is there once
        except redis.RedisError as exc:
            return Outcome(None, _ms(started), redis_failure(exc, self.where), None, started_at)
        except Exception as exc:  # noqa: BLE001 - never let one delivery stall the consumer's queue
            log.exception("enqueueing a delivery failed unexpectedly")
            return Outcome(
                None, _ms(started), f"could not enqueue on {self.where} ({type(exc).__name__})", None, started_at
            )
        return Outcome(None, _ms(started), None, None, started_at, delivered=True)

    def close(self) -> None:
        """Stop the threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)


class StreamSender:
    """Appends deliveries to a Redis stream: `XADD <stream> MAXLEN ~ <cap> * id <event id> event <JSON>`
    (docs/consumers.md "redis_stream"). At least once: a retry after a lost outcome appends the event again,
    with the same `id` field."""

    def __init__(self, client: redis.Redis, stream: str, maxlen: int, parallel: int) -> None:
        self.client, self.stream, self.maxlen = client, stream, maxlen
        self.where = f"stream {stream}"
        self.signers: list[Webhook] = []
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="xadd")

    def attempt(self, item: DeliveryTry) -> Outcome:
        """One XADD; never raises."""
        started_at = time.time()
        started = time.perf_counter()
        try:
            self.client.xadd(
                self.stream, {"id": item.event_id, "event": item.body}, maxlen=self.maxlen, approximate=True
            )
        except redis.RedisError as exc:
            return Outcome(None, _ms(started), redis_failure(exc, self.where), None, started_at)
        return Outcome(None, _ms(started), None, None, started_at, delivered=True)

    def close(self) -> None:
        """Stop the threads."""
        self.pool.shutdown(wait=False, cancel_futures=True)


def rq_job_id(event_id: str, consumer_id: str) -> str:
    """The RQ job id of an event for a consumer (the same on every retry and replay)."""
    return f"{event_id}-{consumer_id}"


def redis_failure(exc: redis.RedisError, where: str) -> str:
    """A Redis destination's failure as a sentence (Redis's own reply for a refusal such as WRONGTYPE)."""
    if isinstance(exc, redis.ResponseError):
        return f"Redis refused the write to {where}: {str(exc)[:200]}"
    if isinstance(exc, redis.TimeoutError):
        return f"Redis did not answer the write to {where} in time"
    if isinstance(exc, redis.ConnectionError):
        return f"could not reach Redis for {where}"
    return f"could not write to {where} ({type(exc).__name__})"


def _body(response: requests.Response) -> Iterator[bytes]:
    """The answer's body, undecoded, up to MAX_ANSWER_BYTES (the rest is left unread)."""
    read = 0
    for chunk in response.raw.stream(8192, decode_content=False):
        yield chunk
        read += len(chunk)
        if read > MAX_ANSWER_BYTES:
            return


def answered_text(code: int) -> str:
    """The error of an answer that is not 2xx."""
    if 300 <= code < 400:
        return f"answered {code} (redirects are not followed)"
    return f"answered {code}"


def failure_text(exc: BaseException, where: str) -> str:
    """What went wrong, as a sentence: the first cause we can name, else the exception's class name only
    (an exception's text repeats the URL, query string included)."""
    causes = list(_causes(exc))
    for cause in causes:
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {where}"
        if isinstance(cause, NameResolutionError | socket.gaierror):
            return f"could not resolve the host name of {where}"
        if isinstance(cause, RemoteDisconnected):  # a ConnectionResetError too: first
            return f"{where} closed the connection without answering"
        if isinstance(cause, ConnectionResetError):
            return f"connection reset by {where}"
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"the TLS certificate of {where} was not accepted ({cause.verify_message})"
        if isinstance(cause, ssl.SSLError):
            return f"TLS with {where} failed"
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"the proxy refused to connect to {where}"
    if any(isinstance(cause, ProtocolError) for cause in causes) or isinstance(
        exc, requests.exceptions.ChunkedEncodingError
    ):
        return f"{where} broke off its answer"
    for cause in causes:
        if isinstance(cause, OSError) and cause.errno:
            return f"could not reach {where}: {os.strerror(cause.errno).lower()}"
    return f"could not send to {where} ({type(exc).__name__})"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception and every exception it wraps (urllib3's `reason`, `args`, the cause chain)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None), *current.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))


def _ms(started: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return (time.perf_counter() - started) * 1000
