"""Groww's daily access token, obtained by the service itself (docs/brokers.md §15.1 "Login"): API key + TOTP.

POST `{GROWW_API_URL}/v1/token/api/access` with `Authorization: Bearer <api key>` (the TOTP token Groww issues
with the key), `X-API-VERSION: 1.0` and JSON `{"key_type": "totp", "totp": <the current code of the account's
TOTP secret>}`; the answer's `token` is the day's access token. A TotpLogin: the automatic login drives it at
each rollover and whenever the token is refused. Groww allows 5 such calls a second, 30 a minute, 150 a day.
"""

from __future__ import annotations

import pyotp
import requests

from app.accounts.login import EXCHANGE_TIMEOUT, LoginRefused, LoginResult, TotpLogin, safe_message
from app.accounts.model import Account
from app.config import Config

TOKEN_PATH = "/v1/token/api/access"


def refused(message: str, *, transient: bool, status: int = 502) -> LoginRefused:
    """A LoginRefused that says whether trying later may help (read by the automatic login)."""
    error = LoginRefused(message, status=status)
    error.transient = transient
    return error


def totp_code(secret: str) -> str:
    """The TOTP code of this moment (RFC 6238: 6 digits, 30 s, SHA-1, what an authenticator app shows)."""
    try:
        return pyotp.TOTP(secret.replace(" ", "").upper()).now()
    except (ValueError, TypeError):
        raise refused("the account's totp_secret is not a base32 TOTP secret: give it again", transient=False) from None


class GrowwLogin(TotpLogin):
    """The access token from the account's API key and TOTP secret."""

    broker = "groww"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.variables = config.broker(self.broker)

    def login(self, account: Account) -> LoginResult:
        """The day's access token; LoginRefused (transient when Groww did not answer usefully)."""
        api_key = account.credentials.get("api_key", "")
        secret = account.credentials.get("totp_secret", "")
        if not api_key or not secret:
            raise refused(
                "this Groww account needs its api_key and totp_secret to log in by itself (or paste a token)",
                transient=False,
                status=400,
            )
        code = totp_code(secret)
        headers = {"Authorization": f"Bearer {api_key}", "X-API-VERSION": "1.0", "Accept": "application/json"}
        url = self.variables["GROWW_API_URL"].rstrip("/") + TOKEN_PATH
        try:
            answer = requests.post(
                url, json={"key_type": "totp", "totp": code}, headers=headers, timeout=EXCHANGE_TIMEOUT
            )
        except requests.RequestException as exc:
            raise refused(
                f"Groww's token API did not answer ({type(exc).__name__}); trying again", transient=True
            ) from None
        body = _json(answer)
        token = body.get("token")
        if answer.status_code == 200 and isinstance(token, str) and token:
            return LoginResult(token=token, user_id=account.account_id)
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        why = safe_message(error.get("message") or body.get("message") or f"HTTP {answer.status_code}", api_key, secret)
        transient = answer.status_code == 429 or answer.status_code >= 500 or not body
        raise refused(f"Groww refused the login: {why}", transient=transient)


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
