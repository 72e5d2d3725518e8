"""HTTP sending: one keep-alive connection pool and a few sending threads per consumer.

Each consumer has its own `requests.Session` (a urllib3 pool of `parallel` connections) and its own
threads, so a consumer that answers slowly or not at all only ever holds its own.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter
from standardwebhooks.webhooks import Webhook

from app.delivery import DeliveryTry, Outcome, parse_retry_after
from workers.signing import webhook_headers

log = logging.getLogger(__name__)


class ConsumerSender:
    """Sends deliveries to one consumer concurrently over kept-alive connections."""

    def __init__(self, url: str, signers: list[Webhook], timeout: float, parallel: int) -> None:
        self.url, self.signers, self.timeout, self.parallel = url, signers, timeout, parallel
        self.session = _session_for(url)
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=parallel, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="send")

    def send_all(self, tries: list[DeliveryTry]) -> list[Outcome]:
        """Attempt every delivery at once (up to `parallel` in flight); outcomes in the same order."""
        if len(tries) == 1:
            return [self.attempt(tries[0])]
        return list(self.pool.map(self.attempt, tries))

    def attempt(self, item: DeliveryTry) -> Outcome:
        """One signed POST; never raises (a failure of any kind is an outcome to record and retry)."""
        started_at = time.time()
        started = time.perf_counter()
        try:
            headers = webhook_headers(self.signers, item.event_id, item.body, started_at)
            # stream=True: the answer's status is enough, and a consumer dripping a body cannot hold us.
            response = self.session.post(
                self.url, data=item.body, headers=headers, timeout=self.timeout, allow_redirects=False, stream=True
            )
        except requests.Timeout:
            return Outcome(None, _ms(started), f"timed out after {self.timeout:g}s", None, started_at)
        except requests.RequestException as exc:
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {_short(str(exc))}", None, started_at)
        except Exception as exc:  # noqa: BLE001 - never let one delivery stall the consumer's queue
            log.exception("forward attempt to a consumer failed unexpectedly")
            return Outcome(None, _ms(started), f"{type(exc).__name__}: {_short(str(exc))}", None, started_at)
        latency = _ms(started)
        code = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if code in (429, 503) else None
        error = None if 200 <= code < 300 else f"HTTP {code}"
        _finish(response)
        return Outcome(code, latency, error, retry_after, started_at)

    def close(self) -> None:
        """Stop the threads and close the connections."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.session.close()


def _session_for(url: str) -> requests.Session:
    """A session that reads the environment once, not on every request.

    requests re-reads proxy variables, .netrc and CA-bundle variables per request when `trust_env` is
    on: 545-563 us of CPU per POST against 398-444 us without (1,500 keep-alive POSTs to
    bench/consumer.py, this machine). The consumer's URL is fixed, so its proxy and CA bundle are
    looked up here once; .netrc credentials are not sent to consumers.
    """
    session = requests.Session()
    session.trust_env = False
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    return session


def _finish(response: requests.Response) -> None:
    """Read a short answer so the keep-alive connection is reused; drop anything longer unread."""
    try:
        if int(response.headers.get("Content-Length", "-1")) in range(0, 4097):
            response.content  # noqa: B018 - reading the body returns the connection to the pool
    except (ValueError, requests.RequestException):
        pass
    finally:
        response.close()


def _ms(started: float) -> float:
    """Milliseconds since a perf_counter reading."""
    return (time.perf_counter() - started) * 1000


def _short(text: str) -> str:
    """Error text trimmed for the log and the database."""
    return text if len(text) <= 300 else text[:297] + "..."
