"""Kotak Neo's declaration: the `kotak` order stream, its status words, the book, the TOTP login (docs/brokers.md §13).

Kotak Neo documents no HTTP postback: updates come by the order & position stream and the REST book only.
"""

from __future__ import annotations

from app.brokers.spec import (
    CHOICE,
    SECONDS,
    TOTP,
    URL,
    AccountSpec,
    BrokerSpec,
    Credential,
    FeedSpec,
    Variable,
)

#: The order & position stream: the `cn` login with token and sid, its ack, a heartbeat (docs/brokers.md §13).
FEED = FeedSpec(
    "kotak",
    "app.brokers.kotak.feed:KotakConnector",
    "KOTAK_WS_URL",
    required=("KOTAK_SESSION",),
    secret_variables=("KOTAK_SESSION",),
)

SPEC = BrokerSpec(
    name="kotak",
    adapter="app.brokers.kotak.adapter:KotakAdapter",
    postback=None,
    # `ordSt` words (lower case on the wire) of docs/brokers.md §13.
    status_map={
        "PUT ORDER REQ RECEIVED": "PENDING",
        "VALIDATION PENDING": "PENDING",
        "OPEN PENDING": "PENDING",
        "AFTER MARKET ORDER REQ RECEIVED": "PENDING",
        "OPEN": "OPEN",
        "TRIGGER PENDING": "TRIGGER_PENDING",
        "COMPLETE": "FILLED",
        "CANCELLED": "CANCELLED",
        "CANCELED": "CANCELLED",
        "CANCELLED AFTER MARKET ORDER": "CANCELLED",
        "REJECTED": "REJECTED",
        # A modification or a cancel in flight keeps the working state: see modify_statuses.
        "MODIFIED": "OPEN",
        "MODIFY VALIDATION PENDING": "OPEN",
        "MODIFY PENDING": "OPEN",
        "CANCEL PENDING": "OPEN",
        # A modified AMO still waits for the market.
        "MODIFY AFTER MARKET ORDER REQ RECEIVED": "PENDING",
    },
    modify_statuses=frozenset(
        {"MODIFIED", "MODIFY VALIDATION PENDING", "MODIFY PENDING", "MODIFY AFTER MARKET ORDER REQ RECEIVED"}
    ),
    rest="app.brokers.kotak.rest:KotakClient",
    feeds=(FEED,),
    variables=(
        Variable("KOTAK_UCC", doc="the client code (UCC): the account id"),
        Variable("KOTAK_SESSION", secret=True, doc="the day's session: <token>|<sid>|<baseUrl> of tradeApiValidate"),
        Variable("KOTAK_API_TOKEN", secret=True, doc="the Neo API dashboard token (the login's Authorization)"),
        Variable("KOTAK_MOBILE", secret=True, doc="the registered mobile number with +91 (the login)"),
        Variable("KOTAK_MPIN", secret=True, doc="the 6-digit MPIN (the login)"),
        Variable("KOTAK_TOTP_SECRET", secret=True, doc="the TOTP secret (base32) registered for the login"),
        Variable(
            "KOTAK_LOGIN_URL", "https://mis.kotaksecurities.com", doc="tradeApiLogin and tradeApiValidate", kind=URL
        ),
        Variable(
            "KOTAK_API_URL",
            "https://cis.kotaksecurities.com",
            doc="REST base when the session names no baseUrl",
            kind=URL,
        ),
        Variable(
            "KOTAK_WS_URL",
            "wss://mlhsi.kotaksecurities.com/realtime",
            doc="order stream when the session names no baseUrl (else wss://<baseUrl host>/realtime)",
            kind=URL,
        ),
        Variable("KOTAK_HEARTBEAT_SECONDS", "30", doc="heartbeat period", kind=SECONDS),
        Variable("KOTAK_ACK_SECONDS", "10", doc="how long the cn login may go unacknowledged", kind=SECONDS),
        Variable(
            "KOTAK_LOGIN_FORM",
            doc="json or raw; unset alternates from json until one is acked",
            kind=CHOICE,
            choices=("", "json", "raw"),
        ),
    ),
    key_fields=("nOrdNo", "ordSt", "fldQty", "qty", "prc", "trgPrc", "avgPrc", "boeSec (else exCfmTm, flDtTm)"),
    docs="docs/brokers.md §13",
    # The UCC is the account id; the day's session comes from the TOTP + MPIN login the service does itself (§13).
    accounts=AccountSpec(
        credentials=(
            Credential("api_token", "KOTAK_API_TOKEN", doc="the Neo API dashboard token", required=False),
            Credential("mobile", "KOTAK_MOBILE", doc="the registered mobile number (+91...)", required=False),
            Credential("mpin", "KOTAK_MPIN", doc="the 6-digit MPIN", required=False),
            Credential("totp_secret", "KOTAK_TOTP_SECRET", doc="the TOTP secret (base32)", required=False),
        ),
        account_variable="KOTAK_UCC",
        session_variable="KOTAK_SESSION",
        login=TOTP,
        login_flow="app.brokers.kotak.login:KotakLogin",
        session_docs='docs/brokers.md "Accounts and daily logins"',
    ),
)
