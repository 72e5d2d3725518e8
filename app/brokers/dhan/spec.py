"""Dhan's declaration: path-token postbacks, the `dhan` and `dhan_web` feeds, status words (docs/brokers.md §4)."""

from __future__ import annotations

from app.brokers.spec import PASTE, PATH_TOKEN, SECONDS, URL, AccountSpec, BrokerSpec, FeedSpec, Variable

#: The official order-update socket, logged in with the client id and access token (docs/brokers.md §4.2).
FEED = FeedSpec(
    "dhan",
    "app.brokers.dhan.feed:DhanConnector",
    "DHAN_ORDER_WS_URL",
    required=("DHAN_CLIENT_ID", "DHAN_ACCESS_TOKEN"),
    secret_variables=("DHAN_ACCESS_TOKEN",),
)
#: The web order feed, logged in with the stored browser frame, so no variable is required (docs/brokers.md §4.3).
WEB_FEED = FeedSpec("dhan_web", "app.brokers.dhan.web_feed:DhanWebConnector", "DHAN_WEB_WS_URL", per_account=False)

SPEC = BrokerSpec(
    name="dhan",
    adapter="app.brokers.dhan.adapter:DhanAdapter",
    postback=PATH_TOKEN,
    # docs/brokers.md §4.4: the postback page's words plus PART_TRADED from the order book.
    status_map={
        "TRANSIT": "PENDING",
        "PENDING": "OPEN",
        "PART TRADED": "PARTIALLY_FILLED",
        "TRADED": "FILLED",
        "CANCELLED": "CANCELLED",
        "REJECTED": "REJECTED",
        "EXPIRED": "EXPIRED",
    },
    rest="app.brokers.dhan.rest:DhanClient",
    feeds=(FEED, WEB_FEED),
    variables=(
        Variable("DHAN_CLIENT_ID", doc="the Dhan client id (feed and REST)"),
        Variable("DHAN_ACCESS_TOKEN", secret=True, doc="the access token (feed and REST)"),
        Variable("DHAN_ORDER_WS_URL", "wss://api-order-update.dhan.co", doc="official order-update socket", kind=URL),
        Variable("DHAN_WEB_WS_URL", "wss://order-feed.dhan.co", doc="the web order feed (unofficial)", kind=URL),
        Variable("DHAN_WEB_PING_SECONDS", "30", doc="web feed keepalive (docs/brokers.md §4.3)", kind=SECONDS),
        Variable("DHAN_API_URL", "https://api.dhan.co", doc="REST base for the order book", kind=URL),
    ),
    key_fields=(
        "orderId | orderNo | order_no",
        "orderStatus | status",
        "filledQty | tradedQty | traded_qty",
        "quantity",
        "price",
        "triggerPrice",
        "averageTradedPrice | avgTradedPrice",
        "updateTime | lastUpdatedTime (else exchangeTime)",
    ),
    docs="docs/brokers.md §4",
    postback_summary="Dhan postback",
    # The client id is the account id; the access token generated on web.dhan.co is pasted (docs/brokers.md §4).
    accounts=AccountSpec(
        account_variable="DHAN_CLIENT_ID",
        session_variable="DHAN_ACCESS_TOKEN",
        login=PASTE,
        session_hours=24.0,
        session_docs="docs/brokers.md §4",
    ),
)
