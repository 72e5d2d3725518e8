"""What the accounts' postback lookups cost on the request path, with and without their in-process cache.

Run from the repository root:  .venv/bin/python bench/postback_tokens.py   (options: --help)

The WSGI app is called directly (as bench/ingest.py's in-process part does) over a throwaway redis-server
and a SQLite file (or --database-url, e.g. a PostgreSQL database it may fill), with `--accounts` Kite and
Dhan accounts added as data. Figures, µs per request: Dhan postbacks to POSTBACK_TOKEN, to an account's
own token with the cache (app/ingest/postback_accounts.py TOKEN_CACHE_SECONDS) and without it (every
request reads the table); Kite postbacks signed with KITE_API_SECRET, and with a data account's
api_secret with and without the apps' cache (APP_CACHE_SECONDS). Everything temporary is removed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.ingest import Redis, environ_for, production_env  # noqa: E402
from bench.run import KITE_SECRET  # noqa: E402

DHAN_SAMPLE = json.loads((ROOT / "tests/support/fixtures/dhan_postback_traded.json").read_text())
KITE_SAMPLE = json.loads((ROOT / "tests/support/fixtures/kite_postback_complete.json").read_text())


def dhan_body(n: int, client_id: str) -> bytes:
    """A distinct Dhan postback of this client id."""
    return json.dumps(DHAN_SAMPLE | {"orderId": str(40_000_000_000_000 + n), "dhanClientId": client_id}).encode()


def kite_body(n: int, app_id: str, user: str, secret: str) -> bytes:
    """A distinct Kite postback of this app and user, signed with `secret`."""
    from app.brokers.kite.adapter import kite_checksum

    order_id = str(300_000_000_000_000 + n)
    payload = KITE_SAMPLE | {"order_id": order_id, "app_id": app_id, "user_id": user, "placed_by": user}
    payload["checksum"] = kite_checksum(order_id, payload["order_timestamp"], secret)
    return json.dumps(payload).encode()


def timed(app, path: str, bodies: list[bytes], expect: str) -> float:
    """µs per request of POSTing each body to `path` (every answer must start with `expect`)."""
    started = time.perf_counter()
    for body in bodies:
        environ = environ_for(body)
        environ["PATH_INFO"] = path
        status = _call(app, environ)
        if not status.startswith(expect):
            raise SystemExit(f"{path}: answered {status}, expected {expect}")
    return (time.perf_counter() - started) / len(bodies) * 1e6


def _call(app, environ: dict) -> str:
    """One request; its status line."""
    status: list[str] = []
    for _ in app(environ, lambda s, h, e=None: status.append(s)):
        pass
    return status[0]


def main() -> None:
    """Add the accounts, then time each case `--rounds` times (medians)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000, help="requests per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--accounts", type=int, default=500, help="Kite and Dhan accounts added as data (each)")
    parser.add_argument("--database-url", help="a database this bench may fill (default: a SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orderhook-bench-tokens-") as tmp:
        workdir = Path(tmp)
        redis = Redis(workdir)
        try:
            run(redis.url, workdir, args)
        finally:
            redis.stop()


def run(redis_url: str, workdir: Path, args: argparse.Namespace) -> None:
    """The measurement itself."""
    env = production_env(redis_url, workdir)
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    os.environ.update(env)
    import app.ingest.postback_accounts as lookups
    from app import create_app
    from app.api.postbacks import ACCOUNTS

    web = create_app()
    logging.disable(logging.WARNING)  # the access log of every request would be most of what is measured
    services = web.extensions["orderhook"]
    store = services.accounts
    token = ""
    for n in range(args.accounts):
        dhan = store.create("dhan", f"22{n:08d}")
        token = store.new_postback_token(dhan.id)  # the last one's is used
        store.create("kite", f"KU{n:04d}", credentials={"api_key": f"app-{n}", "api_secret": f"secret-{n:04d}-xyz"})
    dhan_id = f"22{args.accounts - 1:08d}"
    last = args.accounts - 1
    user, app_id, secret = f"KU{last:04d}", f"app-{last}", f"secret-{last:04d}-xyz"
    cases = {
        "dhan POSTBACK_TOKEN": (f"/postbacks/dhan/{env['POSTBACK_TOKEN']}", lambda n: dhan_body(n, "1100000001")),
        "dhan account token, cached": (f"/postbacks/dhan/{token}", lambda n: dhan_body(n, dhan_id)),
        "dhan account token, no cache": (f"/postbacks/dhan/{token}", lambda n: dhan_body(n, dhan_id)),
        "kite KITE_API_SECRET": ("/postbacks/kite", lambda n: kite_body(n, "1234", "AB1234", KITE_SECRET)),
        "kite data app, cached": ("/postbacks/kite", lambda n: kite_body(n, app_id, user, secret)),
        "kite data app, no cache": ("/postbacks/kite", lambda n: kite_body(n, app_id, user, secret)),
    }
    defaults = (lookups.TOKEN_CACHE_SECONDS, lookups.APP_CACHE_SECONDS, lookups.APP_MISS_INTERVAL_SECONDS)
    figures: dict[str, list[float]] = {name: [] for name in cases}
    serial = 0
    print(f"{args.accounts} Dhan + {args.accounts} Kite accounts on {services.engine.dialect.name}; "
          f"{args.count} requests x {args.rounds} rounds per case", flush=True)  # fmt: skip
    for _ in range(args.rounds):
        for name, (path, make) in cases.items():
            uncached = name.endswith("no cache")
            lookups.TOKEN_CACHE_SECONDS = 0.0 if uncached else defaults[0]
            lookups.APP_CACHE_SECONDS = 0.0 if uncached else defaults[1]
            lookups.APP_MISS_INTERVAL_SECONDS = 0.0 if uncached else defaults[2]
            web.extensions.pop(ACCOUNTS, None)  # a fresh cache per case
            timed(web, path, [make(serial + i) for i in range(50)], "202")  # warm up
            serial += 50
            count = max(args.count // 20, 20) if name == "kite data app, no cache" else args.count
            figures[name].append(timed(web, path, [make(serial + i) for i in range(count)], "202"))
            serial += count
    print("  whole request (WSGI), µs:          min   median", flush=True)
    for name, values in figures.items():
        print(f"  {name:30s} {min(values):8.1f} {statistics.median(values):8.1f}", flush=True)
    lookups.TOKEN_CACHE_SECONDS, lookups.APP_CACHE_SECONDS, lookups.APP_MISS_INTERVAL_SECONDS = defaults
    print("  the lookup alone, µs:              min   median", flush=True)
    cached = lookups.PostbackAccounts(store)
    for name, call in (
        ("token, cached (by_token)", lambda: cached.by_token("dhan", token)),
        ("token, database (by_postback_token)", lambda: store.by_postback_token(token)),
        ("kite app, cached (kite_apps)", lambda: cached.kite_apps(app_id)),
        ("kite apps, reload (all decrypted)", lambda: lookups.kite_apps(store.list(broker="kite", secrets=True))),
    ):
        times = [_per_call(call, 20 if "reload" in name else 2000) for _ in range(args.rounds)]
        print(f"  {name:36s} {min(times):8.1f} {statistics.median(times):8.1f}", flush=True)


def _per_call(call, count: int) -> float:
    """µs per call of `call`, over `count` calls."""
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) / count * 1e6


if __name__ == "__main__":
    main()
