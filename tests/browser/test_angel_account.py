"""The Accounts page for an Angel One account, in a real headless Chromium against the real web and worker: the add
form asks for the client code, API key, PIN and TOTP secret (hidden), and the account logs in by itself (a fake
Angel One login API) without anyone pasting a token."""

from __future__ import annotations

import pyotp
import pytest
import requests

from tests.support.chromium import DESKTOP, Stack, sign_in
from tests.support.env import ADMIN_TOKEN
from tests.support.fakes.angel import FakeAngelRest

pytestmark = pytest.mark.e2e
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
CLIENT = "R52269012"
API_KEY = "angel-browser-api-key-4455"
PIN = "9753"
SECRET = pyotp.random_base32()


@pytest.fixture
def angel():
    fake = FakeAngelRest(CLIENT, API_KEY, PIN, SECRET).start()
    yield fake
    fake.close()


@pytest.fixture
def web(redis_client, redis_url, sqlite_url, tmp_path, angel):
    """The web and worker, whose Angel One is the fake."""
    made = Stack(redis_url, sqlite_url, tmp_path, ANGEL_API_URL=angel.url).start()
    yield made
    made.stop()


def test_an_angel_account_is_added_with_its_totp_credentials_and_logs_in_by_itself(web, browser, angel):
    page = browser.new_page(viewport=DESKTOP)
    sign_in(page, web.base)
    page.get_by_role("link", name="Accounts").click()
    form = page.get_by_role("form", name="Add an account")
    form.get_by_label("Broker", exact=True).select_option("angel")

    # What the spec declares, and nothing else: three secrets, hidden as typed, and the optional day's token.
    fields = form.locator("[data-credential]")
    assert [fields.nth(i).get_attribute("data-credential") for i in range(fields.count())] == [
        "api_key",
        "pin",
        "totp_secret",
        "access_token",
    ]
    for name in ("api_key", "pin", "totp_secret"):
        field = form.locator(f'[data-credential="{name}"]')
        assert field.get_attribute("type") == "password" and field.get_attribute("required") is not None
    assert form.locator('[data-credential="access_token"]').get_attribute("required") is None
    assert form.get_by_label("Account id", exact=True).get_attribute("required") is not None
    assert "TOTP secret" in form.inner_text()

    form.get_by_label("Account id", exact=True).fill(CLIENT)
    form.get_by_label("Label", exact=True).fill("angel main")
    for name, value in (("api_key", API_KEY), ("pin", PIN), ("totp_secret", SECRET)):
        form.locator(f'[data-credential="{name}"]').fill(value)
    form.get_by_role("button", name="Add account").click()
    page.locator("#acc-result").filter(has_text="Added").wait_for(timeout=30_000)

    # The worker logs it in (the fake saw the login); the card shows an active session, with no Log in button.
    listed = requests.get(f"{web.base}/api/accounts", headers=AUTH, timeout=10).json()["accounts"]
    [added] = [a for a in listed if a["broker"] == "angel"]
    card = page.locator(f'[data-account="{added["id"]}"][data-session="active"]')
    card.wait_for(timeout=60_000)
    assert angel.logins and angel.logins[0]["clientcode"] == CLIENT
    assert card.get_by_role("link", name="Log in").count() == 0
    text = page.content()
    assert SECRET not in text and API_KEY not in text and angel.token not in text
