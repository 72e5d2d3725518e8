"""The Accounts page says how a polled broker's account is followed ("polled every N s"), in a real headless
Chromium against the real web and worker processes; the worker's polls of a fake Groww book store its order."""

from __future__ import annotations

import pytest
import requests

from tests.support.chromium import DESKTOP, Stack, chromium, sign_in
from tests.support.env import ADMIN_TOKEN
from tests.support.fakes.polled import FakeGrowwRest, groww_order
from tests.support.procs import wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
GROWW_TOKEN = "groww-browser-token-never-shown-0123456789"


@pytest.fixture
def groww():
    fake = FakeGrowwRest(GROWW_TOKEN).start()
    yield fake
    fake.close()


@pytest.fixture
def web(redis_client, redis_url, sqlite_url, tmp_path, groww):
    stack = Stack(redis_url, sqlite_url, tmp_path, GROWW_API_URL=groww.url, GROWW_POLL_SECONDS="3").start()
    yield stack
    stack.stop()


def add_account(web, broker: str, account_id: str, label: str, **credentials: str) -> dict:
    answer = requests.post(
        f"{web.base}/api/accounts",
        json={"broker": broker, "account_id": account_id, "label": label, "credentials": credentials},
        headers=AUTH,
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_a_polled_account_says_polled_every_n_seconds_and_its_orders_arrive(web, groww):
    groww.add("GMK0001", [groww_order("GMK0001", "EXECUTED", filled=10)])
    polled = add_account(web, "groww", "GR0001", "groww main", access_token=GROWW_TOKEN)
    pushed = add_account(web, "dhan", "1100009", "dhan", access_token="dhan-browser-token-0123456789abcdef")
    brokers = requests.get(f"{web.base}/api/brokers", headers=AUTH, timeout=10).json()["brokers"]
    seconds = {b["name"]: b["polled_seconds"] for b in brokers}
    assert seconds["groww"] == 3 and seconds["fivepaisa"] == 5 and seconds["dhan"] is None

    with chromium() as browser:
        page = browser.new_page(viewport=DESKTOP)
        sign_in(page, web.base)
        page.get_by_role("link", name="Accounts").click()
        card = page.locator(f'[data-account="{polled["id"]}"]')
        card.wait_for(timeout=30_000)
        badge = card.locator("[data-polled]")
        assert badge.inner_text() == "polled every 3 s" and badge.get_attribute("data-polled") == "3"
        assert card.get_by_role("switch", name="Feed of groww GR0001").count() == 0  # nothing to switch
        assert card.get_by_role("switch", name="Reconciliation of groww GR0001").count() == 1
        other = page.locator(f'[data-account="{pushed["id"]}"]')
        other.wait_for(timeout=30_000)
        assert "polled" not in other.inner_text()
        assert GROWW_TOKEN not in page.content()

    def stored() -> bool:
        answer = requests.get(f"{web.base}/api/orders/groww/GMK0001", headers=AUTH, timeout=10)
        return answer.status_code == 200 and answer.json()["status"] == "FILLED"

    wait_until(stored, 60, interval=0.5, message=web.logs())
    order = requests.get(f"{web.base}/api/orders/groww/GMK0001", headers=AUTH, timeout=10).json()
    assert [e["source"] for e in order["events"]] == ["reconcile"]
    wait_until(lambda: groww.reads >= 3, 30, message="the worker polls again")  # and again: nothing more stored
    again = requests.get(f"{web.base}/api/orders/groww/GMK0001", headers=AUTH, timeout=10).json()
    assert len(again["events"]) == 1
