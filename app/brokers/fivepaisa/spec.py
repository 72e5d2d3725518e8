"""5paisa's declaration: no postback, a polled order book and its status words (docs/brokers.md §15.2)."""

from __future__ import annotations

from app.brokers.spec import SECONDS, TOTP, URL, AccountSpec, BrokerSpec, Credential, Variable

SPEC = BrokerSpec(
    name="fivepaisa",
    adapter="app.brokers.fivepaisa.adapter:FivepaisaAdapter",
    postback=None,
    # docs/brokers.md §15.2 (the OrderStatus words of the order book and the order-tracking feed).
    status_map={
        "PLACED": "PENDING",
        "XMITTED": "PENDING",
        "AH PLACED": "PENDING",
        "AH MODIFIED": "PENDING",
        "PENDING": "OPEN",
        "MODIFIED": "OPEN",
        "SL TRIGGERED": "OPEN",
        "PARTIALLY EXECUTED": "OPEN",
        "FULLY EXECUTED": "FILLED",
        "EXECUTED": "FILLED",
        "CANCELLED": "CANCELLED",
        "AH CANCELLED": "CANCELLED",
        "REJECTED BY 5P": "REJECTED",
        "REJECTED BY EXCH": "REJECTED",
        "REJECTED": "REJECTED",
    },
    modify_statuses=frozenset({"MODIFIED", "AH MODIFIED"}),
    rest="app.brokers.fivepaisa.rest:FivepaisaClient",
    variables=(
        Variable("FIVEPAISA_CLIENT_CODE", doc="the 5paisa client code (the order book's ClientCode)"),
        Variable("FIVEPAISA_APP_KEY", secret=True, doc="the app's user key (the request head's key)"),
        Variable("FIVEPAISA_ACCESS_TOKEN", secret=True, doc="the day's access token (Bearer)"),
        Variable(
            "FIVEPAISA_API_URL",
            "https://Openapi.5paisa.com/VendorsAPI/Service1.svc",
            doc="5paisa's REST base",
            kind=URL,
        ),
        Variable(
            "FIVEPAISA_POLL_SECONDS",
            "5",
            doc="how often each 5paisa account's order book is read (docs/brokers.md §15.2)",
            kind=SECONDS,
        ),
    ),
    key_fields=(
        "BrokerOrderId",
        "OrderStatus",
        "TradedQty",
        "Qty",
        "Rate",
        "SLTriggerRate",
        "BrokerOrderTime",
    ),
    docs="docs/brokers.md §15",
    # The client code is the account id; with its TOTP secret, PIN and the app's keys an account logs in by itself
    # (docs/brokers.md §15.2 "Login"), else its token is pasted. The access token's JWT exp ends the session.
    accounts=AccountSpec(
        credentials=(
            Credential("app_key", "FIVEPAISA_APP_KEY", doc="the app's user key (head.key of each request)"),
            Credential("encryption_key", doc="the app's encryption key (EncryKey)", required=False),
            Credential("user_id", doc="the app's user id (UserId), not the client code", required=False),
            Credential("pin", doc="the account's 5paisa PIN", required=False),
            Credential("totp_secret", doc="the base32 TOTP secret of the account's authenticator", required=False),
            Credential("email", secret=False, doc="the login e-mail, if not the client code", required=False),
        ),
        account_variable="FIVEPAISA_CLIENT_CODE",
        session_variable="FIVEPAISA_ACCESS_TOKEN",
        login=TOTP,
        login_flow="app.brokers.fivepaisa.login:FivepaisaLogin",
        # A captured access token's exp is 23:59:59 IST of its day (docs/brokers.md §15.2): a pasted one ends at
        # midnight IST; a login's own token says its exp, which is used instead.
        rollover_ist="00:00",
        session_docs="docs/brokers.md §15.2",
        poll_variable="FIVEPAISA_POLL_SECONDS",
    ),
)
