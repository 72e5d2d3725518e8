"""gunicorn settings for the `web` process (Procfile): async gevent workers.

A sync worker is held by one connection for as long as that client takes: 16 clients dribbling a
header line a second, or four open dashboards (their live streams stay open), stopped every postback.
With gevent each connection is a greenlet, so slow and idle connections cost memory, not workers.
Patch the standard library first, before anything (the app, with --preload) imports sockets or threads.
"""

from gevent import monkey

monkey.patch_all()

import os  # noqa: E402

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
worker_class = "gevent"
worker_connections = int(os.environ.get("WEB_CONNECTIONS") or 1000)
preload_app = True  # a bad configuration stops the master with its message, before any worker forks
graceful_timeout = 20
timeout = 30
errorlog = "-"
