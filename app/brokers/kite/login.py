"""Kite Connect's daily login (docs/brokers.md "Accounts and daily logins"): its login page, then /session/token.

The browser goes to `{KITE_LOGIN_URL}/connect/login?v=3&api_key=…&redirect_params=state%3D…`; Kite sends it
back to the app's registered redirect URL with `request_token`, `action=login`, `status=success` and the
redirect_params keys (our `state`). The request token, with checksum = hex SHA-256(api_key + request_token +
api_secret), is POSTed to `{KITE_API_URL}/session/token`; the answer's `data.access_token` is the day's token
and `data.user_id` the account's client id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from urllib.parse import urlencode

import requests

from app.accounts.login import EXCHANGE_TIMEOUT, BrokerLogin, LoginRefused, LoginResult, safe_message
from app.accounts.model import Account

#: What Kite's token API expects (kite.trade/docs/connect/v3/user/).
KITE_VERSION = "3"


def checksum(api_key: str, request_token: str, api_secret: str) -> str:
    """Kite's login checksum: hex SHA-256 of api_key + request_token + api_secret."""
    return hashlib.sha256((api_key + request_token + api_secret).encode()).hexdigest()


class KiteLogin(BrokerLogin):
    """Kite Connect's redirect login; the state travels in `redirect_params` and comes back as a query key."""

    broker = "kite"
    returns_state = True

    def login_url(self, account: Account, state: str) -> str:
        """The Kite login page for this account's app, with our state in redirect_params."""
        api_key = self.credential(account, "api_key")
        base = self.variables["KITE_LOGIN_URL"].rstrip("/")
        query = urlencode({"v": KITE_VERSION, "api_key": api_key, "redirect_params": urlencode({"state": state})})
        return f"{base}/connect/login?{query}"

    def exchange(self, account: Account, query: Mapping[str, str]) -> LoginResult:
        """The request_token for the day's access_token."""
        if query.get("status", "success") != "success":
            raise LoginRefused(f"Kite says the login did not succeed ({safe_message(query.get('status'))}); try again")
        request_token = query.get("request_token", "")
        if not request_token or len(request_token) > 128:
            raise LoginRefused("Kite sent no request_token back: press Log in again")
        api_key = self.credential(account, "api_key")
        api_secret = self.credential(account, "api_secret")
        form = {
            "api_key": api_key,
            "request_token": request_token,
            "checksum": checksum(api_key, request_token, api_secret),
        }
        url = self.variables["KITE_API_URL"].rstrip("/") + "/session/token"
        hidden = (api_key, api_secret, request_token)
        try:
            answer = requests.post(url, data=form, headers={"X-Kite-Version": KITE_VERSION}, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise LoginRefused(
                f"Kite's token API did not answer ({type(exc).__name__}); try again", status=502
            ) from None
        body = _json(answer)
        data = body.get("data") if isinstance(body.get("data"), dict) else {}
        if answer.status_code != 200 or body.get("status") != "success" or not data.get("access_token"):
            why = safe_message(body.get("message") or f"HTTP {answer.status_code}", *hidden)
            kind = safe_message(body.get("error_type"), *hidden)
            raise LoginRefused(f"Kite refused the login: {why}" + (f" ({kind})" if kind else ""), status=502)
        return LoginResult(token=str(data["access_token"]), user_id=str(data.get("user_id") or ""))


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
