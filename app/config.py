"""The settings schema: every variable the processes read, declared once, typed, grouped by concern.

`Config` holds the service's core settings and one group per concern (web edges, ingest, pipeline,
delivery, feeds, reconciliation, alerts); each broker's variables come from its spec
(app/brokers/<name>/spec.py) as a typed `BrokerSettings`. `load_config` reads them all through
app/settings.py at once and checks them before any process serves traffic: a bad value anywhere is one
ConfigurationError naming every refused variable. .env.example documents exactly these variables
(tests/unit/test_env_example.py); docs/interface.md fixes their names and defaults.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from app.brokers import registry as _broker_registry  # specs are plain data (no import cycle)
from app.exceptions import ConfigurationError
from app.settings import (
    ITEMS,
    OPTIONAL_PATH,
    SCHEDULE,
    TEXT,
    TIME_OF_DAY,
    URL,
    BrokerSettings,
    Kind,
    MappingEnv,
    Setting,
    broker_setting,
    choice,
    declarations,
    integer,
    positive_number,
    read_broker,
    read_values,
    seconds,
    secret_pieces,
    setting,
)

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
MIN_TOKEN_LENGTH = 16
KNOWN_FEEDS = _broker_registry.KNOWN_FEEDS


def _optional_text(raw: str) -> str | None:
    """Text, or None when blank."""
    return raw or None


def _instance_path(raw: str) -> Path:
    """The directory given, else ./instance."""
    return Path(raw) if raw else ROOT / "instance"


def _feed_names(raw: str) -> tuple[str, ...]:
    """FEEDS: connector names (any case) from the broker specs."""
    names = tuple(name.lower() for name in ITEMS.parse(raw))
    unknown = [name for name in names if name not in KNOWN_FEEDS]
    if unknown:
        raise ValueError(f"names unknown connectors {unknown}; choose from {list(KNOWN_FEEDS)}")
    return names


def _flag(raw: str) -> bool:
    """Set (any value) or not."""
    return bool(raw)


def _listen_host(raw: str) -> str:
    """An IP address to bind (a host name may resolve to several, or to a public address)."""
    return str(ipaddress.ip_address(raw))


OPTIONAL_TEXT = Kind(_optional_text, "is not valid")
INSTANCE_PATH = Kind(_instance_path, "must be a directory")
FEED_NAMES = Kind(_feed_names, "must name connectors")
FLAG = Kind(_flag, "is not valid")
LISTEN_HOST = Kind(
    _listen_host, "must be an IP address, e.g. 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)"
)
SECONDS = seconds()


@dataclass(frozen=True)
class WebSettings:
    """The web process's edges, logs and readiness (docs/operations.md); gunicorn.conf.py reads the server's part."""

    port: int = setting("PORT", integer(1, 65535), "8000", "port gunicorn binds (Heroku sets it)")
    concurrency: int = setting("WEB_CONCURRENCY", integer(1), "2", "gunicorn worker processes for `web`")
    connections: int = setting("WEB_CONNECTIONS", integer(1), "1000", "connections (greenlets) per gunicorn worker")
    keepalive: int = setting("WEB_KEEPALIVE", integer(0), "5", "seconds for a request's headers and an idle connection")
    body_timeout: float = setting("WEB_BODY_TIMEOUT", SECONDS, "10", "seconds one body read/write may block (then 408)")
    log_format: str = setting("LOG_FORMAT", choice("plain", "json"), "plain", "plain or json lines, app and gunicorn")
    trusted_proxies: int = setting(
        "TRUSTED_PROXIES",
        integer(0, 10, hint="must be the number of proxies in front, 0-10"),
        "0",
        "proxies in front that append X-Forwarded-For",
    )
    ready_max_backlog: float = setting(
        "READY_MAX_BACKLOG_SECONDS", SECONDS, "60", "/readyz is 503 when the oldest unstored update is older"
    )
    metrics_dir: Path | None = setting(
        "PROMETHEUS_MULTIPROC_DIR", OPTIONAL_PATH, "", "gunicorn workers' metric files (prometheus_client reads it)"
    )


@dataclass(frozen=True)
class IngestSettings:
    """Redis over TLS and the Redis-outage fallback (docs/ingest.md)."""

    redis_tls_verify: str = setting(
        "REDIS_TLS_VERIFY",
        choice(
            "required",
            "none",
            aliases={
                "true": "required",
                "1": "required",
                "yes": "required",
                "false": "none",
                "0": "none",
                "no": "none",
            },
        ),
        "required",
        "none accepts a rediss:// server's self-signed certificate",
    )
    spool_dir: Path | None = setting("SPOOL_DIR", OPTIONAL_PATH, "", "opt-in local fsynced spool after the database")


@dataclass(frozen=True)
class PipelineSettings:
    """The worker's persisting loops (docs/pipeline.md)."""

    worker_processes: int = setting("WORKER_PROCESSES", integer(1), "2", "pipeline loops in `worker`")
    persist_batch: int = setting("PERSIST_BATCH", integer(1), "500", "most events per persistence transaction")
    claim_idle_ms: int = setting(
        "PIPELINE_CLAIM_IDLE_MS", integer(1), "20000", "ms before another worker takes over unstored entries"
    )
    alive_ttl_ms: int = setting(
        "PIPELINE_ALIVE_TTL_MS",
        integer(300),
        "3000",
        "ms a loop's liveness key outlives its last refresh; then its unstored entries are taken over at once",
    )


@dataclass(frozen=True)
class DeliverySettings:
    """How the worker's forwarder spreads deliveries (docs/delivery.md)."""

    parallel: int = setting("FORWARD_PARALLEL", integer(1), "16", "connections per consumer per worker process")
    lane_capacity: int = setting("FORWARD_LANE_CAPACITY", integer(1), "512", "deliveries a consumer's lane holds")
    scan_ms: int = setting("FORWARD_SCAN_MS", integer(1), "50", "how often (ms) due retries are claimed")
    stream_maxlen: int = setting(
        "CONSUMER_STREAM_MAXLEN",
        integer(100),
        "10000",
        "entries a redis_stream consumer's stream keeps (XADD MAXLEN ~), docs/consumers.md",
    )


def _lease_seconds(raw: str) -> float:
    """Seconds, at least 6: a holder stops its connection well before its lease lapses (docs/feeds.md)."""
    value = SECONDS.parse(raw)
    if value < 6:
        raise ValueError
    return value


def _optional_rate(raw: str) -> float | None:
    """A number greater than 0, or None when blank."""
    return positive_number("").parse(raw) if raw else None


LEASE_SECONDS = Kind(_lease_seconds, "must be a number of seconds, at least 6")
OPTIONAL_RATE = Kind(_optional_rate, "must be a number greater than 0 (connections per second), or unset")


@dataclass(frozen=True)
class FeedSettings:
    """Timing shared by all connectors and the login frame's key (docs/feeds.md); tests shorten the timings."""

    backoff_base: float = setting("FEEDS_BACKOFF_BASE_SECONDS", SECONDS, "1", "first reconnect delay")
    backoff_max: float = setting("FEEDS_BACKOFF_MAX_SECONDS", SECONDS, "60", "reconnect delay cap (at least the base)")
    connect_timeout: float = setting("FEEDS_CONNECT_TIMEOUT_SECONDS", SECONDS, "10", "WebSocket handshake timeout")
    login_timeout: float = setting("FEEDS_LOGIN_TIMEOUT_SECONDS", SECONDS, "10", "login send-and-acknowledge timeout")
    frame_poll: float = setting("FEEDS_FRAME_POLL_SECONDS", SECONDS, "2", "dhan_web's check for a new login frame")
    ping_seconds: float = setting(
        "FEEDS_PING_SECONDS", SECONDS, "20", "WebSocket ping interval; unanswered this long, the socket is reconnected"
    )
    accounts_poll: float = setting(
        "FEEDS_ACCOUNTS_POLL_SECONDS", SECONDS, "2", "how often a feeds process looks for changed accounts"
    )
    lease_seconds: float = setting(
        "FEEDS_LEASE_SECONDS", LEASE_SECONDS, "15", "an account's lease on one feeds process outlives its renewal"
    )
    auth_retry: float = setting(
        "FEEDS_AUTH_RETRY_SECONDS", SECONDS, "300", "a refused account's feed tries again this often at most"
    )
    connect_rate: float | None = setting(
        "FEEDS_CONNECT_RATE", OPTIONAL_RATE, "", "connections per second per broker and process (unset: each broker's)"
    )
    secret_key: str = setting(
        "FEEDS_SECRET_KEY", TEXT, "", "Fernet key(s) encrypting the stored login frame", secret=True
    )

    def __post_init__(self) -> None:
        """The cap is never below the first delay."""
        object.__setattr__(self, "backoff_max", max(self.backoff_base, self.backoff_max))


#: A REST answer's deadline stays under the 60 s lease of a run (workers/reconcile.py LOCK_SECONDS), renewed
#: before each order's request: a run that waits on its broker never loses the lease to a second run.
MAX_ANSWER_SECONDS = 45.0


def _answer_seconds(raw: str) -> float:
    """Seconds greater than 0, at most MAX_ANSWER_SECONDS."""
    value = SECONDS.parse(raw)
    if value > MAX_ANSWER_SECONDS:
        raise ValueError
    return value


ANSWER_SECONDS = Kind(_answer_seconds, f"must be a number of seconds greater than 0, at most {MAX_ANSWER_SECONDS:g}")


@dataclass(frozen=True)
class ReconcileSettings:
    """Reconciliation with the brokers' REST order books (docs/reconcile.md)."""

    # docs/interface.md: 0 = only at start-up, after a feed reconnects and on demand. Lenient: its tests pin
    # that a bad value is warned about and the default used.
    interval: float = setting(
        "RECONCILE_INTERVAL_SECONDS", seconds(zero=True), "300", "seconds between runs", lenient=True
    )
    answer_seconds: float = setting(
        "RECONCILE_ANSWER_SECONDS", ANSWER_SECONDS, "30", "whole-answer deadline of one REST request, retries included"
    )
    run_seconds: float = setting("RECONCILE_RUN_SECONDS", SECONDS, "600", "deadline of one run of one broker")
    max_answer_bytes: int = setting(
        "RECONCILE_MAX_ANSWER_BYTES", integer(1024), "33554432", "largest REST answer read (bytes; larger is refused)"
    )
    max_rows: int = setting("RECONCILE_MAX_ROWS", integer(1), "10000", "most rows of one REST answer (more is refused)")


@dataclass(frozen=True)
class TelegramSettings:
    """Alerts to Telegram (docs/alerts.md); app/alerts resolves ALERT_ON into kinds."""

    bot_token: str = setting("TELEGRAM_BOT_TOKEN", TEXT, "", "unset: no alerts", secret=True)
    chat_id: str = setting("TELEGRAM_CHAT_ID", TEXT, "", "the chat alerts go to")
    api_url: str = setting("TELEGRAM_API_URL", URL, "https://api.telegram.org", "Bot API base")
    alert_on: tuple[str, ...] = setting(
        "ALERT_ON", ITEMS, "REJECTED,PARTIALLY_FILLED,FILLED,feed_down,delivery_failed", "what is announced"
    )
    feed_down_seconds: float = setting("ALERT_FEED_DOWN_SECONDS", SECONDS, "60", "disconnected this long: announced")
    session_warn_minutes: int = setting(
        "SESSION_WARN_MINUTES", integer(0, 1440), "30", "minutes before a session's known expiry it is announced"
    )
    login_reminder_ist: str = setting(
        "LOGIN_REMINDER_IST", TIME_OF_DAY, "08:45", "India time on weekdays accounts not logged in are announced"
    )


#: The groups of Config, by field name.
GROUPS: dict[str, type] = {
    "web": WebSettings,
    "ingest": IngestSettings,
    "pipeline": PipelineSettings,
    "delivery": DeliverySettings,
    "feed_settings": FeedSettings,
    "reconcile": ReconcileSettings,
    "alerts": TelegramSettings,
}


@dataclass(frozen=True)
class Config:
    """Every setting the processes use; built by `load_config` (gunicorn's side reads the web group alone)."""

    # The service and its stores.
    app_env: str = setting(
        "APP_ENV", choice("production", "development"), "production", "production refuses to start on any problem"
    )
    public_base_url: str = setting("PUBLIC_BASE_URL", TEXT, "", "the public https URL brokers call")
    redis_url: str | None = setting("REDIS_URL", OPTIONAL_TEXT, "", "unset: embedded Redis (development only)")
    database_url: str = setting("DATABASE_URL", TEXT, "", "unset: SQLite under instance/ (development only)")
    instance_path: Path = setting("INSTANCE_PATH", INSTANCE_PATH, "", "local state (default ./instance)")
    # Postbacks and the admin API.
    postback_tokens: tuple[str, ...] = setting(
        "POSTBACK_TOKEN", ITEMS, "", "path token(s) of unsigned brokers' postbacks", secret=True
    )
    admin_token: str = setting("ADMIN_TOKEN", TEXT, "", "bearer token for /api/*", secret=True)
    # Forwarding (docs/delivery.md).
    forward_urls: tuple[str, ...] = setting("FORWARD_URLS", ITEMS, "", "consumers of every normalized event")
    forward_secret: str = setting("FORWARD_SECRET", TEXT, "", "whsec_ signing key(s), space-separated", secret=True)
    forward_retry_schedule: tuple[float, ...] = setting(
        "FORWARD_RETRY_SCHEDULE", SCHEDULE, "5,300,1800,7200,18000,36000,36000", "seconds between attempts"
    )
    forward_timeout: float = setting("FORWARD_TIMEOUT_SECONDS", SECONDS, "5", "seconds before an attempt times out")
    # Feeds and retention.
    feeds: tuple[str, ...] = setting("FEEDS", FEED_NAMES, "", "WebSocket connectors the `feeds` process runs")
    #: Days raw postbacks, events, deliveries and idle orders are kept (app/retention.py); 0 keeps everything.
    retention_days: int = setting(
        "RETENTION_DAYS",
        integer(0, 999_999, hint="must be a whole number of days (0 keeps everything)"),
        "90",
        "days stored data is kept",
    )
    dev_banner_shown: bool = setting(
        "ORDERHOOK_DEV_BANNER_SHOWN", FLAG, "", "scripts/dev printed the banner once already", documented=False
    )
    dev_listen_host: str = setting(
        "DEV_LISTEN_HOST", LISTEN_HOST, "127.0.0.1", "address scripts/dev's web listens on (0.0.0.0: every interface)"
    )
    dedup_ttl_seconds: int = 3 * 24 * 3600
    max_body_bytes: int = 64 * 1024
    web: WebSettings = field(default_factory=WebSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    delivery: DeliverySettings = field(default_factory=DeliverySettings)
    feed_settings: FeedSettings = field(default_factory=FeedSettings)
    reconcile: ReconcileSettings = field(default_factory=ReconcileSettings)
    alerts: TelegramSettings = field(default_factory=TelegramSettings)
    brokers: Mapping[str, BrokerSettings] = field(default_factory=dict, repr=False)

    @property
    def is_development(self) -> bool:
        """Development relaxes the production checks into warnings."""
        return self.app_env == "development"

    def broker(self, name: str) -> BrokerSettings:
        """A broker's declared variables, typed (its spec lists them)."""
        return self.brokers[name]

    @property
    def kite_api_secret(self) -> str:
        """KITE_API_SECRET (declared in app/brokers/kite/spec.py)."""
        return self.broker("kite")["KITE_API_SECRET"]

    @property
    def kite_apps(self) -> dict[str, str]:
        """KITE_APPS as {app_id: api_secret}."""
        return self.broker("kite")["KITE_APPS"]

    def kite_secret_for(self, app_id: str | None) -> str | None:
        """The secret for a Kite app: its KITE_APPS entry, else KITE_API_SECRET."""
        if app_id is not None and str(app_id) in self.kite_apps:
            return self.kite_apps[str(app_id)]
        return self.kite_api_secret or None

    def postback_url(self, broker: str) -> str:
        """The URL a trader registers with a broker (token in the path where the broker does not sign)."""
        route = _broker_registry.BY_NAME[broker].postback_route or ""
        if self.postback_tokens:
            route = route.replace("<POSTBACK_TOKEN>", self.postback_tokens[0])
        return self.public_base_url.rstrip("/") + route

    def secret_values(self) -> list[str]:
        """Every declared secret's value (and each key of a list of them), for log redaction."""
        values = [piece for owner, name in _secret_settings(self) for piece in secret_pieces(getattr(owner, name))]
        for settings in self.brokers.values():
            values += settings.secrets()
        return values


def _secret_settings(config: Config) -> Iterator[tuple[Any, str]]:
    """(object, field name) of every secret setting of the config and its groups."""
    for owner in (config, *(getattr(config, name) for name in GROUPS)):
        for name, declared in declarations(type(owner)):
            if declared.secret:
                yield owner, name


def schema() -> list[Setting]:
    """Every declared setting: the core, each group's, then each broker's (the order of .env.example's sections)."""
    declared = [item for _, item in declarations(Config)]
    declared += [item for group in GROUPS.values() for _, item in declarations(group)]
    declared += [broker_setting(variable) for spec in _broker_registry.SPECS for variable in spec.variables]
    return declared


def read_config(source: Mapping[str, str]) -> Config:
    """Every declared setting, typed; one ConfigurationError naming each refused variable."""
    env = MappingEnv(source)
    core = read_values(Config, env)
    groups = {name: read_values(group, env) for name, group in GROUPS.items()}
    brokers = {spec.name: read_broker(spec, env) for spec in _broker_registry.SPECS}
    env.checked()
    return Config(**core, **{name: GROUPS[name](**values) for name, values in groups.items()}, brokers=brokers)


def _default_database_url(instance_path: Path) -> str:
    """SQLite under instance/ when DATABASE_URL is unset."""
    return f"sqlite:///{instance_path / 'orderhook.sqlite3'}"


def normalize_database_url(url: str) -> str:
    """Heroku-style `postgres://` URLs mean PostgreSQL through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The literal address a host name spells, including legacy IPv4 forms such as 127.1 or 0x7f.1."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
        if re.fullmatch(r"[0-9a-fA-FxX.]+", host) and not re.fullmatch(r"[a-fA-F.]+", host):
            try:
                address = ipaddress.IPv4Address(socket.inet_aton(host))
            except OSError:
                return None
    if isinstance(address, ipaddress.IPv6Address):
        return _embedded_ipv4(address) or address
    return address


_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SIIT = ipaddress.IPv6Network("::ffff:0:0:0/96")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside a mapped, compatible (::a.b.c.d), SIIT or NAT64 IPv6 address."""
    if address.ipv4_mapped:
        return address.ipv4_mapped
    value = int(address)
    if value >> 32 == 0 and value > 1 or address in _NAT64 or address in _SIIT:
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


def public_base_url_problem(url: str) -> str | None:
    """Why brokers cannot call this URL, or None; reads the URL only (no DNS lookup)."""
    if not url:
        return "it is not set"
    if not url.isascii() or any(ch in url for ch in "\\%") or any(ord(ch) < 33 for ch in url):
        return "it must be a plain ASCII URL (no spaces, backslashes, percent-escapes or non-ASCII characters)"
    parts = urlsplit(url)
    if parts.scheme != "https":
        return f"it must start with https:// (got scheme {parts.scheme or 'none'!r})"
    if "@" in parts.netloc:
        return "it must not carry user information (user@host)"
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        return "it has no host name"
    if host == "localhost" or host.endswith(".localhost") or host.endswith(".local"):
        return f"{host} is a local name that brokers cannot reach"
    address = _host_address(host)
    if address is not None and not address.is_global:
        return f"{host} is a loopback, private, link-local or unspecified address that brokers cannot reach"
    if address is None and "." not in host:
        return f"{host} is a single-label name that only resolves on a local network"
    return None


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Read and check the environment; in production any problem raises ConfigurationError."""
    config = read_config(dict(os.environ if environ is None else environ))
    problems = config_problems(config)
    config = replace(
        config, database_url=normalize_database_url(config.database_url or _default_database_url(config.instance_path))
    )
    if problems and not config.is_development:
        raise ConfigurationError(
            "Orderhook will not start in production with this configuration:\n  - " + "\n  - ".join(problems)
        )
    if config.is_development:
        _warn_development(config, problems)
    if not config.admin_token:
        log.warning("ADMIN_TOKEN is not set: /api/* answers 401 to everyone until it is")
    elif len(config.admin_token) < MIN_TOKEN_LENGTH:
        log.warning("ADMIN_TOKEN is shorter than %d characters: use a longer random secret", MIN_TOKEN_LENGTH)
    return config


def config_problems(config: Config) -> list[str]:
    """Each production blocker as a sentence naming the variable and what to set."""
    problems = service_problems(config)
    url_problem = public_base_url_problem(config.public_base_url)
    if url_problem:
        problems.append(
            f"PUBLIC_BASE_URL: {url_problem}. Set PUBLIC_BASE_URL to the public https URL brokers will call, "
            "e.g. https://orderhook.example.com (brokers such as Dhan do not deliver to localhost)."
        )
    if not config.postback_tokens:
        problems.append(
            "POSTBACK_TOKEN is not set. Set it to a random secret of at least 16 characters "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(24))'`); it guards the Dhan and "
            "Flattrade postback URLs, which the brokers do not sign."
        )
    elif any(len(token) < MIN_TOKEN_LENGTH for token in config.postback_tokens):
        problems.append(
            f"POSTBACK_TOKEN is shorter than {MIN_TOKEN_LENGTH} characters. Set it to a longer random secret."
        )
    elif any(not re.fullmatch(r"[A-Za-z0-9_\-.~]+", token) for token in config.postback_tokens):
        problems.append("POSTBACK_TOKEN may only hold URL-safe characters (letters, digits, - _ . ~).")
    problems += forward_problems(config)
    if not config.kite_api_secret and not config.kite_apps:
        problems.append(
            "KITE_API_SECRET is not set (nor KITE_APPS). Set KITE_API_SECRET to your Kite Connect app's "
            "api_secret, or KITE_APPS=app_id:api_secret,... for several apps; Kite postbacks cannot be "
            "verified without it."
        )
    return problems


def service_problems(config: Config) -> list[str]:
    """Production needs shared, durable Redis and database: the embedded defaults live on one machine's disk."""
    problems: list[str] = []
    if config.is_development:
        return problems  # development's embedded Redis and SQLite are the point of scripts/dev
    if not config.redis_url:
        problems.append(
            "REDIS_URL is not set. Set it to your Redis (with AOF and maxmemory-policy noeviction), e.g. "
            "redis://redis.internal:6379/0 or a managed rediss:// URL; the embedded Redis is for development only "
            "(it lives on one machine's disk)."
        )
    if not config.database_url:
        problems.append(
            "DATABASE_URL is not set. Set it to your PostgreSQL, e.g. postgresql://user:pass@db.internal/orderhook "
            "(Heroku's postgres:// form is accepted); SQLite under instance/ is for development only."
        )
    return problems


def forward_problems(config: Config) -> list[str]:
    """FORWARD_URLS must be http(s) URLs and FORWARD_SECRET a whsec_ key, or events go out unsigned."""
    problems = []
    for url in config.forward_urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            problems.append(f"FORWARD_URLS: {url!r} is not an http(s) URL with a host.")
    if config.forward_urls and not config.forward_secret:
        problems.append(
            "FORWARD_SECRET is not set while FORWARD_URLS is: set it to a whsec_ key so consumers can verify "
            "deliveries (see .env.example for a command that makes one)."
        )
    for key in config.forward_secret.split():
        encoded = key[len("whsec_") :] if key.startswith("whsec_") else key
        try:
            decoded = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if len(decoded) < 16:
            problems.append("FORWARD_SECRET must be whsec_ followed by the base64 of 24-64 random bytes.")
            break
    if not (0 < config.forward_timeout <= 300):
        problems.append("FORWARD_TIMEOUT_SECONDS must be a number of seconds between 0 and 300.")
    return problems


def forwarding_summary(config: Config) -> str:
    """Where stored events go (docs/delivery.md), in the words the development banners use."""
    if not config.forward_urls:
        return "nowhere: set FORWARD_URLS to receive events"
    return ", ".join(config.forward_urls) + " (signed with FORWARD_SECRET)"


def _warn_development(config: Config, problems: list[str]) -> None:
    """Development runs anyway, but loudly."""
    if config.dev_banner_shown:
        return
    banner = "!" * 78
    lines = [
        banner,
        "APP_ENV=development: Orderhook is running with development settings.",
        "No broker can reach a local URL; do not point real brokers at this instance.",
        f"Forwarding: {forwarding_summary(config)}",
    ]
    lines += [f"  - {p}" for p in problems]
    lines.append(banner)
    log.warning("\n".join(lines))
