"""The accounts table on SQLite and PostgreSQL: encrypted at rest, conditional session marks, postback tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from app.accounts.directory import all_accounts, find_account
from app.accounts.model import SessionState, view
from app.accounts.store import AccountExists, AccountNotFound
from app.config import load_config
from app.db import accounts
from app.services import Services
from tests.support.env import make_env

SECRET = "dhan-token-that-must-never-show-0123456789"


def test_account_round_trip_keeps_secrets_encrypted(db_services):
    store = db_services.accounts
    made = store.create("dhan", "1100001", label="main", session_token=SECRET)
    assert made.session.state == SessionState.ACTIVE
    assert made.session.token == ""  # listings never hold the clear token
    assert made.session.expires_at - made.session.logged_in_at == timedelta(hours=24)
    assert store.get(made.id, secrets=True).session.token == SECRET
    with db_services.engine.connect() as conn:
        row = conn.execute(sa.select(accounts)).mappings().one()
    assert SECRET.encode() not in b"".join(bytes(v) for v in row.values() if isinstance(v, (bytes, memoryview)))
    assert SECRET not in repr(made) and SECRET not in str(view(made))


def test_duplicate_account_and_missing_one(db_services):
    store = db_services.accounts
    store.create("dhan", "1100001")
    with pytest.raises(AccountExists):
        store.create("dhan", "1100001")
    store.create("kite", "1100001")  # another broker may share the client id
    with pytest.raises(AccountNotFound):
        store.get("acc_nope")


def test_credentials_merge_key_by_key_and_bump_the_revision(db_services):
    store = db_services.accounts
    made = store.create("kite", "AB1234", credentials={"api_key": "k1", "api_secret": "s1"})
    changed = store.update(made.id, credentials={"api_secret": "s2"}, feed=False)
    assert changed.revision == made.revision + 1 and changed.feed is False
    assert store.get(made.id, secrets=True).credentials == {"api_key": "k1", "api_secret": "s2"}


def test_a_refusal_of_an_old_session_never_marks_a_newer_one(db_services):
    store = db_services.accounts
    made = store.create("dhan", "1100001", session_token="old-token-1")
    old = made.session.revision
    store.set_session(made.id, "new-token-2")
    assert store.mark_session(made.id, SessionState.REFUSED, "HTTP 403", session_revision=old) is False
    current = store.get(made.id)
    assert current.session.state == SessionState.ACTIVE
    revision = current.session.revision
    assert store.mark_session(made.id, SessionState.REFUSED, "HTTP 403", session_revision=revision)
    assert store.mark_session(made.id, SessionState.REFUSED, "HTTP 403", session_revision=revision) is False
    assert store.get(made.id).session.state == SessionState.REFUSED


def test_postback_token_is_kept_as_its_digest_and_rotates(db_services):
    store = db_services.accounts
    made = store.create("dhan", "1100001")
    first = store.new_postback_token(made.id)
    assert store.by_postback_token(first).id == made.id
    second = store.new_postback_token(made.id)
    assert store.by_postback_token(first) is None and store.by_postback_token(second).id == made.id
    with db_services.engine.connect() as conn:
        stored = conn.execute(sa.select(accounts.c.postback_token_hash)).scalar_one()
    assert second not in stored


def test_expired_sessions_are_found(db_services):
    store = db_services.accounts
    made = store.create("dhan", "1100001", session_token="t" * 20)
    soon = datetime.now(UTC) + timedelta(hours=25)
    assert [a.id for a in store.expired_sessions(soon)] == [made.id]
    assert store.expired_sessions() == []


def test_environment_accounts_are_listed_read_only(redis_url, sqlite_url, tmp_path):
    env = make_env(redis_url, sqlite_url, tmp_path) | {"DHAN_CLIENT_ID": "1100009", "DHAN_ACCESS_TOKEN": SECRET}
    config = load_config(env)
    services = Services.build(config)
    try:
        listed = all_accounts(config, services.accounts)
        # make_env sets KITE_API_SECRET: Kite's environment account exists too, without a session.
        assert [(a.id, a.account_id, a.source) for a in listed] == [
            ("env-kite", "", "environment"),
            ("env-dhan", "1100009", "environment"),
        ]
        assert listed[0].session.state == SessionState.MISSING
        dhan = find_account(config, services.accounts, "env-dhan")
        assert dhan.read_only and dhan.session.state == SessionState.ACTIVE
        assert dhan.variables(config.broker("dhan"))["DHAN_ACCESS_TOKEN"] == SECRET
        assert SECRET not in str(view(dhan))
    finally:
        services.engine.dispose()
