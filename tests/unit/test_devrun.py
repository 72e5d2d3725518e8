"""app/devrun.py without processes: development secrets, the exports of `scripts/dev env`, the Kite sample, the bind."""

from __future__ import annotations

import json
import shlex
import subprocess
from datetime import datetime

import pytest

from app.brokers.kite.adapter import KiteAdapter
from app.config import forwarding_summary, load_config
from app.devrun import commands, dev_secrets, development_environment, kite_sample, main, print_exports
from app.exceptions import ConfigurationError
from app.times import IST


def test_development_secrets_are_made_once_and_a_kite_secret_is_added_to_an_older_file(tmp_path):
    (tmp_path / "dev-secrets.json").write_text(json.dumps({"POSTBACK_TOKEN": "kept-token-0123456789"}))
    made = dev_secrets(tmp_path)
    assert made["POSTBACK_TOKEN"] == "kept-token-0123456789"
    assert len(made["KITE_API_SECRET"]) == 32 and made["ADMIN_TOKEN"] and made["FORWARD_SECRET"].startswith("whsec_")
    assert dev_secrets(tmp_path) == made == json.loads((tmp_path / "dev-secrets.json").read_text())
    assert (tmp_path / "dev-secrets.json").stat().st_mode & 0o777 == 0o600


def test_the_user_s_values_win_and_kite_apps_get_no_generated_secret(tmp_path):
    env = development_environment({"INSTANCE_PATH": str(tmp_path), "ADMIN_TOKEN": "mine-0123456789abcdef"})
    assert env["ADMIN_TOKEN"] == "mine-0123456789abcdef" and env["APP_ENV"] == "development"
    assert env["REDIS_URL"] == f"unix://{tmp_path / 'redis.sock'}"
    assert env["KITE_API_SECRET"] == dev_secrets(tmp_path)["KITE_API_SECRET"]
    with_apps = development_environment({"INSTANCE_PATH": str(tmp_path), "KITE_APPS": "1234:their-secret"})
    assert "KITE_API_SECRET" not in with_apps


def test_scripts_dev_env_exports_survive_eval_even_for_hostile_values(tmp_path, monkeypatch, capsys):
    hostile = "x'; touch pwned; echo '$(touch pwned2)`touch pwned3`"
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("ADMIN_TOKEN", hostile)
    monkeypatch.delenv("REDIS_URL", raising=False)
    assert print_exports() == 0
    exports = capsys.readouterr().out
    shell = subprocess.run(
        ["bash", "-c", 'eval "$EXPORTS"; printf %s "$ADMIN_TOKEN"; echo; command -v flask; echo "$APP_ENV"'],
        cwd=tmp_path,
        env={"EXPORTS": exports, "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    token, flask, app_env = shell.stdout.splitlines()
    assert token == hostile and app_env == "development"
    assert flask.endswith(".venv/bin/flask") or flask.endswith("/bin/flask")
    assert not list(tmp_path.glob("pwned*"))


def test_the_kite_sample_passes_kite_s_checksum_with_the_generated_secret(tmp_path):
    env = development_environment({"INSTANCE_PATH": str(tmp_path)})
    config = load_config(env)
    payload = kite_sample(config.kite_api_secret, None, datetime(2026, 11, 21, 9, 15, tzinfo=IST))
    body = json.dumps(payload).encode()
    event = KiteAdapter(config).receive(body, {}, token=None, received_at="2026-11-21T03:45:00.000000Z")
    assert event.to_dict()["status"] == "FILLED" and event.to_dict()["exchange_time"] == "2026-11-21T03:45:00.000000Z"
    other = kite_sample(config.kite_api_secret, None, datetime(2026, 11, 21, 9, 15, tzinfo=IST))
    assert other["order_id"] != payload["order_id"]  # a new order each time


@pytest.mark.parametrize(("host", "bind"), [("", "127.0.0.1:8000"), ("0.0.0.0", "0.0.0.0:8000"), ("::", "[::]:8000")])
def test_web_binds_to_dev_listen_host_loopback_by_default(tmp_path, host, bind):
    config = load_config(development_environment({"INSTANCE_PATH": str(tmp_path), "DEV_LISTEN_HOST": host}))
    assert shlex.split(commands(config)["web"])[-2:] == ["--bind", bind]
    assert commands(config)["worker"] == "python -m workers.worker"


def test_a_dev_listen_host_that_is_not_an_address_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigurationError, match="DEV_LISTEN_HOST"):
        load_config(development_environment({"INSTANCE_PATH": str(tmp_path), "DEV_LISTEN_HOST": "everyone"}))


def test_the_banners_say_where_events_are_forwarded(tmp_path):
    env = development_environment({"INSTANCE_PATH": str(tmp_path)})
    assert forwarding_summary(load_config(env)) == "nowhere: set FORWARD_URLS to receive events"
    config = load_config(dict(env, FORWARD_URLS="https://a.example.com/h,https://b.example.com/h"))
    assert forwarding_summary(config) == "https://a.example.com/h, https://b.example.com/h (signed with FORWARD_SECRET)"


def test_an_unknown_sample_broker_is_a_usage_error():
    with pytest.raises(SystemExit) as refused:
        main(["sample", "nobroker"])
    assert refused.value.code == 2
