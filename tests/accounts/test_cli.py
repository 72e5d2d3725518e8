"""`flask accounts ...`: list, add, remove, session, reconcile, postback-token; secrets asked hidden, never echoed."""

from __future__ import annotations

import json

import pytest

from app import create_app
from app.redis_keys import reconcile_request_key

TOKEN = "dhan-cli-token-never-echoed-0123456789abcdef"
SECRET = "kite-cli-secret-never-echoed-fedcba9876"


@pytest.fixture
def runner(db_services):
    return create_app(db_services.config, db_services).test_cli_runner()


def accounts(runner, *args: str, input: str | None = None):
    return runner.invoke(args=["accounts", *args], input=input)


def test_add_list_session_reconcile_remove(runner, db_services, redis_client):
    added = accounts(runner, "add", "dhan", "1100001", "--label", "main", input=TOKEN + "\n")
    assert added.exit_code == 0, added.output
    assert "session active" in added.output and TOKEN not in added.output  # hidden prompt: never echoed
    made = db_services.accounts.list()[0]
    assert db_services.accounts.get(made.id, secrets=True).session.token == TOKEN

    kite = accounts(runner, "add", "kite", input=f"key-1\n{SECRET}\n\n")
    assert kite.exit_code == 0, kite.output
    assert SECRET not in kite.output and "session missing" in kite.output
    kite_id = next(a.id for a in db_services.accounts.list() if a.broker == "kite")
    assert db_services.accounts.get(kite_id, secrets=True).credentials == {"api_key": "key-1", "api_secret": SECRET}

    listed = accounts(runner, "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split()[:8] == ["id", "broker", "account_id", "label", "source", "feed", "reconcile", "session"]
    assert "env-kite" in lines[1] and made.id in lines[2] and "1100001" in lines[2] and "active" in lines[2]
    assert TOKEN not in listed.output and SECRET not in listed.output
    as_json = json.loads(accounts(runner, "list", "--json").output)
    assert [a["id"] for a in as_json["accounts"]] == ["env-kite", made.id, kite_id]

    pasted = accounts(runner, "session", kite_id, "--stdin", input="pasted-kite-token-1\n")
    assert pasted.exit_code == 0, pasted.output and "session active" in pasted.output
    assert "pasted-kite-token-1" not in pasted.output
    assert db_services.accounts.get(kite_id, secrets=True).session.token == "pasted-kite-token-1"
    assert redis_client.get(reconcile_request_key(f"kite:{kite_id}")) == b"new session"
    past = accounts(runner, "session", kite_id, "--expires-at", "2020-01-01T00:00", input="t-2\n")
    assert past.exit_code == 1 and "in the past" in past.output

    asked = accounts(runner, "reconcile", made.id)
    assert asked.exit_code == 0 and "requested" in asked.output
    assert redis_client.get(reconcile_request_key(f"dhan:{made.id}")) == b"on demand (CLI)"

    url = accounts(runner, "postback-token", made.id)
    assert url.exit_code == 0 and url.output.startswith("https://orderhook.example.com/postbacks/dhan/")
    assert db_services.accounts.by_postback_token(url.output.strip().rsplit("/", 1)[1]).id == made.id
    signed = accounts(runner, "postback-token", kite_id)
    assert signed.exit_code == 1 and "signed" in signed.output

    kept = accounts(runner, "remove", made.id, input="n\n")
    assert kept.exit_code == 1 and db_services.accounts.get(made.id)
    gone = accounts(runner, "remove", made.id, "--yes")
    assert gone.exit_code == 0 and "removed" in gone.output
    assert [a.id for a in db_services.accounts.list()] == [kite_id]


def test_refusals_are_one_line_and_exit_1(runner, db_services):
    assert "account_id is required for dhan" in accounts(runner, "add", "dhan", input="\n").output
    unknown = accounts(runner, "add", "nope", "1")
    assert unknown.exit_code == 1 and "unknown broker 'nope'" in unknown.output
    lines = accounts(runner, "add", "dhan", "7", "--stdin", input="api_key=x\n")
    assert lines.exit_code == 1 and "unknown dhan credentials 'api_key'" in lines.output
    accounts(runner, "add", "dhan", "7", "--stdin", input=f"access_token={TOKEN}\n")
    again = accounts(runner, "add", "dhan", "7", "--stdin", input="")
    assert again.exit_code == 1 and "dhan account 7 exists" in again.output
    for args in (["remove", "env-kite", "--yes"], ["session", "env-kite", "--stdin"]):
        refused = accounts(runner, *args, input="x\n")
        assert refused.exit_code == 1 and "read-only" in refused.output
    missing = accounts(runner, "reconcile", "acc_nope")
    assert missing.exit_code == 1 and "no account 'acc_nope'" in missing.output
    assert "Traceback" not in missing.output
