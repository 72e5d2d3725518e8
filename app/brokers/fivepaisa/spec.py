"""5paisa's declaration: no postback, a polled order book and its status words (docs/brokers.md §15.2)."""

from __future__ import annotations

from app.brokers.spec import PASTE, SECONDS, URL, AccountSpec, BrokerSpec, Credential, Variable

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
    accounts=AccountSpec(
        credentials=(Credential("app_key", "FIVEPAISA_APP_KEY", doc="the app's user key (head.key of each request)"),),
        account_variable="FIVEPAISA_CLIENT_CODE",
        session_variable="FIVEPAISA_ACCESS_TOKEN",
        login=PASTE,
        rollover_ist="06:00",
        session_docs="docs/brokers.md §15.2",
        poll_variable="FIVEPAISA_POLL_SECONDS",
    ),
)
