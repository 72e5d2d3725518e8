"""Fyers' daily login (docs/brokers.md "Fyers (auth code, appIdHash)"): its login page, validate-authcode, profile.

The browser goes to `{FYERS_LOGIN_URL}/api/v3/generate-authcode?client_id=<app_id>&redirect_uri=<callback>&
response_type=code&state=<state>`; Fyers sends it back to the redirect URL with `s`, `code`, `auth_code` and our
`state`. The auth code is POSTed as JSON `grant_type=authorization_code`, `appIdHash` = hex SHA-256 of
"<app_id>:<app_secret>" and `code` to `{FYERS_API_URL}/api/v3/validate-authcode`; the answer's `access_token` is the
day's token. That answer names no user, so `GET {FYERS_API_URL}/api/v3/profile` (`Authorization: app_id:token`)
gives `data.fy_id`, the Fyers client id the login was made as. The token is a JWT: its `exp` claim, when it has a
plausible one, is when the session ends; else the spec's rollover (docs/brokers.md "Fyers (auth code, appIdHash)").
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import jwt
import requests

from app.accounts.login import EXCHANGE_TIMEOUT, BrokerLogin, LoginRefused, LoginResult, safe_message
from app.accounts.model import Account

log = logging.getLogger(__name__)

#: A longer `code` query value is the auth code itself (the callback's `code` is otherwise the numeric 200).
MIN_AUTH_CODE = 16
MAX_AUTH_CODE = 4096
#: An `exp` further ahead than this is not believed (a day's token): the rollover applies instead.
MAX_TOKEN_LIFETIME = timedelta(hours=48)


def app_id_hash(app_id: str, app_secret: str) -> str:
    """Fyers' appIdHash: hex SHA-256 of "<app_id>:<app_secret>"."""
    return hashlib.sha256(f"{app_id}:{app_secret}".encode()).hexdigest()


class FyersLogin(BrokerLogin):
    """The auth-code redirect login of a Fyers API app; the state travels in `state` and comes back as sent."""

    broker = "fyers"
    returns_state = True

    def login_url(self, account: Account, state: str) -> str:
        """Fyers' login page for this account's app, sending the browser back to our callback with the state."""
        query = {
            "client_id": self.credential(account, "app_id"),
            "redirect_uri": self.redirect_url(),
            "response_type": "code",
            "state": state,
        }
        return self.variables["FYERS_LOGIN_URL"].rstrip("/") + "/api/v3/generate-authcode?" + urlencode(query)

    def exchange(self, account: Account, query: Mapping[str, str]) -> LoginResult:
        """The auth code for the day's access token, and the profile's fy_id for the user who logged in."""
        if str(query.get("s", "ok")).lower() != "ok":
            why = safe_message(query.get("message") or query.get("s"))
            raise LoginRefused(f"Fyers says the login did not succeed ({why}); try again")
        code = _auth_code(query)
        if not code:
            raise LoginRefused("Fyers sent no auth_code back: press Log in again")
        app_id = self.credential(account, "app_id")
        app_secret = self.credential(account, "app_secret")
        hidden = (app_id, app_secret, code, app_id_hash(app_id, app_secret))
        body = {"grant_type": "authorization_code", "appIdHash": app_id_hash(app_id, app_secret), "code": code}
        answer = self._call("POST", "/api/v3/validate-authcode", json=body)
        data = _json(answer)
        token = data.get("access_token")
        accepted = answer.status_code == 200 and str(data.get("s", "")).lower() == "ok"
        if not accepted or not isinstance(token, str) or not token:
            why = safe_message(data.get("message") or f"HTTP {answer.status_code}", *hidden)
            code_text = safe_message(data.get("code"), *hidden)
            raise LoginRefused(f"Fyers refused the login: {why}" + (f" (code {code_text})" if code_text else ""), 502)
        return LoginResult(token=token, user_id=self._user_id(app_id, token), expires_at=token_expiry(token))

    def _user_id(self, app_id: str, token: str) -> str:
        """The profile's fy_id ("" when the profile cannot be read: the login stands, unchecked)."""
        try:
            answer = self._call("GET", "/api/v3/profile", headers={"Authorization": f"{app_id}:{token}"})
        except LoginRefused:
            log.warning("fyers login: the profile did not answer; the user id is not checked")
            return ""
        data = _json(answer).get("data")
        user = data.get("fy_id") if isinstance(data, dict) else None
        if answer.status_code != 200 or not isinstance(user, str):
            log.warning("fyers login: the profile answered HTTP %s without fy_id; not checked", answer.status_code)
            return ""
        return user.strip()

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        """One request to the Fyers API; LoginRefused (502) when it does not answer."""
        url = self.variables["FYERS_API_URL"].rstrip("/") + path
        try:
            return requests.request(method, url, timeout=EXCHANGE_TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            raise LoginRefused(f"Fyers' API did not answer ({type(exc).__name__}); try again", status=502) from None


def token_expiry(token: str, now: datetime | None = None) -> datetime | None:
    """The access token's `exp` claim (read, not verified: only Fyers can, and it checks the token itself), or None
    when it is no JWT, has none, or one that is past or implausibly far (then the rollover rule applies)."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    exp = claims.get("exp") if isinstance(claims, dict) else None
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        return None
    now = now or datetime.now(UTC)
    try:
        moment = datetime.fromtimestamp(exp, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment if now < moment <= now + MAX_TOKEN_LIFETIME else None


def _auth_code(query: Mapping[str, str]) -> str:
    """The callback's auth_code (or a `code` long enough to be one), bounded."""
    code = query.get("auth_code") or ""
    if not code and len(query.get("code", "")) >= MIN_AUTH_CODE:
        code = query["code"]
    return code if 0 < len(code) <= MAX_AUTH_CODE else ""


def _json(answer: requests.Response) -> dict:
    """The answer's JSON object, {} when it is not one."""
    try:
        body = answer.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
