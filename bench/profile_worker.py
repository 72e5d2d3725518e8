"""Profile the worker loop in-process: N queued postbacks stored and forwarded to a local consumer.

    .venv/bin/python bench/profile_worker.py [N] [--sort cumulative|tottime]

Uses a throwaway redis-server and SQLite in a temporary directory and bench/consumer.py as the
consumer; prints CPU seconds per event of this process and the top of cProfile's table.
"""

from __future__ import annotations

import cProfile
import json
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import KITE_SECRET, KitePostbacks, free_port, redis_server_binary, wait_for  # noqa: E402


def main() -> int:
    """Fill the stream, then profile the loop until everything is stored and forwarded."""
    count = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 2000
    sort = sys.argv[sys.argv.index("--sort") + 1] if "--sort" in sys.argv else "tottime"
    work = Path(tempfile.mkdtemp(prefix="orderhook-profile-"))
    sock = work / "redis.sock"
    redis_proc = subprocess.Popen(
        [redis_server_binary(), "--port", "0", "--unixsocket", str(sock), "--dir", str(work), "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    port = free_port()
    consumer = subprocess.Popen([sys.executable, str(ROOT / "bench" / "consumer.py"), str(port)])
    try:
        import redis

        wait_for(lambda: redis.Redis(unix_socket_path=str(sock)).ping(), 10, "redis")
        from app.config import load_config
        from app.db import upgrade
        from app.services import Services

        env = {
            "APP_ENV": "production",
            "PUBLIC_BASE_URL": "https://orderhook.example.com",
            "REDIS_URL": f"unix://{sock}",
            "DATABASE_URL": f"sqlite:///{work / 'db.sqlite3'}",
            "INSTANCE_PATH": str(work / "instance"),
            "KITE_API_SECRET": KITE_SECRET,
            "POSTBACK_TOKEN": "bench_0123456789abcdef",
            "ADMIN_TOKEN": "bench-admin-token-0123456789",
            "FORWARD_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "FORWARD_URLS": f"http://127.0.0.1:{port}/hook",
        }
        config = load_config(env)
        upgrade(config.database_url)
        services = Services.build(config)
        adapter = services.adapters["kite"]
        postbacks = KitePostbacks("P")
        for index in range(count):
            body = postbacks.body(index)
            event = adapter.receive(body, {}, token=None, received_at="2026-11-28T10:00:00Z")
            services.ingestor.submit(event, body)
        from workers.pipeline import Pipeline

        loop = Pipeline(services, consumer="profile")
        profile = cProfile.Profile()
        cpu, wall = time.process_time(), time.monotonic()
        profile.enable()
        loop.run_until_idle(600)
        profile.disable()
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        loop.close()
        import sqlalchemy as sa

        from app.db import deliveries

        with services.engine.connect() as conn:
            delivered = conn.execute(
                sa.select(sa.func.count()).select_from(deliveries).where(deliveries.c.status == "delivered")
            ).scalar_one()
        print(f"{delivered}/{count} delivered")
        print(f"{count} events: {cpu / count * 1e6:.0f} us CPU per event in the worker, {count / wall:.0f} events/s")
        pstats.Stats(profile).sort_stats(sort).print_stats(35)
        print(json.dumps({"cpu_us_per_event": cpu / count * 1e6}))
    finally:
        consumer.terminate()
        redis_proc.terminate()
    return 0


if __name__ == "__main__":
    sys.exit(main())
