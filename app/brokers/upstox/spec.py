"""Upstox's declaration: path-token webhooks, the `upstox` feed, variables and status words (docs/brokers.md §10)."""

from __future__ import annotations

from app.brokers.spec import (
    PATH_TOKEN,
    REDIRECT,
    URL,
    AccountSpec,
    BrokerSpec,
    Credential,
    FeedSpec,
    Variable,
)

#: The Portfolio Stream Feed: each connection starts at the authorize step, which hands out a single-use wss URL
#: (docs/brokers.md §10.2).
FEED = FeedSpec(
    "upstox",
    "app.brokers.upstox.feed:UpstoxConnector",
    "UPSTOX_FEED_AUTHORIZE_URL",
    required=("UPSTOX_ACCESS_TOKEN",),
    secret_variables=("UPSTOX_ACCESS_TOKEN", "UPSTOX_API_KEY"),
)

SPEC = BrokerSpec(
    name="upstox",
    adapter="app.brokers.upstox.adapter:UpstoxAdapter",
    # "This endpoint is not required to have any authentication mechanisms" (docs/brokers.md §10.1): the path token.
    postback=PATH_TOKEN,
    # docs/brokers.md §10.3: the order-status appendix's words, lower case on the wire, folded here.
    status_map={
        "PUT ORDER REQ RECEIVED": "PENDING",
        "VALIDATION PENDING": "PENDING",
        "OPEN PENDING": "PENDING",
        "AFTER MARKET ORDER REQ RECEIVED": "PENDING",
        "AMO REQ RECEIVED": "PENDING",
        # A modified AMO still waits for the market; the flag marks the modification.
        "MODIFY AFTER MARKET ORDER REQ RECEIVED": "PENDING",
        "OPEN": "OPEN",
        "TRIGGER PENDING": "TRIGGER_PENDING",
        # A modification (or cancel) in flight keeps the working state (TRIGGER_PENDING for a stop order).
        "MODIFY PENDING": "OPEN",
        "MODIFY VALIDATION PENDING": "OPEN",
        "MODIFIED": "OPEN",
        "NOT MODIFIED": "OPEN",
        "CANCEL PENDING": "OPEN",
        "NOT CANCELLED": "OPEN",
        "COMPLETE": "FILLED",
        "CANCELLED": "CANCELLED",
        "CANCELLED AFTER MARKET ORDER": "CANCELLED",
        "REJECTED": "REJECTED",
    },
    modify_statuses=frozenset(
        {
            "MODIFY AFTER MARKET ORDER REQ RECEIVED",
            "MODIFY PENDING",
            "MODIFY VALIDATION PENDING",
            "MODIFIED",
            "CANCEL PENDING",
        }
    ),
    rest="app.brokers.upstox.rest:UpstoxClient",
    feeds=(FEED,),
    variables=(
        Variable("UPSTOX_API_KEY", secret=True, doc="the app's API key (OAuth2 client_id; redirect login)"),
        Variable("UPSTOX_API_SECRET", secret=True, doc="the app's API secret (OAuth2 client_secret; redirect login)"),
        Variable("UPSTOX_USER_ID", doc="the Upstox user id (UCC) the webhooks and the token name"),
        Variable("UPSTOX_ACCESS_TOKEN", secret=True, doc="the day's access token (feed and REST)"),
        Variable(
            "UPSTOX_FEED_AUTHORIZE_URL",
            "https://api.upstox.com/v2/feed/portfolio-stream-feed/authorize",
            doc="hands out the Portfolio Stream Feed's single-use wss URL (update_types=order)",
            kind=URL,
        ),
        Variable("UPSTOX_API_URL", "https://api.upstox.com", doc="REST base (order book, the login's token)", kind=URL),
        Variable(
            "UPSTOX_LOGIN_URL",
            "https://api.upstox.com/v2/login/authorization/dialog",
            doc="the daily OAuth2 login dialog",
            kind=URL,
        ),
    ),
    key_fields=(
        "order_id",
        "status",
        "filled_quantity",
        "quantity",
        "price",
        "trigger_price",
        "average_price",
        "exchange_timestamp",
    ),
    docs="docs/brokers.md §10",
    postback_summary="Upstox webhook: the order update of its Portfolio Stream Feed, unsigned",
    # docs/brokers.md "Accounts and daily logins": the OAuth2 redirect login, the token until 03:30 IST.
    accounts=AccountSpec(
        credentials=(
            Credential("api_key", "UPSTOX_API_KEY", doc="the Upstox app's API key (client_id)"),
            Credential("api_secret", "UPSTOX_API_SECRET", doc="the app's API secret (client_secret)"),
        ),
        account_variable="UPSTOX_USER_ID",
        session_variable="UPSTOX_ACCESS_TOKEN",
        login=REDIRECT,
        login_flow="app.brokers.upstox.login:UpstoxLogin",
        rollover_ist="03:30",
        session_docs='docs/brokers.md "Accounts and daily logins"',
    ),
)
