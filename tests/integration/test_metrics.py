"""GET /metrics: bearer token, postback counters by outcome, ack latency, and the figures kept in Redis.

Counting across gunicorn workers is shown against the real Procfile web in tests/e2e/test_ops_server.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app
from app.config import load_config
from app.services import Services
from tests.support.env import ADMIN_TOKEN, POSTBACK_TOKEN
from tests.support.helpers import load_fixture

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DHAN = load_fixture("dhan_postback_traded.json")
STAMP = datetime(2026, 11, 28, 10, tzinfo=UTC).timestamp()


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    answer = client.get("/metrics", headers=AUTH)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def postbacks(samples, broker: str, outcome: str) -> float:
    """orderhook_postbacks_total for one broker and outcome (0 if absent)."""
    return samples.get(("orderhook_postbacks_total", (("broker", broker), ("outcome", outcome))), 0.0)


@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
def test_metrics_need_the_bearer_token(client, header):
    answer = client.get("/metrics", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401 and answer.get_json()["error"]


def test_postbacks_are_counted_by_broker_and_outcome(client):
    before = scrape(client)
    url = f"/postbacks/dhan/{POSTBACK_TOKEN}"
    assert client.post(url, data=json.dumps(dict(DHAN, orderId="MET1"))).status_code == 202
    assert client.post(url, data=json.dumps(dict(DHAN, orderId="MET2"))).status_code == 202
    assert client.post(url, data=json.dumps(dict(DHAN, orderId="MET1"))).status_code == 200
    assert client.post(url, data=b"{broken").status_code == 400
    assert client.post("/postbacks/dhan/not-our-token-000000", data=b"{}").status_code == 404
    assert client.post("/postbacks/nosuchbroker/abc", data=b"{}").status_code == 404
    after = scrape(client)
    assert postbacks(after, "dhan", "accepted") - postbacks(before, "dhan", "accepted") == 2
    assert postbacks(after, "dhan", "duplicate") - postbacks(before, "dhan", "duplicate") == 1
    assert postbacks(after, "dhan", "refused") - postbacks(before, "dhan", "refused") == 2
    assert postbacks(after, "unknown", "refused") - postbacks(before, "unknown", "refused") == 1
    count = ("orderhook_ingest_ack_seconds_count", ())
    assert after[count] - before.get(count, 0.0) == 3  # the acknowledged ones (202 and 200)
    assert after[("orderhook_redis_up", ())] == 1


def test_redis_side_figures(client, redis_client):
    redis_client.hset("oh:stats", mapping={"deliveries_delivered": 7, "deliveries_failed": 2, "deliveries_retried": 5})
    redis_client.set("oh:pipeline:stalled", json.dumps({"reason": "redis OOM", "since": "2026-11-28T10:00:00Z"}))
    redis_client.hset("oh:feeds:kite", mapping={"name": "kite", "state": "running", "connected": "1", "reconnects": 3})
    redis_client.hset("oh:feeds:jainam", mapping={"name": "jainam", "state": "auth_failed", "connected": "0"})
    redis_client.hset(
        "oh:reconcile:status:kite", mapping={"runs": 4, "errors": 1, "finished_at": "2026-11-28T10:00:00+00:00"}
    )
    for n in range(3):
        redis_client.xadd("oh:ingest", {"e": f"{n}", "b": ""})
    redis_client.xgroup_create("oh:ingest", "persist", id="0")
    redis_client.xreadgroup("persist", "test", {"oh:ingest": ">"}, count=1)
    samples = scrape(client)
    assert samples[("orderhook_deliveries_total", (("outcome", "delivered"),))] == 7
    assert samples[("orderhook_deliveries_total", (("outcome", "failed"),))] == 2
    assert samples[("orderhook_deliveries_total", (("outcome", "retried"),))] == 5
    assert samples[("orderhook_ingest_backlog", ())] == 3
    assert samples[("orderhook_ingest_pending", ())] == 1
    assert 0 <= samples[("orderhook_ingest_oldest_age_seconds", ())] < 600
    assert samples[("orderhook_pipeline_stalled", (("reason", "redis OOM"),))] == 1
    assert samples[("orderhook_pipeline_stalled_since_seconds", ())] == STAMP
    assert samples[("orderhook_feed_connected", (("feed", "kite"),))] == 1
    assert samples[("orderhook_feed_connected", (("feed", "jainam"),))] == 0
    assert samples[("orderhook_feed_state", (("feed", "jainam"), ("state", "auth_failed")))] == 1
    assert samples[("orderhook_feed_reconnects_total", (("feed", "kite"),))] == 3
    assert samples[("orderhook_reconcile_runs_total", (("broker", "kite"),))] == 4
    assert samples[("orderhook_reconcile_errors_total", (("broker", "kite"),))] == 1
    assert samples[("orderhook_reconcile_last_finished_seconds", (("broker", "kite"),))] == STAMP


def test_reconciliation_of_many_accounts_is_one_series_per_broker(client, redis_client):
    """Data accounts' runs (`<broker>:<account>` hashes, docs/reconcile.md) add to their broker's series."""
    redis_client.hset("oh:reconcile:status:dhan", mapping={"runs": 2, "errors": 0})
    redis_client.hset("oh:reconcile:status:dhan:acc_a", mapping={"runs": 3, "errors": 1})
    redis_client.hset(
        "oh:reconcile:status:dhan:acc_b", mapping={"runs": 5, "errors": 0, "finished_at": "2026-11-28T10:00:00+00:00"}
    )
    samples = scrape(client)
    assert samples[("orderhook_reconcile_runs_total", (("broker", "dhan"),))] == 10
    assert samples[("orderhook_reconcile_errors_total", (("broker", "dhan"),))] == 1
    assert samples[("orderhook_reconcile_last_finished_seconds", (("broker", "dhan"),))] == STAMP
    assert not [key for key in samples if any("acc_" in value for _, value in key[1])]


def test_nothing_reported_yet_reads_as_zero(client):
    samples = scrape(client)
    assert samples[("orderhook_ingest_backlog", ())] == 0
    assert samples[("orderhook_pipeline_stalled", (("reason", ""),))] == 0
    assert samples[("orderhook_deliveries_total", (("outcome", "delivered"),))] == 0


def test_a_dead_redis_still_serves_the_counters(env):
    config = load_config(dict(env, REDIS_URL="redis://127.0.0.1:1/0"))
    services = Services.build(config)
    try:
        samples = scrape(create_app(config, services).test_client())
    finally:
        services.engine.dispose()
    assert samples[("orderhook_redis_up", ())] == 0
    assert ("orderhook_ingest_backlog", ()) not in samples
    assert any(name == "orderhook_ingest_ack_seconds_count" for name, _ in samples)
