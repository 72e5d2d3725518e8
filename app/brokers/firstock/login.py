"""Firstock's daily login with a TOTP: the Noren family's (app/brokers/noren/login.py) in Firstock's dialect."""

from __future__ import annotations

from app.brokers.firstock.spec import BROKER
from app.brokers.noren.login import NorenLogin


class FirstockLogin(NorenLogin):
    """Firstock's automatic login (the auto_login module of app/accounts/ calls `login`)."""

    family = BROKER
