"""What the browser tests share: the real Procfile processes on loopback, and a headless Chromium."""

from __future__ import annotations

import pytest

from tests.support.chromium import Stack, chromium


@pytest.fixture
def stack(redis_client, redis_url, sqlite_url, tmp_path):
    """The web, worker and feeds processes on SQLite and the test Redis, stopped after the test."""
    made = Stack(redis_url, sqlite_url, tmp_path).start()
    yield made
    made.stop()


@pytest.fixture
def browser():
    """A headless Chromium (tests/support/chromium.py)."""
    with chromium() as launched:
        yield launched
