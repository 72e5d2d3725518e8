"""Angel One's declaration: path-token postbacks, the `angel` feed, status words and codes (docs/brokers.md §9)."""

from __future__ import annotations

from app.brokers.spec import (
    PATH_TOKEN,
    SECONDS,
    TOTP,
    URL,
    AccountSpec,
    BrokerSpec,
    Credential,
    FeedSpec,
    Variable,
)

#: The order-status socket: `Authorization: Bearer <jwt>` at the handshake, an AB00 ack (docs/brokers.md §9.2).
FEED = FeedSpec(
    "angel",
    "app.brokers.angel.feed:AngelConnector",
    "ANGEL_WS_URL",
    required=("ANGEL_CLIENT_CODE", "ANGEL_JWT_TOKEN"),
    secret_variables=("ANGEL_JWT_TOKEN", "ANGEL_API_KEY"),
)

#: The socket's `order-status` codes (docs/brokers.md §9.3): AB00 is the connect ack, never an order update.
STATUS_CODES = {
    "AB01": "OPEN",
    "AB02": "CANCELLED",
    "AB03": "REJECTED",
    "AB04": "OPEN",  # modified: a flag on a live order, never a resting state (docs/brokers.md §2)
    "AB05": "FILLED",  # complete; PARTIALLY_FILLED when the quantities say so
    "AB06": "PENDING",  # after market order req received
    "AB07": "CANCELLED",  # cancelled after market order
    "AB08": "PENDING",  # modify after market order req received
    "AB09": "PENDING",  # open pending
    "AB10": "TRIGGER_PENDING",
    "AB11": "OPEN",  # modify pending
}
#: `orderstatus` words (the book, the postback and the socket's orderData all carry them, docs/brokers.md §9.3).
STATUS_WORDS = {
    "OPEN": "OPEN",
    "OPEN PENDING": "PENDING",
    "VALIDATION PENDING": "PENDING",
    "PUT ORDER REQ RECEIVED": "PENDING",
    "AFTER MARKET ORDER REQ RECEIVED": "PENDING",
    "AMO REQ RECEIVED": "PENDING",
    "MODIFY AFTER MARKET ORDER REQ RECEIVED": "PENDING",
    "TRIGGER PENDING": "TRIGGER_PENDING",
    "COMPLETE": "FILLED",
    "CANCELLED": "CANCELLED",
    "CANCELLED AFTER MARKET ORDER": "CANCELLED",
    "REJECTED": "REJECTED",
    "MODIFIED": "OPEN",
    "MODIFY PENDING": "OPEN",
    "MODIFY VALIDATION PENDING": "OPEN",
    "CANCEL PENDING": "OPEN",
}
#: Words and codes of a modification: the event's `modified` flag; Angel sends the values from before the change
#: with these (docs/brokers.md §9.4), so the adapter keeps no price or quantity from them.
MODIFY_STATUSES = frozenset(
    {
        "AB04",
        "AB08",
        "AB11",
        "MODIFIED",
        "MODIFY PENDING",
        "MODIFY VALIDATION PENDING",
        "MODIFY AFTER MARKET ORDER REQ RECEIVED",
    }
)

SPEC = BrokerSpec(
    name="angel",
    adapter="app.brokers.angel.adapter:AngelAdapter",
    # Angel documents no signature on its postbacks (docs/brokers.md §9.1): the secret path token gates them.
    postback=PATH_TOKEN,
    status_map={**STATUS_WORDS, **STATUS_CODES},
    modify_statuses=MODIFY_STATUSES,
    rest="app.brokers.angel.rest:AngelClient",
    feeds=(FEED,),
    variables=(
        Variable("ANGEL_CLIENT_CODE", doc="the Angel One client code (feed, REST and the TOTP login)"),
        Variable("ANGEL_API_KEY", secret=True, doc="the SmartAPI app's API key (X-PrivateKey; feed and REST)"),
        Variable("ANGEL_JWT_TOKEN", secret=True, doc="the day's jwtToken (feed and REST)"),
        Variable(
            "ANGEL_WS_URL", "wss://tns.angelone.in/smart-order-update", doc="Angel's order-status socket", kind=URL
        ),
        Variable("ANGEL_PING_SECONDS", "10", doc="the socket's ping period (smartapi-python: 10 s)", kind=SECONDS),
        Variable(
            "ANGEL_API_URL",
            "https://apiconnect.angelone.in",
            doc="REST base: the order book, order details and the login",
            kind=URL,
        ),
    ),
    key_fields=(
        "orderid",
        "orderstatus (else status; the socket's order-status code when neither)",
        "filledshares",
        "quantity",
        "price",
        "triggerprice",
        "averageprice",
        "updatetime (else exchorderupdatetime, exchtime)",
    ),
    docs="docs/brokers.md §9",
    postback_summary="Angel One postback: an order-book row, or the socket's frame with orderData",
    # The client code is the account id; the day's jwtToken comes from the automatic TOTP login (docs/brokers.md
    # "Accounts and daily logins", Angel One).
    accounts=AccountSpec(
        credentials=(
            Credential("api_key", "ANGEL_API_KEY", doc="the SmartAPI app's API key"),
            # The PIN and TOTP secret are an added account's only: the environment's account does not log in by
            # itself (its day's ANGEL_JWT_TOKEN is set by hand), so they have no variable.
            Credential("pin", doc="the client's PIN, for the daily login"),
            Credential("totp_secret", doc="the TOTP secret (base32) shown when TOTP was enabled"),
        ),
        account_variable="ANGEL_CLIENT_CODE",
        session_variable="ANGEL_JWT_TOKEN",
        login=TOTP,
        login_flow="app.brokers.angel.login:AngelLogin",
        rollover_ist="00:00",
        session_docs='docs/brokers.md "Accounts and daily logins"',
    ),
)
