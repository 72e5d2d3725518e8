"""What consumers cost the worker: forwarding per event with 1, 10 and 50 http consumers (5 of the 50 timing out),
and an rq and a redis_stream destination against http, as ratios against a baseline in the same process.

Run from the repository root:  .venv/bin/python bench/consumers.py   (options: --help)

Each scenario stores and forwards the same `--events` queued Kite postbacks with the worker's own loop
(workers/pipeline.py) in this process, over a throwaway redis-server on a unix socket and a fresh SQLite file;
consumers are added as data (app/consumers/store.py). HTTP consumers are paths of one keep-alive server in a
child process (`--serve`: answers 204 at once); the timing-out ones are a listener that accepts and never
answers (FORWARD_TIMEOUT_SECONDS=2; a failed attempt is retried after 1 s four times, then an hour later).
A scenario ends when every delivery to an answering consumer is delivered (a connection the busy server did not
accept in time is retried too). Figures: CPU µs of this process (storing and sending threads) per event and
per delivery, events/s to the last answering delivery, and each ÷ the baseline (one FORWARD_URLS consumer, the
set-up before consumers were data), run first (after a discarded warm-up) and again last, so the drift of a
shared machine shows. "45 http consumers" against "50 http consumers, 5 timing out" is the isolation figure:
the 45 answering consumers get every event as fast with 5 dead ones beside them. Also: what the routing table
costs a batch, cached and read every time.
Everything temporary is removed.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import KITE_SECRET, KitePostbacks, free_port, redis_server_binary, wait_for  # noqa: E402

ADMIN_TOKEN = "bench-admin-token-0123456789"
FORWARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@dataclass
class Scenario:
    """One run: how many consumers of which kind (`timing_out` of the http ones never answer)."""

    name: str
    http: int = 0
    timing_out: int = 0
    rq: int = 0
    stream: int = 0
    environment: bool = False


SCENARIOS = [
    Scenario("baseline: 1 FORWARD_URLS consumer", environment=True),
    Scenario("1 http consumer", http=1),
    Scenario("10 http consumers", http=10),
    Scenario("45 http consumers", http=45),
    Scenario("50 http consumers, 5 timing out", http=50, timing_out=5),
    Scenario("1 rq consumer", rq=1),
    Scenario("1 redis_stream consumer", stream=1),
    Scenario("baseline again: 1 FORWARD_URLS consumer", environment=True),
]


# The consumers' server (a child process): 204 at once on one port, a black hole on another.


class _Answering(BaseHTTPRequestHandler):
    """Keep-alive, answers 204 at once."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server naming
        """Read the body, answer 204."""
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response_only(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        """Quiet."""


def serve(port: int, silent_port: int) -> int:
    """Serve answering consumers on `port` and a listener that never answers on `silent_port`, until killed."""
    silent = socket.create_server(("127.0.0.1", silent_port), backlog=1024)
    held: list[socket.socket] = []

    def hold() -> None:
        while True:
            connection, _ = silent.accept()
            held.append(connection)  # read nothing, answer nothing

    threading.Thread(target=hold, daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", port), _Answering)
    server.daemon_threads = True
    server.request_queue_size = 1024
    server.serve_forever()
    return 0


# One scenario


def environment(work: Path, sock: Path, port: int, scenario: Scenario) -> dict[str, str]:
    """A production environment over this scenario's fresh database."""
    env = {
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://orderhook.example.com",
        "REDIS_URL": f"unix://{sock}",
        "DATABASE_URL": f"sqlite:///{work / (scenario.name.replace(':', '').replace(' ', '-') + '.sqlite3')}",
        "INSTANCE_PATH": str(work / "instance"),
        "KITE_API_SECRET": KITE_SECRET,
        "POSTBACK_TOKEN": "bench_0123456789abcdef",
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "FORWARD_SECRET": FORWARD_SECRET,
        "FORWARD_TIMEOUT_SECONDS": "2",
        "FORWARD_RETRY_SCHEDULE": "1,1,1,1,3600",
        "LOGIN_REMINDER_IST": "off",
    }
    if scenario.environment:
        env["FORWARD_URLS"] = f"http://127.0.0.1:{port}/environment"
    return env


def add_consumers(services, scenario: Scenario, port: int, silent_port: int) -> list[str]:
    """The scenario's consumers, added as data; the ids of those that answer."""
    from app.consumers.store import ConsumerStore

    store = ConsumerStore(services.config, services.engine)
    answering = []
    for index in range(scenario.http):
        silent = index < scenario.timing_out
        url = f"http://127.0.0.1:{silent_port if silent else port}/c{index}"
        made, _ = store.create("http", url=url)
        if not silent:
            answering.append(made.id)
    for index in range(scenario.rq):
        answering.append(store.create("rq", queue=f"bench{index}", function="strategy.on_order")[0].id)
    for index in range(scenario.stream):
        answering.append(store.create("redis_stream", stream=f"bench{index}")[0].id)
    if scenario.environment:
        from app.store import consumer_id

        answering.append(consumer_id(services.config.forward_urls[0]))
    return answering


def run(scenario: Scenario, events: int, work: Path, sock: Path, port: int, silent_port: int) -> dict[str, float]:
    """Store and forward `events` postbacks; CPU and wall time until every answering consumer has them all."""
    import redis
    import sqlalchemy as sa

    from app.config import load_config
    from app.db import deliveries, upgrade
    from app.services import Services
    from workers.pipeline import Pipeline, ensure_group

    redis.Redis(unix_socket_path=str(sock)).flushall()
    config = load_config(environment(work, sock, port, scenario))
    upgrade(config.database_url)
    services = Services.build(config)
    answering = add_consumers(services, scenario, port, silent_port)
    adapter = services.adapters["kite"]
    postbacks = KitePostbacks("C")
    for index in range(events):
        body = postbacks.body(index)
        services.ingestor.submit(adapter.receive(body, {}, token=None, received_at="2026-12-04T10:00:00Z"), body)
    loop = Pipeline(services, consumer="bench", claim_idle_ms=0)
    ensure_group(services.redis)
    wanted = events * len(answering)
    count = (
        sa.select(sa.func.count())
        .select_from(deliveries)
        .where(deliveries.c.status == "delivered", deliveries.c.consumer_id.in_(answering))
    )

    def delivered() -> int:
        with services.engine.connect() as conn:
            return conn.execute(count).scalar_one()

    scan_every = config.delivery.scan_ms / 1000
    cpu, wall = time.process_time(), time.monotonic()
    last_scan = last_check = 0.0
    try:
        while True:
            stored = loop.step(None)
            now = time.monotonic()
            if now - last_scan >= scan_every:
                loop.forwarder.scan()
                last_scan = now
            if now - last_check >= 0.05:
                last_check = now
                if delivered() >= wanted:
                    break
            if not stored:
                time.sleep(0.001)
            if now - wall > 600:
                raise SystemExit(f"{scenario.name}: not delivered within 600 s ({delivered()}/{wanted})")
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        loop.close()
        services.ingestor.close()
        services.engine.dispose()
    total = events * (scenario.http + scenario.rq + scenario.stream + scenario.environment)
    return {
        "cpu_us_per_event": cpu / events * 1e6,
        "cpu_us_per_delivery": cpu / total * 1e6,
        "events_per_s": events / wall,
        "deliveries": total,
    }


# The routing table on the hot path


def routing_cost(work: Path, sock: Path, port: int, consumers: int = 50, calls: int = 2000) -> dict[str, float]:
    """µs per batch of reading the routing table (50 filtered consumers) with its TTL cache and without."""
    import sqlalchemy as sa

    from app.config import load_config
    from app.consumers.input import filters
    from app.consumers.routes import configured_consumers, forget_consumers
    from app.consumers.store import ConsumerStore
    from app.db import upgrade

    config = load_config(environment(work, sock, port, Scenario("routing")))
    upgrade(config.database_url)
    engine = sa.create_engine(config.database_url)
    store = ConsumerStore(config, engine)
    for index in range(consumers):
        store.create("http", url=f"http://127.0.0.1:{port}/r{index}", filters=filters({"accounts": [f"A{index}"]}))
    figures = {}
    with engine.connect() as conn:
        for label, before in (("cached", lambda: None), ("uncached", forget_consumers)):
            started = time.perf_counter()
            for _ in range(calls):
                before()
                configured_consumers(conn, ())
            figures[f"routing_{label}_us"] = (time.perf_counter() - started) / calls * 1e6
    event = {"broker": "kite", "account_id": "A7", "status": "OPEN", "source": "postback"}
    routes = configured_consumers(engine.connect(), ())
    started = time.perf_counter()
    for _ in range(calls):
        [route for route in routes if route.filters.matches(event)]
    figures["filters_50_us_per_event"] = (time.perf_counter() - started) / calls * 1e6
    engine.dispose()
    return figures


def main() -> int:
    """Run every scenario (or those asked for), print the figures and their ratios to the baseline."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1000, help="postbacks per scenario (default 1000)")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument("--serve", nargs=2, type=int, metavar=("PORT", "SILENT_PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(*args.serve)
    work = Path(tempfile.mkdtemp(prefix="orderhook-bench-consumers-"))
    sock = work / "redis.sock"
    port, silent_port = free_port(), free_port()
    redis_proc = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(work), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port), str(silent_port)])
    results: dict[str, dict[str, float]] = {}
    try:
        import redis

        wait_for(lambda: redis.Redis(unix_socket_path=str(sock)).ping(), 10, "redis")
        wait_for(lambda: _listening(port) and _listening(silent_port), 10, "the consumers' server")
        # Imports, first connections and SQLite's page cache would all be charged to the first scenario.
        run(Scenario("warm-up", environment=True), max(50, args.events // 5), work, sock, port, silent_port)
        for scenario in SCENARIOS:
            results[scenario.name] = run(scenario, args.events, work, sock, port, silent_port)
            _print(scenario.name, results[scenario.name], results[SCENARIOS[0].name])
        results["routing"] = routing_cost(work, sock, port)
        routing = results["routing"]
        print(
            f"routing table, 50 filtered consumers: {routing['routing_cached_us']:.1f} us per batch cached, "
            f"{routing['routing_uncached_us']:.0f} us read every batch; "
            f"filters {routing['filters_50_us_per_event']:.1f} us per event"
        )
    finally:
        server.terminate()
        redis_proc.terminate()
        server.wait(10)
        redis_proc.wait(10)
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


def _listening(port: int) -> bool:
    """Something accepts on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _print(name: str, figures: dict[str, float], baseline: dict[str, float]) -> None:
    """One scenario's line, with its ratios to the baseline."""
    ratio: Callable[[str], float] = lambda key: figures[key] / baseline[key]  # noqa: E731
    print(
        f"{name:36s} {figures['cpu_us_per_event']:8.0f} us CPU/event ({ratio('cpu_us_per_event'):5.2f}x)"
        f"  {figures['cpu_us_per_delivery']:6.0f} us/delivery ({ratio('cpu_us_per_delivery'):4.2f}x)"
        f"  {figures['events_per_s']:7.0f} events/s ({ratio('events_per_s'):4.2f}x)",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
