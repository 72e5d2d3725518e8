"""/api/accounts and /api/brokers on SQLite and PostgreSQL: every status code, and no secret in any answer or the
database (docs/interface.md "Accounts", docs/accounts.md "API")."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import create_app
from app.brokers.feed_status import read_status
from app.brokers.registry import SPECS
from app.config import load_config
from app.db import metadata
from app.redis_keys import feed_status_key, reconcile_request_key, reconcile_status_key
from app.services import Services
from tests.support.env import ADMIN_TOKEN, KITE_SECRET, make_env

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DHAN_TOKEN = "dhan-jwt-never-shown-5f0c1e2d3b4a59687766554433221100"
DHAN_TOKEN_2 = "dhan-jwt-second-never-shown-a1b2c3d4e5f6a7b8c9d0e1f2"
KITE_KEY = "kite-api-key-never-shown-77aa"
KITE_API_SECRET = "kite-api-secret-never-shown-99bb"
PASTED = "pasted-session-never-shown-0a1b2c3d4e5f"
SECRETS = (DHAN_TOKEN, DHAN_TOKEN_2, KITE_KEY, KITE_API_SECRET, PASTED, KITE_SECRET)


def post(client, body, path="/api/accounts"):
    return client.post(path, data=json.dumps(body), headers={**AUTH, "Content-Type": "application/json"})


def patch(client, account_id, body):
    return client.patch(f"/api/accounts/{account_id}", data=json.dumps(body), headers=AUTH)


def put_session(client, account_id, body):
    return client.put(f"/api/accounts/{account_id}/session", data=json.dumps(body), headers=AUTH)


def add_dhan(client, account_id="1100001", token=DHAN_TOKEN, **extra):
    answer = post(client, {"broker": "dhan", "account_id": account_id, "credentials": {"access_token": token}, **extra})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def add_kite(client, **extra):
    body = {"broker": "kite", "label": "zerodha", "credentials": {"api_key": KITE_KEY, "api_secret": KITE_API_SECRET}}
    answer = post(client, {**body, **extra})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_brokers_say_what_each_account_needs(db_client):
    answer = db_client.get("/api/brokers", headers=AUTH)
    assert answer.status_code == 200
    brokers = {b["name"]: b for b in answer.get_json()["brokers"]}
    assert set(brokers) == {spec.name for spec in SPECS if spec.accounts is not None}
    assert {"kite", "dhan", "flattrade", "jainam"} <= set(brokers)
    assert {"kite", "dhan", "flattrade", "jainam", "xts", "groww", "fivepaisa"} <= set(brokers)
    assert brokers["groww"]["polled_seconds"] == 5 and brokers["kite"]["polled_seconds"] is None
    assert brokers["xts"]["login"] == "totp" and brokers["xts"]["postback"] is None
    kite = brokers["kite"]
    assert kite["login"] == "redirect" and kite["postback"] == "signed" and kite["account_id_required"] is False
    names = [c["name"] for c in kite["credentials"]]
    assert names == ["api_key", "api_secret", "access_token"]
    assert all(set(c) == {"name", "secret", "required", "doc"} for c in kite["credentials"])
    assert brokers["dhan"]["login"] == "paste" and brokers["dhan"]["postback"] == "path_token"
    assert brokers["dhan"]["account_id_required"] is True
    assert brokers["flattrade"]["account_id_required"] is True  # its login is a redirect, but NOREN_USER_ID names it
    shoonya = brokers["shoonya"]  # logs in by itself (QuickAuth) with its TOTP credentials (docs/brokers.md §5)
    assert shoonya["login"] == "totp" and shoonya["account_id_required"] is True
    names = [c["name"] for c in shoonya["credentials"]]
    assert names[:4] == ["password", "totp_secret", "vendor_code", "api_secret"]
    assert "api_key" in [c["name"] for c in brokers["firstock"]["credentials"]]
    angel = brokers["angel"]  # logs in by itself from the client code, PIN and TOTP secret (docs/brokers.md)
    assert angel["login"] == "totp" and angel["account_id_required"] is True
    assert [c["name"] for c in angel["credentials"]] == ["api_key", "pin", "totp_secret", "access_token"]
    assert db_client.get("/api/brokers").status_code == 401


def test_add_list_get_change_remove(db_client, db_services, redis_client):
    first = add_dhan(db_client, label="main")
    second = add_dhan(db_client, "1100002", DHAN_TOKEN_2, feed=False)
    kite = add_kite(db_client)
    assert first["session"]["state"] == "active" and first["session"]["login"] == "paste"
    assert first["session"]["expires_at"] is not None and first["source"] == "api" and first["read_only"] is False
    assert first["feed_state"] == "not_started" and first["last_reconcile"] is None and first["last_message_at"] is None
    assert second["feed"] is False and kite["account_id"] == "" and kite["session"]["state"] == "missing"
    assert kite["credentials_set"] == ["api_key", "api_secret"]
    listed = db_client.get("/api/accounts", headers=AUTH)
    assert listed.status_code == 200
    ids = [a["id"] for a in listed.get_json()["accounts"]]
    assert ids == ["env-kite", first["id"], second["id"], kite["id"]]  # the environment's first
    assert listed.get_json()["accounts"][0]["read_only"] is True
    assert db_client.get(f"/api/accounts/{first['id']}", headers=AUTH).get_json()["account_id"] == "1100001"

    changed = patch(db_client, kite["id"], {"label": "Z main", "credentials": {"api_key": "k2"}, "reconcile": False})
    assert changed.status_code == 200
    assert changed.get_json()["label"] == "Z main" and changed.get_json()["reconcile"] is False
    assert db_services.accounts.get(kite["id"], secrets=True).credentials == {
        "api_key": "k2",
        "api_secret": KITE_API_SECRET,
    }
    assert patch(db_client, second["id"], {"feed": True}).get_json()["feed"] is True

    removed = db_client.delete(f"/api/accounts/{second['id']}", headers=AUTH)
    assert removed.status_code == 204 and removed.data == b""
    assert db_client.get(f"/api/accounts/{second['id']}", headers=AUTH).status_code == 404
    assert db_client.delete(f"/api/accounts/{second['id']}", headers=AUTH).status_code == 404
    assert reconcile_request_key(f"dhan:{first['id']}") and redis_client.get(
        reconcile_request_key(f"dhan:{first['id']}")
    )


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"account_id": "1"}, "broker"),
        ({"broker": "nope", "account_id": "1"}, "unknown broker 'nope'"),
        ({"broker": 7, "account_id": "1"}, "broker: Not a valid string"),
        ({"broker": "dhan"}, "account_id is required for dhan"),
        ({"broker": "dhan", "account_id": "   "}, "account_id is required"),
        ({"broker": "dhan", "account_id": "1" * 129}, "account_id"),
        ({"broker": "dhan", "account_id": "11 00"}, "printable ASCII without spaces"),
        ({"broker": "dhan", "account_id": "1\u0000"}, "control characters"),
        ({"broker": "flattrade"}, "account_id is required for flattrade"),
        ({"broker": "dhan", "account_id": "1", "credentials": {"api_key": "x"}}, "unknown dhan credentials 'api_key'"),
        ({"broker": "kite", "credentials": {"api_key": "k"}}, "kite accounts need credentials api_secret"),
        (
            {"broker": "kite", "credentials": {"api_key": "k", "api_secret": 5}},
            "credentials.api_secret must be a string",
        ),
        ({"broker": "kite", "credentials": {"api_key": "k", "api_secret": " "}}, "credentials.api_secret is blank"),
        ({"broker": "kite", "credentials": {"api_key": "k", "api_secret": "s" * 5000}}, "longer than 4096"),
        ({"broker": "dhan", "account_id": "1", "credentials": {"access_token": "a\nb"}}, "control characters"),
        ({"broker": "dhan", "account_id": "1", "credentials": {"access_token": "\ud800"}}, "control characters"),
        ({"broker": "dhan", "account_id": "1", "credentials": []}, "credentials: Not a valid mapping"),
        ({"broker": "dhan", "account_id": "1", "feed": "yes"}, "feed: must be true or false"),
        ({"broker": "dhan", "account_id": "1", "reconcile": 1}, "reconcile: must be true or false"),
        ({"broker": "dhan", "account_id": "1", "label": ["x"]}, "label: Not a valid string"),
        ({"broker": "dhan", "account_id": "1", "label": "x" * 201}, "label"),
        ({"broker": "dhan", "account_id": "1", "colour": "red"}, "colour: Unknown field"),
    ],
)
def test_refused_additions_say_what_to_fix(db_client, body, says):
    answer = post(db_client, body)
    assert answer.status_code == 400, answer.get_json()
    assert says in answer.get_json()["error"]
    assert db_client.get("/api/accounts", headers=AUTH).get_json()["accounts"][1:] == []


@pytest.mark.parametrize("raw", [b"", b"null", b"[]", b'"x"', b"{", b"\xff\xfe", b'{"broker": NaN}', b"[" * 50000])
def test_bodies_that_are_not_json_objects_are_400(db_client, raw):
    answer = db_client.post("/api/accounts", data=raw, headers=AUTH)
    assert answer.status_code == 400 and "JSON object" in answer.get_json()["error"]


def test_duplicates_are_409(db_client):
    add_dhan(db_client)
    again = post(db_client, {"broker": "dhan", "account_id": "1100001"})
    assert again.status_code == 409 and "dhan account 1100001 exists" in again.get_json()["error"]
    # Kite accounts may wait for the login that names their user id, several at once (a platform's users).
    add_kite(db_client)
    waiting = post(db_client, {"broker": "kite", "credentials": {"api_key": "a", "api_secret": "b"}})
    assert waiting.status_code == 201 and waiting.get_json()["account_id"] == ""
    add_kite(db_client, account_id="AB1234")  # a Kite account may name its user id
    credentials = {"api_key": "a", "api_secret": "b"}
    again = post(db_client, {"broker": "kite", "account_id": "AB1234", "credentials": credentials})
    assert again.status_code == 409


def test_changes_refused(db_client):
    kite = add_kite(db_client)
    for body, says in [
        ({}, "name at least one"),
        ({"credentials": {"access_token": "t"}}, "PUT it to /api/accounts/<id>/session"),
        ({"credentials": {"api_secret": None}}, "cannot be removed"),
        ({"credentials": {"nope": "x"}}, "unknown kite credentials 'nope'"),
        ({"feed": None}, "feed"),
        ({"broker": "dhan"}, "broker: Unknown field"),
    ]:
        answer = patch(db_client, kite["id"], body)
        assert answer.status_code == 400 and says in answer.get_json()["error"], (body, answer.get_json())
    assert patch(db_client, "acc_0000000000000000", {"label": "x"}).status_code == 404
    assert db_client.patch(f"/api/accounts/{kite['id']}", data=b"{", headers=AUTH).status_code == 400


def test_the_environment_account_is_read_only(db_client):
    for answer in (
        patch(db_client, "env-kite", {"label": "x"}),
        db_client.delete("/api/accounts/env-kite", headers=AUTH),
        put_session(db_client, "env-kite", {"access_token": PASTED}),
        db_client.post("/api/accounts/env-kite/postback-token", headers=AUTH),
    ):
        assert answer.status_code == 409 and "environment" in answer.get_json()["error"]
    shown = db_client.get("/api/accounts/env-kite", headers=AUTH).get_json()
    assert shown["source"] == "environment" and shown["credentials_set"] == ["api_secret"]
    assert db_client.get("/api/accounts/env-dhan", headers=AUTH).status_code == 404


def test_the_environments_account_cannot_be_added_again(redis_client, redis_url, sqlite_url, tmp_path):
    """DHAN_CLIENT_ID's account added as data too would be connected twice (a broker may end both sessions)."""
    env = make_env(redis_url, sqlite_url, tmp_path, DHAN_CLIENT_ID="1100009", DHAN_ACCESS_TOKEN="env-dhan-token")
    services = Services.build(load_config(env))
    try:
        client = create_app(services.config, services).test_client()
        twin = post(client, {"broker": "dhan", "account_id": "1100009", "credentials": {"access_token": DHAN_TOKEN}})
        assert twin.status_code == 409 and "the environment's account (env-dhan)" in twin.get_json()["error"]
        assert post(client, {"broker": "dhan", "account_id": "1100010"}).status_code == 201
    finally:
        services.engine.dispose()


def test_a_pasted_session_takes_over_and_asks_for_a_reconciliation(db_client, redis_client):
    kite = add_kite(db_client)
    until = (datetime.now(UTC) + timedelta(hours=3)).replace(microsecond=0, tzinfo=None)
    answer = put_session(db_client, kite["id"], {"access_token": PASTED, "expires_at": until.isoformat()})
    assert answer.status_code == 200, answer.get_json()
    session = answer.get_json()["session"]
    assert session["state"] == "active" and session["expires_at"].startswith(until.isoformat())  # naive = UTC
    assert redis_client.get(reconcile_request_key(f"kite:{kite['id']}")) == b"new session"
    default = put_session(db_client, kite["id"], {"access_token": PASTED + "2"}).get_json()["session"]
    rollover = datetime.fromisoformat(default["expires_at"].replace("Z", "+00:00"))
    assert rollover.astimezone(UTC).hour == 0 and rollover.minute == 30  # 06:00 IST
    for body, says in [
        ({"expires_at": until.isoformat()}, "access_token"),
        ({"access_token": PASTED, "expires_at": "2020-01-01T00:00:00Z"}, "in the past"),
        ({"access_token": PASTED, "expires_at": "tomorrow"}, "ISO 8601"),
        ({"access_token": PASTED, "expires_at": 5}, "ISO 8601"),
        ({"access_token": ""}, "blank"),
        ({"access_token": ["x"]}, "must be a string"),
        ({"access_token": PASTED, "extra": 1}, "Unknown field"),
    ]:
        refused = put_session(db_client, kite["id"], body)
        assert refused.status_code == 400 and says in refused.get_json()["error"], (body, refused.get_json())
    assert put_session(db_client, "acc_0000000000000000", {"access_token": PASTED}).status_code == 404


def test_reconcile_one_account(db_client, redis_client):
    dhan = add_dhan(db_client)
    answer = db_client.post(f"/api/accounts/{dhan['id']}/reconcile", headers=AUTH)
    assert answer.status_code == 202 and answer.get_json() == {"requested": f"dhan:{dhan['id']}", "status": "queued"}
    assert redis_client.get(reconcile_request_key(f"dhan:{dhan['id']}")).startswith(b"on demand")
    kite = add_kite(db_client)
    missing = db_client.post(f"/api/accounts/{kite['id']}/reconcile", headers=AUTH)
    assert missing.status_code == 409 and "session is missing" in missing.get_json()["error"]
    patch(db_client, dhan["id"], {"reconcile": False})
    off = db_client.post(f"/api/accounts/{dhan['id']}/reconcile", headers=AUTH)
    assert off.status_code == 409 and "reconciliation is off" in off.get_json()["error"]
    assert db_client.post("/api/accounts/acc_0000000000000000/reconcile", headers=AUTH).status_code == 404


def test_a_postback_url_of_its_own_shown_once_and_rotating(db_client, db_services):
    dhan = add_dhan(db_client)
    first = db_client.post(f"/api/accounts/{dhan['id']}/postback-token", headers=AUTH)
    assert first.status_code == 200
    url = first.get_json()["postback_url"]
    assert url.startswith("https://orderhook.example.com/postbacks/dhan/")
    token = url.rsplit("/", 1)[1]
    assert db_services.accounts.by_postback_token(token).id == dhan["id"]
    shown = db_client.get(f"/api/accounts/{dhan['id']}", headers=AUTH)
    assert shown.get_json()["postback_token"] is True and token not in shown.get_data(as_text=True)
    second = db_client.post(f"/api/accounts/{dhan['id']}/postback-token", headers=AUTH).get_json()["postback_url"]
    assert second != url and db_services.accounts.by_postback_token(token) is None
    kite = add_kite(db_client)
    signed = db_client.post(f"/api/accounts/{kite['id']}/postback-token", headers=AUTH)
    assert signed.status_code == 409 and "kite postbacks are signed" in signed.get_json()["error"]
    assert db_client.post("/api/accounts/acc_0000000000000000/postback-token", headers=AUTH).status_code == 404


def test_the_view_carries_feed_and_reconciliation_state(db_client, redis_client):
    dhan = add_dhan(db_client)
    name = f"dhan:{dhan['id']}"
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    redis_client.hset(
        feed_status_key(name),
        mapping={"state": "running", "connected": "1", "last_message_at": now, "updated_at": now},
    )
    redis_client.hset(reconcile_status_key(name), mapping={"finished_at": now, "orders_seen": "3", "last_error": ""})
    shown = db_client.get(f"/api/accounts/{dhan['id']}", headers=AUTH).get_json()
    assert shown["feed_state"] == "running" and shown["feed_connected"] is True and shown["last_message_at"] == now
    assert shown["last_reconcile"]["orders_seen"] == 3 and shown["last_reconcile"]["finished_at"] == now
    old = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    redis_client.hset(feed_status_key(name), "updated_at", old)
    assert read_status(redis_client, name)["state"] == "running"
    stale = db_client.get(f"/api/accounts/{dhan['id']}", headers=AUTH).get_json()
    assert stale["feed_state"] == "stale" and stale["feed_connected"] is False  # as GET /api/feeds says it


def test_unknown_and_odd_ids_are_404(db_client):
    for account_id in ("acc_0000000000000000", "x" * 300, "%C3%A9", "env-nope"):
        answer = db_client.get(f"/api/accounts/{account_id}", headers=AUTH)
        assert answer.status_code == 404 and "no account" in answer.get_json()["error"]


def test_auth_is_the_admin_apis(db_client):
    assert db_client.get("/api/accounts").status_code == 401
    assert db_client.get("/api/accounts", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert db_client.post("/api/accounts", data=b"{}").status_code == 401
    db_client.post("/signin", data={"token": ADMIN_TOKEN})
    assert db_client.get("/api/accounts").status_code == 200  # the session cookie reads
    refused = db_client.post("/api/accounts", data=json.dumps({"broker": "dhan", "account_id": "1"}))
    assert refused.status_code == 403 and "X-CSRF-Token" in refused.get_json()["error"]
    page = db_client.get("/").get_data(as_text=True)
    csrf = page.split('name="csrf-token" content="', 1)[1].split('"', 1)[0]
    made = db_client.post(
        "/api/accounts", data=json.dumps({"broker": "dhan", "account_id": "1"}), headers={"X-CSRF-Token": csrf}
    )
    assert made.status_code == 201


def _other_key_client(db_services, tmp_path: Path, key: str):
    """A second app over the same database and Redis with another FEEDS_SECRET_KEY."""
    env = make_env(db_services.config.redis_url, db_services.config.database_url, tmp_path, FEEDS_SECRET_KEY=key)
    services = Services.build(load_config(env))
    return create_app(services.config, services).test_client(), services


def test_a_broken_secret_key_is_503(db_client, db_services, tmp_path):
    dhan = add_dhan(db_client)
    other, services = _other_key_client(db_services, tmp_path, Fernet.generate_key().decode())
    try:
        for answer in (
            other.get("/api/accounts", headers=AUTH),
            other.get(f"/api/accounts/{dhan['id']}", headers=AUTH),
            patch(other, dhan["id"], {"credentials": {}, "label": "x"}),
        ):
            assert answer.status_code == 503 and "FEEDS_SECRET_KEY" in answer.get_json()["error"]
    finally:
        services.engine.dispose()
    broken, services = _other_key_client(db_services, tmp_path, "not-a-fernet-key")
    try:
        answer = post(broken, {"broker": "dhan", "account_id": "2", "credentials": {"access_token": DHAN_TOKEN}})
        assert answer.status_code == 503 and "not a valid Fernet key" in answer.get_json()["error"]
    finally:
        services.engine.dispose()


def test_no_secret_in_any_answer_or_the_database(db_client, db_services, tmp_path, caplog):
    caplog.set_level("DEBUG")
    answers = []
    dhan = add_dhan(db_client)
    add_dhan(db_client, "1100002", DHAN_TOKEN_2)
    kite = add_kite(db_client)
    answers.append(put_session(db_client, kite["id"], {"access_token": PASTED}))
    answers.append(patch(db_client, kite["id"], {"credentials": {"api_secret": KITE_API_SECRET}}))
    answers.append(db_client.post(f"/api/accounts/{dhan['id']}/reconcile", headers=AUTH))
    answers.append(db_client.get("/api/accounts", headers=AUTH))
    answers.append(db_client.get(f"/api/accounts/{kite['id']}", headers=AUTH))
    answers.append(db_client.get("/api/accounts/env-kite", headers=AUTH))
    answers.append(
        post(db_client, {"broker": "dhan", "account_id": "1100001", "credentials": {"access_token": DHAN_TOKEN}})
    )
    answers.append(
        post(db_client, {"broker": "dhan", "account_id": "9", "credentials": {"access_token": DHAN_TOKEN + "\n\x01"}})
    )
    for answer in answers:
        assert_no_secret(answer.get_data(as_text=True))
    assert_no_secret(caplog.text)
    assert db_services.accounts.get(kite["id"], secrets=True).session.token == PASTED
    with db_services.engine.connect() as conn:
        dumped = b"".join(
            repr(tuple(row)).encode() for table in metadata.sorted_tables for row in conn.execute(sa.select(table))
        )
    for secret in SECRETS:
        assert secret.encode() not in dumped
    url = db_services.config.database_url
    if url.startswith("sqlite"):
        db_services.engine.dispose()
        raw = b"".join(p.read_bytes() for p in Path(url.removeprefix("sqlite:///")).parent.glob("orderhook.sqlite3*"))
        assert raw and not any(secret.encode() in raw for secret in SECRETS)


FIELDS = ["broker", "account_id", "label", "credentials", "feed", "reconcile", "access_token", "expires_at", "x"]
json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False),
    st.text(max_size=30),
    st.sampled_from(["dhan", "kite", "flattrade", "", " ", "\u0000", "\ud800", "2099-01-01T00:00", "api_key"]),
)
json_value = st.recursive(
    json_leaf,
    lambda kids: st.one_of(st.lists(kids, max_size=3), st.dictionaries(st.text(max_size=10), kids, max_size=3)),
)
hostile_object = st.dictionaries(
    st.one_of(st.sampled_from(FIELDS), st.text(max_size=8)),
    st.one_of(json_value, st.dictionaries(st.sampled_from(["api_key", "api_secret", "access_token", "z"]), json_value)),
    max_size=5,
)


def test_hostile_bodies_on_a_real_account_are_never_a_5xx(client, services):
    """Every write endpoint, against an account that exists (the fuzz of tests/integration hits unknown ids)."""
    made = add_dhan(client)
    paths = [
        ("POST", "/api/accounts"),
        ("PATCH", f"/api/accounts/{made['id']}"),
        ("PUT", f"/api/accounts/{made['id']}/session"),
    ]

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(target=st.sampled_from(paths), body=hostile_object, ascii=st.booleans())
    def never_5xx(target, body, ascii):
        method, path = target
        raw = json.dumps(body, ensure_ascii=ascii).encode("utf-8", "surrogatepass")  # escaped lone surrogates too
        answer = client.open(path, method=method, data=raw, headers=AUTH)
        assert answer.status_code < 500, (method, path, body, answer.get_data(as_text=True))
        if answer.status_code >= 400:
            assert answer.get_json()["error"]

    never_5xx()
