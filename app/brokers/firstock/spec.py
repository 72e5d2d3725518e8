"""Firstock's (Noren) declaration (docs/brokers.md §5): its V2 socket with the credentials in the query and no
subscription, `pcode`, its JSON REST dialect and its own TOTP login (/V1/login)."""

from __future__ import annotations

from app.brokers.noren.family import (
    FIRSTOCK_JSON,
    FIRSTOCK_LOGIN,
    QUERY,
    NorenBroker,
    broker_spec,
)

BROKER = NorenBroker(
    name="firstock",
    title="Firstock",
    prefix="FIRSTOCK",
    ws_url="wss://socket.firstock.in/V2/ws",
    api_url="https://api.firstock.in/V1",
    login_forms=(QUERY,),
    subscribes=False,
    text_heartbeat=False,
    product_key="pcode",
    rest=FIRSTOCK_JSON,
    login=FIRSTOCK_LOGIN,
    login_url="https://api.firstock.in/V1/login",
)
SPEC = broker_spec(BROKER)
#: The order socket (docs/brokers.md §5.1).
FEED = SPEC.feeds[0]
