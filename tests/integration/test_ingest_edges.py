"""The contract at the request path's edges: one body limit whatever the transfer encoding, a
clear 415 for Content-Encoding, ASCII-only statuses and numbers, and the compiled schema loader giving
marshmallow's answers exactly.
"""

from __future__ import annotations

import gzip
import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.brokers.kite.adapter import KiteOrderSchema
from app.wire.fields import LenientCode, LenientNumber
from app.wire.loader import compile_loader
from tests.support.env import KITE_SECRET, make_env
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import free_port, start_web

LIMIT = 64 * 1024
SEED = load_fixture("kite_postback_complete.json")


def padded_kite_body(order_id: str, size: int) -> bytes:
    """A validly signed Kite postback padded with trailing spaces to exactly `size` bytes."""
    body = json.dumps(sign_kite(dict(SEED, order_id=order_id), KITE_SECRET)).encode()
    return body + b" " * (size - len(body))


def raw_post(port: int, body: bytes, *, chunked: bool, extra: str = "") -> tuple[int, bytes]:
    """POST /postbacks/kite over a raw socket, with Content-Length or chunked; (status, body)."""
    head = "POST /postbacks/kite HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "Connection: close\r\n"
    if chunked:
        payload = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in _parts(body, 8000)) + b"0\r\n\r\n"
        head += "Transfer-Encoding: chunked\r\n"
    else:
        payload = body
        head += f"Content-Length: {len(body)}\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall((head + extra + "\r\n").encode() + payload)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status = int(answer[9:12])
    return status, answer.split(b"\r\n\r\n", 1)[1]


def _parts(data: bytes, size: int) -> list[bytes]:
    """`data` in pieces of `size` bytes."""
    return [data[i : i + size] for i in range(0, len(data), size)]


@pytest.fixture
def web(redis_client, redis_url, sqlite_url, tmp_path):
    """The Procfile's gunicorn on a free port."""
    port = free_port()
    proc = start_web(make_env(redis_url, sqlite_url, tmp_path), tmp_path, port)
    yield port
    proc.stop(timeout=20)


@pytest.mark.e2e
def test_one_body_limit_whatever_the_transfer_encoding(web):
    assert raw_post(web, padded_kite_body("EDGE1", LIMIT), chunked=False)[0] == 202
    assert raw_post(web, padded_kite_body("EDGE2", LIMIT), chunked=True)[0] == 202  # was 413
    for chunked in (False, True):
        status, body = raw_post(web, padded_kite_body("EDGE3", LIMIT + 1), chunked=chunked)
        assert status == 413 and "64 KiB" in json.loads(body)["error"]


@pytest.mark.e2e
def test_a_content_encoding_is_refused_with_415_over_http(web):
    body = gzip.compress(padded_kite_body("EDGE4", 2000))
    status, answer = raw_post(web, body, chunked=False, extra="Content-Encoding: gzip\r\n")
    assert status == 415 and "Content-Encoding" in json.loads(answer)["error"]


def test_content_encoding_answers_415_saying_so(client, redis_client):
    plain = padded_kite_body("EDGE5", 1500)
    for encoding, body in (("gzip", gzip.compress(plain)), ("deflate", plain), ("br", plain), ("GZIP ", plain)):
        answer = client.post("/postbacks/kite", data=body, headers={"Content-Encoding": encoding})
        assert answer.status_code == 415, encoding
        assert "Content-Encoding" in answer.get_json()["error"] and "uncompressed" in answer.get_json()["error"]
    assert redis_client.xlen("oh:ingest") == 0
    assert client.post("/postbacks/kite", data=plain, headers={"Content-Encoding": "identity"}).status_code == 202


def test_a_ligature_status_is_not_read_as_filled(client, redis_client):
    for status in ("ﬁlled", "COMPLETE\u200b", "ＣＯＭＰＬＥＴＥ"):
        body = json.dumps(sign_kite(dict(SEED, status=status), KITE_SECRET))
        answer = client.post("/postbacks/kite", data=body)
        assert answer.status_code == 400, status
        assert "ASCII" in answer.get_json()["error"]
    assert redis_client.xlen("oh:ingest") == 0


def test_numbers_must_be_ascii_digits(client, redis_client):
    for quantity in ("١٠", "１０", "१०"):  # Arabic-Indic, full-width, Devanagari: float() reads them all as 10
        body = json.dumps(sign_kite(dict(SEED, quantity=quantity), KITE_SECRET))
        answer = client.post("/postbacks/kite", data=body)
        assert answer.status_code == 400 and "quantity" in answer.get_json()["error"], quantity
    field = LenientNumber()
    assert field.deserialize(" 1,234.5 ") == 1234.5
    code = LenientCode()
    assert code.deserialize(" open ") == "open"
    with pytest.raises(Exception, match="ASCII"):
        code.deserialize("ﬁlled")


# The compiled loader is marshmallow's answer, faster:

KITE_KEYS = sorted((f.data_key or n) for n, f in KiteOrderSchema().load_fields.items())
wire_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["", " ", "12", " 3.0 ", "1,000", "1e400", "nan", "x" * 1100, "a\x00b", "١٠"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*KITE_KEYS, "other"]), wire_value, max_size=len(KITE_KEYS)))
def test_the_compiled_loader_answers_exactly_as_marshmallow(data):
    schema = KiteOrderSchema()
    fast = compile_loader(schema)
    try:
        expected = schema.load(data)
    except Exception as exc:  # noqa: BLE001 - the same exception, same messages, is what is compared
        with pytest.raises(type(exc)) as raised:
            fast(data)
        assert raised.value.args == exc.args
        return
    assert fast(data) == expected


def test_a_schema_with_hooks_is_loaded_by_marshmallow_itself():
    from app.brokers.dhan.adapter import DhanOrderSchema

    schema = DhanOrderSchema()
    assert compile_loader(schema) == schema.load
