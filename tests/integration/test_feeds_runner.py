"""The feeds process: FEEDS parsing, concurrency, idling when empty, clean stop on SIGTERM, backoff."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import pytest

from app.brokers.feed import FeedSettings, backoff_delay, with_query
from app.exceptions import ConfigurationError
from tests.support.env import ROOT
from tests.support.fakes import FakeKiteSocket, FakeNorenSocket
from tests.support.fakes.harness import ServiceBuilder, feed_state, wait_state
from workers.feeds.runner import run_feeds


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def test_connectors_in_feeds_run_concurrently_and_stop_cleanly(build):
    """Two feeds on one loop; stop closes both and publishes `stopped`."""

    async def scenario():
        async with FakeKiteSocket("key0001", "tok0001") as kite, FakeNorenSocket("U1", "tok0002") as noren:
            services = build(
                FEEDS="kite,flattrade",
                KITE_WS_URL=kite.url,
                KITE_API_KEY="key0001",
                KITE_ACCESS_TOKEN="tok0001",
                NOREN_WS_URL=noren.url,
                NOREN_USER_ID="U1",
                NOREN_TOKEN="tok0002",
            )
            stop = asyncio.Event()
            task = asyncio.ensure_future(run_feeds(services, stop))
            for name in ("kite", "flattrade"):
                await wait_state(services, name, "connected", lambda s: s.get("connected"))
            stop.set()
            await asyncio.wait_for(task, 5)
            return services

    services = asyncio.run(scenario())
    for name in ("kite", "flattrade"):
        state = feed_state(services, name)
        assert state["state"] == "stopped" and state["connected"] is False


def test_missing_credentials_mark_the_feed_misconfigured(build):
    """An enabled feed without its variables does not start, says which to set, and never dials."""

    async def scenario():
        services = build(FEEDS="kite", KITE_API_KEY="key0001")
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_feeds(services, stop))
        state = await wait_state(services, "kite", "misconfigured", lambda s: s.get("state") == "misconfigured")
        assert not task.done()  # the process idles rather than exiting (and being restarted in a loop)
        stop.set()
        await asyncio.wait_for(task, 5)
        return state

    state = asyncio.run(scenario())
    assert "KITE_ACCESS_TOKEN" in state["last_error"] and "KITE_API_KEY" not in state["last_error"]


def test_empty_feeds_idles_until_stopped(build, caplog):
    async def scenario():
        services = build(FEEDS="")
        stop = asyncio.Event()
        task = asyncio.ensure_future(run_feeds(services, stop))
        await asyncio.sleep(0.05)
        assert not task.done()
        stop.set()
        await asyncio.wait_for(task, 5)

    caplog.set_level("INFO")
    asyncio.run(scenario())
    assert "no feed is enabled" in caplog.text


def test_bad_timing_settings_stop_the_process_naming_the_variable(build):
    with pytest.raises(ConfigurationError, match="FEEDS_BACKOFF_MAX_SECONDS"):
        build(FEEDS_BACKOFF_MAX_SECONDS="soon")


def test_process_starts_with_no_feeds_and_exits_0_on_sigterm(env):
    """`python -m workers.feeds` (Procfile) idles with FEEDS empty and stops cleanly on SIGTERM."""
    child_env = {**os.environ, **env, "FEEDS": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "workers.feeds"],
        cwd=ROOT,
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        output = ""
        while "no feed is enabled" not in output and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            output += line
        assert "no feed is enabled" in output, output
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    for attempt in range(12):
        cap = min(60.0, 1.0 * 2**attempt)
        delays = [backoff_delay(attempt, 1.0, 60.0) for _ in range(50)]
        assert all(cap / 2 <= d <= cap for d in delays)
    assert len({backoff_delay(3, 1.0, 60.0) for _ in range(20)}) > 1  # jittered
    assert FeedSettings().backoff_base == 1.0 and FeedSettings().backoff_max == 60.0


def test_with_query_adds_credentials_and_keeps_other_parameters():
    url = with_query("wss://ws.kite.trade/?v=3", api_key="k", access_token="t/+=")
    assert url == "wss://ws.kite.trade/?v=3&api_key=k&access_token=t%2F%2B%3D"


def test_tokens_are_redacted_in_every_spelling(build):
    """A token that reaches an error text raw or URL-encoded (Kite's is in the query) comes out as ***."""
    from app.brokers.kite.feed import KiteConnector

    token = "tok/en+with=chars"
    services = build(KITE_API_KEY="key0001", KITE_ACCESS_TOKEN=token)
    connector = KiteConnector(services, asyncio.Event())
    url = asyncio.run(connector.url())
    text = connector.describe(ValueError(f"{url} isn't a valid URI; token {token}"))
    assert "with" not in text and "access_token=***" in text and text.endswith("token ***")
