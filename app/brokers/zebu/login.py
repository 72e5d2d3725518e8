"""Zebu's daily login with a TOTP: the Noren family's (app/brokers/noren/login.py) in Zebu's dialect."""

from __future__ import annotations

from app.brokers.noren.login import NorenLogin
from app.brokers.zebu.spec import BROKER


class ZebuLogin(NorenLogin):
    """Zebu's automatic login (the auto_login module of app/accounts/ calls `login`)."""

    family = BROKER
