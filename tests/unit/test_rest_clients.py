"""What every REST order-book client shares, against `responses`: configured brokers, retries, timeouts, limits."""

from __future__ import annotations

import pytest
import requests
import responses

from app.brokers import rest as client_base
from app.brokers.rest import RunDeadline, TooLarge
from app.config import MAX_ANSWER_SECONDS, load_config
from app.exceptions import ConfigurationError
from app.reconcile.clients import Unavailable, client_for, configured_brokers
from tests.support.env import make_env
from tests.support.rest_clients import CREDENTIALS
from workers.reconcile import LOCK_SECONDS


def test_brokers_with_all_credentials_are_the_reconciled_ones(tmp_path, rest_config):
    assert configured_brokers(rest_config) == ("kite", "dhan", "flattrade")
    partial = load_config(make_env("redis://x", "sqlite://", tmp_path, KITE_API_KEY="k"))
    assert configured_brokers(partial) == () and client_for(partial, "kite") is None
    assert client_for(rest_config, "jainam") is None


@responses.activate
def test_5xx_and_429_are_retried_then_served(rest_config):
    responses.get("https://api.kite.trade/orders", status=503, json={})
    responses.get("https://api.kite.trade/orders", status=429, json={}, headers={"Retry-After": "0"})
    responses.get("https://api.kite.trade/orders", json={"status": "success", "data": []})
    assert client_for(rest_config, "kite").orders() == []
    assert len(responses.calls) == 3


@responses.activate
def test_a_broker_that_keeps_failing_is_unavailable(rest_config):
    for _ in range(10):
        responses.get("https://api.dhan.co/v2/orders", status=502, json={})
    with pytest.raises(Unavailable):
        client_for(rest_config, "dhan").orders()
    assert len(responses.calls) == client_base.RETRIES + 1


@responses.activate
def test_timeouts_are_unavailable(rest_config):
    responses.get("https://api.dhan.co/v2/orders", body=requests.exceptions.ConnectTimeout("slow"))
    with pytest.raises(Unavailable):
        client_for(rest_config, "dhan").orders()


def test_urls_come_from_the_environment(tmp_path):
    rest_config = load_config(
        make_env("redis://x", "sqlite://", tmp_path, KITE_API_URL="http://127.0.0.1:9/kite/", **CREDENTIALS)
    )
    assert client_for(rest_config, "kite").base_url == "http://127.0.0.1:9/kite"
    assert client_for(rest_config, "flattrade").base_url == "https://piconnect.flattrade.in/PiConnectAPI"


def test_rate_limit_waits_for_the_window(rest_config):
    client = client_for(rest_config, "kite")
    client._limiter.clear(client._rate, client.limit_key)  # the window is shared across runs: start from an empty one
    waits = []
    client._sleep = lambda seconds: (waits.append(seconds), client._limiter.clear(client._rate, client.limit_key))
    for _ in range(11):
        client.wait_turn()
    assert len(waits) == 1 and 0 < waits[0] <= 1.0


@responses.activate
def test_an_answer_above_the_size_cap_is_refused(tmp_path):
    config = load_config(make_env("redis://x", "sqlite://", tmp_path, RECONCILE_MAX_ANSWER_BYTES="1024", **CREDENTIALS))
    responses.get("https://api.dhan.co/v2/orders", body=b"[" + b" " * 4096 + b"]")
    with pytest.raises(TooLarge, match=r"more than RECONCILE_MAX_ANSWER_BYTES \(1024 bytes\)"):
        client_for(config, "dhan").orders()


@responses.activate
def test_an_answer_with_more_rows_than_the_cap_is_refused(tmp_path):
    config = load_config(make_env("redis://x", "sqlite://", tmp_path, RECONCILE_MAX_ROWS="2", **CREDENTIALS))
    responses.get("https://api.dhan.co/v2/orders", json=[{"orderId": str(n)} for n in range(3)])
    with pytest.raises(TooLarge, match=r"3 rows, more than RECONCILE_MAX_ROWS \(2\)"):
        client_for(config, "dhan").orders()


@responses.activate
def test_no_request_starts_once_the_run_deadline_has_passed(rest_config):
    client = client_for(rest_config, "kite")
    client.start_run()
    client.run_deadline = 0.0  # long past
    with pytest.raises(RunDeadline, match="RECONCILE_RUN_SECONDS"):
        client.orders()
    assert len(responses.calls) == 0


def test_answer_deadlines_stay_under_the_lease(tmp_path):
    for raw in ("0", "46", "soon"):
        with pytest.raises(ConfigurationError, match="RECONCILE_ANSWER_SECONDS"):
            load_config(make_env("redis://x", "sqlite://", tmp_path, RECONCILE_ANSWER_SECONDS=raw))
    assert load_config(make_env("redis://x", "sqlite://", tmp_path)).reconcile.answer_seconds == 30.0
    assert MAX_ANSWER_SECONDS < LOCK_SECONDS
