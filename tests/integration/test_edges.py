"""The contract at every edge the app sees: /api 401 first, JSON refusals, request ids, logs without secrets."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
import sqlalchemy as sa
from gunicorn.http import errors as http_errors

from app import create_app, logs
from app.api.errors import DATABASE_UNAVAILABLE
from app.config import load_config
from app.exceptions import ConfigurationError
from app.logs import JsonFormatter, PlainFormatter, redact, register_secrets
from app.server import json_error_bytes, refusal_for
from tests.support.env import ADMIN_TOKEN, POSTBACK_TOKEN
from tests.support.helpers import load_fixture

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DHAN = json.dumps(load_fixture("dhan_postback_traded.json")).encode()


def formatted(records: list[logging.LogRecord]) -> str:
    """Every record as both formatters would print it."""
    plain, js = PlainFormatter(), JsonFormatter()
    return "\n".join(f"{plain.format(r)}\n{js.format(r)}" for r in records)


@pytest.mark.parametrize(
    ("method", "url"),
    [("GET", "/api/x"), ("OPTIONS", "/api/orders"), ("DELETE", "/api/orders"), ("GET", "/api"), ("PUT", "/api/")],
)
def test_api_answers_401_before_404_405_and_options(client, method, url):
    answer = client.open(url, method=method)
    assert answer.status_code == 401
    assert answer.get_json()["error"].startswith("missing or wrong bearer token")
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


def test_with_the_token_the_api_says_404_and_405_as_json(client):
    assert client.get("/api/x", headers=AUTH).status_code == 404
    assert client.get("/api/x", headers=AUTH).get_json()["error"]
    wrong_method = client.delete("/api/orders", headers=AUTH)
    assert wrong_method.status_code == 405 and wrong_method.get_json()["error"]


def test_database_outage_is_503_json_with_one_short_log_line(app, services, caplog):
    services.engine = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")
    caplog.set_level(logging.INFO)
    answer = app.test_client().get("/api/orders", headers=AUTH)
    assert answer.status_code == 503
    assert answer.get_json() == {"error": DATABASE_UNAVAILABLE}
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    assert "database unavailable on GET /api/orders" in errors[0].getMessage()
    assert len(errors[0].getMessage()) < 400


def test_request_id_is_echoed_when_sane_and_made_otherwise(client, caplog):
    caplog.set_level(logging.INFO)
    kept = client.get("/healthz", headers={"X-Request-ID": "lb-7f3a.42:1"})
    assert kept.headers["X-Request-ID"] == "lb-7f3a.42:1"
    for bad in ("has space", "x" * 200, "ünï", "<script>", ""):
        made = client.get("/healthz", headers={"X-Request-ID": bad})
        rid = made.headers["X-Request-ID"]
        assert rid != bad and len(rid) == 32 and int(rid, 16) >= 0
    access = [r for r in caplog.records if r.name == "orderhook.access"]
    assert "[lb-7f3a.42:1]" in PlainFormatter().format(access[0])


def test_access_line_redacts_the_token_and_refusals_say_why(client, caplog):
    caplog.set_level(logging.INFO)
    assert client.post(f"/postbacks/dhan/{POSTBACK_TOKEN}", data=b"{not json").status_code == 400
    assert client.post(f"/postbacks/flattrade/{POSTBACK_TOKEN}zz", data=DHAN).status_code == 404
    assert client.post(f"/postbacks/dhan/{POSTBACK_TOKEN}", data=DHAN).status_code == 202
    access = [r for r in caplog.records if r.name == "orderhook.access"]
    assert [r.path for r in access] == ["/postbacks/dhan/<redacted>", "/postbacks/flattrade/<redacted>"] + [
        "/postbacks/dhan/<redacted>"
    ]
    assert [r.status for r in access] == [400, 404, 202]
    refusals = [r for r in caplog.records if r.name == "orderhook.postbacks"]
    assert len(refusals) == 2
    assert "broker=dhan status=400 reason=" in refusals[0].getMessage()
    assert "broker=flattrade status=404 reason=unknown postback URL" in refusals[1].getMessage()
    assert POSTBACK_TOKEN not in formatted(caplog.records)


def test_client_ip_from_x_forwarded_for_only_behind_trusted_proxies(env, services, caplog):
    caplog.set_level(logging.INFO)
    untrusted = create_app(services.config, services).test_client()
    untrusted.get("/healthz", headers={"X-Forwarded-For": "203.0.113.7"})
    trusted_config = load_config(dict(env, TRUSTED_PROXIES="1"))
    trusted = create_app(trusted_config, services).test_client()
    trusted.get("/healthz", headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.7"})
    ips = [r.client_ip for r in caplog.records if r.name == "orderhook.access"]
    assert ips == ["127.0.0.1", "203.0.113.7"]


def test_trusted_proxies_must_be_a_small_number(env, services):
    for bad in ("yes", "-1", "99", "١"):
        with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
            create_app(load_config(dict(env, TRUSTED_PROXIES=bad)), services)


def test_a_stalled_body_is_408_json(client):
    class Stalled(io.RawIOBase):
        def readinto(self, buffer):
            raise TimeoutError("timed out")

    answer = client.post(
        f"/postbacks/dhan/{POSTBACK_TOKEN}",
        environ_overrides={"wsgi.input": Stalled(), "CONTENT_LENGTH": "500"},
    )
    assert answer.status_code == 408 and "stopped arriving" in answer.get_json()["error"]


def test_json_log_lines_are_one_object_per_line_with_request_id(client, caplog):
    caplog.set_level(logging.INFO)
    client.get("/healthz", headers={"X-Request-ID": "abc-1"})
    record = next(r for r in caplog.records if r.name == "orderhook.access")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["request_id"] == "abc-1" and entry["status"] == 200 and entry["path"] == "/healthz"
    try:
        raise ValueError(f"boom on /postbacks/dhan/{POSTBACK_TOKEN}")
    except ValueError:
        failure = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    text = JsonFormatter().format(failure)
    assert "\n" not in text and POSTBACK_TOKEN not in text and "<redacted>" in json.loads(text)["exc_info"]


def test_redact_covers_paths_spellings_and_registered_secrets():
    register_secrets(["s3cr3t-token-value"])
    assert redact("POST /postbacks/dhan/abc HTTP/1.1") == "POST /postbacks/dhan/<redacted> HTTP/1.1"
    assert redact("/POSTBACKS//flattrade/abc?x=1") == "/POSTBACKS//flattrade/<redacted>?x=1"
    assert redact("/postbacks/kite") == "/postbacks/kite"
    assert redact("header s3cr3t-token-value here") == "header <redacted> here"


def test_server_refusals_map_to_contract_statuses():
    assert refusal_for(http_errors.LimitRequestLine(5000, 2048))[0] == 414
    assert refusal_for(http_errors.LimitRequestHeaders("too big"))[0] == 431
    assert refusal_for(http_errors.UnsupportedTransferCoding("xchunked"))[0] == 501
    assert refusal_for(http_errors.InvalidHeader("CONTENT-LENGTH"))[0] == 400
    assert refusal_for(http_errors.InvalidResponseHeader("x")) is None
    assert refusal_for(RuntimeError("app bug")) is None
    raw = json_error_bytes(431, "Request Header Fields Too Large", "too large")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ") and b"Content-Type: application/json" in head
    assert json.loads(body) == {"error": "too large"} and f"Content-Length: {len(body)}".encode() in head


def test_every_formatter_writes_one_line_with_controls_escaped():
    try:
        raise ValueError("bad\nFORGED line \x1b[31m\u202e")
    except ValueError:
        failure = logging.LogRecord("x", logging.ERROR, __file__, 1, "got %s", ("a\r\nb\x00\x85",), sys.exc_info())
    host = logs.RedactingFormatter(logging.Formatter("%(levelname)s %(message)s"))
    for formatter in (PlainFormatter(), JsonFormatter(), host):
        line = formatter.format(failure)
        assert len(line.splitlines()) == 1 and "\x1b" not in line and "\u202e" not in line and "\x00" not in line
        assert "got a\\u000D\\u000Ab\\u0000\\u0085" in line or "got a\\r\\nb\\u0000\\u0085" in line, line
    entry = json.loads(JsonFormatter().format(failure))
    assert entry["message"] == "got a\r\nb\x00\x85" and "FORGED line \x1b[31m\u202e" in entry["exc_info"]
