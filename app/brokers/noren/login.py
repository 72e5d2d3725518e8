"""The Noren family's daily login with a TOTP, done by the service itself (docs/brokers.md "Accounts and daily logins").

Two dialects, chosen by the broker's declaration (app/brokers/noren/family.py):

- QuickAuth (Shoonya, Zebu): POST `<PREFIX>_LOGIN_URL` (`…/NorenWClientTP/QuickAuth`) with the form body
  `jData=<json>` (no jKey) holding `source` "API", `apkversion`, `uid`, `pwd` = hex SHA-256(password), `factor2` =
  the TOTP code, `vc` (vendor code), `appkey` = hex SHA-256(`uid|api_secret`) and `imei` (NorenRestApi 0.0.30
  `NorenApi.login`). The answer `{"stat":"Ok","susertoken",…}` gives the day's token; a refusal is
  `{"stat":"Not_Ok","emsg":"Invalid Input : Wrong Password"}`-like.
- Firstock: POST `<PREFIX>_LOGIN_URL` (`https://api.firstock.in/V1/login`) with JSON `userId`, `password` = hex
  SHA-256(password), `TOTP`, `vendorCode`, `apiKey` (firstock-developer-sdk-python `firstockLogin`). The answer
  `{"status":"success","data":{"susertoken",…}}` gives the token; a refusal `{"status":"failed","message"|"error"}`.

The login class is a `TotpLogin` (app/accounts/login.py): the automatic login (the auto_login module of
app/accounts/) calls `login(account)` when the account's session is missing, refused or past its rollover.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, ClassVar

import pyotp
import requests

from app.accounts.login import EXCHANGE_TIMEOUT, LoginRefused, LoginResult, TotpLogin, safe_message
from app.accounts.model import Account
from app.brokers.noren.family import FIRSTOCK_LOGIN, NorenBroker
from app.config import Config

#: NorenRestApi's `apkversion` (any version the OMS does not block).
APK_VERSION = "1.0.0"
#: The device id sent when the account names none (NorenRestApi's examples send any text).
DEFAULT_IMEI = "orderhook"
#: Refusal words that mean trying again later may succeed (the OMS down at its start or end of day).
TRANSIENT_WORDS = ("server timeout", "unknown request", "try again")


def sha256_hex(text: str) -> str:
    """Hex SHA-256 of the text (Noren's `pwd` and `appkey`)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def totp_code(secret: str) -> str:
    """The TOTP code of this moment (6 digits, 30 s steps, SHA-1: what an authenticator app shows)."""
    try:
        return pyotp.TOTP(secret.replace(" ", "").upper()).now()
    except (ValueError, TypeError):
        raise LoginRefused("the account's totp_secret is not a base32 TOTP secret: give it again") from None


def refused(message: str, *, status: int = 502, transient: bool = False) -> LoginRefused:
    """A LoginRefused that tells the automatic login whether trying later may help (`transient`)."""
    error = LoginRefused(message, status=status)
    error.transient = transient  # read by the auto_login module of app/accounts/
    return error


class NorenLogin(TotpLogin):
    """QuickAuth or Firstock's login with the account's password, TOTP secret, vendor code and API secret."""

    family: ClassVar[NorenBroker]

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.variables = config.broker(self.family.name)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """The broker's name, from its declaration."""
        super().__init_subclass__(**kwargs)
        family = cls.__dict__.get("family")
        if family is not None:
            cls.broker = family.name

    def login(self, account: Account) -> LoginResult:
        """The day's susertoken for `account`; LoginRefused (transient when the broker may answer later)."""
        uid = account.account_id
        if not uid:
            raise LoginRefused(f"this {self.family.title} account has no user id: add it as its account_id")
        password, secret, vendor = (self._credential(account, n) for n in ("password", "totp_secret", "vendor_code"))
        firstock = self.family.login == FIRSTOCK_LOGIN
        api_secret = self._credential(account, "api_key" if firstock else "api_secret")
        code = totp_code(secret)
        hidden = (password, secret, api_secret, code)
        url = self.variables[self.family.var("LOGIN_URL")]
        if firstock:
            body = {
                "userId": uid,
                "password": sha256_hex(password),
                "TOTP": code,
                "vendorCode": vendor,
                "apiKey": api_secret,
            }
            answer = self._post(url, json=body)
        else:
            jdata = {
                "source": "API",
                "apkversion": APK_VERSION,
                "uid": uid,
                "pwd": sha256_hex(password),
                "factor2": code,
                "vc": vendor,
                "appkey": sha256_hex(f"{uid}|{api_secret}"),
                "imei": account.credentials.get("imei") or DEFAULT_IMEI,
            }
            answer = self._post(url, data="jData=" + json.dumps(jdata, separators=(",", ":")))
        return self._result(answer, uid, hidden)

    def _post(self, url: str, **body: Any) -> requests.Response:
        """The login request; a broker that does not answer is a transient refusal."""
        try:
            return requests.post(url, timeout=EXCHANGE_TIMEOUT, **body)
        except requests.RequestException as exc:
            raise refused(
                f"{self.family.title}'s login API did not answer ({type(exc).__name__}); trying again", transient=True
            ) from None

    def _result(self, answer: requests.Response, uid: str, hidden: tuple[str, ...]) -> LoginResult:
        """The token of an accepting answer, else a LoginRefused saying why (never a secret)."""
        data = _json(answer)
        if self.family.login == FIRSTOCK_LOGIN:
            inner = data.get("data") if isinstance(data.get("data"), dict) else {}
            ok = str(data.get("status", "")).lower() == "success"
            token = inner.get("susertoken") or inner.get("jKey")
            error = data.get("error")
            why = (error.get("message") if isinstance(error, dict) else error) or data.get("message")
        else:
            ok = str(data.get("stat", "")) == "Ok"
            token = data.get("susertoken")
            why = data.get("emsg")
        if answer.status_code == 200 and ok and isinstance(token, str) and token:
            return LoginResult(token=token, user_id=str(data.get("uid") or data.get("actid") or uid))
        text = safe_message(why or f"HTTP {answer.status_code}", *hidden)
        transient = answer.status_code == 429 or answer.status_code >= 500 or not data
        transient = transient or any(word in text.lower() for word in TRANSIENT_WORDS)
        raise refused(f"{self.family.title} refused the login: {text}", transient=transient)

    def _credential(self, account: Account, name: str) -> str:
        """A credential the login needs; LoginRefused naming it when the account lacks it."""
        value = account.credentials.get(name, "")
        if not value:
            raise LoginRefused(f"this {self.family.title} account has no {name}: add it to the account")
        return value


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
