"""Start-up configuration checks: production refuses what brokers cannot reach or what is unsafe."""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.config import load_config, public_base_url_problem
from app.exceptions import ConfigurationError
from tests.support.env import ROOT

GOOD = {
    "APP_ENV": "production",
    "PUBLIC_BASE_URL": "https://orderhook.example.com",
    "POSTBACK_TOKEN": "x" * 24,
    "KITE_API_SECRET": "kite-secret",
    "REDIS_URL": "redis://127.0.0.1:6379/9",
    "DATABASE_URL": "postgresql://orderhook@db.example.com/orderhook",
}


@pytest.mark.parametrize(
    "url",
    [
        "",
        "http://orderhook.example.com",
        "https://localhost",
        "https://localhost:8443/x",
        "https://app.localhost",
        "https://printer.local",
        "https://127.0.0.1",
        "https://127.1",
        "https://0x7f.0.0.1",
        "https://10.1.2.3",
        "https://172.16.0.9",
        "https://192.168.1.10",
        "https://169.254.10.10",
        "https://0.0.0.0",
        "https://[::1]",
        "https://[::]",
        "https://[fe80::1]",
        "https://[fd00::1]",
        "https://[::ffff:127.0.0.1]",
        "https://LOCALHOST.",
        "https://intranet",
        "https://１２７.0.0.1",
        "https://foo.ｌｏｃａｌ",
        "https://foo.local%2e",
        "https://127.0.0.1\\@example.com",
        "https://user@127.0.0.1",
        "https://[::127.0.0.1]",
        "https://[::ffff:0:7f00:1]",
        "https://[64:ff9b::7f00:1]",
    ],
)
def test_local_or_insecure_public_base_url_is_refused(url):
    assert public_base_url_problem(url)
    with pytest.raises(ConfigurationError, match="PUBLIC_BASE_URL"):
        load_config(dict(GOOD, PUBLIC_BASE_URL=url))


@pytest.mark.parametrize("url", ["https://orderhook.example.com", "https://8.8.8.8/hooks", "https://[2001:4860::8888]"])
def test_public_https_url_is_accepted(url):
    assert public_base_url_problem(url) is None
    assert load_config(dict(GOOD, PUBLIC_BASE_URL=url)).public_base_url == url


@pytest.mark.parametrize(("token", "why"), [(None, "not set"), ("short-token", "shorter than 16")])
def test_missing_or_short_postback_token_is_refused(token, why):
    env = dict(GOOD)
    env.pop("POSTBACK_TOKEN")
    if token:
        env["POSTBACK_TOKEN"] = token
    with pytest.raises(ConfigurationError, match=f"POSTBACK_TOKEN.*{why}"):
        load_config(env)


def test_kite_without_secret_is_refused():
    env = dict(GOOD)
    env.pop("KITE_API_SECRET")
    with pytest.raises(ConfigurationError, match="KITE_API_SECRET"):
        load_config(env)
    assert load_config(dict(env, KITE_APPS="1234:abc")).kite_secret_for("1234") == "abc"


def test_every_problem_is_named_at_once():
    with pytest.raises(ConfigurationError) as raised:
        load_config({"APP_ENV": "production"})
    message = str(raised.value)
    for name in ("PUBLIC_BASE_URL", "POSTBACK_TOKEN", "KITE_API_SECRET"):
        assert name in message


def test_development_starts_with_a_loud_warning(caplog):
    config = load_config({"APP_ENV": "development", "PUBLIC_BASE_URL": "http://localhost:8000"})
    assert config.is_development
    assert "development" in caplog.text and "PUBLIC_BASE_URL" in caplog.text


def test_bad_values_name_their_variable():
    with pytest.raises(ConfigurationError, match="FORWARD_RETRY_SCHEDULE"):
        load_config(dict(GOOD, FORWARD_RETRY_SCHEDULE="5,soon"))
    with pytest.raises(ConfigurationError, match="FEEDS"):
        load_config(dict(GOOD, FEEDS="kite,nosuchbroker"))
    with pytest.raises(ConfigurationError, match="APP_ENV"):
        load_config(dict(GOOD, APP_ENV="staging"))


def test_secrets_stay_out_of_repr():
    config = load_config(dict(GOOD, ADMIN_TOKEN="admin-secret-value"))
    assert "kite-secret" not in repr(config) and "admin-secret-value" not in repr(config)


def _import_wsgi(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", "import wsgi"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_importing_wsgi_fails_on_a_local_public_base_url():
    result = _import_wsgi(dict(GOOD, PUBLIC_BASE_URL="https://localhost", PATH="/usr/bin:/bin"))
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL" in result.stderr and "https://" in result.stderr


def test_gunicorn_refuses_to_come_up_half_configured(tmp_path):
    from tests.support.procs import VENV_BIN, free_port

    env = dict(GOOD, PATH=f"{VENV_BIN}:/usr/bin:/bin", PUBLIC_BASE_URL="https://192.168.0.5")
    command = f"gunicorn wsgi:app --bind 127.0.0.1:{free_port()} --preload"
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL" in result.stderr


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"FORWARD_URLS": "https://c.example.com/h"}, "FORWARD_SECRET is not set"),
        ({"FORWARD_URLS": "c.example.com/h", "FORWARD_SECRET": "whsec_" + "A" * 32}, "FORWARD_URLS"),
        ({"FORWARD_SECRET": "whsec_not*base64"}, "FORWARD_SECRET must be"),
        ({"FORWARD_TIMEOUT_SECONDS": "0"}, "FORWARD_TIMEOUT_SECONDS"),
        ({"FORWARD_TIMEOUT_SECONDS": "nan"}, "FORWARD_TIMEOUT_SECONDS"),
        ({"FORWARD_RETRY_SCHEDULE": ","}, "FORWARD_RETRY_SCHEDULE"),
    ],
)
def test_forwarding_and_admin_settings_are_checked(changes, name):
    with pytest.raises(ConfigurationError, match=name):
        load_config(dict(GOOD, **changes))


def test_a_short_admin_token_is_warned_about_not_fatal(caplog):
    assert load_config(dict(GOOD, ADMIN_TOKEN="admin")).admin_token == "admin"
    assert "ADMIN_TOKEN is shorter" in caplog.text


@pytest.mark.parametrize("name", ["REDIS_URL", "DATABASE_URL"])
def test_production_refuses_to_start_without_shared_redis_or_database(name):
    """The embedded Redis and SQLite live on one machine's disk; production names what is missing."""
    env = dict(GOOD)
    env.pop(name)
    with pytest.raises(ConfigurationError, match=f"{name} is not set"):
        load_config(env)
    with pytest.raises(ConfigurationError, match=f"{name} is not set"):
        load_config(dict(env, **{name: "   "}))


def test_development_keeps_the_embedded_defaults(tmp_path):
    config = load_config({"APP_ENV": "development", "INSTANCE_PATH": str(tmp_path)})
    assert config.redis_url is None
    assert config.database_url == f"sqlite:///{tmp_path / 'orderhook.sqlite3'}"


def test_heroku_postgres_urls_mean_psycopg():
    config = load_config(dict(GOOD, DATABASE_URL="postgres://u:p@ec2.example.com:5432/d1"))
    assert config.database_url == "postgresql+psycopg://u:p@ec2.example.com:5432/d1"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [({}, 90), ({"RETENTION_DAYS": ""}, 90), ({"RETENTION_DAYS": "30"}, 30), ({"RETENTION_DAYS": "0"}, 0)],
)
def test_retention_days(changes, expected):
    assert load_config(dict(GOOD, **changes)).retention_days == expected


@pytest.mark.parametrize("value", ["-1", "ninety", "1.5", "\u0661\u0662"])
def test_bad_retention_days_name_the_variable(value):
    with pytest.raises(ConfigurationError, match="RETENTION_DAYS must be a whole number of days"):
        load_config(dict(GOOD, RETENTION_DAYS=value))


def test_blank_values_mean_the_default_and_typed_values_are_parsed():
    """.env.example leaves most variables blank: blank is unset, not an error."""
    config = load_config(dict(GOOD, FORWARD_TIMEOUT_SECONDS="", APP_ENV="Production", FORWARD_RETRY_SCHEDULE=""))
    assert config.forward_timeout == 5.0 and config.app_env == "production"
    assert load_config(dict(GOOD, FORWARD_TIMEOUT_SECONDS=" 2.5 ")).forward_timeout == 2.5


def test_groups_and_brokers_are_typed_with_the_declared_defaults():
    config = load_config(dict(GOOD, FEEDS_FRAME_POLL_SECONDS="3", NOREN_HEARTBEAT_SECONDS="7.5"))
    assert config.feed_settings.frame_poll == 3.0 and config.feed_settings.backoff_max == 60.0
    assert config.broker("flattrade")["NOREN_HEARTBEAT_SECONDS"] == 7.5
    assert config.broker("kite")["KITE_WS_URL"] == "wss://ws.kite.trade"
    assert config.broker("jainam")["JAINAM_PRICE_DIVISOR"] == 100.0
    with pytest.raises(KeyError, match="NOPE is not declared"):
        config.broker("kite")["NOPE"]


def test_the_process_environment_does_not_leak_into_an_explicit_mapping(monkeypatch):
    monkeypatch.setenv("RETENTION_DAYS", "7")
    monkeypatch.setenv("ADMIN_TOKEN", "from-the-process-environment")
    config = load_config(GOOD)
    assert config.retention_days == 90 and config.admin_token == ""


@pytest.mark.parametrize(
    "name",
    [
        "FEEDS_BACKOFF_BASE_SECONDS",
        "FEEDS_FRAME_POLL_SECONDS",
        "ALERT_FEED_DOWN_SECONDS",
        "READY_MAX_BACKLOG_SECONDS",
        "WEB_BODY_TIMEOUT",
        "NOREN_HEARTBEAT_SECONDS",
        "JAINAM_HEARTBEAT_SECONDS",
        "DHAN_WEB_PING_SECONDS",
    ],
)
@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf", "1e3", "\u0661\u0662"])
def test_one_seconds_parser_refuses_bad_values_naming_the_variable(name, value):
    """Every seconds setting, the service's and the brokers' alike, is refused the same way at start-up."""
    with pytest.raises(ConfigurationError, match=f"{name} must be a number of seconds greater than 0"):
        load_config(dict(GOOD, **{name: value}))


def test_every_refused_variable_is_named_at_once():
    with pytest.raises(ConfigurationError) as raised:
        load_config(dict(GOOD, WORKER_PROCESSES="two", LOG_FORMAT="xml", REDIS_TLS_VERIFY="maybe"))
    message = str(raised.value)
    assert "WORKER_PROCESSES must be a whole number" in message and "LOG_FORMAT must be 'plain' or 'json'" in message
    assert "REDIS_TLS_VERIFY must be 'required' or 'none'" in message


def test_a_bad_reconcile_interval_is_warned_about_and_the_default_used(caplog):
    assert load_config(dict(GOOD, RECONCILE_INTERVAL_SECONDS="soon")).reconcile.interval == 300.0
    assert "RECONCILE_INTERVAL_SECONDS must be a number of seconds, 0 or more" in caplog.text
    assert load_config(dict(GOOD, RECONCILE_INTERVAL_SECONDS="0")).reconcile.interval == 0.0


def test_refusals_of_secrets_never_quote_the_value():
    with pytest.raises(ConfigurationError, match="KITE_APPS must look like") as raised:
        load_config(dict(GOOD, KITE_APPS="1234:abc,sekrit-value"))
    assert "sekrit-value" not in str(raised.value)


def test_broker_secrets_stay_out_of_repr_and_are_redacted_from_logs():
    config = load_config(dict(GOOD, KITE_ACCESS_TOKEN="kite-access-token-value", TELEGRAM_BOT_TOKEN="bot-token-value"))
    assert "kite-access-token-value" not in repr(config.broker("kite")) and "bot-token-value" not in repr(config)
    assert {"kite-access-token-value", "bot-token-value", "kite-secret"} <= set(config.secret_values())
