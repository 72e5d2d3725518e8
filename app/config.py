"""Configuration read once from the environment and checked before any process serves traffic."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import environs
from marshmallow import validate

from app.brokers import registry as _broker_registry  # specs are plain data (no import cycle)
from app.exceptions import ConfigurationError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_RETRY_SCHEDULE = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
MIN_TOKEN_LENGTH = 16
DEFAULT_RETENTION_DAYS = 90
# The feed names and the brokers' real WebSocket/REST addresses come from the broker specs
# (app/brokers/<name>/spec.py, docs/brokers.md); tests point the URLs at local fakes.
KNOWN_FEEDS = _broker_registry.KNOWN_FEEDS
DEFAULT_WS_URLS = _broker_registry.url_defaults()


@dataclass(frozen=True)
class Config:
    """Every setting the processes use; built by `load_config`, never read from os.environ elsewhere."""

    app_env: str = "production"
    public_base_url: str = ""
    redis_url: str | None = None
    database_url: str = ""
    instance_path: Path = ROOT / "instance"
    kite_api_secret: str = field(default="", repr=False)
    kite_apps: dict[str, str] = field(default_factory=dict, repr=False)
    postback_tokens: tuple[str, ...] = field(default=(), repr=False)
    admin_token: str = field(default="", repr=False)
    forward_urls: tuple[str, ...] = ()
    forward_secret: str = field(default="", repr=False)
    forward_retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    forward_timeout: float = 5.0
    feeds: tuple[str, ...] = ()
    dedup_ttl_seconds: int = 3 * 24 * 3600
    max_body_bytes: int = 64 * 1024
    #: Days raw postbacks, events, deliveries and idle orders are kept (app/retention.py); 0 keeps everything.
    retention_days: int = DEFAULT_RETENTION_DAYS
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def is_development(self) -> bool:
        """Development relaxes the production checks into warnings."""
        return self.app_env == "development"

    def get(self, name: str, default: str = "") -> str:
        """A raw variable (for per-feed settings that only one connector reads)."""
        value = self.env.get(name, "")
        return value if value != "" else DEFAULT_WS_URLS.get(name, default)

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


def _split_list(value: str) -> tuple[str, ...]:
    """Comma- (or whitespace-) separated list with blanks dropped."""
    return tuple(part.strip() for part in re.split(r"[,\s]+", value or "") if part.strip())


def _parse_kite_apps(value: str) -> dict[str, str]:
    """`app_id:secret,app_id:secret` -> {app_id: secret}."""
    apps: dict[str, str] = {}
    for item in _split_list(value):
        app_id, sep, secret = item.partition(":")
        if not sep or not app_id or not secret:
            raise ConfigurationError(
                "KITE_APPS must look like 'app_id:api_secret,app_id:api_secret' "
                f"(an entry without ':' or with an empty part was found near '{app_id}:...')"
            )
        apps[app_id.strip()] = secret.strip()
    return apps


def _parse_schedule(value: str) -> tuple[float, ...]:
    """`5,300,1800` -> (5.0, 300.0, 1800.0); each a non-negative number of seconds."""
    if not _split_list(value):
        raise ConfigurationError("FORWARD_RETRY_SCHEDULE must list seconds between attempts, e.g. '5,300,1800'")
    try:
        schedule = tuple(float(part) for part in _split_list(value))
    except ValueError:
        raise ConfigurationError(
            f"FORWARD_RETRY_SCHEDULE must be comma-separated seconds, e.g. '5,300,1800' (got {value!r})"
        ) from None
    if any(s < 0 or s != s or s == float("inf") for s in schedule):
        raise ConfigurationError("FORWARD_RETRY_SCHEDULE entries must be finite, non-negative seconds")
    return schedule


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


class _MappingEnv(environs.Env):
    """environs reading a given mapping (load_config(environ)), not os.environ; blank means unset (.env.example)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        super().__init__(eager=False)
        self.source = environ

    def _get_value(self, env_key: str, default: Any) -> Any:
        """The variable's value, or the default when it is missing or blank."""
        value = self.source.get(env_key)
        return default if value is None or not str(value).strip() else str(value).strip()


#: What a refused value must look like, by variable (environs names the variable, these say what to set).
_VALUE_HINTS = {
    "APP_ENV": "must be 'production' or 'development'",
    "FORWARD_TIMEOUT_SECONDS": "must be a number of seconds",
    "RETENTION_DAYS": "must be a whole number of days (0 keeps everything)",
}


def _read_typed(env: _MappingEnv) -> dict[str, Any]:
    """The typed settings environs parses and checks; one ConfigurationError naming every bad variable."""
    values = {
        "app_env": env.str("APP_ENV", "production", validate=validate.Regexp(r"(?i)(production|development)\Z")),
        # ASCII only (issue 12): Python's int() and float() also read digits of other scripts.
        "forward_timeout": env.str("FORWARD_TIMEOUT_SECONDS", "5", validate=validate.Regexp(r"[0-9]*\.?[0-9]+\Z")),
        "retention_days": env.str(
            "RETENTION_DAYS", str(DEFAULT_RETENTION_DAYS), validate=validate.Regexp(r"[0-9]{1,6}\Z")
        ),
        "public_base_url": env.str("PUBLIC_BASE_URL", ""),
        "redis_url": env.str("REDIS_URL", "") or None,
        "database_url": env.str("DATABASE_URL", ""),
        "kite_api_secret": env.str("KITE_API_SECRET", ""),
        "admin_token": env.str("ADMIN_TOKEN", ""),
        "forward_secret": env.str("FORWARD_SECRET", ""),
    }
    try:
        env.seal()
    except environs.EnvValidationError as exc:
        raise ConfigurationError(
            "; ".join(
                f"{name} {_VALUE_HINTS.get(name, 'is not valid')} (got {env.source.get(name)!r})"
                for name in exc.error_messages
            )
        ) from None
    values["app_env"] = values["app_env"].lower()
    values["forward_timeout"] = float(values["forward_timeout"])
    values["retention_days"] = int(values["retention_days"])
    return values


def load_config(environ: Mapping[str, str] | None = None) -> Config:
    """Read and check the environment; in production any problem raises ConfigurationError."""
    env = dict(os.environ if environ is None else environ)
    typed = _read_typed(_MappingEnv(env))
    instance_path = Path(env.get("INSTANCE_PATH") or ROOT / "instance")
    feeds = tuple(f.lower() for f in _split_list(env.get("FEEDS", "")))
    unknown_feeds = [f for f in feeds if f not in KNOWN_FEEDS]
    if unknown_feeds:
        raise ConfigurationError(f"FEEDS names unknown connectors {unknown_feeds}; choose from {list(KNOWN_FEEDS)}")
    typed["database_url"] = normalize_database_url(typed["database_url"] or _default_database_url(instance_path))
    config = Config(
        **typed,
        instance_path=instance_path,
        kite_apps=_parse_kite_apps(env.get("KITE_APPS", "")),
        postback_tokens=_split_list(env.get("POSTBACK_TOKEN", "")),
        forward_urls=_split_list(env.get("FORWARD_URLS", "")),
        forward_retry_schedule=(
            _parse_schedule(env["FORWARD_RETRY_SCHEDULE"])
            if (env.get("FORWARD_RETRY_SCHEDULE") or "").strip()
            else DEFAULT_RETRY_SCHEDULE
        ),
        feeds=feeds,
        env=env,
    )
    problems = config_problems(config)
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
    if not (config.env.get("DATABASE_URL") or "").strip():
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


def _warn_development(config: Config, problems: list[str]) -> None:
    """Development runs anyway, but loudly."""
    if config.env.get("ORDERHOOK_DEV_BANNER_SHOWN"):  # integration: scripts/dev printed it once already
        return
    banner = "!" * 78
    lines = [
        banner,
        "APP_ENV=development: Orderhook is running with development settings.",
        "No broker can reach a local URL; do not point real brokers at this instance.",
    ]
    lines += [f"  - {p}" for p in problems]
    lines.append(banner)
    log.warning("\n".join(lines))
