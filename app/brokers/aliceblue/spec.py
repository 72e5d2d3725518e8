"""AliceBlue's declaration: Noren-shaped webhooks, the `aliceblue` order-notify feed, its book (docs/brokers.md §12).

AliceBlue's order frames and webhooks carry Noren's keys and words (docs/brokers.md §12), so the status words are
the Noren family's (app/brokers/noren/family.py), taken from there rather than written twice.
"""

from __future__ import annotations

from app.brokers.noren.family import KEY_FIELDS, MODIFY_STATUSES, STATUS_MAP
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

#: The order status socket, after a token exchange over HTTPS: seed 000's protocol (docs/brokers.md §6, §12).
FEED = FeedSpec(
    "aliceblue",
    "app.brokers.aliceblue.feed:AliceBlueConnector",
    "ALICEBLUE_WS_URL",
    required=("ALICEBLUE_SESSION", "ALICEBLUE_USER_ID"),
    secret_variables=("ALICEBLUE_SESSION",),
)

SPEC = BrokerSpec(
    name="aliceblue",
    adapter="app.brokers.aliceblue.adapter:AliceBlueAdapter",
    # Webhooks are unsigned (docs/brokers.md §12): the path token gates them.
    postback=PATH_TOKEN,
    # Noren's words (OPEN, NEW, TRIGGER PENDING, REPLACED, COMPLETE, REJECTED, CANCELLED ...): docs/brokers.md §12.
    status_map=dict(STATUS_MAP),
    modify_statuses=MODIFY_STATUSES,
    rest="app.brokers.aliceblue.rest:AliceBlueClient",
    feeds=(FEED,),
    variables=(
        Variable("ALICEBLUE_USER_ID", doc="the AliceBlue client id (UCC): the feed's userId"),
        Variable("ALICEBLUE_SESSION", secret=True, doc="the day's userSession (feed token and REST bearer)"),
        Variable(
            "ALICEBLUE_NOTIFY_URL",
            "https://a3.aliceblueonline.com/open-api/order-notify",
            doc="where ws/createWsToken is served",
            kind=URL,
        ),
        Variable(
            "ALICEBLUE_WS_URL",
            "wss://a3.aliceblueonline.com/open-api/order-notify/websocket",
            doc="the order status socket",
            kind=URL,
        ),
        Variable("ALICEBLUE_HEARTBEAT_SECONDS", "55", doc="heartbeat period (under the minute)", kind=SECONDS),
        Variable(
            "ALICEBLUE_API_URL",
            "https://a3.aliceblueonline.com/open-api/od/v1",
            doc="REST base: the order book and vendor/getUserDetails",
            kind=URL,
        ),
        Variable(
            "ALICEBLUE_LOGIN_URL", "https://ant.aliceblueonline.com", doc="AliceBlue's login page (?appcode=)", kind=URL
        ),
    ),
    key_fields=KEY_FIELDS,
    docs="docs/brokers.md §12",
    postback_summary="AliceBlue webhook: Noren keys (norenordno, status, reporttype, fillshares ...)",
    # The client id is the account id; the day's userSession comes from AliceBlue's redirect login (§12).
    accounts=AccountSpec(
        credentials=(
            Credential("app_code", secret=False, doc="the app's App Code (redirect login)", required=False),
            Credential("api_secret", doc="the app's API secret (the login checksum)", required=False),
        ),
        account_variable="ALICEBLUE_USER_ID",
        session_variable="ALICEBLUE_SESSION",
        login=REDIRECT,
        login_flow="app.brokers.aliceblue.login:AliceBlueLogin",
        session_docs='docs/brokers.md "Accounts and daily logins"',
    ),
)
