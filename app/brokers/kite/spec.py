"""Kite's declaration: signed postbacks, the `kite` feed, its variables and status words (docs/brokers.md §3)."""

from __future__ import annotations

from app.brokers.spec import PAIRS, REDIRECT, SIGNED, URL, AccountSpec, BrokerSpec, Credential, FeedSpec, Variable

#: The order channel of KiteTicker: credentials in the URL's query (docs/brokers.md §3.2).
FEED = FeedSpec(
    "kite",
    "app.brokers.kite.feed:KiteConnector",
    "KITE_WS_URL",
    required=("KITE_API_KEY", "KITE_ACCESS_TOKEN"),
    secret_variables=("KITE_ACCESS_TOKEN", "KITE_API_KEY"),
)

SPEC = BrokerSpec(
    name="kite",
    adapter="app.brokers.kite.adapter:KiteAdapter",
    postback=SIGNED,
    # docs/brokers.md §3.3 (postback words, WebSocket and order-book words) and §10 (words seen in real payloads).
    status_map={
        "PUT ORDER REQ RECEIVED": "PENDING",
        "VALIDATION PENDING": "PENDING",
        "OPEN PENDING": "PENDING",
        "AMO REQ RECEIVED": "PENDING",
        "OPEN": "OPEN",
        "TRIGGER PENDING": "TRIGGER_PENDING",
        "COMPLETE": "FILLED",
        "CANCELLED": "CANCELLED",
        "CANCELED": "CANCELLED",
        "CANCEL": "CANCELLED",  # the postback page lists CANCEL among its events
        "REJECTED": "REJECTED",
        # A modification keeps the working state (OPEN; TRIGGER_PENDING for a stop order): see modify_statuses.
        "UPDATE": "OPEN",
        "MODIFY VALIDATION PENDING": "OPEN",
        "MODIFY PENDING": "OPEN",
        "MODIFIED": "OPEN",
        "CANCEL PENDING": "OPEN",
    },
    # UPDATE with a fill is a partial fill, not a modification (the adapter checks filled_quantity).
    modify_statuses=frozenset({"UPDATE", "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFIED", "CANCEL PENDING"}),
    rest="app.brokers.kite.rest:KiteClient",
    feeds=(FEED,),
    variables=(
        Variable("KITE_API_SECRET", secret=True, doc="the app's api_secret: verifies the postback checksum"),
        Variable("KITE_APPS", secret=True, doc="app_id:api_secret,... for several apps", kind=PAIRS),
        Variable("KITE_API_KEY", secret=True, doc="the app's api_key (feed and REST; redacted from logs)"),
        Variable("KITE_ACCESS_TOKEN", secret=True, doc="the day's access token (feed and REST)"),
        Variable("KITE_WS_URL", "wss://ws.kite.trade", doc="KiteTicker (pykiteconnect ticker.py ROOT_URI)", kind=URL),
        Variable("KITE_API_URL", "https://api.kite.trade", doc="REST base (order book, the login's token)", kind=URL),
        Variable(
            "KITE_LOGIN_URL", "https://kite.zerodha.com", doc="where the daily login page is (/connect/login)", kind=URL
        ),
    ),
    redact_keys=("checksum",),
    key_fields=(
        "order_id",
        "status",
        "filled_quantity",
        "quantity",
        "price",
        "trigger_price",
        "average_price",
        "exchange_update_timestamp (else exchange_timestamp)",
    ),
    docs="docs/brokers.md §3",
    postback_summary="Kite postback; checksum sha256(order_id + order_timestamp + api_secret)",
    # docs/brokers.md "Accounts and daily logins": the redirect login, the day's token until the 06:00 IST rollover.
    accounts=AccountSpec(
        credentials=(
            Credential("api_key", "KITE_API_KEY", doc="the Kite Connect app's api_key"),
            Credential("api_secret", "KITE_API_SECRET", doc="the app's api_secret (login checksum, postbacks)"),
        ),
        session_variable="KITE_ACCESS_TOKEN",
        login=REDIRECT,
        login_flow="app.brokers.kite.login:KiteLogin",
        rollover_ist="06:00",
        session_docs='docs/brokers.md "Accounts and daily logins"',
    ),
)
