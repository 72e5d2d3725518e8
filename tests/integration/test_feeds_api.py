"""GET /api/feeds and the Dhan web login-frame endpoint: bearer, validation, encryption at rest, no read-back."""

from __future__ import annotations

import asyncio
import base64
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.brokers.feed_status import StatusPublisher
from app.config import load_config
from app.secrets_store import DhanWebFrameStore, decode_login_frame, feed_secrets
from tests.support.fakes.harness import ServiceBuilder, api_client
from tests.support.fakes.samples import b64, dhan_web_login_frame

FEED_KEY = "x4sVJQ8pVd2cS1yS0d3vPZ2F0bQ2b0Zr9Jg3rXW2m7E="
OTHER_KEY = "lEn2Yb6cR6o8o1VhX0v3Ue4kO5pZ2Qw7Rt9Ys1Ua3Bc="
URL = "/api/feeds/dhan-web/login-frame"
SEED_003 = next(Path(__file__).resolve().parents[3].glob("shared/seeds/003_*"), None)


@pytest.fixture
def build(env):
    builder = ServiceBuilder(env)
    yield builder
    builder.close()


def stored_tokens(services) -> list[bytes]:
    """What the feed_secrets table holds (encrypted tokens)."""
    with services.engine.connect() as conn:
        return [bytes(row.token) for row in conn.execute(sa.select(feed_secrets.c.token))]


def test_feed_endpoints_need_the_bearer_token(build):
    client = api_client(build(FEEDS_SECRET_KEY=FEED_KEY))
    for method, url in (("get", "/api/feeds"), ("get", URL), ("put", URL)):
        response = getattr(client, method)(url, data=b64(dhan_web_login_frame()))
        assert response.status_code == 401 and "error" in response.get_json()
    bad = client.put(URL, data=b64(dhan_web_login_frame()), headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


def test_put_stores_encrypted_and_get_shows_only_size_and_time(build, admin_headers):
    """201 then 200 on replace; answers carry size and stored_at only; the file holds no frame bytes."""
    services = build(FEEDS_SECRET_KEY=FEED_KEY)
    client = api_client(services)
    assert client.get(URL, headers=admin_headers).status_code == 404
    frame = dhan_web_login_frame(token="a1b2c3d4e5f60718293a4b5c6d7e8f90")
    text = b64(frame)
    first = client.put(URL, data=text + "\n", headers=admin_headers)
    assert first.status_code == 201 and set(first.get_json()) == {"size", "stored_at"}
    assert first.get_json()["size"] == 703
    again = client.put(URL, data=text, headers=admin_headers)
    assert again.status_code == 200
    shown = client.get(URL, headers=admin_headers)
    assert shown.status_code == 200 and set(shown.get_json()) == {"size", "stored_at"}
    assert text not in shown.get_data(as_text=True) and "a1b2c3d4" not in shown.get_data(as_text=True)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", shown.get_json()["stored_at"])
    (at_rest,) = stored_tokens(services)
    assert frame not in at_rest and text.encode() not in at_rest and b"a1b2c3d4e5f6" not in at_rest
    assert base64.b64encode(frame[3:33]) not in at_rest and frame[3:33].rstrip(b"\0") not in at_rest
    assert not (services.config.instance_path / "secrets").exists()  # nothing on the local disk
    assert DhanWebFrameStore(services.config).load() == frame  # only the feeds process reads it back


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "empty"),
        ("not base64 at all!", "not base64"),
        (base64.b64encode(b"\x2a" * 702).decode(), "702 bytes"),
        (b64(dhan_web_login_frame(code=7)), "starts with byte 7"),
    ],
)
def test_put_refuses_what_cannot_be_a_login_frame(build, admin_headers, body, message):
    services = build(FEEDS_SECRET_KEY=FEED_KEY)
    response = api_client(services).put(URL, data=body, headers=admin_headers)
    assert response.status_code == 400 and message in response.get_json()["error"]
    assert stored_tokens(services) == []


def test_both_known_message_codes_and_url_safe_base64_are_accepted():
    """41 (reverse-engineered client, docs/brokers.md §4.3) and 42 (seed 003 capture)."""
    assert decode_login_frame(b64(dhan_web_login_frame(code=41)))[0] == 41
    urlsafe = base64.urlsafe_b64encode(dhan_web_login_frame(token="?>" * 16)).decode()
    assert decode_login_frame(f'"{urlsafe}"')[0] == 42


def test_unpadded_base64_is_accepted():
    """The padding is implied by the length; the frame decodes the same."""
    frame = dhan_web_login_frame(token="unpadded" * 4)
    text = base64.b64encode(frame).decode()
    assert text.endswith("=") and decode_login_frame(text.rstrip("=")) == frame
    urlsafe = base64.urlsafe_b64encode(frame).decode().rstrip("=")
    assert decode_login_frame(urlsafe) == frame
    with pytest.raises(ValueError, match="not base64"):
        decode_login_frame(text.rstrip("=")[:-1])  # one character short of any whole byte count


def test_web_and_feeds_on_machines_that_share_no_disk(build, admin_headers, tmp_path):
    """The PUT on web is read by a feeds process with another instance directory (only the database)."""
    web = build(FEEDS_SECRET_KEY=FEED_KEY, INSTANCE_PATH=str(tmp_path / "web-dyno"))
    feeds_config = load_config(
        {**build.env, "FEEDS_SECRET_KEY": FEED_KEY, "INSTANCE_PATH": str(tmp_path / "feeds-dyno")}
    )
    reader = DhanWebFrameStore(feeds_config)  # as the dhan_web connector builds it: config only
    assert reader.version() is None and reader.load() is None
    frame = dhan_web_login_frame(token="f" * 32)
    assert api_client(web).put(URL, data=b64(frame), headers=admin_headers).status_code == 201
    first = reader.version()
    assert first is not None and reader.load() == frame
    newer = dhan_web_login_frame(token="e" * 32)
    assert api_client(web).put(URL, data=b64(newer), headers=admin_headers).status_code == 200
    assert reader.version() != first and reader.load() == newer
    for dyno in ("web-dyno", "feeds-dyno"):
        assert not list((tmp_path / dyno).rglob("*secrets*"))
    listed = api_client(web).get("/api/feeds", headers=admin_headers)
    assert listed.status_code == 200


@pytest.mark.skipif(SEED_003 is None, reason="../shared/seeds not present")
def test_the_captured_seed_frame_passes_validation():
    """The real 703-byte browser capture of seed 003 (first byte 42) is a valid frame."""
    text = re.search(r"first message sent 703B = (\S+)", SEED_003.read_text()).group(1)
    frame = decode_login_frame(text)
    assert len(frame) == 703 and frame[0] == 42


def test_production_without_a_feeds_key_encrypts_under_one_derived_from_admin_token(build, admin_headers, caplog):
    services = build()
    frame = dhan_web_login_frame()
    assert api_client(services).put(URL, data=b64(frame), headers=admin_headers).status_code == 201
    assert "derived from ADMIN_TOKEN" in caplog.text
    stored = b"".join(stored_tokens(services))
    assert frame not in stored and b64(frame).encode() not in stored
    assert api_client(build()).get(URL, headers=admin_headers).get_json()["size"] == 703


def test_an_invalid_feeds_key_refuses_with_503(build, admin_headers):
    services = build(FEEDS_SECRET_KEY="not-a-fernet-key")
    response = api_client(services).put(URL, data=b64(dhan_web_login_frame()), headers=admin_headers)
    assert response.status_code == 503 and "FEEDS_SECRET_KEY" in response.get_json()["error"]
    assert stored_tokens(services) == []


def test_without_any_key_material_the_store_refuses(build):
    from app.crypto import SecretKeyUnavailable

    services = build(ADMIN_TOKEN="")
    with pytest.raises(SecretKeyUnavailable, match="FEEDS_SECRET_KEY is not set"):
        DhanWebFrameStore(services.config).store(dhan_web_login_frame())


def test_a_frame_under_another_key_is_reported_not_leaked(build, admin_headers):
    """After a key change GET answers 409 asking for the frame again; rotation keeps old frames readable."""
    first = build(FEEDS_SECRET_KEY=FEED_KEY)
    assert api_client(first).put(URL, data=b64(dhan_web_login_frame()), headers=admin_headers).status_code == 201
    changed = build(FEEDS_SECRET_KEY=OTHER_KEY)
    response = api_client(changed).get(URL, headers=admin_headers)
    assert response.status_code == 409 and "store the frame again" in response.get_json()["error"]
    rotated = build(FEEDS_SECRET_KEY=f"{OTHER_KEY},{FEED_KEY}")
    assert api_client(rotated).get(URL, headers=admin_headers).status_code == 200


def test_get_feeds_shows_each_configured_connector(build, admin_headers):
    """Not started yet, then what the connector published: connected, last message, reconnects, last error."""
    services = build(FEEDS="kite,jainam,dhan_web")
    client = api_client(services)
    body = client.get("/api/feeds", headers=admin_headers).get_json()
    assert [f["name"] for f in body["feeds"]] == ["kite", "jainam", "dhan_web"]
    assert body["feeds"][2]["login_frame_stored"] is False
    assert body["feeds"][0] == {
        "name": "kite",
        "state": "not_started",
        "connected": False,
        "last_message_at": None,
        "reconnects": 0,
        "last_error": None,
    }

    async def publish():
        status = StatusPublisher(services.redis, "kite", "kite")
        await status.reset()
        await status.update(state="running", connected=True, connected_at="2026-01-01T00:00:00.000000Z")
        await status.count("reconnects", last_error="the connection dropped without a closing handshake")
        await status.count("messages", last_message_at="2026-01-01T00:00:01.000000Z")

    asyncio.run(publish())
    kite = client.get("/api/feeds", headers=admin_headers).get_json()["feeds"][0]
    assert kite["connected"] is True and kite["state"] == "running" and kite["stale"] is False
    assert kite["reconnects"] == 1 and kite["messages"] == 1
    assert kite["last_message_at"] == "2026-01-01T00:00:01.000000Z" and "dropped" in kite["last_error"]
    services.redis.hset("oh:feeds:kite", "updated_at", "2020-01-01T00:00:00.000000Z")
    stale = client.get("/api/feeds", headers=admin_headers).get_json()["feeds"][0]
    assert stale["stale"] is True and stale["connected"] is False  # the feeds process stopped refreshing
