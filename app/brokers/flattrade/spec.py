"""Flattrade's (Noren) declaration: path-token postbacks, the `flattrade` feed, status words (docs/brokers.md §5)."""

from __future__ import annotations

from app.brokers.spec import (
    CHOICE,
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

#: The Noren order socket: login, subscribe, heartbeat (docs/brokers.md §5.1).
FEED = FeedSpec(
    "flattrade",
    "app.brokers.flattrade.feed:FlattradeConnector",
    "NOREN_WS_URL",
    required=("NOREN_USER_ID", "NOREN_TOKEN"),
    secret_variables=("NOREN_TOKEN",),
)

SPEC = BrokerSpec(
    name="flattrade",
    adapter="app.brokers.flattrade.adapter:FlattradeAdapter",
    postback=PATH_TOKEN,
    # docs/brokers.md §5.1 (documented and Firstock words), §5.3 and §10 (REJECT, New, Replaced, title-case Open).
    status_map={
        "ORDER ACK": "PENDING",
        "ORDER PENDING": "PENDING",
        "PENDING": "PENDING",
        "AMO OPEN": "PENDING",
        # A modified AMO is still waiting for the market, like AMO OPEN; the flag marks the modify.
        "AMO MODIFIED": "PENDING",
        "OPEN": "OPEN",
        "NEW": "OPEN",  # the exchange accepted the new order (reporttype New comes with OPEN) [inferred]
        "REPLACED": "OPEN",  # a modify acknowledged by the exchange: the order is live
        "TRIGGER PENDING": "TRIGGER_PENDING",
        "COMPLETE": "FILLED",
        "CANCELED": "CANCELLED",
        "CANCELLED": "CANCELLED",
        "AMO CANCELED": "CANCELLED",
        "AMO CANCELLED": "CANCELLED",
        "REJECTED": "REJECTED",
        "REJECT": "REJECTED",
    },
    modify_statuses=frozenset({"AMO MODIFIED", "REPLACED"}),
    rest="app.brokers.flattrade.rest:FlattradeClient",
    feeds=(FEED,),
    variables=(
        Variable("NOREN_USER_ID", doc="the Noren user id (feed and REST)"),
        Variable("NOREN_ACCOUNT_ID", doc="the account id when it differs from the user id"),
        Variable("NOREN_TOKEN", secret=True, doc="the session token (feed and REST)"),
        Variable(
            "NOREN_LOGIN_MODE",
            doc="a (accesstoken) or c (susertoken); unset tries a, then c",
            kind=CHOICE,
            choices=("", "a", "c"),
        ),
        Variable("NOREN_HEARTBEAT_SECONDS", "30", doc="heartbeat period", kind=SECONDS),
        Variable(
            "NOREN_WS_URL", "wss://piconnect.flattrade.in/PiConnectWSAPI/", doc="Flattrade's order socket", kind=URL
        ),
        Variable(
            "NOREN_API_URL", "https://piconnect.flattrade.in/PiConnectAPI", doc="REST base for the order book", kind=URL
        ),
        Variable("FLATTRADE_AUTH_URL", "https://auth.flattrade.in", doc="Flattrade's login page (?app_key=)", kind=URL),
        Variable(
            "FLATTRADE_TOKEN_URL",
            "https://authapi.flattrade.in/trade/apitoken",
            doc="where the login's request code is exchanged for the day's token",
            kind=URL,
        ),
    ),
    key_fields=(
        "norenordno",
        "status",
        "reporttype (history rows: rpt)",
        "fillshares",
        "qty",
        "prc",
        "trgprc",
        "avgprc",
        "exch_tm (else tm)",
    ),
    docs="docs/brokers.md §5",
    postback_summary="Flattrade-style postback: Noren keys or the camelCase orderUpdate shape",
    # The user id is the account id; the day's token comes from Flattrade's redirect login (docs/brokers.md §5).
    accounts=AccountSpec(
        credentials=(
            Credential("api_key", doc="the Flattrade API key (redirect login)", required=False),
            Credential("api_secret", doc="the API secret (redirect login checksum)", required=False),
            Credential("account", "NOREN_ACCOUNT_ID", secret=False, doc="if not the user id", required=False),
        ),
        account_variable="NOREN_USER_ID",
        session_variable="NOREN_TOKEN",
        login=REDIRECT,
        login_flow="app.brokers.flattrade.login:FlattradeLogin",
        rollover_ist="06:00",
        session_docs='docs/brokers.md "Accounts and daily logins"',
    ),
)
