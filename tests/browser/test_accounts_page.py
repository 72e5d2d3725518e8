"""The blotter's Accounts page in a real headless Chromium against the real Procfile web and worker processes:
two Dhan accounts and a Kite account added, a token pasted, a feed switched off, one removed; desktop and phone."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.support.chromium import DESKTOP, PHONE, screenshot_dir, shoot, sign_in
from tests.support.env import ADMIN_TOKEN
from tests.support.procs import wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DHAN_TOKEN = "dhan-browser-token-never-shown-0123456789abcdef"
DHAN_TOKEN_2 = "dhan-browser-token-two-never-shown-fedcba987654"
KITE_KEY = "kite-browser-api-key-0a1b2c"
KITE_API_SECRET = "kite-browser-api-secret-never-shown-9z8y7x"
PASTED = "kite-pasted-session-never-shown-5544332211"
SECRETS = (DHAN_TOKEN, DHAN_TOKEN_2, KITE_API_SECRET, PASTED)


@pytest.fixture
def web(stack):
    """The running processes (tests/browser/conftest.py), named for what this page test talks to."""
    return stack


def accounts(web) -> list[dict]:
    return requests.get(f"{web.base}/api/accounts", headers=AUTH, timeout=10).json()["accounts"]


def add(page, broker: str, account_id: str, label: str, **credentials: str) -> None:
    """Through the add form, as a person would."""
    form = page.get_by_role("form", name="Add an account")
    form.get_by_label("Broker", exact=True).select_option(broker)
    form.get_by_label("Account id", exact=True).fill(account_id)
    form.get_by_label("Label", exact=True).fill(label)
    for name, value in credentials.items():
        form.locator(f'[data-credential="{name}"]').fill(value)
    form.get_by_role("button", name="Add account").click()
    # The previous add's "Added …" is still shown: wait for this account's own.
    page.locator("#acc-result").filter(has_text=f"Added {broker} {account_id or label}.").wait_for(timeout=30_000)


def card(page, account_id: str):
    return page.locator(f'[data-account="{account_id}"]')


def test_accounts_page_add_paste_toggle_remove_on_desktop_and_phone(web, browser, tmp_path):
    page = browser.new_page(viewport=DESKTOP)
    sign_in(page, web.base)
    page.get_by_role("link", name="Accounts").click()
    card(page, "env-kite").wait_for(timeout=30_000)  # the environment's account, read-only
    assert card(page, "env-kite").get_by_role("button", name="Remove").count() == 0
    assert "read-only" in card(page, "env-kite").inner_text()

    # The form asks what each broker needs: Kite names no account id (its login does) and wants its app's keys.
    form = page.get_by_role("form", name="Add an account")
    form.get_by_label("Broker", exact=True).select_option("kite")
    assert form.locator('[data-credential="api_key"]').count() == 1
    assert form.locator('[data-credential="api_secret"]').get_attribute("type") == "password"
    form.get_by_label("Broker", exact=True).select_option("dhan")
    assert form.locator('[data-credential="api_key"]').count() == 0
    assert form.get_by_label("Account id", exact=True).get_attribute("required") is not None

    add(page, "dhan", "1100001", "main", access_token=DHAN_TOKEN)
    add(page, "dhan", "1100002", "family", access_token=DHAN_TOKEN_2)
    add(page, "kite", "", "zerodha", api_key=KITE_KEY, api_secret=KITE_API_SECRET)
    wait_until(lambda: len(accounts(web)) == 4, 30, message=web.logs())
    by_label = {a["label"]: a for a in accounts(web)}
    dhan, family, kite = by_label["main"], by_label["family"], by_label["zerodha"]
    for made in (dhan, family, kite):
        card(page, made["id"]).wait_for(timeout=30_000)
    assert card(page, dhan["id"]).get_attribute("data-session") == "active"
    assert card(page, kite["id"]).get_attribute("data-session") == "missing"
    login = card(page, kite["id"]).get_by_role("link", name="Log in")
    assert login.get_attribute("href") == f"/accounts/{kite['id']}/login"  # redirect brokers log in by redirect
    assert card(page, dhan["id"]).get_by_role("link", name="Log in").count() == 0  # Dhan's token is pasted
    assert "until" in card(page, dhan["id"]).inner_text()
    assert not any(word in page.locator("#accounts").inner_text() for word in ("null", "undefined", "NaN"))

    # Paste Kite's day's token: its session turns active.
    card(page, kite["id"]).get_by_label("Access token for kite zerodha").fill(PASTED)
    card(page, kite["id"]).get_by_role("button", name="Save token").click()
    page.locator(f'[data-account="{kite["id"]}"][data-session="active"]').wait_for(timeout=30_000)

    # The feed switch turns the account's feed off (and the API says so).
    switch = card(page, family["id"]).get_by_role("switch", name="Feed of dhan 1100002")
    assert switch.is_checked()
    switch.click()
    wait_until(lambda: not next(a for a in accounts(web) if a["id"] == family["id"])["feed"], 30)
    card(page, family["id"]).get_by_role("switch", name="Feed of dhan 1100002").wait_for(timeout=30_000)
    assert not card(page, family["id"]).get_by_role("switch", name="Feed of dhan 1100002").is_checked()

    # A postback URL of its own, shown once.
    card(page, dhan["id"]).get_by_role("button", name="Postback URL for dhan 1100001").click()
    shown = card(page, dhan["id"]).locator(".postback-url code")
    shown.wait_for(timeout=30_000)
    assert shown.inner_text().startswith("https://orderhook.example.com/postbacks/dhan/")
    directory = screenshot_dir(tmp_path)
    desktop = shoot(page, directory, "accounts-desktop")
    card(page, dhan["id"]).get_by_role("button", name="Done").click()

    # Remove asks first; declining keeps it.
    page.once("dialog", lambda dialog: dialog.dismiss())
    card(page, family["id"]).get_by_role("button", name="Remove dhan 1100002").click()
    assert len(accounts(web)) == 4
    page.once("dialog", lambda dialog: dialog.accept())
    card(page, family["id"]).get_by_role("button", name="Remove dhan 1100002").click()
    card(page, family["id"]).wait_for(state="detached", timeout=30_000)
    assert [a["id"] for a in accounts(web)] == ["env-kite", dhan["id"], kite["id"]]

    html = page.content()
    assert not any(secret in html for secret in SECRETS)

    phone = browser.new_page(viewport=PHONE)
    sign_in(phone, web.base)
    phone.goto(web.base + "/#accounts")
    card(phone, kite["id"]).wait_for(timeout=30_000)
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the page is {width}px wide on a {PHONE['width']}px phone"
    box = card(phone, kite["id"]).bounding_box()
    assert box["width"] <= PHONE["width"] and box["x"] >= 0
    phone_shot = shoot(phone, directory, "accounts-phone")
    assert Path(desktop).stat().st_size > 0 and Path(phone_shot).stat().st_size > 0
