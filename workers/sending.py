"""HTTP sending: one keep-alive connection pool and a few sending threads per consumer.

Each consumer has its own `requests` HTTPAdapter (a urllib3 pool of `parallel` connections) and its
own threads, so a consumer that answers slowly or not at all only ever holds its own. The proxy and
CA bundle of the environment are looked up once per consumer (its URL is fixed): a Session with
`trust_env` re-reads them per request (545-563 us of CPU per POST against 398-444 us without);
.netrc credentials are never sent to consumers.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from standardwebhooks.webhooks import Webhook

from app.delivery import DeliveryTry, Outcome, parse_retry_after
from workers.signing import webhook_headers

log = logging.getLogger(__name__)


class ConsumerSender:
    """Sends deliveries to one consumer concurrently over kept-alive connections."""

    def __init__(self, url: str, signers: list[Webhook], timeout: float, parallel: int) -> None:
        self.url, self.signers, self.timeout, self.parallel = url, signers, timeout, parallel
        self.adapter = HTTPAdapter(pool_connections=1, pool_maxsize=parallel, max_retries=0)
        self.proxies = requests.utils.get_environ_proxies(url)
        self.verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        self.base = requests.PreparedRequest()
        self.base.prepare(method="POST", url=url, headers={}, data=b"")
        self.pool = ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="send")

    def attempt(self, item: DeliveryTry) -> Outcome:
        """One signed POST; never raises (a failure of any kind is an outcome to record and retry)."""
        started_at = time.time()
        started = time.perf_counter()
        try:
            response = self.adapter.send(
                self.prepare(item, started_at),
                stream=True,  # the status is enough, and a consumer dripping a body cannot hold us
                timeout=self.timeout,
                verify=self.verify,
                proxies=self.proxies,
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
