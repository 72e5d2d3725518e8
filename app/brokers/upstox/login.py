"""Upstox's daily login (docs/brokers.md "Accounts and daily logins"): the OAuth2 authorization code flow.

The browser goes to `{UPSTOX_LOGIN_URL}?response_type=code&client_id=<api_key>&redirect_uri=<callback>&state=<state>`;
Upstox sends it back to the redirect URI with `code` and our `state`. The code (single-use "regardless of whether
the access token generation succeeds") is POSTed form-encoded with client_id, client_secret, the same redirect_uri
and grant_type=authorization_code to `{UPSTOX_API_URL}/v2/login/authorization/token`; the answer's `access_token` is
the day's token (until 03:30 IST) and `user_id` the account's client id.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlencode

import requests

from app.accounts.login import EXCHANGE_TIMEOUT, BrokerLogin, LoginRefused, LoginResult, safe_message
from app.accounts.model import Account
from app.brokers.upstox.rest import error_text

TOKEN_PATH = "/v2/login/authorization/token"
MAX_CODE = 256


class UpstoxLogin(BrokerLogin):
    """Upstox's OAuth2 redirect login; the state travels in `state` and comes back as it went."""

    broker = "upstox"
    returns_state = True

    def login_url(self, account: Account, state: str) -> str:
        """The login dialog for this account's app, with our state and the callback registered with the app."""
        query = {
            "response_type": "code",
            "client_id": self.credential(account, "api_key"),
            "redirect_uri": self.redirect_url(),
            "state": state,
        }
        return f"{self.variables['UPSTOX_LOGIN_URL']}?{urlencode(query)}"

    def exchange(self, account: Account, query: Mapping[str, str]) -> LoginResult:
        """The authorization code for the day's access token."""
        if query.get("error"):
            raise LoginRefused(f"Upstox says the login did not succeed ({safe_message(query.get('error'))}); try again")
        code = query.get("code", "")
        if not code or len(code) > MAX_CODE:
            raise LoginRefused("Upstox sent no authorization code back: press Log in again")
        api_key = self.credential(account, "api_key")
        api_secret = self.credential(account, "api_secret")
        form = {
            "code": code,
            "client_id": api_key,
            "client_secret": api_secret,
            "redirect_uri": self.redirect_url(),
            "grant_type": "authorization_code",
        }
        url = self.variables["UPSTOX_API_URL"].rstrip("/") + TOKEN_PATH
        hidden = (api_key, api_secret, code)
        try:
            answer = requests.post(url, data=form, headers={"Accept": "application/json"}, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise LoginRefused(
                f"Upstox's token API did not answer ({type(exc).__name__}); try again", status=502
            ) from None
        body = _json(answer)
        token = body.get("access_token")
        if answer.status_code != 200 or not isinstance(token, str) or not token:
            why = safe_message(error_text(body) if body else f"HTTP {answer.status_code}", *hidden)
            raise LoginRefused(f"Upstox refused the login: {why}", status=502)
        return LoginResult(token=token, user_id=str(body.get("user_id") or ""))


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
