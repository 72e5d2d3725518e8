"""Flattrade's daily login (docs/brokers.md "Accounts and daily logins"): its login page, then the token API.

The browser goes to `{FLATTRADE_AUTH_URL}/?app_key=<api_key>`; Flattrade sends it back to the app's registered
redirect URL with `code` (the request code) and `client`. The code is exchanged by POSTing JSON `api_key`,
`request_code` and `api_secret` = hex SHA-256(api_key + request_code + api_secret) to FLATTRADE_TOKEN_URL; the
answer's `token` is the day's session token and `client` the user id. Flattrade sends no state back, so the
callback is bound to the latest login this browser session started (app/accounts/login.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from urllib.parse import urlencode

import requests

from app.accounts.login import EXCHANGE_TIMEOUT, BrokerLogin, LoginRefused, LoginResult, safe_message
from app.accounts.model import Account


def hashed_secret(api_key: str, request_code: str, api_secret: str) -> str:
    """Flattrade's `api_secret` field: hex SHA-256 of api_key + request_code + api_secret."""
    return hashlib.sha256((api_key + request_code + api_secret).encode()).hexdigest()


class FlattradeLogin(BrokerLogin):
    """Flattrade's redirect login (request code → token)."""

    broker = "flattrade"
    returns_state = False

    def login_url(self, account: Account, state: str) -> str:
        """Flattrade's login page for this account's API key (the state stays here: Flattrade returns none)."""
        api_key = self.credential(account, "api_key")
        return self.variables["FLATTRADE_AUTH_URL"].rstrip("/") + "/?" + urlencode({"app_key": api_key})

    def exchange(self, account: Account, query: Mapping[str, str]) -> LoginResult:
        """The request code for the day's token."""
        code = query.get("code") or query.get("request_code") or ""
        if not code or len(code) > 256:
            raise LoginRefused("Flattrade sent no request code back: press Log in again")
        api_key = self.credential(account, "api_key")
        api_secret = self.credential(account, "api_secret")
        body = {"api_key": api_key, "request_code": code, "api_secret": hashed_secret(api_key, code, api_secret)}
        hidden = (api_key, api_secret, code)
        try:
            answer = requests.post(self.variables["FLATTRADE_TOKEN_URL"], json=body, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise LoginRefused(
                f"Flattrade's token API did not answer ({type(exc).__name__}); try again", status=502
            ) from None
        data = _json(answer)
        status = str(data.get("stat") or data.get("status") or "Ok")
        if answer.status_code != 200 or status.lower() != "ok" or not data.get("token"):
            why = safe_message(data.get("emsg") or f"HTTP {answer.status_code}", *hidden)
            raise LoginRefused(f"Flattrade refused the login: {why}", status=502)
        return LoginResult(token=str(data["token"]), user_id=str(data.get("client") or query.get("client") or ""))


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
