"""A Kite account logged in through the redirect flow in a real headless Chromium, against the real web process
and a fake Kite login page and /session/token on loopback (docs/brokers.md "Accounts and daily logins")."""

from __future__ import annotations

import pytest

from app.accounts.model import SessionState
from app.config import load_config
from app.services import Services
from tests.support.chromium import DESKTOP, Stack, chromium, screenshot_dir, shoot, sign_in
from tests.support.fakes.kite_login import FakeKite, kite_server

pytestmark = pytest.mark.e2e
API_KEY = "kiteapikey01"
API_SECRET = "kite-api-secret-never-shown-0123"


def test_a_kite_account_logs_in_through_the_brokers_page_and_lands_back_active(
    redis_client, redis_url, sqlite_url, tmp_path
):
    fake = FakeKite(apps={API_KEY: API_SECRET}, user_id="AB1234")
    with kite_server(fake) as kite_http:
        stack = Stack(redis_url, sqlite_url, tmp_path, KITE_LOGIN_URL=kite_http.url, KITE_API_URL=kite_http.url)
        fake.redirect_url = f"{stack.base}/brokers/kite/callback"  # as registered on Kite's developer console
        services = Services.build(load_config(stack.env))
        try:
            account = services.accounts.create(
                "kite", "", label="zerodha", credentials={"api_key": API_KEY, "api_secret": API_SECRET}
            )
            stack.start()
            with chromium() as browser:
                page = browser.new_page(viewport=DESKTOP)
                sign_in(page, stack.base)
                page.goto(f"{stack.base}/accounts/{account.id}/login")
                page.get_by_role("button", name="Login").wait_for(timeout=30_000)
                assert page.url.startswith(f"{kite_http.url}/connect/login?v=3&api_key={API_KEY}")
                shoot(page, screenshot_dir(tmp_path), "kite-login-page")
                page.get_by_label("User ID").fill("AB1234")
                page.get_by_role("button", name="Login").click()
                # The Accounts page says the login's outcome once, then drops it from the address.
                page.wait_for_url(f"{stack.base}/#accounts", timeout=30_000)
                assert "logged in: kite AB1234" in page.locator("#toast").inner_text(timeout=30_000)
                card = page.locator(f'[data-account="{account.id}"]')
                card.wait_for(timeout=30_000)
                assert card.get_attribute("data-session") == SessionState.ACTIVE
                page.get_by_role("button", name="Sign out").wait_for(timeout=30_000)  # still signed in
                shoot(page, screenshot_dir(tmp_path), "kite-login-landed")
            stored = services.accounts.get(account.id, secrets=True)
            assert stored.session.state == SessionState.ACTIVE, stack.logs()
            assert stored.session.token == fake.tokens[-1] and stored.account_id == "AB1234"
            assert API_SECRET not in stack.logs() and fake.tokens[-1] not in stack.logs()
        finally:
            stack.stop()
            services.engine.dispose()
