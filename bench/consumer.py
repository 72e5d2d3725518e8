"""A lean keep-alive webhook consumer in its own process: answers 204 at once, records arrivals.

`python bench/consumer.py PORT` serves HTTP/1.1 (connections kept alive) on 127.0.0.1:PORT.
`POST <any path>` records when each `webhook-id` first arrived (time.time()); `GET /arrivals`
answers every arrival as JSON {webhook-id: seconds}; `GET /count` the number of distinct ids.
It verifies nothing: the benchmark measures Orderhook, not the consumer.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ARRIVALS: dict[str, float] = {}
LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    """Keep-alive handler: one thread per connection, many requests per connection."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        """Record the arrival, answer 204."""
        at = time.time()
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        webhook_id = self.headers.get("webhook-id", "")
        with LOCK:
            ARRIVALS.setdefault(webhook_id, at)
        self.send_response_only(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        """The arrivals (or their count) for the benchmark."""
        with LOCK:
            data = dict(ARRIVALS) if self.path == "/arrivals" else {"count": len(ARRIVALS)}
        body = json.dumps(data).encode()
        self.send_response_only(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        """Quiet."""


def main() -> int:
    """Serve until killed."""
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.daemon_threads = True
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
