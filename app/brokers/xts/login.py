"""Symphony XTS's interactive login, done by the service itself (docs/brokers.md §14.4): no browser, no code.

POST `{root}/interactive/user/session` with `appKey`, `secretKey` and `source` (form fields, as Connect.py
`interactive_login` sends them); the answer `{"type": "success", "result": {"token", "userID", ...}}` gives the
day's token and the userID (the account id). A refusal is `{"type": "error", "description": "..."}`. It has the
shape the automatic login drives (a TotpLogin: `login(account)`; docs/brokers.md §14.4), so an account added with
its app key and secret logs in by itself when its session is missing, expired or refused.
"""

from __future__ import annotations

import requests

from app.accounts.login import EXCHANGE_TIMEOUT, LoginRefused, LoginResult, TotpLogin, safe_message
from app.accounts.model import Account
from app.brokers.tokens import jwt_expiry
from app.brokers.xts.root import root_url
from app.config import Config

LOGIN_PATH = "/interactive/user/session"


def refused(message: str, *, transient: bool, status: int = 502) -> LoginRefused:
    """A LoginRefused that says whether trying later may help (read by the automatic login)."""
    error = LoginRefused(message, status=status)
    error.transient = transient  # read by the automatic login (docs/brokers.md §14.4)
    return error


class XtsLogin(TotpLogin):
    """The interactive session from the account's app key and secret."""

    broker = "xts"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.variables = config.broker(self.broker)

    def login(self, account: Account) -> LoginResult:
        """The day's token for `account`; LoginRefused (transient when XTS did not answer usefully)."""
        app_key = account.credentials.get("app_key", "")
        secret_key = account.credentials.get("secret_key", "")
        if not app_key or not secret_key:
            raise refused("this XTS account needs its app_key and secret_key to log in", transient=False, status=400)
        try:
            base = root_url(account.credentials.get("root_url") or self.variables["XTS_ROOT_URL"])
        except ValueError as exc:
            raise refused(str(exc), transient=False, status=400) from None
        form = {"appKey": app_key, "secretKey": secret_key, "source": self.variables["XTS_SOURCE"]}
        try:
            answer = requests.post(base + LOGIN_PATH, data=form, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise refused(f"XTS's login did not answer ({type(exc).__name__}); trying again", transient=True) from None
        body = _json(answer)
        result = body.get("result") if isinstance(body.get("result"), dict) else {}
        token = result.get("token")
        if answer.status_code == 200 and str(body.get("type", "")).lower() == "success" and isinstance(token, str):
            user_id = str(result.get("userID") or account.account_id or "")
            return LoginResult(token=token, user_id=user_id, expires_at=jwt_expiry(token))
        why = safe_message(body.get("description") or f"HTTP {answer.status_code}", app_key, secret_key)
        transient = answer.status_code == 429 or answer.status_code >= 500 or not body
        raise refused(f"XTS refused the login: {why}", transient=transient)


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
