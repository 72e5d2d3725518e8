"""`scripts/dev`: the whole service on one machine, on embedded defaults, in development mode.

Starts (or reuses) an embedded redis-server when REDIS_URL is unset, uses SQLite under instance/
when DATABASE_URL is unset, generates development secrets once, migrates the database, prints the
postback URLs to register with each broker, then runs the Procfile's web, worker and feeds
processes with their output prefixed, and stops them all on Ctrl-C.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
from pathlib import Path

from app.brokers.registry import postback_brokers
from app.config import ROOT, Config, load_config
from app.db import upgrade
from app.redis_conn import answers, ensure_embedded_redis
from app.sessions import issue_dev_code

PROCESSES = ("web", "worker", "feeds")


def dev_secrets(instance: Path) -> dict[str, str]:
    """Secrets generated once per checkout, so URLs and tokens stay the same between runs."""
    path = instance / "dev-secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    import base64

    values = {
        "POSTBACK_TOKEN": secrets.token_urlsafe(24),
        "ADMIN_TOKEN": secrets.token_urlsafe(24),
        "FORWARD_SECRET": "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode(),
    }
    instance.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


def prepare_environment() -> dict[str, str]:
    """The environment every child process gets."""
    try:
        from dotenv import load_dotenv

        load_dotenv(ROOT / ".env")
    except ImportError:  # pragma: no cover - python-dotenv is pinned
        pass
    env = dict(os.environ)
    for key, value in (("APP_ENV", "development"), ("PORT", "8000")):
        env[key] = env.get(key) or value
    instance = Path(env.get("INSTANCE_PATH") or ROOT / "instance")
    for key, value in dev_secrets(instance).items():
        env[key] = env.get(key) or value
    env["PUBLIC_BASE_URL"] = env.get("PUBLIC_BASE_URL") or f"http://127.0.0.1:{env['PORT']}"
    if not env.get("REDIS_URL"):
        already_running = (instance / "redis.sock").exists() and answers(f"unix://{instance / 'redis.sock'}")
        env["REDIS_URL"] = ensure_embedded_redis(instance)
        if not already_running:
            env["_ORDERHOOK_STARTED_REDIS"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    return env


def banner(config: Config, env: dict[str, str]) -> str:
    """What to register with each broker, and how to look around (the admin token stays in its file)."""
    lines = [
        "",
        "Orderhook is starting (development mode).",
        "Register these postback URLs with your brokers:",
        *(f"  {broker.capitalize():<10} {config.postback_url(broker)}" for broker, _route in postback_brokers()),
        f"Blotter:     {config.public_base_url}/",
        f"             one-time sign-in link: {sign_in_link(config, env)}",
        "             (valid 15 minutes, once; `python -m app.devrun --link` prints a new one)",
        'Admin API:   curl -H "Authorization: Bearer $ADMIN_TOKEN" ' + f"{config.public_base_url}/api/orders",
        "             (ADMIN_TOKEN is in .env or instance/dev-secrets.json)",
        f"Redis:       {'embedded (' + env['REDIS_URL'] + ')' if 'instance' in env['REDIS_URL'] else env['REDIS_URL']}",
        f"Database:    {config.database_url.split('@')[-1]}",
        "Secrets were generated into instance/dev-secrets.json; set them in .env to choose your own.",
        "",
    ]
    return "\n".join(lines)


def sign_in_link(config: Config, env: dict[str, str]) -> str:
    """A single-use, short-lived link that opens a blotter session (the route exists in development only)."""
    import redis

    try:
        code = issue_dev_code(redis.Redis.from_url(env["REDIS_URL"], socket_connect_timeout=2))
    except redis.RedisError as exc:
        return f"(unavailable: Redis did not answer: {exc})"
    return f"{config.public_base_url}/signin/dev?code={code}"


def print_link() -> int:
    """`python -m app.devrun --link`: a fresh sign-in link for the running development service."""
    env = prepare_environment()
    env.pop("_ORDERHOOK_STARTED_REDIS", None)
    env["ORDERHOOK_DEV_BANNER_SHOWN"] = "1"
    config = load_config(env)
    if not config.is_development:
        print("sign-in links exist in development only (APP_ENV=development)", file=sys.stderr)
        return 2
    print(sign_in_link(config, env))
    return 0


def procfile() -> dict[str, str]:
    """Procfile entries by name."""
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() in PROCESSES:
            entries[name.strip()] = command.strip()
    return entries


def _pump(name: str, stream) -> None:
    """Copy a child's output with its name in front."""
    for line in iter(stream.readline, b""):
        sys.stdout.write(f"{name:>6} | {line.decode(errors='replace')}")
        sys.stdout.flush()


def main() -> int:
    """Run until Ctrl-C or until a process exits, then stop the others."""
    env = prepare_environment()
    started_redis = bool(env.pop("_ORDERHOOK_STARTED_REDIS", None))
    config = load_config(env)  # logs the development warning, once: the children are told it is shown
    env["ORDERHOOK_DEV_BANNER_SHOWN"] = "1"
    upgrade(config.database_url)
    print(banner(config, env), flush=True)
    children: dict[str, subprocess.Popen] = {}
    for name, command in procfile().items():
        child = subprocess.Popen(
            ["bash", "-c", "exec " + command], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        children[name] = child
        threading.Thread(target=_pump, args=(name, child.stdout), daemon=True).start()
    stopping = threading.Event()

    def _stop(_signum, _frame) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    while not stopping.wait(0.5):
        exited = [name for name, child in children.items() if child.poll() is not None]
        if exited:
            print(f"{', '.join(exited)} exited; stopping the others", flush=True)
            break
    for child in children.values():
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    for child in children.values():
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
    if started_redis:
        _stop_embedded_redis(env["REDIS_URL"])
    return 0


def _stop_embedded_redis(url: str) -> None:
    """Shut down the embedded redis-server this run started (it writes its AOF first)."""
    import redis

    try:
        redis.Redis.from_url(url).shutdown()
    except redis.RedisError:
        pass


if __name__ == "__main__":
    sys.exit(print_link() if sys.argv[1:] == ["--link"] else main())
