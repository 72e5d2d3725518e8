"""Shoonya's (Finvasia, Noren) declaration (docs/brokers.md §5): its NorenWClientTP/NorenWSTP URLs, the `c` login form
first (what NorenRestApi 0.0.30 sends with a QuickAuth token), an acknowledged subscription, `prd`, QuickAuth daily."""

from __future__ import annotations

from app.brokers.noren.family import FRAME_A, FRAME_C, QUICKAUTH, NorenBroker, broker_spec

BROKER = NorenBroker(
    name="shoonya",
    title="Shoonya",
    prefix="SHOONYA",
    ws_url="wss://api.shoonya.com/NorenWSTP/",
    api_url="https://api.shoonya.com/NorenWClientTP",
    login_forms=(FRAME_C, FRAME_A),
    subscribe_ack=True,
    login=QUICKAUTH,
    login_url="https://api.shoonya.com/NorenWClientTP/QuickAuth",
)
SPEC = broker_spec(BROKER)
#: The order socket (docs/brokers.md §5.1).
FEED = SPEC.feeds[0]
