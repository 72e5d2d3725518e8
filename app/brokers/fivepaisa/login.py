"""5paisa's daily access token, obtained by the service itself (docs/brokers.md §15.2 "Login"): TOTP, PIN, keys.

1. POST `{FIVEPAISA_API_URL}/TOTPLogin` with `{"head": {"Key": <app key>}, "body": {"Email_ID": <client code or
   e-mail>, "TOTP": <the current code of the account's TOTP secret>, "PIN": <pin>}}` → `body.RequestToken`.
2. POST `{FIVEPAISA_API_URL}/GetAccessToken` with `{"head": {"Key"}, "body": {"RequestToken", "EncryKey": <the
   app's encryption key>, "UserId": <the app's user id>}}` → `body.AccessToken`, a JWT whose `exp` ends the session.

`body.Status` other than 0 (with `body.Message`) is a refusal. A TotpLogin: the automatic login drives it.
"""

from __future__ import annotations

from typing import Any

import pyotp
import requests

from app.accounts.login import EXCHANGE_TIMEOUT, LoginRefused, LoginResult, TotpLogin, safe_message
from app.accounts.model import Account
from app.brokers.tokens import jwt_expiry
from app.config import Config

#: The credentials the automatic login needs (all optional: without them the token is pasted).
NEEDED = ("app_key", "encryption_key", "user_id", "pin", "totp_secret")


def refused(message: str, *, transient: bool, status: int = 502) -> LoginRefused:
    """A LoginRefused that says whether trying later may help (read by the automatic login)."""
    error = LoginRefused(message, status=status)
    error.transient = transient
    return error


class FivepaisaLogin(TotpLogin):
    """TOTPLogin for a request token, then GetAccessToken for the day's access token."""

    broker = "fivepaisa"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.variables = config.broker(self.broker)

    def login(self, account: Account) -> LoginResult:
        """The day's access token; LoginRefused (transient when 5paisa did not answer usefully)."""
        given = {name: account.credentials.get(name, "") for name in NEEDED}
        missing = [name for name, value in given.items() if not value]
        if missing:
            raise refused(
                f"this 5paisa account needs {', '.join(missing)} to log in by itself (or paste a token)",
                transient=False,
                status=400,
            )
        hidden = tuple(given.values())
        try:
            code = pyotp.TOTP(given["totp_secret"].replace(" ", "").upper()).now()
        except (ValueError, TypeError):
            raise refused(
                "the account's totp_secret is not a base32 TOTP secret: give it again", transient=False
            ) from None
        head = {"Key": given["app_key"]}
        email = account.credentials.get("email") or account.account_id
        first = self._post("/TOTPLogin", {"head": head, "body": {"Email_ID": email, "TOTP": code, "PIN": given["pin"]}})
        request_token = self._field(first, "RequestToken", hidden + (code,))
        body = {"RequestToken": request_token, "EncryKey": given["encryption_key"], "UserId": given["user_id"]}
        second = self._post("/GetAccessToken", {"head": head, "body": body})
        token = self._field(second, "AccessToken", hidden + (request_token,))
        return LoginResult(token=token, user_id=account.account_id, expires_at=jwt_expiry(token))

    def _post(self, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """One login call: its status and the answer's `body` object ({} when there is none)."""
        url = self.variables["FIVEPAISA_API_URL"].rstrip("/") + path
        try:
            answer = requests.post(url, json=payload, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise refused(
                f"5paisa's login did not answer ({type(exc).__name__}); trying again", transient=True
            ) from None
        try:
            data = answer.json()
        except ValueError:
            data = {}
        inner = data.get("body") if isinstance(data, dict) and isinstance(data.get("body"), dict) else {}
        return answer.status_code, inner

    def _field(self, answer: tuple[int, dict[str, Any]], name: str, hidden: tuple[str, ...]) -> str:
        """The named value of a successful answer, or the refusal it says."""
        status, body = answer
        value = body.get(name)
        if status == 200 and str(body.get("Status", 0)) == "0" and isinstance(value, str) and value:
            return value
        why = safe_message(body.get("Message") or f"HTTP {status}", *hidden)
        raise refused(f"5paisa refused the login: {why}", transient=status == 429 or status >= 500 or not body)
