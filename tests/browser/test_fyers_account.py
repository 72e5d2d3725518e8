"""A Fyers account on the Accounts page in a real headless Chromium, against the real web process and a fake Fyers
login page and validate-authcode on loopback: the add form asks for the app id and secret and the client id, and
the card's Log in goes through Fyers' page and lands back active (docs/brokers.md "Fyers (auth code, appIdHash)")."""

from __future__ import annotations

import pytest
import requests

from app.accounts.model import SessionState
from tests.brokers.fyers.fakes import FakeFyers, fyers_server
from tests.support.chromium import DESKTOP, Stack, chromium, screenshot_dir, shoot, sign_in
from tests.support.env import ADMIN_TOKEN
from tests.support.procs import wait_until

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
APP_ID = "XBROWSER01-100"
APP_SECRET = "fyers-browser-app-secret-never-shown-77"
USER = "XB0001"
CALLBACK = "https://orderhook.example.com/brokers/fyers/callback"  # PUBLIC_BASE_URL of the test env


def test_a_fyers_account_is_added_on_the_page_and_logs_in_through_fyers(redis_client, redis_url, sqlite_url, tmp_path):
    fake = FakeFyers(apps={APP_ID: APP_SECRET}, redirect_url=CALLBACK, user_id=USER)
    with fyers_server(fake) as http:
        stack = Stack(redis_url, sqlite_url, tmp_path, FYERS_LOGIN_URL=http.url, FYERS_API_URL=http.url)
        fake.land_on = stack.base  # the registered https URL reaches this test's web
        try:
            stack.start()
            with chromium() as browser:
                page = browser.new_page(viewport=DESKTOP)
                sign_in(page, stack.base)
                page.get_by_role("link", name="Accounts").click()
                form = page.get_by_role("form", name="Add an account")
                form.get_by_label("Broker", exact=True).select_option("fyers")
                assert form.locator('[data-credential="app_id"]').count() == 1
                assert form.locator('[data-credential="app_secret"]').get_attribute("type") == "password"
                assert form.get_by_label("Account id", exact=True).get_attribute("required") is not None
                form.get_by_label("Account id", exact=True).fill(USER)
                form.get_by_label("Label", exact=True).fill("fyers main")
                form.locator('[data-credential="app_id"]').fill(APP_ID)
                form.locator('[data-credential="app_secret"]').fill(APP_SECRET)
                form.get_by_role("button", name="Add account").click()
                page.locator("#acc-result").filter(has_text="Added").wait_for(timeout=30_000)

                def added() -> dict | None:
                    listed = requests.get(f"{stack.base}/api/accounts", headers=AUTH, timeout=10).json()["accounts"]
                    return next((a for a in listed if a["broker"] == "fyers"), None)

                wait_until(lambda: added() is not None, 30, message=stack.logs())
                account = added()
                card = page.locator(f'[data-account="{account["id"]}"]')
                card.wait_for(timeout=30_000)
                assert card.get_attribute("data-session") == SessionState.MISSING
                login = card.get_by_role("link", name="Log in")
                assert login.get_attribute("href") == f"/accounts/{account['id']}/login"
                shoot(page, screenshot_dir(tmp_path), "fyers-account-added")

                login.click()
                page.get_by_role("button", name="Login").wait_for(timeout=30_000)
                assert page.url.startswith(f"{http.url}/api/v3/generate-authcode?client_id={APP_ID}")
                page.get_by_role("button", name="Login").click()
                page.wait_for_url(f"{stack.base}/#accounts", timeout=30_000)
                assert f"logged in: fyers {USER}" in page.locator("#toast").inner_text(timeout=30_000)
                page.locator(f'[data-account="{account["id"]}"][data-session="active"]').wait_for(timeout=30_000)
                shoot(page, screenshot_dir(tmp_path), "fyers-logged-in")
                assert APP_SECRET not in page.content()
            assert APP_SECRET not in stack.logs()
            assert not [t for t in (h.partition(":")[2] for h in fake.authorizations) if t in stack.logs()]
        finally:
            stack.stop()
