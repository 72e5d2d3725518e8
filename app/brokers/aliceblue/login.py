"""AliceBlue's daily login (docs/brokers.md "Accounts and daily logins"): its login page, then getUserDetails.

The browser goes to `{ALICEBLUE_LOGIN_URL}/?appcode=<app_code>`; AliceBlue sends it back to the app's registered
redirect URL with `authCode` and `userId`. The checksum, hex SHA-256(userId + authCode + api_secret), is POSTed as
JSON `{"checkSum": …}` to `{ALICEBLUE_API_URL}/vendor/getUserDetails`; the answer `{"stat":"Ok","clientId",
"userSession"}` gives the day's session and the client id. AliceBlue sends no state back, so the callback is bound
to the latest login this browser session started (app/accounts/login.py).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from urllib.parse import urlencode

import requests

from app.accounts.login import EXCHANGE_TIMEOUT, BrokerLogin, LoginRefused, LoginResult, safe_message
from app.accounts.model import Account

SESSION_PATH = "/vendor/getUserDetails"
MAX_CODE = 512


def checksum(user_id: str, auth_code: str, api_secret: str) -> str:
    """AliceBlue's checkSum: hex SHA-256 of userId + authCode + apiSecret."""
    return hashlib.sha256((user_id + auth_code + api_secret).encode()).hexdigest()


class AliceBlueLogin(BrokerLogin):
    """AliceBlue's redirect login (authCode → userSession)."""

    broker = "aliceblue"
    returns_state = False

    def login_url(self, account: Account, state: str) -> str:
        """AliceBlue's login page for this account's app (the state stays here: AliceBlue returns none)."""
        app_code = self.credential(account, "app_code")
        return self.variables["ALICEBLUE_LOGIN_URL"].rstrip("/") + "/?" + urlencode({"appcode": app_code})

    def exchange(self, account: Account, query: Mapping[str, str]) -> LoginResult:
        """The authCode for the day's userSession."""
        auth_code = query.get("authCode") or query.get("authcode") or query.get("code") or ""
        if not auth_code or len(auth_code) > MAX_CODE:
            raise LoginRefused("AliceBlue sent no authCode back: press Log in again")
        user_id = (query.get("userId") or query.get("userid") or account.account_id or "").strip()
        if not user_id or len(user_id) > 64:
            raise LoginRefused("AliceBlue sent no userId back and this account has no client id: log in again")
        api_secret = self.credential(account, "api_secret")
        body = {"checkSum": checksum(user_id, auth_code, api_secret)}
        hidden = (api_secret, auth_code, body["checkSum"])
        url = self.variables["ALICEBLUE_API_URL"].rstrip("/") + SESSION_PATH
        try:
            answer = requests.post(url, json=body, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise LoginRefused(
                f"AliceBlue's session API did not answer ({type(exc).__name__}); try again", status=502
            ) from None
        data = _json(answer)
        session = data.get("userSession")
        if answer.status_code != 200 or str(data.get("stat", "")).lower() != "ok" or not session:
            why = safe_message(data.get("emsg") or f"HTTP {answer.status_code}", *hidden)
            raise LoginRefused(f"AliceBlue refused the login: {why}", status=502)
        return LoginResult(token=str(session), user_id=str(data.get("clientId") or user_id))


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
