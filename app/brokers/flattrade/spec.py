"""Flattrade's (Noren) declaration: path-token postbacks, the `flattrade` feed, its redirect login (docs/brokers.md §5).

The family's shared facts (status words, keys, the feed's and the REST book's shape) are in app/brokers/noren/family.py;
Flattrade's own are below: its PiConnect URLs, the NOREN_* variable names it has always had, a socket that tries the
`a` login form first and acknowledges no subscription, `pcode` for the product, and its redirect login.
"""

from __future__ import annotations

from app.brokers.noren.family import FRAME_A, FRAME_C, NorenBroker, broker_spec
from app.brokers.spec import REDIRECT, URL, AccountSpec, Credential, Variable

BROKER = NorenBroker(
    name="flattrade",
    title="Flattrade",
    prefix="NOREN",
    ws_url="wss://piconnect.flattrade.in/PiConnectWSAPI/",
    api_url="https://piconnect.flattrade.in/PiConnectAPI",
    login_forms=(FRAME_A, FRAME_C),
    subscribe_ack=False,
    product_key="pcode",
)

SPEC = broker_spec(
    BROKER,
    extra=(
        Variable("FLATTRADE_AUTH_URL", "https://auth.flattrade.in", doc="Flattrade's login page (?app_key=)", kind=URL),
        Variable(
            "FLATTRADE_TOKEN_URL",
            "https://authapi.flattrade.in/trade/apitoken",
            doc="where the login's request code is exchanged for the day's token",
            kind=URL,
        ),
    ),
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
#: The Noren order socket: login, subscribe, heartbeat (docs/brokers.md §5.1).
FEED = SPEC.feeds[0]
