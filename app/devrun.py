"""`scripts/dev`: the whole service on one machine, on embedded defaults, in development mode.

`scripts/dev` starts (or reuses) an embedded redis-server when REDIS_URL is unset, uses SQLite under
instance/ when DATABASE_URL is unset, generates development secrets once, migrates the database, prints
the postback URLs to register with each broker, then runs the Procfile's web (on DEV_LISTEN_HOST,
127.0.0.1 unless widened), worker and feeds processes with their output prefixed, and stops them all on
Ctrl-C (or SIGTERM, or a closed terminal): each gets one SIGTERM and STOP_GRACE_SECONDS to finish its work
in hand, what is left then is killed (said in the output; a second Ctrl-C kills at once), and the embedded
Redis stops last, so nothing outlives the runner and no process loses Redis while it finishes. Beside it
(README.md, "Quick start"):

* `scripts/dev env` prints the shell exports that make the documented commands (`flask --app wsgi …`,
  `rq info --url $REDIS_URL`, `curl` with `$ADMIN_TOKEN`) work as printed: `eval "$(scripts/dev env)"`;
* `scripts/dev sample kite` posts a signed sample Kite postback (a new order each time) to the service;
* `scripts/dev --link` prints a fresh one-time sign-in link for the blotter.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import redis
import requests
from dotenv import load_dotenv

from app.brokers.kite.adapter import kite_checksum
from app.brokers.registry import postback_brokers
from app.config import ROOT, Config, forwarding_summary, load_config
from app.db import upgrade
from app.lifetime import die_with_parent
from app.redis_conn import answers, embedded_server, ensure_embedded_redis
from app.sessions import issue_dev_code
from app.times import IST

PROCESSES = ("web", "worker", "feeds")
#: The order the processes are told to stop in: web first (no new postbacks), the worker when feeds are
#: told too, each at once; the embedded Redis only after all have ended (they need it to finish).
STOP_ORDER = ("web", "feeds", "worker")
#: Seconds the processes get to stop after SIGTERM before what is left of them is killed (SIGKILL to each
#: process group). Above gunicorn's graceful_timeout (gunicorn.conf.py) and the worker's own
#: STOP_GRACE_SECONDS (workers/worker.py), so each stops itself first whenever it can.
STOP_GRACE_SECONDS = 25.0
#: Seconds the embedded redis-server gets to write its AOF and exit after SHUTDOWN.
REDIS_STOP_SECONDS = 5.0
#: What `scripts/dev env` exports: what the dev runner decides for its children, and the venv's tools on PATH.
EXPORTED = (
    "APP_ENV",
    "PORT",
    "INSTANCE_PATH",
    "PUBLIC_BASE_URL",
    "REDIS_URL",
    "DATABASE_URL",
    "POSTBACK_TOKEN",
    "ADMIN_TOKEN",
    "FORWARD_SECRET",
    "KITE_API_SECRET",
    "ORDERHOOK_DEV_BANNER_SHOWN",
)
VENV_BIN = Path(sys.executable).parent


def _new_secrets() -> dict[str, str]:
    """Fresh development secrets: the path token, the admin token, the signing key and a Kite app secret."""
    return {
        "POSTBACK_TOKEN": secrets.token_urlsafe(24),
        "ADMIN_TOKEN": secrets.token_urlsafe(24),
        "FORWARD_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
        # Kite's api_secret is 32 lowercase letters and digits; this one signs `scripts/dev sample kite`.
        "KITE_API_SECRET": secrets.token_hex(16),
    }


def dev_secrets(instance: Path) -> dict[str, str]:
    """Secrets generated once per checkout, so URLs and tokens stay the same between runs (new kinds are added)."""
    path = instance / "dev-secrets.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    missing = {key: value for key, value in _new_secrets().items() if key not in stored}
    if missing:
        instance.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stored | missing, indent=2))
        path.chmod(0o600)
    return stored | missing


def development_environment(source: Mapping[str, str]) -> dict[str, str]:
    """`source` (the environment with .env loaded) plus the development defaults; what the user set wins."""
    env = dict(source)
    for key, value in (("APP_ENV", "development"), ("PORT", "8000")):
        env[key] = env.get(key) or value
    instance = Path(env.get("INSTANCE_PATH") or ROOT / "instance")
    env["INSTANCE_PATH"] = str(instance)
    for key, value in dev_secrets(instance).items():
        if key == "KITE_API_SECRET" and env.get("KITE_APPS"):
            continue  # the user's apps and their secrets verify Kite postbacks
        env[key] = env.get(key) or value
    env["PUBLIC_BASE_URL"] = env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{env['PORT']}"
    env["REDIS_URL"] = env.get("REDIS_URL") or embedded_redis_url(instance)
    env["ORDERHOOK_DEV_BANNER_SHOWN"] = "1"  # the dev runner shows the development warning, once
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    return env


def embedded_redis_url(instance: Path) -> str:
    """Where the embedded redis-server of this instance directory listens (app/redis_conn.py)."""
    return f"unix://{instance / 'redis.sock'}"


def user_environment() -> dict[str, str]:
    """The process environment with the checkout's .env loaded under it (set variables win)."""
    load_dotenv(ROOT / ".env")
    return dict(os.environ)


def banner(config: Config, env: Mapping[str, str], embedded_redis: bool) -> str:
    """What to register with each broker, and how to look around (the admin token stays in its file)."""
    base = config.public_base_url
    lines = [
        "",
        "Orderhook is starting (development mode).",
        "Register these postback URLs with your brokers:",
        *(f"  {broker.capitalize():<10} {config.postback_url(broker)}" for broker, _route in postback_brokers()),
        f"Listening:   {listening(config)}",
        f"Blotter:     {base}/",
        f"             one-time sign-in link: {sign_in_link(config, env)}",
        "             (valid 15 minutes, once; `scripts/dev --link` prints a new one)",
        f"Forwarding:  {forwarding_summary(config)}",
        "Try it:      scripts/dev sample kite   (posts a signed sample Kite postback: a new order each time)",
        'Commands:    eval "$(scripts/dev env)" in another shell, then what README.md prints, e.g.',
        '             curl -H "Authorization: Bearer $ADMIN_TOKEN" "$PUBLIC_BASE_URL/api/orders"',
        "             flask --app wsgi prune --dry-run;  rq info --url $REDIS_URL",
        f"Redis:       {'embedded (' + env['REDIS_URL'] + ')' if embedded_redis else env['REDIS_URL']}",
        f"Database:    {config.database_url.split('@')[-1]}",
        "Secrets were generated into instance/dev-secrets.json; set them in .env to choose your own.",
        "",
    ]
    return "\n".join(lines)


def listening(config: Config) -> str:
    """Where web listens, and whether other machines can reach it."""
    address = bind_address(config)
    if config.dev_listen_host in ("127.0.0.1", "::1"):
        return f"{address}, this machine only (DEV_LISTEN_HOST=0.0.0.0 lets other machines in)"
    return f"{address} (DEV_LISTEN_HOST): other machines on the network can reach it"


def bind_address(config: Config) -> str:
    """gunicorn's --bind for development: DEV_LISTEN_HOST and PORT."""
    host = config.dev_listen_host
    return f"[{host}]:{config.web.port}" if ":" in host else f"{host}:{config.web.port}"


def sign_in_link(config: Config, env: Mapping[str, str]) -> str:
    """A single-use, short-lived link that opens a blotter session (the route exists in development only)."""
    try:
        code = issue_dev_code(redis.Redis.from_url(env["REDIS_URL"], socket_connect_timeout=2))
    except redis.RedisError as exc:
        return f"(unavailable: Redis did not answer: {exc})"
    return f"{config.public_base_url}/signin/dev?code={code}"


def print_link() -> int:
    """`scripts/dev --link`: a fresh sign-in link for the running development service."""
    env = development_environment(user_environment())
    config = load_config(env)
    if not config.is_development:
        print("sign-in links exist in development only (APP_ENV=development)", file=sys.stderr)
        return 2
    if not answers(env["REDIS_URL"]):
        print(f"Redis does not answer at {env['REDIS_URL']}: start scripts/dev first", file=sys.stderr)
        return 1
    print(sign_in_link(config, env))
    return 0


def print_exports() -> int:
    """`scripts/dev env`: `export` lines for a POSIX shell, so the README's commands run there as printed."""
    env = development_environment(user_environment())
    for key in EXPORTED:
        if env.get(key):
            print(f"export {key}={shlex.quote(env[key])}")
    print(f'export PATH={shlex.quote(str(VENV_BIN))}:"$PATH"')
    if not answers(env["REDIS_URL"]):
        print(f"# Redis does not answer at {env['REDIS_URL']} yet: start scripts/dev", file=sys.stderr)
    return 0


def kite_sample(secret: str, app_id: str | None, now: datetime) -> dict[str, Any]:
    """A COMPLETE postback shaped like Kite's documented one (docs/brokers.md §3.1), a new order id each time."""
    local = now.astimezone(IST)
    stamp = local.strftime("%Y-%m-%d %H:%M:%S")  # Kite's order_timestamp: IST, no zone
    order_id = local.strftime("%y%m%d") + f"{secrets.randbelow(10**9):09d}"
    payload: dict[str, Any] = {
        "user_id": "DEV123",
        "order_id": order_id,
        "exchange_order_id": "1000000" + order_id[-9:],
        "status": "COMPLETE",
        "status_message": None,
        "order_timestamp": stamp,
        "exchange_update_timestamp": stamp,
        "exchange_timestamp": stamp,
        "variety": "regular",
        "exchange": "NSE",
        "tradingsymbol": "SBIN",
        "order_type": "MARKET",
        "transaction_type": "BUY",
        "validity": "DAY",
        "product": "CNC",
        "quantity": 1,
        "filled_quantity": 1,
        "pending_quantity": 0,
        "price": 0,
        "trigger_price": 0,
        "average_price": 470,
        "tag": "orderhook-sample",
    }
    if app_id is not None:
        payload["app_id"] = app_id  # selects the KITE_APPS secret
    payload["checksum"] = kite_checksum(order_id, stamp, secret)
    return payload


def send_sample(broker: str) -> int:
    """`scripts/dev sample kite`: post a signed sample postback to the running service, say what it answered."""
    env = development_environment(user_environment())
    config = load_config(env)
    app_id, secret = next(iter(config.kite_apps.items()), (None, config.kite_api_secret))
    payload = kite_sample(secret, app_id, datetime.now(IST))
    body = json.dumps(payload, separators=(",", ":"))
    url = config.postback_url(broker)
    print(f"curl -sS -H 'Content-Type: application/json' --data-binary {shlex.quote(body)} {shlex.quote(url)}")
    try:
        answer = requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
    except requests.RequestException as exc:
        print(f"nothing answers at {url} ({type(exc).__name__}): start scripts/dev first", file=sys.stderr)
        return 1
    print(f"{answer.status_code} {answer.text.strip()}")
    if answer.status_code not in (200, 202):
        return 1
    print(f"order {payload['order_id']} (SBIN BUY 1, FILLED) is on the blotter: {config.public_base_url}/")
    return 0


def procfile() -> dict[str, str]:
    """Procfile entries by name."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() in PROCESSES:
            entries[name.strip()] = command.strip()
    return entries


def commands(config: Config) -> dict[str, str]:
    """The Procfile's commands, web bound to DEV_LISTEN_HOST (the command line wins over gunicorn.conf.py)."""
    entries = procfile()
    entries["web"] = f"{entries['web']} --bind {shlex.quote(bind_address(config))}"
    return entries


def _pump(name: str, stream) -> None:
    """Copy a child's output with its name in front (read to the end even if it cannot be shown, or the
    child would block on a full pipe and never stop)."""
    for line in iter(stream.readline, b""):
        _show(f"{name:>6} | {line.decode(errors='replace')}")


def say(message: str) -> None:
    """A line of the runner's own, beside the children's prefixed ones."""
    _show(f"{'dev':>6} | {message}\n")


def _show(text: str) -> None:
    """Write to the terminal; a closed one (SIGHUP) must not interrupt the stop."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def start_child(name: str, command: str, env: Mapping[str, str]) -> tuple[subprocess.Popen, threading.Thread]:
    """One Procfile process in a session (and process group) of its own: a terminal's Ctrl-C reaches the
    runner alone, which stops the processes in order, Redis last; SIGTERM ends it should the runner die."""
    child = subprocess.Popen(
        ["bash", "-c", "exec " + command],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        preexec_fn=die_with_parent,  # noqa: PLW1509 - only async-signal-safe work: one prctl call
    )
    pump = threading.Thread(target=_pump, args=(name, child.stdout), name=f"pump-{name}", daemon=True)
    pump.start()
    return child, pump


def run() -> int:
    """Run until Ctrl-C, SIGTERM or SIGHUP, or until a process exits, then stop them all, Redis last."""
    env = development_environment(user_environment())
    embedded_redis = not os.environ.get("REDIS_URL")
    signals: list[int] = []
    _catch_stop_signals(signals)
    if embedded_redis:
        env["REDIS_URL"] = ensure_embedded_redis(Path(env["INSTANCE_PATH"]))
    server = embedded_server(Path(env["INSTANCE_PATH"])) if embedded_redis else None
    config = load_config(dict(env, ORDERHOOK_DEV_BANNER_SHOWN=""))  # logs the development warning, once
    upgrade(config.database_url)
    print(banner(config, env, embedded_redis), flush=True)
    children: dict[str, subprocess.Popen] = {}
    pumps: list[threading.Thread] = []
    for name, command in commands(config).items():
        if signals:
            break
        children[name], pump = start_child(name, command, env)
        pumps.append(pump)
    _wait_for_stop(children, signals)
    stop_children(children, signals)
    for pump in pumps:
        pump.join(timeout=2)  # their last lines before the runner's own
    if server is not None:
        stop_embedded_redis(env["REDIS_URL"], server)
    say("stopped")
    return 0


def _catch_stop_signals(signals: list[int]) -> None:
    """Ctrl-C, SIGTERM and a closed terminal are noted (the main loop stops everything); not raised."""

    def _note(signum: int, _frame) -> None:
        signals.append(signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _note)


def _wait_for_stop(children: Mapping[str, subprocess.Popen], signals: list[int]) -> None:
    """Until a stop signal arrives or one of the processes exits."""
    while not signals:
        exited = [name for name, child in children.items() if child.poll() is not None]
        if exited:
            say(f"{', '.join(exited)} exited; stopping the others")
            return
        time.sleep(0.2)
    names = ", ".join(name for name in STOP_ORDER if name in children)
    say(f"{signal.Signals(signals[0]).name}: stopping {names} (up to {STOP_GRACE_SECONDS:.0f} s), then Redis")


def stop_children(children: Mapping[str, subprocess.Popen], signals: list[int]) -> None:
    """SIGTERM each process once (web, feeds, worker: each finishes its work in hand); past STOP_GRACE_SECONDS,
    or at a second Ctrl-C, SIGKILL the process group of any still running, and say so."""
    noted = len(signals)
    for name in STOP_ORDER:
        child = children.get(name)
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while any(child.poll() is None for child in children.values()):
        if time.monotonic() >= deadline or len(signals) > noted:
            break
        time.sleep(0.1)
    for name, child in children.items():
        _kill_leftovers(name, child, "a second signal" if len(signals) > noted else f"{STOP_GRACE_SECONDS:.0f} s")


def _kill_leftovers(name: str, child: subprocess.Popen, after: str) -> None:
    """SIGKILL what is left of a child's process group (the child itself, or processes it left behind)."""
    running = child.poll() is None
    try:
        os.killpg(child.pid, 0)
    except ProcessLookupError:
        return  # the group is empty: everything it started has ended
    except PermissionError:
        pass
    if running:
        say(f"{name} still running after {after}: killing its processes (SIGKILL)")
    else:
        say(f"{name} exited but left processes behind: killing them (SIGKILL)")
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    child.wait()


def stop_embedded_redis(url: str, server: subprocess.Popen) -> None:
    """Last, once nothing uses it: SHUTDOWN the embedded redis-server this run started (it writes its AOF
    first); past REDIS_STOP_SECONDS it is killed, and the runner says so."""
    try:
        redis.Redis.from_url(url, socket_timeout=REDIS_STOP_SECONDS).shutdown()
    except redis.RedisError:
        pass  # SHUTDOWN closes the connection; or the server is gone already
    try:
        server.wait(REDIS_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        say(f"the embedded Redis did not stop within {REDIS_STOP_SECONDS:.0f} s: killing it (SIGKILL)")
        server.kill()
        server.wait()


def main(argv: list[str]) -> int:
    """`scripts/dev [--link | env | sample kite]` (python -m app.devrun takes the same arguments)."""
    parser = argparse.ArgumentParser(prog="scripts/dev", description="Orderhook on one machine, in development mode.")
    parser.add_argument("--link", action="store_true", help="print a fresh one-time sign-in link for the blotter")
    subcommands = parser.add_subparsers(dest="command")
    subcommands.add_parser("env", help='shell exports for the documented commands: eval "$(scripts/dev env)"')
    sample = subcommands.add_parser("sample", help="post a signed sample postback to the running service")
    sample.add_argument("broker", choices=["kite"])
    args = parser.parse_args(argv)
    if args.link:
        return print_link()
    if args.command == "env":
        return print_exports()
    if args.command == "sample":
        return send_sample(args.broker)
    return run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
