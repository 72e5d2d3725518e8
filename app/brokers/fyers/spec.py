"""Fyers' declaration: path-token webhooks, the `fyers` order socket, numeric status codes (docs/brokers.md §11)."""

from __future__ import annotations

from app.brokers.spec import (
    PATH_TOKEN,
    REDIRECT,
    SECONDS,
    URL,
    AccountSpec,
    BrokerSpec,
    Credential,
    FeedSpec,
    Variable,
)

#: The order socket: `Authorization: <app_id>:<access_token>` at the handshake, then SUB_ORD (docs/brokers.md §11.2).
FEED = FeedSpec(
    "fyers",
    "app.brokers.fyers.feed:FyersConnector",
    "FYERS_WS_URL",
    required=("FYERS_APP_ID", "FYERS_ACCESS_TOKEN"),
    secret_variables=("FYERS_ACCESS_TOKEN", "FYERS_APP_ID"),
)

SPEC = BrokerSpec(
    name="fyers",
    adapter="app.brokers.fyers.adapter:FyersAdapter",
    # The dashboard takes a "webhook secret", but no page says how (or whether) it is sent: unsigned as far as is
    # known, so the path token gates it (docs/brokers.md §11.1).
    postback=PATH_TOKEN,
    # The documented `status` codes (docs/brokers.md §11.4); 3 is "not used currently" and stays unknown.
    status_map={
        "1": "CANCELLED",
        "2": "FILLED",  # PARTIALLY_FILLED if the quantities say so
        "4": "PENDING",  # transit: on its way to the exchange
        "5": "REJECTED",
        "6": "OPEN",  # pending at the exchange (TRIGGER_PENDING for an untriggered stop order [inferred])
        "7": "EXPIRED",
    },
    rest="app.brokers.fyers.rest:FyersClient",
    feeds=(FEED,),
    variables=(
        Variable("FYERS_APP_ID", secret=True, doc="the app id (client_id, e.g. XC4XXXXXXM-100): feed and REST"),
        Variable("FYERS_SECRET_KEY", secret=True, doc="the app's secret (the login's appIdHash)"),
        Variable("FYERS_USER_ID", doc="the Fyers client id (fy_id) of the environment's account"),
        Variable("FYERS_ACCESS_TOKEN", secret=True, doc="the day's access token (feed and REST)"),
        Variable("FYERS_WS_URL", "wss://socket.fyers.in/trade/v3", doc="Fyers' order socket", kind=URL),
        Variable("FYERS_PING_SECONDS", "10", doc='seconds between "ping" text frames (the SDK\'s 10)', kind=SECONDS),
        Variable(
            "FYERS_API_URL",
            "https://api-t1.fyers.in",
            doc="REST base: the order book, validate-authcode and the profile",
            kind=URL,
        ),
        Variable(
            "FYERS_LOGIN_URL",
            "https://api-t1.fyers.in",
            doc="where the daily login page is (/api/v3/generate-authcode)",
            kind=URL,
        ),
    ),
    key_fields=(
        "id",
        "status (raw frames: org_ord_status; else the code in orderNumStatus)",
        "filledQty (raw: qty_filled; else qty - remainingQuantity)",
        "qty",
        "limitPrice (raw: price_limit)",
        "stopPrice (raw: price_stop)",
        "tradedPrice (raw: price_traded)",
        "orderDateTime (raw: time_oms)",
        "modified (raw frames' report_type)",
    ),
    docs="docs/brokers.md §11",
    postback_summary="Fyers webhook (postback): the order book's JSON object",
    # The Fyers client id is the account id; the day's token comes from the auth-code redirect login
    # (docs/brokers.md "Fyers (auth code, appIdHash)").
    accounts=AccountSpec(
        credentials=(
            Credential("app_id", "FYERS_APP_ID", doc="the app id (client_id, e.g. XC4XXXXXXM-100)"),
            Credential("app_secret", "FYERS_SECRET_KEY", doc="the app's secret key (the login's appIdHash)"),
        ),
        account_variable="FYERS_USER_ID",
        session_variable="FYERS_ACCESS_TOKEN",
        login=REDIRECT,
        login_flow="app.brokers.fyers.login:FyersLogin",
        rollover_ist="06:00",
        session_docs='docs/brokers.md "Fyers (auth code, appIdHash)"',
    ),
)
