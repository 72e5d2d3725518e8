"""What one Noren OMS deployment is, as plain data, and the BrokerSpec derived from it (docs/brokers.md §5).

Flattrade, Shoonya, Zebu and Firstock run the same OMS: one order frame (`t: "om"`, `norenordno`, `reporttype`,
`fillshares`...), one status vocabulary, one REST book shape. What differs is declared here per broker: its URLs,
how its socket logs in (a `t:"a"` or `t:"c"` frame, or the credentials in the URL's query), whether the order
subscription is needed and acknowledged, the product key (`prd` or `pcode`), its REST dialect and its daily login.
The shared adapter, connector, REST client and QuickAuth login (app/brokers/noren/) read this declaration; each
broker's package only names it. Like every spec, this module imports nothing from the rest of the app.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.brokers.spec import (
    CHOICE,
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

#: Socket login forms: the `t:"a"` frame with `accesstoken`, the `t:"c"` frame with `susertoken` (§5.1), or the
#: user id and token in the socket URL's query (Firstock, §5.5).
FRAME_A = "a"
FRAME_C = "c"
QUERY = "query"
#: REST dialects: Noren's form body `jData=<json>&jKey=<token>` answered by a bare list, or Firstock's JSON body
#: `{"userId","jKey",...}` answered by `{"status":"success","data":[...]}` with camelCase rows (§5.4).
JDATA = "jdata"
FIRSTOCK_JSON = "firstock_json"
#: Daily logins: Noren's QuickAuth (`jData` with sha256 password, TOTP, vendor code, sha256(uid|secret)) or
#: Firstock's `/V1/login` (JSON with the same facts, camelCase): docs/brokers.md "Accounts and daily logins".
QUICKAUTH = "quickauth"
FIRSTOCK_LOGIN = "firstock_login"


@dataclass(frozen=True)
class NorenBroker:
    """One Noren deployment: only what differs between them (docs/brokers.md §5, the table)."""

    name: str
    title: str
    #: Prefix of this broker's variables (`NOREN` for Flattrade, kept from before the family existed).
    prefix: str
    ws_url: str
    api_url: str
    #: Login forms the socket takes, the first tried first; a refusal of one tries the next once (a, c only).
    login_forms: tuple[str, ...]
    #: True when the order subscription `{"t":"o","actid"}` must be sent (Firstock pushes without one).
    subscribes: bool = True
    #: True when the subscription is answered `{"t":"ok"}` (Shoonya, Zebu); Flattrade sends no ack.
    subscribe_ack: bool = False
    #: The text heartbeat `{"t":"h"}` (Noren sockets); Firstock is kept alive by WebSocket pings only.
    text_heartbeat: bool = True
    #: The product key its order frames carry (the adapter reads either).
    product_key: str = "prd"
    rest: str = JDATA
    #: The daily login: "" for Flattrade (its redirect login, app/brokers/flattrade/login.py), else QUICKAUTH or
    #: FIRSTOCK_LOGIN with its endpoint.
    login: str = ""
    login_url: str = ""
    rollover_ist: str = "06:00"
    #: The section of docs/brokers.md with its facts.
    docs: str = "docs/brokers.md §5"

    def var(self, suffix: str) -> str:
        """This broker's variable for `suffix` (`USER_ID` → `SHOONYA_USER_ID`)."""
        return f"{self.prefix}_{suffix}"

    @property
    def feed_module(self) -> str:
        """Where the broker's connector, adapter, REST client and login classes live."""
        return f"app.brokers.{self.name}"

    @property
    def class_prefix(self) -> str:
        """`Shoonya` for shoonya: the broker's class names are `<Prefix>Adapter`, `<Prefix>Connector`, ..."""
        return self.name.capitalize()


#: Status words of the whole family (docs/brokers.md §5.3): the documented ones, Firstock's transition words,
#: Shoonya's and Flattrade's README words, and OpenAlgo's Shoonya/Zebu map; OPEN and COMPLETE are then checked
#: against the quantities by the adapter.
STATUS_MAP = {
    "ORDER ACK": "PENDING",
    "ORDER PENDING": "PENDING",
    "PENDING": "PENDING",
    "OPEN PENDING": "PENDING",
    "AFTER MARKET ORDER REQ RECEIVED": "PENDING",
    "AMO OPEN": "PENDING",
    # A modified AMO is still waiting for the market, like AMO OPEN; the flag marks the modify.
    "AMO MODIFIED": "PENDING",
    "OPEN": "OPEN",
    "NEW": "OPEN",  # the exchange accepted the new order (reporttype New comes with OPEN) [inferred]
    "REPLACED": "OPEN",  # a modify acknowledged by the exchange: the order is live
    "MODIFY PENDING": "OPEN",  # a modify on its way: the order is live meanwhile
    "CANCEL PENDING": "OPEN",  # a cancel on its way: the order is live until it is confirmed
    "TRIGGER PENDING": "TRIGGER_PENDING",
    "COMPLETE": "FILLED",
    "EXECUTED": "FILLED",
    "CANCELED": "CANCELLED",
    "CANCELLED": "CANCELLED",
    "AMO CANCELED": "CANCELLED",
    "AMO CANCELLED": "CANCELLED",
    "REJECTED": "REJECTED",
    "REJECT": "REJECTED",
}
MODIFY_STATUSES = frozenset({"AMO MODIFIED", "REPLACED", "MODIFY PENDING"})
KEY_FIELDS = (
    "norenordno",
    "status",
    "reporttype (history rows: rpt)",
    "fillshares",
    "qty",
    "prc",
    "trgprc",
    "avgprc",
    "exch_tm (else tm)",
)


def feed_spec(broker: NorenBroker) -> FeedSpec:
    """The broker's order socket: one connection per account, the user id and session token required."""
    return FeedSpec(
        broker.name,
        f"{broker.feed_module}.feed:{broker.class_prefix}Connector",
        broker.var("WS_URL"),
        required=(broker.var("USER_ID"), broker.var("TOKEN")),
        secret_variables=(broker.var("TOKEN"),),
    )


def variables(broker: NorenBroker, *extra: Variable) -> tuple[Variable, ...]:
    """The variables every Noren broker reads, under its prefix, with its real addresses as defaults."""
    found = [
        Variable(broker.var("USER_ID"), doc=f"the {broker.title} user id (feed and REST)"),
        Variable(broker.var("ACCOUNT_ID"), doc="the account id when it differs from the user id"),
        Variable(broker.var("TOKEN"), secret=True, doc="the session token (feed and REST)"),
    ]
    if len(broker.login_forms) > 1:
        first, second = broker.login_forms[:2]
        found.append(
            Variable(
                broker.var("LOGIN_MODE"),
                doc=f"a (accesstoken) or c (susertoken); unset tries {first}, then {second}",
                kind=CHOICE,
                choices=("", "a", "c"),
            )
        )
    if broker.text_heartbeat:
        found.append(Variable(broker.var("HEARTBEAT_SECONDS"), "30", doc="heartbeat period", kind=SECONDS))
    found += [
        Variable(broker.var("WS_URL"), broker.ws_url, doc=f"{broker.title}'s order socket", kind=URL),
        Variable(broker.var("API_URL"), broker.api_url, doc="REST base for the order book", kind=URL),
    ]
    if broker.login:
        found.append(Variable(broker.var("LOGIN_URL"), broker.login_url, doc="the daily login's endpoint", kind=URL))
    return (*found, *extra)


def totp_accounts(broker: NorenBroker) -> AccountSpec:
    """Accounts that log in by themselves each day with a TOTP: QuickAuth or Firstock's login (docs/brokers.md
    "Accounts and daily logins")."""
    secret_name = "api_key" if broker.login == FIRSTOCK_LOGIN else "api_secret"
    return AccountSpec(
        credentials=(
            Credential("password", doc=f"the {broker.title} login password (sent as its SHA-256)"),
            Credential("totp_secret", doc="the TOTP secret (base32) shown when TOTP was enabled"),
            Credential("vendor_code", secret=False, doc="the vendor code issued with the API access"),
            Credential(secret_name, doc="the API key/secret issued with the vendor code"),
            Credential("imei", secret=False, doc="the device id sent with the login (any stable text)", required=False),
            Credential("account", broker.var("ACCOUNT_ID"), secret=False, doc="if not the user id", required=False),
        ),
        account_variable=broker.var("USER_ID"),
        session_variable=broker.var("TOKEN"),
        login=TOTP,
        login_flow=f"{broker.feed_module}.login:{broker.class_prefix}Login",
        rollover_ist=broker.rollover_ist,
        session_docs='docs/brokers.md "Accounts and daily logins"',
    )


def broker_spec(broker: NorenBroker, *, accounts: AccountSpec | None = None, extra: tuple[Variable, ...] = ()):
    """The registry's BrokerSpec of a Noren broker: the family's status words, keys, postback shape and REST."""
    return BrokerSpec(
        name=broker.name,
        adapter=f"{broker.feed_module}.adapter:{broker.class_prefix}Adapter",
        postback=PATH_TOKEN,
        status_map=dict(STATUS_MAP),
        modify_statuses=MODIFY_STATUSES,
        rest=f"{broker.feed_module}.rest:{broker.class_prefix}Client",
        feeds=(feed_spec(broker),),
        variables=variables(broker, *extra),
        key_fields=KEY_FIELDS,
        docs=broker.docs,
        postback_summary=f"{broker.title}-style postback: Noren keys or the camelCase orderUpdate shape",
        accounts=accounts if accounts is not None else totp_accounts(broker),
    )
