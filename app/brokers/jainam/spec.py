"""Jainam's declaration: path-token webhooks, the `jainam` feed, status codes and words (docs/brokers.md §6)."""

from __future__ import annotations

from app.brokers.spec import (
    MODIFIED,
    NUMBER,
    PASTE,
    PATH_TOKEN,
    SECONDS,
    URL,
    AccountSpec,
    BrokerSpec,
    FeedSpec,
    Variable,
)

#: The order status socket, after a token exchange over HTTPS (docs/brokers.md §6).
FEED = FeedSpec(
    "jainam",
    "app.brokers.jainam.feed:JainamConnector",
    "JAINAM_WS_URL",
    required=("JAINAM_BEARER_TOKEN", "JAINAM_USER_ID"),
    secret_variables=("JAINAM_BEARER_TOKEN",),
)

SPEC = BrokerSpec(
    name="jainam",
    adapter="app.brokers.jainam.adapter:JainamAdapter",
    # Seed 000 opens with webhooks: the same JSON as the order status feed, unsigned, so the path token gates it.
    postback=PATH_TOKEN,
    status_map={
        # Table (a) of docs/brokers.md §6 (Codifi ODIN OrderStatusConstants), the default numeric codes;
        # JAINAM_STATUS_MAP replaces or adds codes per deployment. 8, 21 STOPPED and 22 CONVERTED have no
        # known meaning: left out, so they are stored as unknown and counted instead of guessed.
        "5": "OPEN",  # "PENDING" at the exchange: OPEN, or PARTIALLY_FILLED from quantities
        "6": "CANCELLED",
        "7": "FILLED",  # COMPLETED; PARTIALLY_FILLED if the quantities say so
        "9": "REJECTED",
        "10": "REJECTED",
        "11": "REJECTED",
        "12": "REJECTED",
        "14": "PENDING",  # A.ACCEPT [inferred]
        "15": "REJECTED",  # surveillance reject (seed 000)
        "16": MODIFIED,
        "17": "CANCELLED",
        "18": "PENDING",  # AMO SUBMITTED
        "19": "CANCELLED",  # AMO CANCELLED
        "20": "FILLED",  # COMPLETED
        # Table (c): the words of the Indira (Codifi) live feed, plus the names table (a) gives its codes.
        "ADMIN PENDING": "PENDING",
        "A.ACCEPT": "PENDING",
        "AMO SUBMITTED": "PENDING",
        "PENDING": "OPEN",
        "OPEN": "OPEN",
        "EXECUTED": "FILLED",
        "COMPLETED": "FILLED",
        "COMPLETE": "FILLED",
        "CANCELLED": "CANCELLED",
        "CANCELED": "CANCELLED",
        "AMO CANCELLED": "CANCELLED",
        "REJECTED": "REJECTED",
        "A.REJECTED": "REJECTED",
        "ORDER ERROR": "REJECTED",
        "MODIFIED": MODIFIED,
    },
    # No modify_statuses: a status mapped to MODIFIED (16, "MODIFIED", or JAINAM_STATUS_MAP) is the flag.
    feeds=(FEED,),
    variables=(
        Variable("JAINAM_BEARER_TOKEN", secret=True, doc="the API bearer token (feed token and REST)"),
        Variable("JAINAM_USER_ID", doc="the protrade user id"),
        Variable("JAINAM_API_URL", "https://protrade.jainam.in/odrest", doc="REST base (createWsToken)", kind=URL),
        Variable("JAINAM_WS_URL", "wss://protrade.jainam.in/omo/odrest/websocket", doc="order status socket", kind=URL),
        Variable("JAINAM_HEARTBEAT_SECONDS", "60", doc="heartbeat period (docs/interface.md)", kind=SECONDS),
        Variable("JAINAM_STATUS_MAP", doc="code:STATUS,... over the default numeric table"),
        Variable("JAINAM_PRICE_DIVISOR", "100", doc="100 when prices come in paise, 1 for rupees", kind=NUMBER),
    ),
    key_fields=(
        "UniqueCode (else OrderNumber)",
        "OrderStatus",
        "MessageType",
        "QuantityTradedToday | TradedQTY (the larger)",
        "OrderOriginalQty",
        "OrderPrice",
        "TriggerPrice",
        "LastModifiedTime (else TradeTime, OrderEntryTime)",
    ),
    docs="docs/brokers.md §6",
    postback_summary="Jainam webhook: the JSON of its order status feed",
    # The protrade user id is the account id; its bearer token is pasted (docs/brokers.md §6).
    accounts=AccountSpec(
        account_variable="JAINAM_USER_ID",
        session_variable="JAINAM_BEARER_TOKEN",
        login=PASTE,
        session_docs="docs/brokers.md §6",
    ),
)
