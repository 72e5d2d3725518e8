"""Groww's declaration: no postback, no usable push, a polled order book, its status words (docs/brokers.md §15.1)."""

from __future__ import annotations

from app.brokers.spec import SECONDS, TOTP, URL, AccountSpec, BrokerSpec, Credential, Variable

SPEC = BrokerSpec(
    name="groww",
    adapter="app.brokers.groww.adapter:GrowwAdapter",
    postback=None,
    # docs/brokers.md §15.1 (groww.in/trade-api/docs annexures, order status); quantities decide partial fills.
    status_map={
        "NEW": "PENDING",
        "ACKED": "OPEN",
        "APPROVED": "OPEN",
        "OPEN": "OPEN",
        "TRIGGER PENDING": "TRIGGER_PENDING",
        "MODIFICATION REQUESTED": "OPEN",
        "CANCELLATION REQUESTED": "OPEN",
        "EXECUTED": "FILLED",
        "DELIVERY AWAITED": "FILLED",
        "COMPLETED": "FILLED",
        "CANCELLED": "CANCELLED",
        "REJECTED": "REJECTED",
        "FAILED": "REJECTED",
    },
    modify_statuses=frozenset({"MODIFICATION REQUESTED"}),
    rest="app.brokers.groww.rest:GrowwClient",
    variables=(
        Variable("GROWW_ACCESS_TOKEN", secret=True, doc="the day's access token (Bearer)"),
        Variable("GROWW_CLIENT_ID", doc="a name for the environment's Groww account (Groww's book names none)"),
        Variable("GROWW_API_URL", "https://api.groww.in", doc="Groww's REST base", kind=URL),
        Variable(
            "GROWW_POLL_SECONDS",
            "5",
            doc="how often each Groww account's order book is read (orders 10/s, reads 20/s: docs/brokers.md §15.1)",
            kind=SECONDS,
        ),
    ),
    key_fields=(
        "groww_order_id",
        "order_status",
        "filled_quantity",
        "quantity",
        "price",
        "trigger_price",
        "average_fill_price",
    ),
    docs="docs/brokers.md §15",
    # An account added with its API key and TOTP secret logs in by itself (docs/brokers.md §15.1 "Login"); one
    # without them has its token pasted, and is told so when it expires.
    accounts=AccountSpec(
        credentials=(
            Credential("api_key", doc="the Trade API key of the TOTP flow (Groww: Trade API keys)", required=False),
            Credential("totp_secret", doc="the base32 TOTP secret shown with that key", required=False),
        ),
        account_variable="GROWW_CLIENT_ID",
        session_variable="GROWW_ACCESS_TOKEN",
        login=TOTP,
        login_flow="app.brokers.groww.login:GrowwLogin",
        # Groww's access tokens end at 06:00 IST the next day (docs/brokers.md §15.1).
        rollover_ist="06:00",
        session_docs="docs/brokers.md §15.1",
        poll_variable="GROWW_POLL_SECONDS",
    ),
)
