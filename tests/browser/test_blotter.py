"""The blotter in a real headless Chromium against the real Procfile web and worker processes."""

from __future__ import annotations

import base64
import threading
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests

from app import sessions
from tests.support.chromium import DESKTOP, PHONE, Stack, row, screenshot_dir, shoot, sign_in, wait_live
from tests.support.env import ADMIN_TOKEN
from tests.support.fakes.samples import dhan_web_login_frame
from tests.support.procs import Consumer, wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
OPEN = {
    "status": "OPEN",
    "filled_quantity": 0,
    "pending_quantity": 1,
    "average_price": 0,
    "exchange_update_timestamp": "2022-03-03 09:24:20",
}
REJECTED = {
    "status": "REJECTED",
    "filled_quantity": 0,
    "pending_quantity": 0,
    "average_price": 0,
    "status_message": "RMS:Margin Exceeds, Required:5000, Available:120",
}


@pytest.fixture
def stacks(redis_client, redis_url, sqlite_url, tmp_path):
    started: list[Stack] = []

    def _make(**env: str) -> Stack:
        made = Stack(redis_url, sqlite_url, tmp_path, **env).start()
        started.append(made)
        return made

    yield _make
    for made in started:
        made.stop()


def test_sign_in_and_out_the_old_cookie_is_refused(stacks, browser):
    web = stacks()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.goto(web.base + "/")
    page.get_by_label("Admin token").fill("not-the-token")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="wrong admin token").wait_for(timeout=30_000)
    sign_in(page, web.base)
    cookie = next(c for c in context.cookies() if c["name"] == sessions.COOKIE_NAME)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["value"] != ADMIN_TOKEN
    assert page.evaluate("document.cookie") == ""  # nothing script-readable
    assert page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert ADMIN_TOKEN not in page.content()
    jar = {sessions.COOKIE_NAME: cookie["value"]}
    assert requests.get(f"{web.base}/api/orders", cookies=jar, timeout=10).status_code == 200
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Admin token").wait_for(timeout=30_000)
    refused = requests.get(f"{web.base}/api/orders", cookies=jar, timeout=10)
    assert refused.status_code == 401 and "error" in refused.json()
    context.close()


def test_new_order_appears_and_changes_in_place_without_reload(stacks, browser, tmp_path):
    web = stacks()
    page = browser.new_page(viewport=DESKTOP)
    sign_in(page, web.base)
    wait_live(page)
    page.evaluate("window.__noReload = 'still here'")
    answer, _ = web.kite("LIVE-1", **OPEN)
    assert answer.status_code == 202, answer.text
    live = row(page, "kite/LIVE-1")
    live.wait_for(timeout=30_000)
    assert live.get_attribute("data-status") == "OPEN"
    answer, _ = web.kite("LIVE-1", exchange_update_timestamp="2022-03-03 09:24:30")
    assert answer.status_code == 202
    page.locator('tr[data-order="kite/LIVE-1"][data-status="FILLED"]').wait_for(timeout=30_000)
    assert row(page, "kite/LIVE-1").count() == 1
    assert page.evaluate("window.__noReload") == "still here"
    assert "postback" in live.inner_text()
    web.kite("LIVE-2", **REJECTED)
    rejected = row(page, "kite/LIVE-2")
    rejected.wait_for(timeout=30_000)
    assert rejected.get_attribute("data-status") == "REJECTED" and "marked" in rejected.get_attribute("class")
    first = page.locator("#orders tbody tr").first
    assert first.get_attribute("data-order") == "kite/LIVE-2"  # newest update first
    page.locator('#chips button[data-chip="rejected"]').click()
    assert row(page, "kite/LIVE-1").is_hidden() and rejected.is_visible()
    assert page.locator('#chips button[data-chip="rejected"] .count').inner_text() == "1"
    with page.expect_download() as caught:
        page.get_by_role("button", name="Export CSV").click()
    exported = Path(caught.value.path()).read_text().splitlines()
    assert exported[0].startswith("Status,Broker,Account,Order id") and len(exported) == 2  # only what is shown
    assert "LIVE-2" in exported[1] and "RMS:Margin Exceeds" in exported[1]


def test_dashboard_reconnects_after_a_web_restart_and_catches_up(stacks, browser):
    web = stacks()
    context = browser.new_context(viewport=DESKTOP)
    # Without SharedWorker the stream runs in the page (the leader tab), where page.route reaches it;
    # a SharedWorker's requests are out of Playwright's reach (tests/browser/test_live_tabs.py covers it).
    context.add_init_script("delete window.SharedWorker;")
    page = context.new_page()
    sign_in(page, web.base)
    wait_live(page)
    page.evaluate("window.__noReload = 'still here'")
    page.route("**/api/stream", lambda route: route.abort())  # keep the page off the stream for a while
    took = web.restart_web()
    assert took < 15, f"web took {took:.1f}s to stop with a stream open (graceful_timeout is 20 s)"
    page.locator("#live.off").wait_for(timeout=30_000)
    answer, _ = web.kite("DURING-OUTAGE", **OPEN)  # stored and published while the page hears nothing
    assert answer.status_code == 202
    wait_until(
        lambda: requests.get(f"{web.base}/api/orders/kite/DURING-OUTAGE", headers=AUTH, timeout=5).ok,
        30,
        message=web.logs(),
    )
    page.unroute("**/api/stream")
    row(page, "kite/DURING-OUTAGE").wait_for(timeout=30_000)  # from the snapshot taken on reconnect
    wait_live(page)
    web.kite("AFTER-RESTART", **OPEN)
    row(page, "kite/AFTER-RESTART").wait_for(timeout=30_000)  # and live again
    assert page.evaluate("window.__noReload") == "still here"


def test_open_an_order_shows_its_events_and_raw_payload(stacks, browser):
    web = stacks()
    web.kite("EV-1", **OPEN)
    web.kite("EV-1", exchange_update_timestamp="2022-03-03 09:24:30")
    page = browser.new_page(viewport=DESKTOP)
    sign_in(page, web.base)
    wait_live(page)
    page.locator('tr[data-order="kite/EV-1"][data-status="FILLED"]').wait_for(timeout=30_000)
    row(page, "kite/EV-1").get_by_role("button", name="EV-1").click()
    events = page.locator("#order-events tr[data-event-id]")
    wait_until(lambda: events.count() == 2, 30, message="the order's two events were not shown")
    stored = requests.get(f"{web.base}/api/orders/kite/EV-1", headers=AUTH, timeout=10).json()["events"]
    assert [events.nth(i).get_attribute("data-event-id") for i in range(2)] == [e["id"] for e in stored]
    assert "OPEN" in events.nth(0).inner_text() and "postback" in events.nth(0).inner_text()
    events.nth(1).locator("summary", has_text="Raw").click()
    assert '"tradingsymbol": "SBIN"' in events.nth(1).locator("pre").inner_text()


def test_retry_a_failed_delivery_from_the_page(stacks, browser):
    state = {"fail": True}
    consumer = Consumer(lambda n, _req: (500 if state["fail"] else 200, {}, 0))
    try:
        web = stacks(FORWARD_URLS=consumer.url, FORWARD_RETRY_SCHEDULE="1,1")
        web.kite("RETRY-1")

        def failed() -> list:
            answer = requests.get(f"{web.base}/api/deliveries", params={"status": "failed"}, headers=AUTH, timeout=5)
            return answer.json()["deliveries"]

        wait_until(lambda: len(failed()) == 1, 30, message=web.logs())
        delivery = failed()[0]
        page = browser.new_page(viewport=DESKTOP)
        sign_in(page, web.base)
        page.get_by_role("link", name="Deliveries").click()
        item = page.locator(f'[data-delivery="{delivery["id"]}"]')
        item.wait_for(timeout=30_000)
        assert "500" in item.inner_text()
        page.get_by_role("button", name="Count").click()
        page.get_by_text("1 failed deliveries will be redriven").wait_for(timeout=30_000)
        state["fail"] = False
        item.get_by_role("button", name="Retry").click()
        wait_until(lambda: len(consumer.requests) == 4, 30, message=web.logs())
        wait_until(lambda: not failed(), 30, message="the retried delivery stayed failed")
        page.goto(f"{web.base}/#order/kite/RETRY-1")
        page.locator("#order-deliveries .delivery.state-delivered").wait_for(timeout=30_000)
    finally:
        consumer.close()


def test_deliveries_say_when_they_are_tried_next_in_local_time(stacks, browser, tmp_path):
    """A pending delivery shows its next try as the page's local time; a failed one says no more tries."""
    later = Consumer(lambda n, _req: (503, {"Retry-After": "600"}, 0))  # next try in ten minutes
    gone = Consumer(lambda n, _req: (410, {}, 0))  # dead-lettered at once
    try:
        web = stacks(FORWARD_URLS=f"{later.url},{gone.url}", FORWARD_RETRY_SCHEDULE="600")
        web.kite("NEXT-1")

        def listed(status: str) -> list:
            answer = requests.get(f"{web.base}/api/deliveries", params={"status": status}, headers=AUTH, timeout=5)
            return answer.json()["deliveries"]

        tried_once = lambda: len(listed("failed")) == 1 and [d["attempts"] for d in listed("pending")] == [1]  # noqa: E731
        wait_until(tried_once, 30, message="the deliveries were not tried once")
        pending = listed("pending")[0]
        due = datetime.fromisoformat(pending["next_attempt_at"].replace("Z", "+00:00"))
        local = due.astimezone(ZoneInfo("Asia/Kolkata"))  # the page's local time; the date too when not today
        today = datetime.now(ZoneInfo("Asia/Kolkata")).date() == local.date()
        expected = f"next try {local:%H:%M:%S}" if today else f"next try {local:%Y-%m-%d %H:%M:%S}"
        context = browser.new_context(viewport=DESKTOP, timezone_id="Asia/Kolkata")
        page = context.new_page()
        sign_in(page, web.base)
        page.goto(f"{web.base}/#order/kite/NEXT-1")
        cards = page.locator("#order-deliveries .delivery")
        cards.nth(1).wait_for(timeout=30_000)
        assert sorted(cards.locator(".next-try").all_inner_texts()) == sorted(["no more tries", expected])
        stamp = page.locator("#order-deliveries .state-pending .next-try time")
        assert stamp.get_attribute("datetime") == pending["next_attempt_at"]
        page.goto(f"{web.base}/#deliveries")
        page.locator("#pending-deliveries .delivery").wait_for(timeout=30_000)
        assert page.locator("#pending-deliveries .next-try").inner_text() == expected
        assert page.locator("#failed-deliveries .next-try").inner_text() == "no more tries"
        directory = screenshot_dir(tmp_path)
        shoot(page, directory, "deliveries-next-try")
        page.goto(f"{web.base}/#order/kite/NEXT-1")
        cards.nth(1).wait_for(timeout=30_000)
        shoot(page, directory, "order-deliveries-next-try")
        context.close()
    finally:
        later.close()
        gone.close()


class EvilSite:
    """Another site on loopback whose page auto-submits a form to the blotter's API."""

    def __init__(self, target: str, host: str) -> None:
        page = (
            f'<form id="f" method="post" action="{target}"><input name="x" value="1"></form>'
            "<script>document.getElementById('f').submit()</script>"
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_cross_site_post_with_the_cookie_is_refused(stacks, browser):
    web = stacks(FORWARD_URLS="http://127.0.0.1:9/hook")
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    sign_in(page, web.base)
    target = f"{web.base}/api/deliveries/redrive"
    # Another port of the same host is another origin but the same site: the browser sends the
    # SameSite=Lax cookie with its POST, so the server's own check must refuse it.
    evil = EvilSite(target, "127.0.0.1")
    try:
        with page.expect_response(target, timeout=30_000) as caught:
            page.goto(evil.url)
        answer = caught.value
        assert sessions.COOKIE_NAME in answer.request.all_headers().get("cookie", "")
        assert answer.status == 403, answer.text()
        assert "cross-site" in answer.json()["error"]
    finally:
        evil.close()
    # From another site (localhost is not 127.0.0.1) SameSite=Lax keeps the cookie home: refused too.
    evil = EvilSite(target, "localhost")
    try:
        with page.expect_response(target, timeout=30_000) as caught:
            page.goto(evil.url)
        assert caught.value.status in (401, 403)
    finally:
        evil.close()
    cookie = next(c for c in context.cookies() if c["name"] == sessions.COOKIE_NAME)
    forged = requests.post(
        f"{web.base}/api/deliveries/1/retry",
        cookies={sessions.COOKIE_NAME: cookie["value"]},
        headers={"Origin": "http://evil.example"},
        timeout=10,
    )
    assert forged.status_code == 403


def test_screenshots_desktop_and_phone(stacks, browser, tmp_path):
    consumer = Consumer(lambda n, _req: (500, {}, 0))
    try:
        web = stacks(FORWARD_URLS=consumer.url, FORWARD_RETRY_SCHEDULE="1", FEEDS="kite,dhan_web")
        web.kite("SHOT-OPEN", **OPEN)
        web.kite("SHOT-FILLED")
        web.kite(
            "SHOT-PART",
            status="OPEN",
            quantity=10,
            filled_quantity=4,
            pending_quantity=6,
            average_price=470.5,
            exchange_update_timestamp="2022-03-03 09:25:00",
            transaction_type="SELL",
            order_type="LIMIT",
            price=471,
        )
        web.kite("SHOT-REJ", **REJECTED)
        web.kite("SHOT-CXL", status="CANCELLED", filled_quantity=0, pending_quantity=0, average_price=0)
        wait_until(
            lambda: (
                len(
                    requests.get(
                        f"{web.base}/api/deliveries", params={"status": "failed"}, headers=AUTH, timeout=5
                    ).json()["deliveries"]
                )
                >= 1
            ),
            30,
            message=web.logs(),
        )
        directory = screenshot_dir(tmp_path)
        for name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
            page = browser.new_page(viewport=viewport)
            sign_in(page, web.base)
            wait_live(page)
            row(page, "kite/SHOT-CXL").wait_for(timeout=30_000)
            assert page.locator("#orders tbody tr").count() == 5
            shoot(page, directory, f"{name}-orders")
            page.goto(f"{web.base}/#order/kite/SHOT-REJ")
            page.locator("#order-events tr[data-event-id]").first.wait_for(timeout=30_000)
            shoot(page, directory, f"{name}-order")
            page.goto(f"{web.base}/#deliveries")
            page.locator("#failed-deliveries [data-delivery]").first.wait_for(timeout=30_000)
            shoot(page, directory, f"{name}-deliveries")
            page.goto(f"{web.base}/#feeds")
            page.locator("#feeds tr[data-feed]").first.wait_for(timeout=30_000)
            shoot(page, directory, f"{name}-feeds")
            page.goto(f"{web.base}/#dhan-web")
            page.locator("#frame-info").filter(has_text="frame").wait_for(timeout=30_000)
            if name == "desktop":
                page.get_by_label("New login frame").fill(base64.b64encode(dhan_web_login_frame()).decode())
                page.get_by_role("button", name="Store frame").click()
                page.locator("#frame-info").filter(has_text="A 703-byte frame is stored").wait_for(timeout=30_000)
            shoot(page, directory, f"{name}-dhan-web")
            page.close()
        page = browser.new_page(viewport=PHONE)
        page.goto(web.base + "/")
        shoot(page, directory, "phone-signin")
        assert (directory / "phone-orders.png").stat().st_size > 10_000
    finally:
        consumer.close()
