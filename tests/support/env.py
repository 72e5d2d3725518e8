"""The test environment's secrets and a complete production environment built from them."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parents[2]
TEST_REDIS_DB = 9
PG_ADMIN_DSN = os.environ.get("TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")

KITE_SECRET = "kite-test-secret-0123456789"
POSTBACK_TOKEN = "tok_" + "a1b2c3d4e5f6a7b8c9d0"
ADMIN_TOKEN = "admin-test-token-0123456789"
FORWARD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#: Marks which test run holds a database of the machine's Redis (tests/conftest.py).
OWNER_KEY = "orderhook:test-run-owner"


def make_env(redis_url: str, database_url: str, tmp_path: Path, **overrides: str) -> dict[str, str]:
    """A complete production environment for tests."""
    env = {
        "APP_ENV": "production",
        "PUBLIC_BASE_URL": "https://orderhook.example.com",
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "KITE_API_SECRET": KITE_SECRET,
        "POSTBACK_TOKEN": POSTBACK_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "FORWARD_SECRET": FORWARD_SECRET,
        # Off: its window (08:45 IST on weekdays) would add alert lines to tests that run then; the tests of
        # the reminder turn it on and give the time (tests/accounts/test_expiry.py).
        "LOGIN_REMINDER_IST": "off",
    }
    env.update(overrides)
    return env


def random_token() -> str:
    """A fresh secret-looking token."""
    return secrets.token_urlsafe(18)


def postgres_available() -> bool:
    """True when the machine's PostgreSQL answers."""
    try:
        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def flush_test_db(client: redis.Redis) -> None:
    """Empty the test database but keep this run's claim on it."""
    client.flushdb()
    client.set(OWNER_KEY, os.getpid(), ex=3600)
