"""Symphony XTS's declaration: the socket.io `xts` feed, REST order book, login, status words (docs/brokers.md §14).

One package serves every XTS deployment: each has its own root URL (XTS_ROOT_URL, or an account's `root_url`).
"""

from __future__ import annotations

from app.brokers.spec import TEXT, TOTP, URL, AccountSpec, BrokerSpec, Credential, FeedSpec, Variable

#: The interactive socket.io connection (path /interactive/socket.io under the root URL; docs/brokers.md §14.1).
FEED = FeedSpec(
    "xts",
    "app.brokers.xts.feed:XtsConnector",
    "XTS_ROOT_URL",
    required=("XTS_USER_ID", "XTS_TOKEN"),
    secret_variables=("XTS_TOKEN",),
)

SPEC = BrokerSpec(
    name="xts",
    adapter="app.brokers.xts.adapter:XtsAdapter",
    # XTS pushes over its socket only: no HTTP postback (docs/brokers.md §14).
    postback=None,
    # docs/brokers.md §14.2: the OrderStatus words (FIX-like); quantities decide PARTIALLY_FILLED.
    status_map={
        "PENDINGNEW": "PENDING",
        "NEW": "OPEN",
        "OPEN": "OPEN",
        "PARTIALLYFILLED": "OPEN",  # PARTIALLY_FILLED from CumulativeQuantity (docs/brokers.md §2)
        "FILLED": "FILLED",
        "PENDINGCANCEL": "OPEN",  # a cancel asked for: the order still works until Cancelled
        "PENDINGREPLACE": "OPEN",  # a modify asked for: still working
        "REPLACED": "OPEN",  # a modify done: the order works with its new figures
        "CANCELLED": "CANCELLED",
        "CANCELED": "CANCELLED",
        "REJECTED": "REJECTED",
        "EXPIRED": "EXPIRED",
    },
    modify_statuses=frozenset({"REPLACED"}),
    feeds=(FEED,),
    rest="app.brokers.xts.rest:XtsClient",
    variables=(
        Variable(
            "XTS_ROOT_URL",
            "https://developers.symphonyfintech.in",
            doc="the deployment's root URL (the socket and REST live under /interactive); per account: root_url",
            kind=URL,
        ),
        Variable(
            "XTS_ACCOUNT_ROOT_URL",
            doc="this account's own root URL when its broker's differs (an account's root_url; blank: XTS_ROOT_URL)",
        ),
        Variable("XTS_USER_ID", doc="the XTS userID the interactive login answers"),
        Variable("XTS_TOKEN", secret=True, doc="the interactive session token (socket and REST)"),
        Variable("XTS_SOURCE", "WEBAPI", doc="the login's source field (the SDK's WEBAPI)", kind=TEXT),
    ),
    key_fields=(
        "AppOrderID",
        "OrderStatus",
        "CumulativeQuantity",
        "OrderQuantity",
        "OrderPrice",
        "OrderStopPrice",
        "OrderAverageTradedPrice",
        "LastUpdateDateTime (else ExchangeTransactTime)",
    ),
    docs="docs/brokers.md §14",
    # The userID is the account id; the service logs in by itself with the app key and secret (docs/brokers.md §14.4).
    accounts=AccountSpec(
        credentials=(
            Credential("app_key", doc="the interactive API's app key"),
            Credential("secret_key", doc="the interactive API's secret key"),
            Credential(
                "root_url",
                "XTS_ACCOUNT_ROOT_URL",
                secret=False,
                doc="the broker's XTS root URL, e.g. https://ttblaze.iifl.com (else XTS_ROOT_URL)",
                required=False,
            ),
        ),
        account_variable="XTS_USER_ID",
        session_variable="XTS_TOKEN",
        login=TOTP,
        login_flow="app.brokers.xts.login:XtsLogin",
        # The token's JWT says exp = iat + 24 h (docs/brokers.md §14.4); the login answer's exp is used when present.
        session_hours=24.0,
        session_docs="docs/brokers.md §14.4",
    ),
)
