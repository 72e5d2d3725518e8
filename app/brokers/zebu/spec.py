"""Zebu's (MYNT, Noren) declaration (docs/brokers.md §5): go.mynt.in's NorenWClientTP/NorenWSTP URLs, the `c` login
form first (its WebSocket doc), an acknowledged subscription, `prd`, QuickAuth daily."""

from __future__ import annotations

from app.brokers.noren.family import FRAME_A, FRAME_C, QUICKAUTH, NorenBroker, broker_spec

BROKER = NorenBroker(
    name="zebu",
    title="Zebu",
    prefix="ZEBU",
    ws_url="wss://go.mynt.in/NorenWSTP/",
    api_url="https://go.mynt.in/NorenWClientTP",
    login_forms=(FRAME_C, FRAME_A),
    subscribe_ack=True,
    login=QUICKAUTH,
    login_url="https://go.mynt.in/NorenWClientTP/QuickAuth",
)
SPEC = broker_spec(BROKER)
#: The order socket (docs/brokers.md §5.1).
FEED = SPEC.feeds[0]
