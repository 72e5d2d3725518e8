"""A postback URL per account and Kite postbacks signed with a data account's api_secret, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json

import pytest
import sqlalchemy as sa

from app.accounts.store import CredentialsUnreadable
from app.api.postbacks import ACCOUNTS
from app.brokers.registry import BY_NAME
from app.db import events
from app.ingest.postback_accounts import (
    APP_CACHE_SECONDS,
    APP_MISS_INTERVAL_SECONDS,
    TOKEN_CACHE_SECONDS,
    PostbackAccounts,
    match_key,
)
from app.redis_keys import STREAM
from tests.support.env import KITE_SECRET, POSTBACK_TOKEN
from tests.support.helpers import load_fixture, run_pipeline, sign_kite

DHAN_ID = "1100000001"  # the client id of the Dhan sample (tests/support/fixtures/dhan_postback_traded.json)
KITE_USER = "ZX9876"
DATA_APP_KEY = "data-app-key-0001"
DATA_APP_SECRET = "data-app-secret-that-is-not-the-environments-0123"


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(db_services, db_client) -> Clock:
    """The app's account lookups on a clock the test moves (the caches' bounds without sleeping)."""
    moved = Clock()
    db_client.application.extensions[ACCOUNTS] = PostbackAccounts(db_services.accounts, clock=moved)
    return moved


def dhan_body(**changes) -> bytes:
    """Dhan's TRADED sample, with fields changed (None removes one)."""
    payload = load_fixture("dhan_postback_traded.json")
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return json.dumps(payload).encode()


def kite_body(secret: str, **changes) -> bytes:
    """Kite's COMPLETE sample for the data app, signed with `secret`."""
    payload = copy.deepcopy(load_fixture("kite_postback_complete.json"))
    payload |= {"app_id": DATA_APP_KEY, "user_id": KITE_USER, "placed_by": KITE_USER} | changes
    return json.dumps(sign_kite(payload, secret)).encode()


def post(client, broker: str, token: str | None, data: bytes):
    """POST a body to a broker's postback route (with this path token)."""
    url = BY_NAME[broker].postback_path(token) if token is not None else f"/postbacks/{broker}"
    return client.post(url, data=data, content_type="application/json")


def stored_account_ids(services) -> list[str | None]:
    """The account_id of every stored event, once the worker has run."""
    run_pipeline(services)
    with services.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.select(events.c.account_id).order_by(events.c.id))]


def refused(response, status: int, redis_client, *words: str) -> None:
    """A JSON refusal with this status, saying these words, with nothing queued."""
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert all(word in error for word in words), error
    assert redis_client.xlen(STREAM) == 0


@pytest.fixture
def dhan_account(db_services):
    """A Dhan account added as data with its own postback token: (account, token)."""
    account = db_services.accounts.create("dhan", DHAN_ID, label="main")
    return account, db_services.accounts.new_postback_token(account.id)


# A postback URL per account


def test_an_accounts_own_token_is_accepted_and_stored_as_its_account(db_services, db_client, dhan_account):
    _, token = dhan_account
    response = post(db_client, "dhan", token, dhan_body())
    assert response.status_code == 202, response.get_data(as_text=True)
    assert stored_account_ids(db_services) == [DHAN_ID]


def test_a_body_naming_another_account_is_refused_403(db_services, db_client, redis_client, dhan_account):
    _, token = dhan_account
    response = post(db_client, "dhan", token, dhan_body(dhanClientId="1100000002"))
    refused(response, 403, redis_client, "another account", "URL")
    assert token not in response.get_data(as_text=True)


def test_a_body_naming_no_account_is_taken_as_the_urls(db_services, db_client, dhan_account):
    _, token = dhan_account
    assert post(db_client, "dhan", token, dhan_body(dhanClientId=None)).status_code == 202
    assert post(db_client, "dhan", token, dhan_body(dhanClientId="  ", orderId="34125112418234")).status_code == 202
    assert stored_account_ids(db_services) == [DHAN_ID, DHAN_ID]


def test_the_client_id_is_compared_without_surrounding_space_or_letter_case(db_services, db_client):
    account = db_services.accounts.create("flattrade", "AJ0101")
    token = db_services.accounts.new_postback_token(account.id)
    payload = load_fixture("flattrade_noren_complete.json") | {"uid": " aj0101 ", "actid": "aj0101"}
    assert post(db_client, "flattrade", token, json.dumps(payload).encode()).status_code == 202
    assert stored_account_ids(db_services) == ["AJ0101"]  # as the account holds it
    assert match_key("१२३") != match_key("123")  # no folding beyond ASCII letters


def test_a_flattrade_trading_account_id_is_the_accounts_too(db_services, db_client, redis_client):
    account = db_services.accounts.create("flattrade", "AJ0101", credentials={"account": "AJ0101X"})
    token = db_services.accounts.new_postback_token(account.id)
    payload = load_fixture("flattrade_noren_complete.json") | {"actid": "AJ0101X"}
    assert post(db_client, "flattrade", token, json.dumps(payload).encode()).status_code == 202
    other = payload | {"actid": "ZZ0001", "uid": "ZZ0001", "norenordno": "24031200000026"}
    refused(post(db_client, "flattrade", token, json.dumps(other).encode()), 403, _Queued(redis_client, 1))
    assert stored_account_ids(db_services) == ["AJ0101X"]


class _Queued:
    """A stand-in for redis_client in `refused` when some entries are already queued."""

    def __init__(self, client, already: int) -> None:
        self.client, self.already = client, already

    def xlen(self, stream: str) -> int:
        return self.client.xlen(stream) - self.already


def test_a_rotated_token_stops_working_within_the_cache_bound(db_services, db_client, redis_client, clock):
    account = db_services.accounts.create("dhan", DHAN_ID)
    old = db_services.accounts.new_postback_token(account.id)
    assert post(db_client, "dhan", old, dhan_body()).status_code == 202
    new = db_services.accounts.new_postback_token(account.id)
    assert post(db_client, "dhan", new, dhan_body()).status_code == 200  # the new one at once (a duplicate here)
    clock.now += TOKEN_CACHE_SECONDS + 0.01
    refused(post(db_client, "dhan", old, dhan_body()), 404, _Queued(redis_client, 1), "unknown postback URL")


def test_a_removed_accounts_token_stops_working_within_the_cache_bound(db_services, db_client, redis_client, clock):
    account = db_services.accounts.create("dhan", DHAN_ID)
    token = db_services.accounts.new_postback_token(account.id)
    assert post(db_client, "dhan", token, dhan_body()).status_code == 202
    db_services.accounts.delete(account.id)
    clock.now += TOKEN_CACHE_SECONDS + 0.01
    refused(post(db_client, "dhan", token, dhan_body()), 404, _Queued(redis_client, 1))


def test_a_token_of_another_brokers_account_is_unknown_here(db_services, db_client, redis_client):
    account = db_services.accounts.create("flattrade", "AJ0101")
    token = db_services.accounts.new_postback_token(account.id)
    refused(post(db_client, "dhan", token, dhan_body()), 404, redis_client, "unknown postback URL")
    refused(post(db_client, "jainam", token, dhan_body()), 404, redis_client, "unknown postback URL")


def test_postback_token_still_works_and_never_reads_the_database(db_services, db_client, dhan_account):
    class NoStore:
        def __getattr__(self, name):
            raise AssertionError(f"POSTBACK_TOKEN's path read the accounts store ({name})")

    db_client.application.extensions[ACCOUNTS] = PostbackAccounts(NoStore())
    response = post(db_client, "dhan", POSTBACK_TOKEN, dhan_body(dhanClientId="1100000002"))
    assert response.status_code == 202, response.get_data(as_text=True)
    assert stored_account_ids(db_services) == ["1100000002"]  # the environment's accounts: any client id


@pytest.mark.parametrize(
    "token",
    [
        "x" * 5000,
        "A" * 42 + "é",
        "ünïcødé-tøkén",
        "%E2%80%AE" + "A" * 40,
        "%252F..%252F",
        "..",
        "tok%20with%20spaces",
        "\u202e" * 43,
        "%ED%A0%80" + "A" * 40,  # a lone surrogate, percent-encoded
        "%00",  # the service refuses a NUL anywhere in the URL first (400)
    ],
)
def test_hostile_tokens_are_unknown_never_a_server_error(db_services, db_client, redis_client, dhan_account, token):
    response = db_client.post(f"/postbacks/dhan/{token}", data=dhan_body(), content_type="application/json")
    assert response.status_code == (400 if token == "%00" else 404), response.get_data(as_text=True)
    assert response.is_json and response.get_json()["error"]
    assert redis_client.xlen(STREAM) == 0


def test_a_token_one_character_off_is_unknown(db_services, db_client, redis_client, dhan_account):
    _, token = dhan_account
    changed = token[:-1] + ("A" if token[-1] != "A" else "B")
    refused(post(db_client, "dhan", changed, dhan_body()), 404, redis_client)
    refused(post(db_client, "dhan", token + "A", dhan_body()), 404, redis_client)


def test_an_account_token_is_looked_up_once_per_cache_period(db_services, dhan_account):
    _, token = dhan_account
    calls = []
    store = db_services.accounts
    original = store.by_postback_token
    store.by_postback_token = lambda t: calls.append(t) or original(t)
    clock = Clock()
    lookups = PostbackAccounts(store, clock=clock)
    for _ in range(50):
        assert lookups.by_token("dhan", token) is not None
    assert len(calls) == 1
    clock.now += TOKEN_CACHE_SECONDS + 0.01
    assert lookups.by_token("dhan", token) is not None and len(calls) == 2


# Kite postbacks of accounts added as data


@pytest.fixture
def kite_account(db_services):
    """A Kite account added as data, with its own app's api_key and api_secret."""
    return db_services.accounts.create(
        "kite", KITE_USER, credentials={"api_key": DATA_APP_KEY, "api_secret": DATA_APP_SECRET}
    )


def test_a_data_accounts_api_secret_verifies_its_apps_postbacks(db_services, db_client, kite_account):
    response = post(db_client, "kite", None, kite_body(DATA_APP_SECRET))
    assert response.status_code == 202, response.get_data(as_text=True)
    lowercase = kite_body(DATA_APP_SECRET, user_id="zx9876", order_id="220303000308933")
    assert post(db_client, "kite", None, lowercase).status_code == 202
    assert stored_account_ids(db_services) == [KITE_USER, KITE_USER]


def test_a_wrong_secret_for_a_data_app_is_refused_403(db_services, db_client, redis_client, kite_account):
    response = post(db_client, "kite", None, kite_body("not-the-secret"))
    refused(response, 403, redis_client, "incorrect checksum")
    assert DATA_APP_SECRET not in response.get_data(as_text=True)
    refused(post(db_client, "kite", None, kite_body(KITE_SECRET)), 403, redis_client, "incorrect checksum")


def test_a_data_apps_postback_naming_a_user_not_added_with_it_is_refused_403(
    db_services, db_client, redis_client, kite_account
):
    db_services.accounts.create("kite", "OT1111", credentials={"api_key": "other-app", "api_secret": "other-secret"})
    for user in ("OT1111", "NOBODY1"):
        response = post(db_client, "kite", None, kite_body(DATA_APP_SECRET, user_id=user, placed_by=user))
        refused(response, 403, redis_client, "another account")
        assert DATA_APP_KEY not in response.get_data(as_text=True)  # an api_key is a credential


def test_one_app_serving_several_added_users_takes_each_of_theirs(db_services, db_client, redis_client, kite_account):
    credentials = {"api_key": DATA_APP_KEY, "api_secret": DATA_APP_SECRET}
    db_services.accounts.create("kite", "YW5555", credentials=credentials)
    second = kite_body(DATA_APP_SECRET, user_id="YW5555", order_id="220303000308934")
    assert post(db_client, "kite", None, second).status_code == 202
    nameless = kite_body(DATA_APP_SECRET, user_id="", placed_by="", order_id="220303000308935")
    refused(post(db_client, "kite", None, nameless), 403, _Queued(redis_client, 1), "names no account")
    assert stored_account_ids(db_services) == ["YW5555"]


def test_the_environments_kite_secret_still_verifies_any_user(db_services, db_client):
    payload = sign_kite(load_fixture("kite_postback_complete.json"), KITE_SECRET)
    assert post(db_client, "kite", None, json.dumps(payload).encode()).status_code == 202
    assert stored_account_ids(db_services) == ["AB1234"]


def test_a_changed_api_secret_takes_effect_within_the_cache_bound(
    db_services, db_client, redis_client, kite_account, clock
):
    assert post(db_client, "kite", None, kite_body(DATA_APP_SECRET)).status_code == 202
    db_services.accounts.update(kite_account.id, credentials={"api_secret": "rotated-secret-0123456789"})
    clock.now += APP_CACHE_SECONDS + 0.01
    later = kite_body(DATA_APP_SECRET, order_id="220303000308936")
    refused(post(db_client, "kite", None, later), 403, _Queued(redis_client, 1), "incorrect checksum")
    rotated = kite_body("rotated-secret-0123456789", order_id="220303000308936")
    assert post(db_client, "kite", None, rotated).status_code == 202


def test_an_added_app_is_found_on_the_first_miss(db_services, db_client, clock):
    assert post(db_client, "kite", None, kite_body(DATA_APP_SECRET)).status_code == 403  # no such app yet
    db_services.accounts.create("kite", KITE_USER, credentials={"api_key": DATA_APP_KEY, "api_secret": DATA_APP_SECRET})
    clock.now += APP_MISS_INTERVAL_SECONDS + 0.01
    assert post(db_client, "kite", None, kite_body(DATA_APP_SECRET)).status_code == 202


def test_a_flood_of_unknown_app_ids_reads_the_accounts_once_per_interval(db_services, kite_account):
    calls = []
    store = db_services.accounts
    original = store.list
    store.list = lambda **kw: calls.append(kw) or original(**kw)
    clock = Clock()
    lookups = PostbackAccounts(store, clock=clock)
    assert lookups.kite_apps(DATA_APP_KEY)  # the first read
    for n in range(500):
        assert lookups.kite_apps(f"made-up-{n}") == []
    assert len(calls) == 1
    clock.now += APP_MISS_INTERVAL_SECONDS + 0.01
    for n in range(500):
        lookups.kite_apps(f"made-up-again-{n}")
    assert len(calls) == 2
    assert lookups.kite_apps(DATA_APP_KEY) and len(calls) == 2  # a known app is served from the cache


def test_an_account_that_cannot_be_read_answers_503_not_a_crash(db_services, db_client, redis_client, dhan_account):
    _, token = dhan_account

    def unreadable(_token):
        raise CredentialsUnreadable("the key changed")

    store = db_services.accounts  # a new store each time it is asked for: patch this one
    store.by_postback_token = unreadable
    db_client.application.extensions[ACCOUNTS] = PostbackAccounts(store)
    refused(post(db_client, "dhan", token, dhan_body()), 503, redis_client, "retry")


def test_a_kite_app_whose_accounts_have_no_user_id_yet_is_refused_403(db_services, db_client, redis_client):
    db_services.accounts.create("kite", "", credentials={"api_key": DATA_APP_KEY, "api_secret": DATA_APP_SECRET})
    refused(post(db_client, "kite", None, kite_body(DATA_APP_SECRET)), 403, redis_client, "no client id is known")


def test_a_kite_postback_of_the_environments_secret_is_taken_while_the_database_is_away(
    db_services, db_client, redis_client
):
    """An app_id the environment does not name makes the service look for a data account's app; with the
    database away, a postback the environment's KITE_API_SECRET verifies is still taken (202: it is kept in
    Redis), and one it does not verify is 503 for the broker to retry, never a refusal."""

    class DatabaseAway:
        def __getattr__(self, name):
            def fail(*_args, **_kwargs):
                raise sa.exc.OperationalError("SELECT", {}, Exception("connection refused"))

            return fail

    db_client.application.extensions[ACCOUNTS] = PostbackAccounts(DatabaseAway())
    taken = post(db_client, "kite", None, kite_body(KITE_SECRET, app_id="some-other-app"))
    assert taken.status_code == 202, taken.get_data(as_text=True)
    unsure = post(db_client, "kite", None, kite_body(DATA_APP_SECRET))
    assert unsure.status_code == 503 and "retry" in unsure.get_json()["error"]
    assert redis_client.xlen(STREAM) == 1  # only the verified one was taken
