"""Kotak Neo's daily login, done by the service itself (docs/brokers.md "Accounts and daily logins", Kotak Neo).

1. POST `{KOTAK_LOGIN_URL}/login/1.0/tradeApiLogin`, headers `Authorization: <api_token>` (the Neo API dashboard
   token, plain) and `neo-fin-key: neotradeapi`, JSON `mobileNumber`, `ucc`, `totp` (the current code of the
   account's TOTP secret, RFC 6238 through pyotp) → `data.token` and `data.sid`, the view session.
2. POST `{KOTAK_LOGIN_URL}/login/1.0/tradeApiValidate`, the same headers plus `sid` and `Auth` of step 1, JSON
   `mpin` → `data.token`, `data.sid` and `data.baseUrl`: the trade session, stored as one token
   (app/brokers/kotak/session.py).

It is a TOTP login (AccountSpec login=TOTP): the automatic login (app/accounts/auto_login.py) calls `login` when the
session is missing, refused or expired; until it runs here, a session can be pasted as `<token>|<sid>|<baseUrl>`.
"""

from __future__ import annotations

from typing import Any

import pyotp
import requests

from app.accounts.login import EXCHANGE_TIMEOUT, LoginRefused, LoginResult, TotpLogin, safe_message
from app.accounts.model import Account
from app.brokers.kotak.session import SEPARATOR, KotakSession
from app.config import Config

LOGIN_PATH = "/login/1.0/tradeApiLogin"
VALIDATE_PATH = "/login/1.0/tradeApiValidate"
NEO_FIN_KEY = "neotradeapi"


def totp_code(secret: str) -> str:
    """The TOTP code of this moment (6 digits, 30 s steps, SHA-1: what an authenticator app shows)."""
    try:
        return pyotp.TOTP(secret.replace(" ", "").upper()).now()
    except (ValueError, TypeError):
        raise LoginRefused("the account's totp_secret is not a base32 TOTP secret: give it again") from None


def refused(message: str, *, transient: bool) -> LoginRefused:
    """A LoginRefused the automatic login can tell apart: transient (try later) or the credentials refused."""
    error = LoginRefused(message, status=502)
    error.transient = transient  # read with getattr by app/accounts/auto_login.py
    return error


class KotakLogin(TotpLogin):
    """tradeApiLogin (mobile, UCC, TOTP), then tradeApiValidate (MPIN)."""

    broker = "kotak"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.variables = config.broker(self.broker)

    def login(self, account: Account) -> LoginResult:
        """The day's trade session for `account`; LoginRefused (transient when Kotak did not answer usefully)."""
        ucc = account.account_id
        if not ucc:
            raise LoginRefused("this Kotak Neo account has no client code (UCC): add it with its account_id")
        api_token, mobile, mpin, secret = (
            self._credential(account, name) for name in ("api_token", "mobile", "mpin", "totp_secret")
        )
        code = totp_code(secret)
        hidden = (api_token, mobile, mpin, secret, code)
        headers = {"Authorization": api_token, "neo-fin-key": NEO_FIN_KEY, "Content-Type": "application/json"}
        view = self._step(LOGIN_PATH, headers, {"mobileNumber": mobile, "ucc": ucc, "totp": code}, hidden)
        hidden += (view["token"], view["sid"])
        trade = self._step(VALIDATE_PATH, headers | {"sid": view["sid"], "Auth": view["token"]}, {"mpin": mpin}, hidden)
        base_url = str(trade.get("baseUrl") or "").rstrip("/")
        if not base_url.startswith(("https://", "http://")) or SEPARATOR in base_url:
            base_url = ""  # not a URL: KOTAK_API_URL and KOTAK_WS_URL serve instead
        if SEPARATOR in trade["token"] or SEPARATOR in trade["sid"]:
            raise refused("Kotak Neo answered a session that cannot be stored (a '|' in it); try again", transient=True)
        session = KotakSession(trade["token"], trade["sid"], base_url)
        return LoginResult(token=session.text(), user_id=ucc)

    def _step(self, path: str, headers: dict[str, str], body: dict[str, str], hidden: tuple[str, ...]) -> dict:
        """One POST of the login; its `data` with a token and a sid, or LoginRefused with Kotak's reason."""
        url = self.variables["KOTAK_LOGIN_URL"].rstrip("/") + path
        try:
            answer = requests.post(url, json=body, headers=headers, timeout=EXCHANGE_TIMEOUT)
        except requests.RequestException as exc:
            why = f"Kotak Neo's login API did not answer ({type(exc).__name__}); trying again"
            raise refused(why, transient=True) from None
        payload = _json(answer)
        data = payload.get("data") if isinstance(payload.get("data"), dict) else {}
        if answer.status_code == 200 and data.get("token") and data.get("sid"):
            return {key: str(value) for key, value in data.items() if isinstance(value, str | int)}
        why = safe_message(payload.get("message") or payload.get("emsg") or f"HTTP {answer.status_code}", *hidden)
        step = "the TOTP login" if path == LOGIN_PATH else "the MPIN check"
        transient = answer.status_code == 429 or answer.status_code >= 500 or not payload
        raise refused(f"Kotak Neo refused {step}: {why}", transient=transient)

    def _credential(self, account: Account, name: str) -> str:
        """A credential the login needs; LoginRefused naming it when the account lacks it."""
        value = account.credentials.get(name, "")
        if not value:
            raise LoginRefused(f"this Kotak Neo account has no {name}: add it to the account")
        return value


def _json(answer: requests.Response) -> dict[str, Any]:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
