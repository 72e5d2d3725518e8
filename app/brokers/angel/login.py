"""Angel One's daily login, done by the service itself (docs/brokers.md "Accounts and daily logins", Angel One).

POST `{ANGEL_API_URL}/rest/auth/angelbroking/user/v1/loginByPassword` with JSON `clientcode`, `password` (the
PIN) and `totp` (the current code of the account's TOTP secret, RFC 6238 through pyotp), and smartapi-python's
headers (`X-PrivateKey: <api_key>`, `X-UserType`, `X-SourceID`, the IP and MAC headers). The answer
`{"status": true, "data": {"jwtToken", "refreshToken", "feedToken"}}` gives the day's token; a refusal is
`{"status": false, "message": "Invalid totp", "errorcode": "AB1050"}`-like. The login API allows 1 request per second.
"""

from __future__ import annotations

import pyotp
import requests

from app.accounts.login import EXCHANGE_TIMEOUT, LoginRefused, LoginResult, TotpLogin, safe_message
from app.accounts.model import Account
from app.config import Config

LOGIN_PATH = "/rest/auth/angelbroking/user/v1/loginByPassword"


def totp_code(secret: str) -> str:
    """The TOTP code of this moment (6 digits, 30 s steps, SHA-1: what an authenticator app shows)."""
    try:
        return pyotp.TOTP(secret.replace(" ", "").upper()).now()
    except (ValueError, TypeError):
        raise LoginRefused("the account's totp_secret is not a base32 TOTP secret: give it again") from None


class AngelLogin(TotpLogin):
    """loginByPassword with the client code, PIN and a fresh TOTP code."""

    broker = "angel"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.variables = config.broker(self.broker)

    def login(self, account: Account) -> LoginResult:
        """The day's jwtToken for `account`; LoginRefused (transient=False when Angel refused the credentials)."""
        client_code = account.account_id
        if not client_code:
            raise LoginRefused("this Angel One account has no client code: add it with its account_id")
        api_key, pin, secret = (self._credential(account, name) for name in ("api_key", "pin", "totp_secret"))
        body = {"clientcode": client_code, "password": pin, "totp": totp_code(secret)}
        hidden = (api_key, pin, secret, body["totp"])
        url = self.variables["ANGEL_API_URL"].rstrip("/") + LOGIN_PATH
        try:
            answer = requests.post(url, json=body, headers=_headers(api_key), timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            raise LoginRefused(
                f"Angel One's login API did not answer ({type(exc).__name__}); trying again", status=502, transient=True
            ) from None
        data = _json(answer)
        token = (data.get("data") or {}).get("jwtToken") if isinstance(data.get("data"), dict) else None
        if answer.status_code == 200 and data.get("status") is True and isinstance(token, str) and token:
            return LoginResult(token=token.removeprefix("Bearer ").strip(), user_id=client_code)
        why = safe_message(data.get("message") or f"HTTP {answer.status_code}", *hidden)
        code = safe_message(data.get("errorcode") or data.get("errorCode"), *hidden)
        transient = answer.status_code == 429 or answer.status_code >= 500 or not data
        raise LoginRefused(
            f"Angel One refused the login: {why}" + (f" ({code})" if code else ""), status=502, transient=transient
        )

    def _credential(self, account: Account, name: str) -> str:
        """A credential the login needs; LoginRefused naming it when the account lacks it."""
        value = account.credentials.get(name, "")
        if not value:
            raise LoginRefused(f"this Angel One account has no {name}: add it to the account")
        return value


def _headers(api_key: str) -> dict[str, str]:
    """smartapi-python's request headers (SmartConnect.requestHeaders), IP and MAC as placeholders."""
    return {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "X-UserType": "USER",
        "X-SourceID": "WEB",
        "X-ClientLocalIP": "127.0.0.1",
        "X-ClientPublicIP": "127.0.0.1",
        "X-MACAddress": "00:00:00:00:00:00",
        "X-PrivateKey": api_key,
    }


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
