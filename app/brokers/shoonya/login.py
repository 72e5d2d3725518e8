"""Shoonya's daily login with a TOTP: the Noren family's (app/brokers/noren/login.py) in Shoonya's dialect."""

from __future__ import annotations

from app.brokers.noren.login import NorenLogin
from app.brokers.shoonya.spec import BROKER


class ShoonyaLogin(NorenLogin):
    """Shoonya's automatic login (the auto_login module of app/accounts/ calls `login`)."""

    family = BROKER
