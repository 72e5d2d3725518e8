"""gunicorn settings for the `web` process (Procfile): async gevent workers, bounded clients, JSON refusals.

A sync worker is held by one connection for as long as that client takes: 16 clients dribbling a
header line a second, or four open dashboards (their live streams stay open), stopped every postback.
With gevent each connection is a greenlet, so slow and idle connections cost memory, not workers.
Patch the standard library first, before anything (the app, with --preload) imports sockets or threads.

What bounds a client (docs/operations.md has the table and the measured figures):
* the request line and headers must arrive within `keepalive` seconds (gunicorn's gevent worker reads
  them under a gevent.Timeout of that length; the same bound ends an idle keep-alive connection);
* every later read or write on the socket (the body, the answer) may block at most WEB_BODY_TIMEOUT
  seconds, then the app answers 408 and the connection closes (app/server.py JsonGeventWorker);
* request line, header count and header size are capped (answered 414 / 431 as JSON);
* gunicorn's own log lines go through app/server.py RedactingLogger: no path token, ever.

Forwarded headers (X-Forwarded-Proto and the like) are believed only by the app, and only from
TRUSTED_PROXIES proxies (werkzeug's ProxyFix, app/__init__.py): gunicorn's own trust of them, for
peers in forwarded_allow_ips (127.0.0.1 by default), is off, so a client on the same machine cannot
make a plain-http sign-in look like https either.

Redis: each worker's pool holds WEB_CONNECTIONS connections plus a few, one per greenlet, and a
greenlet past that waits for one to come back (app/redis_conn.py), so no request fails on "Too many
connections" while worker_connections are served.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from app.server import web_settings  # noqa: E402 - the schema's web group (app/config.py), typed

_web = web_settings()
bind = f"0.0.0.0:{_web.port}"
# Two processes for two cores; each serves up to worker_connections clients concurrently as greenlets
# (and sizes its Redis pool by the same WEB_CONNECTIONS, app/redis_conn.py).
workers = _web.concurrency
worker_class = "app.server.JsonGeventWorker"
logger_class = "app.server.RedactingLogger"
worker_connections = _web.connections
preload_app = True  # a bad configuration stops the master with its message, before any worker forks
graceful_timeout = 20
# Seconds a worker may go without a heartbeat; with gevent only a blocked event loop (CPU-bound code,
# a blocking C call) misses it, never a slow client.
timeout = 30
# Idle keep-alive connections close after this, and it is the deadline for a request's headers.
# Behind a load balancer that reuses connections, set it above the balancer's idle timeout.
keepalive = _web.keepalive
# The longest legitimate request line is an /api query with a cursor (a few hundred bytes).
limit_request_line = 2048
# Brokers send about a dozen headers and browsers about twenty.
limit_request_fields = 50
# Large enough for the blotter's session cookie.
limit_request_field_size = 8190
# No peer may set forwarded or scheme headers for gunicorn; the app applies them per TRUSTED_PROXIES.
forwarded_allow_ips = ""
errorlog = "-"
# No gunicorn access log: the app writes one line per request, with the request id and the path
# token redacted (app/logs.py). `--access-logfile -` still works and is redacted too.
accesslog = None

# Metrics of every worker in one scrape: prometheus_client's multiprocess mode (app/metrics.py).
_METRICS_DIR_CREATED = _web.metrics_dir is None
if _METRICS_DIR_CREATED:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="orderhook-metrics-")


def on_starting(server) -> None:
    """Start counting from zero: remove metric files a previous run left in a configured directory."""
    directory = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    for leftover in directory.glob("*.db"):
        leftover.unlink(missing_ok=True)


def child_exit(server, worker) -> None:
    """Let prometheus_client drop a dead worker's live gauges (its counters stay counted)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server) -> None:
    """Remove the metrics directory this file created."""
    if _METRICS_DIR_CREATED:
        shutil.rmtree(os.environ.get("PROMETHEUS_MULTIPROC_DIR", ""), ignore_errors=True)
