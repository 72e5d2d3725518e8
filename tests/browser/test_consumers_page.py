"""The blotter's Consumers page in a real headless Chromium against the real Procfile web and worker processes and
the real /api/consumers: an HTTP consumer added with filters (its secret shown once, copied, and verified on what
it receives), disabled and enabled, its secret rotated, a test sent, a window replayed, removed; RQ and Redis stream
consumers; the environment's consumer read-only; hostile text shown as text; the Deliveries view by consumer."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from tests.support.chromium import DESKTOP, PHONE, Stack, screenshot_dir, shoot, sign_in
from tests.support.env import ADMIN_TOKEN
from tests.support.procs import Consumer, wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ZONE = "Asia/Kolkata"  # the page's time zone: replay windows are typed in local time
OPEN = {"status": "OPEN", "filled_quantity": 0, "pending_quantity": 1, "average_price": 0}
#: The worker reads the consumers at most once a second (docs/consumers.md, "Changes without a restart"): a
#: postback sent sooner after a change may be routed (and signed) by the table from before it.
ROUTES_SECONDS = 2.5
#: A browser without the Clipboard API (or a page not allowed to use it): Copy falls back to the selection.
NO_CLIPBOARD_API = "Object.defineProperty(Navigator.prototype, 'clipboard', { get: () => undefined });"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=1</script> \u202eevil'


@pytest.fixture
def hooks():
    """Two real local HTTP consumers: the environment's (always 500, so its deliveries fail) and one added as data."""
    environment = Consumer(lambda n, _req: (500, {}, 0))
    added = Consumer()
    yield environment, added
    environment.close()
    added.close()


@pytest.fixture
def web(redis_client, redis_url, sqlite_url, tmp_path, hooks):
    """The Procfile's web and worker with FORWARD_URLS naming the environment's consumer."""
    made = Stack(redis_url, sqlite_url, tmp_path, FORWARD_URLS=hooks[0].url, FORWARD_RETRY_SCHEDULE="1,1").start()
    yield made
    made.stop()


def listed(web) -> list[dict]:
    return requests.get(f"{web.base}/api/consumers", headers=AUTH, timeout=10).json()["consumers"]


def one(web, **match) -> dict:
    found = [c for c in listed(web) if all(c.get(k) == v for k, v in match.items())]
    assert len(found) == 1, found
    return found[0]


def card(page, cid: str):
    return page.locator(f'[data-consumer="{cid}"]')


def said(web, page, cid: str, text: str, *, error: bool = False, timeout: float = 60) -> None:
    """Until the card says `text` in answer to its last action (as an error or not); else fail with what it says."""
    line = card(page, cid).locator(".outcome")

    def says() -> bool:
        return text in line.inner_text() and ("error" in line.get_attribute("class").split()) == error

    try:
        wait_until(says, timeout, interval=0.25)
    except AssertionError:
        raise AssertionError(f"the card of {cid} says {line.inner_text()!r}, not {text!r}\n{web.logs()}") from None


def local_input(moment: datetime) -> str:
    """What a datetime-local input holds for this moment in the page's zone."""
    return moment.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%dT%H:%M")


def signed_under(secret: str, request: dict) -> bool:
    """True when the request verifies under this secret (the standardwebhooks package)."""
    try:
        Webhook(secret).verify(request["body"], request["headers"])
    except Exception:  # noqa: BLE001 - WebhookVerificationError and its kin: any refusal is a no
        return False
    return True


def reveal_secret(page, reader=None) -> str:
    """The secret shown once: copied with the Copy button (the clipboard, read by `reader`, holds it), dismissed."""
    panel = page.locator(".secret-once")
    panel.wait_for(timeout=30_000)
    assert "you will not see it again" in panel.inner_text()
    secret = panel.locator("input").input_value()
    assert secret.startswith("whsec_")
    panel.get_by_role("button", name="Copy").click()
    panel.get_by_text("Copied to the clipboard.").wait_for(timeout=10_000)
    assert (reader or page).evaluate("navigator.clipboard.readText()") == secret
    panel.get_by_role("button", name="Done").click()
    panel.wait_for(state="detached", timeout=10_000)
    assert secret not in page.content()  # gone from the page once dismissed
    return secret


def add(page, kind: str, description: str, **fields) -> None:
    """Through the add form, as a person would: the type's own fields, the description, the filters."""
    form = page.get_by_role("form", name="Add a consumer")
    form.get_by_label("Type").select_option(kind)
    for label, value in fields.items():
        if label in ("brokers", "statuses", "sources"):
            for choice in value:
                form.locator(f"#con-{label}").get_by_label(choice, exact=True).check()
        else:
            form.get_by_label(label, exact=True).fill(value)
    form.get_by_label("Description", exact=True).fill(description)
    result = page.locator("#con-result")
    before = result.inner_text()  # the previous add's answer, until this one's replaces it
    form.get_by_role("button", name="Add consumer").click()
    answered = lambda: result.inner_text() != before and "Added" in result.inner_text()  # noqa: E731
    wait_until(answered, 30, message=f"no 'Added' after adding {description!r}")


def test_http_consumer_secret_once_filters_disable_rotate_test_replay_remove(web, hooks, browser, tmp_path):
    environment_hook, hook = hooks
    context = browser.new_context(viewport=DESKTOP, timezone_id=ZONE)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.base)
    page = context.new_page()
    sign_in(page, web.base)
    page.get_by_role("link", name="Consumers").click()

    # The environment's consumer: listed, read-only (no switch, no rotation, no removal).
    env = one(web, source="environment")
    card(page, env["id"]).wait_for(timeout=30_000)
    assert "environment · read-only" in card(page, env["id"]).inner_text()
    for control in ("Remove", "Rotate secret"):
        assert card(page, env["id"]).get_by_role("button", name=re.compile(control)).count() == 0
    assert card(page, env["id"]).get_by_role("switch").count() == 0

    # Added with filters: the secret is shown this once and copied.
    started = datetime.now(UTC) - timedelta(minutes=2)
    add(page, "http", "User A's endpoint", URL=hook.url, brokers=["kite"], statuses=["filled"], Accounts="AB1234")
    secret = reveal_secret(page)
    made = one(web, source="api")
    assert made["filters"] == {"brokers": ["kite"], "accounts": ["AB1234"], "statuses": ["FILLED"], "sources": []}
    mine = card(page, made["id"])
    mine.wait_for(timeout=30_000)
    assert "kite" in mine.inner_text() and "filled" in mine.inner_text() and "AB1234" in mine.inner_text()
    assert not any(word in mine.inner_text() for word in ("null", "undefined", "NaN"))

    # Its filters hold: a fill reaches it, an open order does not (the environment's consumer gets both).
    time.sleep(ROUTES_SECONDS)
    web.kite("CONS-FILLED")
    web.kite("CONS-OPEN", **OPEN)
    wait_until(lambda: len(hook.requests) == 1 and len(environment_hook.requests) >= 2, 30, message=web.logs())
    first = hook.requests[0]
    assert first["json"]["order_id"] == "CONS-FILLED" and signed_under(secret, first)
    mine.get_by_text("1 delivered").wait_for(timeout=30_000)  # the list refreshes itself
    mine.locator(".facts").get_by_text(re.compile(r"p50 \d+ ms")).wait_for(timeout=30_000)

    # A test event, signed under its secret, and the page says it was sent.
    mine.get_by_role("button", name="Send test to User A's endpoint").click()
    said(web, page, made["id"], "The test event reached User A's endpoint: HTTP 200")
    wait_until(lambda: any(r["json"].get("test") is True for r in hook.requests), 30, message=web.logs())
    tested = next(r for r in hook.requests if r["json"].get("test") is True)
    assert signed_under(secret, tested)

    # Rotation: a new secret shown once; deliveries are signed under both for 24 h.
    page.once("dialog", lambda dialog: dialog.accept())
    mine.get_by_role("button", name="Rotate secret of User A's endpoint").click()
    rotated = reveal_secret(page)
    assert rotated != secret
    card(page, made["id"]).get_by_text("the old one signs too until").wait_for(timeout=30_000)
    time.sleep(ROUTES_SECONDS)  # a worker follows a new secret within a second too
    before = len(hook.requests)
    card(page, made["id"]).get_by_role("button", name="Send test to User A's endpoint").click()
    wait_until(lambda: len(hook.requests) > before, 30, message=web.logs())
    assert signed_under(rotated, hook.requests[-1]) and signed_under(secret, hook.requests[-1])

    # Disabled: the next fill skips it; enabled again.
    card(page, made["id"]).get_by_role("switch", name="Enabled: User A's endpoint").click()
    wait_until(lambda: one(web, id=made["id"])["enabled"] is False, 30)
    page.locator(f'[data-consumer="{made["id"]}"][data-enabled="false"]').wait_for(timeout=30_000)
    time.sleep(ROUTES_SECONDS)
    seen_by_env = len(environment_hook.requests)
    received = len(hook.requests)
    web.kite("CONS-WHILE-OFF")
    later = lambda: environment_hook.requests[seen_by_env:]  # noqa: E731
    wait_until(lambda: any(r["json"]["order_id"] == "CONS-WHILE-OFF" for r in later()), 30, message=web.logs())
    assert len(hook.requests) == received  # stored while it was off: not sent to it
    card(page, made["id"]).get_by_role("switch", name="Enabled: User A's endpoint").click()
    page.locator(f'[data-consumer="{made["id"]}"][data-enabled="true"]').wait_for(timeout=30_000)

    # Replay a window typed in local time: every stored event passing its filters, with its original webhook-id.
    replaying = card(page, made["id"])
    replaying.get_by_label("Replay User A's endpoint from").fill(local_input(started))
    replaying.get_by_role("button", name="Replay to User A's endpoint").click()
    said(web, page, made["id"], "2 events queued")
    wait_until(
        lambda: sum(r["json"].get("order_id") == "CONS-FILLED" for r in hook.requests) == 2, 30, message=web.logs()
    )
    again = [r for r in hook.requests if r["json"].get("order_id") == "CONS-FILLED"]
    assert again[1]["headers"]["webhook-id"] == again[0]["headers"]["webhook-id"]
    assert signed_under(rotated, again[1])
    wait_until(lambda: any(r["json"].get("order_id") == "CONS-WHILE-OFF" for r in hook.requests), 30)

    # An error from the API is shown next to the action: a window that ends before it starts.
    replaying = card(page, made["id"])
    replaying.get_by_label("Replay User A's endpoint from").fill(local_input(started))
    replaying.get_by_label("Replay User A's endpoint until (optional)").fill(local_input(started - timedelta(hours=1)))
    replaying.get_by_role("button", name="Replay to User A's endpoint").click()
    said(web, page, made["id"], "until must be after since", error=True)

    # Changed in place, while everything runs: open orders too, under a new description.
    changing = card(page, made["id"])
    changing.locator("details.change summary").click()
    form = changing.get_by_role("form", name="Change User A's endpoint")
    assert form.get_by_label("filled", exact=True).is_checked()  # it opens with what the consumer has
    assert form.get_by_label("Accounts").input_value() == "AB1234"
    form.get_by_label("Description").fill("User A, fills and opens")
    form.get_by_label("open", exact=True).check()
    form.get_by_role("button", name="Save changes").click()
    card(page, made["id"]).locator("h3", has_text="User A, fills and opens").wait_for(timeout=30_000)
    assert sorted(one(web, id=made["id"])["filters"]["statuses"]) == ["FILLED", "OPEN"]
    time.sleep(ROUTES_SECONDS)
    web.kite("CONS-OPEN-2", **OPEN)
    wait_until(lambda: any(r["json"].get("order_id") == "CONS-OPEN-2" for r in hook.requests), 30, message=web.logs())

    directory = screenshot_dir(tmp_path)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays at the top of a full-page screenshot
    desktop = shoot(page, directory, "consumers-desktop")

    # Remove asks first; declining keeps it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    card(page, made["id"]).get_by_role("button", name="Remove User A, fills and opens").click()
    assert any(c["id"] == made["id"] for c in listed(web))
    page.once("dialog", lambda dialog: dialog.accept())
    card(page, made["id"]).get_by_role("button", name="Remove User A, fills and opens").click()
    card(page, made["id"]).wait_for(state="detached", timeout=30_000)
    assert [c["id"] for c in listed(web)] == [env["id"]]
    assert secret not in page.content() and rotated not in page.content()
    assert Path(desktop).stat().st_size > 0
    context.close()


def test_rq_and_stream_consumers_hostile_text_and_deliveries_by_consumer(web, redis_client, browser, tmp_path):
    context = browser.new_context(viewport=DESKTOP)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=web.base)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.dismiss())  # nothing on this page may open one (an injected alert)
    sign_in(page, web.base)
    page.goto(web.base + "/#consumers")
    env = one(web, source="environment")
    card(page, env["id"]).wait_for(timeout=30_000)

    # A refusal is shown next to the form, as the API words it.
    form = page.get_by_role("form", name="Add a consumer")
    form.get_by_label("Type").select_option("rq")
    form.get_by_label("Queue", exact=True).fill("orderhook-mine")
    form.get_by_label("Function", exact=True).fill("mystrategy.on_order")
    form.get_by_role("button", name="Add consumer").click()
    page.locator("#con-result.error").filter(has_text="queue names starting with 'orderhook'").wait_for(timeout=30_000)
    assert [c["id"] for c in listed(web)] == [env["id"]]

    # An RQ consumer whose description is hostile, and a Redis stream consumer: neither has a secret.
    add(page, "rq", HOSTILE, Queue="strategy-orders", Function="mystrategy.on_order", sources=["postback"])
    add(page, "redis_stream", "journal", Stream="user-orders")
    assert page.locator(".secret-once").count() == 0
    rq = one(web, type="rq")
    stream = one(web, type="redis_stream")
    shown = card(page, rq["id"])
    shown.wait_for(timeout=30_000)
    assert rq["description"] == HOSTILE
    title = shown.locator("h3")
    assert "<script>window.__pwned=1</script>" in title.inner_text()  # as text
    assert title.locator(".ctl", has_text="U+202E").count() == 1  # the override is shown as its code
    assert shown.locator("img, script").count() == 0
    assert page.evaluate("window.__pwned") is None
    assert "queue strategy-orders → mystrategy.on_order" in shown.inner_text()
    assert shown.get_by_role("button", name=re.compile("Rotate secret")).count() == 0
    card(page, stream["id"]).get_by_text("stream user-orders").wait_for(timeout=30_000)

    # One postback: a job on the user's queue, an entry on the stream, a failed delivery of the environment's.
    time.sleep(ROUTES_SECONDS)
    web.kite("CONS-DEST")
    wait_until(lambda: redis_client.xlen("user-orders") == 1, 30, message=web.logs())
    wait_until(lambda: redis_client.llen("rq:queue:strategy-orders") == 1, 30, message=web.logs())
    card(page, stream["id"]).get_by_text("1 delivered").wait_for(timeout=30_000)
    card(page, rq["id"]).get_by_text("1 delivered").wait_for(timeout=30_000)

    # By keyboard: from the journal's switch, Tab reaches Send test and Enter sends one (an XADD: no HTTP status).
    card(page, stream["id"]).get_by_role("switch", name="Enabled: journal").focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Send test to journal"
    page.keyboard.press("Enter")
    said(web, page, stream["id"], "The test event reached journal in")
    assert redis_client.xlen("user-orders") == 2

    def failed(consumer: str) -> list[dict]:
        params = {"status": "failed", "consumer": consumer}
        return requests.get(f"{web.base}/api/deliveries", params=params, headers=AUTH, timeout=10).json()["deliveries"]

    wait_until(lambda: len(failed(env["id"])) == 1, 60, message=web.logs())
    card(page, env["id"]).get_by_text("1 failed").wait_for(timeout=30_000)
    assert card(page, env["id"]).locator(".facts .reason").count() == 1  # its last error, as text

    # The environment's consumer can be tested (it answers 500): the card says the test did not get through.
    card(page, env["id"]).get_by_role("button", name=re.compile("Send test")).click()
    said(web, page, env["id"], f"did not reach {env['description'] or env['url']}: HTTP 500", error=True)

    # The Deliveries view by consumer: the environment's failed delivery, then none for the RQ consumer.
    delivery = failed(env["id"])[0]
    card(page, env["id"]).get_by_role("link", name=re.compile("Deliveries of")).click()
    page.locator(f'[data-delivery="{delivery["id"]}"]').wait_for(timeout=30_000)
    named = page.locator(f'[data-delivery="{delivery["id"]}"] .consumer').inner_text()
    assert named == f"{env['description']} · {env['url']}"  # by its name, as on its card
    chooser = page.get_by_label("Show the deliveries of")
    wait_until(lambda: chooser.input_value() == env["id"], 30, message="the link did not choose its consumer")
    chooser.select_option(rq["id"])
    page.locator(f'[data-delivery="{delivery["id"]}"]').wait_for(state="detached", timeout=30_000)
    page.locator("#failed-deliveries").get_by_text("No failed deliveries.").wait_for(timeout=30_000)
    assert page.url.endswith(f"#deliveries/{rq['id']}")
    chooser.select_option(value="")
    page.locator(f'[data-delivery="{delivery["id"]}"]').wait_for(timeout=30_000)
    directory = screenshot_dir(tmp_path)
    page.evaluate("window.scrollTo(0, 0)")
    shoot(page, directory, "deliveries-by-consumer")

    # Without the Clipboard API, Copy selects the secret and copies it with the selection: another page reads it.
    plain = context.new_page()
    plain.add_init_script(NO_CLIPBOARD_API)
    plain.goto(web.base + "/#consumers")
    add(plain, "http", "copied without the Clipboard API", URL="http://127.0.0.1:9/hook")
    assert plain.evaluate("navigator.clipboard") is None
    reveal_secret(plain, reader=page)

    phone = browser.new_page(viewport=PHONE)
    sign_in(phone, web.base)
    phone.goto(web.base + "/#consumers")
    card(phone, rq["id"]).wait_for(timeout=30_000)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px phone"
    box = card(phone, rq["id"]).bounding_box()
    assert box["width"] <= PHONE["width"] and box["x"] >= 0
    phone_shot = shoot(phone, directory, "consumers-phone")
    assert phone.evaluate("window.__pwned") is None
    assert Path(phone_shot).stat().st_size > 0
    context.close()


def test_consumers_a_410_gone_disabled_say_why_and_how_to_enable_them(
    redis_client, redis_url, sqlite_url, tmp_path, browser
):
    """A 410 Gone disables a consumer: the environment's card names the command that enables it again, an added
    one's switch is off and switching it on enables it."""
    gone = Consumer(lambda n, _req: (410, {}, 0))
    also_gone = Consumer(lambda n, _req: (410, {}, 0))
    web = Stack(redis_url, sqlite_url, tmp_path, FORWARD_URLS=gone.url).start()
    try:
        made = requests.post(
            f"{web.base}/api/consumers",
            json={"type": "http", "url": also_gone.url, "description": "gone too"},
            headers=AUTH,
            timeout=10,
        )
        assert made.status_code == 201, made.text
        added = made.json()
        time.sleep(ROUTES_SECONDS)
        web.kite("CONS-GONE")
        wait_until(lambda: all(c["disabled_reason"] for c in listed(web)), 60, message=web.logs())
        env = one(web, source="environment")
        page = browser.new_page(viewport=DESKTOP)
        sign_in(page, web.base)
        page.goto(web.base + "/#consumers")
        shown = card(page, env["id"])
        shown.wait_for(timeout=30_000)
        assert shown.get_attribute("data-enabled") == "false" and "disabled" in shown.locator("header").inner_text()
        assert env["disabled_reason"] in shown.locator(".facts").inner_text()
        assert f"flask --app wsgi forward-enable {gone.url}" in shown.locator("code").inner_text()
        switch = card(page, added["id"]).get_by_role("switch", name="Enabled: gone too")
        assert not switch.is_checked()
        switch.click()
        page.locator(f'[data-consumer="{added["id"]}"][data-enabled="true"]').wait_for(timeout=30_000)
        assert one(web, id=added["id"])["disabled_reason"] is None
        assert card(page, added["id"]).get_by_text("Disabled because").count() == 0
    finally:
        web.stop()
        gone.close()
        also_gone.close()
