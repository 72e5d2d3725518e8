"""An Upstox account added on the Accounts page and logged in through its OAuth2 redirect, in a real headless
Chromium against the real web and worker processes and a fake Upstox login dialog and token API on loopback."""

from __future__ import annotations

import pytest
import requests

from app.accounts.expiry import next_rollover
from app.accounts.model import SessionState
from app.config import load_config
from app.services import Services
from tests.brokers.upstox.fakes import FakeUpstox, upstox_server
from tests.support.chromium import DESKTOP, Stack, chromium, screenshot_dir, shoot, sign_in
from tests.support.env import ADMIN_TOKEN

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
API_KEY = "615b1297-d443-3b39-ba19-1927fbcdddc7"
API_SECRET = "upstox-browser-secret-never-shown-77"
REDIRECT = "https://orderhook.example.com/brokers/upstox/callback"


def test_an_upstox_account_is_added_with_its_fields_and_logs_in_through_the_redirect(
    redis_client, redis_url, sqlite_url, tmp_path
):
    fake = FakeUpstox(apps={API_KEY: (API_SECRET, REDIRECT)}, user_id="UP1234")
    with upstox_server(fake) as http:
        stack = Stack(
            redis_url,
            sqlite_url,
            tmp_path,
            UPSTOX_API_URL=http.url,
            UPSTOX_LOGIN_URL=f"{http.url}/v2/login/authorization/dialog",
        )
        fake.browser_origin = stack.base  # the loopback web stands in for PUBLIC_BASE_URL's host
        services = Services.build(load_config(stack.env))
        try:
            stack.start()
            with chromium() as browser:
                page = browser.new_page(viewport=DESKTOP)
                sign_in(page, stack.base)
                page.get_by_role("link", name="Accounts").click()
                form = page.get_by_role("form", name="Add an account")
                form.get_by_label("Broker", exact=True).select_option("upstox")
                # What an Upstox account needs: its UCC, the app's key and secret (hidden); nothing else.
                assert form.get_by_label("Account id", exact=True).get_attribute("required") is not None
                assert form.locator('[data-credential="api_key"]').count() == 1
                assert form.locator('[data-credential="api_secret"]').get_attribute("type") == "password"
                assert form.locator('[data-credential="api_secret"]').get_attribute("required") is not None
                form.get_by_label("Account id", exact=True).fill("UP1234")
                form.get_by_label("Label", exact=True).fill("upstox main")
                form.locator('[data-credential="api_key"]').fill(API_KEY)
                form.locator('[data-credential="api_secret"]').fill(API_SECRET)
                form.get_by_role("button", name="Add account").click()
                page.locator("#acc-result").filter(has_text="Added").wait_for(timeout=30_000)
                listed = requests.get(f"{stack.base}/api/accounts", headers=AUTH, timeout=10).json()["accounts"]
                [account] = [a for a in listed if a["broker"] == "upstox"]
                card = page.locator(f'[data-account="{account["id"]}"]')
                card.wait_for(timeout=30_000)
                assert card.get_attribute("data-session") == SessionState.MISSING
                login = card.get_by_role("link", name="Log in")
                assert login.get_attribute("href") == f"/accounts/{account['id']}/login"
                login.click()
                page.get_by_role("button", name="Continue").wait_for(timeout=30_000)
                assert page.url.startswith(f"{http.url}/v2/login/authorization/dialog?response_type=code")
                shoot(page, screenshot_dir(tmp_path), "upstox-login-dialog")
                page.get_by_role("button", name="Continue").click()
                page.wait_for_url(f"{stack.base}/#accounts", timeout=30_000)
                assert "logged in: upstox UP1234" in page.locator("#toast").inner_text(timeout=30_000)
                page.locator(f'[data-account="{account["id"]}"][data-session="active"]').wait_for(timeout=30_000)
                shoot(page, screenshot_dir(tmp_path), "upstox-login-landed")
                assert API_SECRET not in page.content()
            stored = services.accounts.get(account["id"], secrets=True)
            assert stored.session.token == fake.latest_token("UP1234"), stack.logs()
            assert stored.session.expires_at == next_rollover("03:30", stored.session.logged_in_at)
            assert API_SECRET not in stack.logs() and stored.session.token not in stack.logs()
        finally:
            stack.stop()
            services.engine.dispose()
