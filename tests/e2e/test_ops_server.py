"""The real Procfile web (gunicorn, gevent workers): slow clients, the server's own refusals, its logs.

What must hold: 16 connections dribbling a header line a second stall nothing, the server's own refusals
are JSON, and a stalled body never prints the path token in gunicorn's error log.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest
import requests

from tests.support.env import ADMIN_TOKEN, POSTBACK_TOKEN, make_env
from tests.support.helpers import load_fixture
from tests.support.procs import free_port, start_web, wait_until

pytestmark = pytest.mark.e2e
DHAN = load_fixture("dhan_postback_traded.json")
KEEPALIVE = 3
BODY_TIMEOUT = 5


@pytest.fixture
def web(redis_client, redis_url, sqlite_url, tmp_path):
    """gunicorn with the Procfile command, two workers, short client bounds so the test is quick."""
    env = make_env(redis_url, sqlite_url, tmp_path, WEB_KEEPALIVE=str(KEEPALIVE), WEB_BODY_TIMEOUT=str(BODY_TIMEOUT))
    port = free_port()
    process = start_web(env, tmp_path, port, workers=2)
    yield port, process
    process.stop()


def dhan_body(order_id: str) -> bytes:
    """A distinct Dhan postback (new order id: a new update, answered 202)."""
    return json.dumps(dict(DHAN, orderId=order_id)).encode()


def raw_exchange(port: int, data: bytes, wait: float = 30.0) -> bytes:
    """Send bytes on a fresh connection and read until the server closes it (or `wait` passes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
        return received


def json_error(answer: bytes) -> tuple[int, dict]:
    """Status and JSON body of a raw HTTP answer; fails unless the body is the contract's JSON error."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"content-type: application/json" in head.lower(), head
    payload = json.loads(body)
    assert isinstance(payload.get("error"), str) and payload["error"]
    return status, payload


class Dribbler(threading.Thread):
    """A client that sends a postback's request line, then one header line a second, never finishing;
    when the server cuts it, it connects again and starts over, until told to stop."""

    def __init__(self, port: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop = stop
        self.lifetimes: list[float] = []

    def run(self) -> None:
        """Dribble connection after connection until `stop` is set."""
        while not self.stop.is_set():
            self.lifetimes.append(self._one_connection())

    def _one_connection(self) -> float:
        """Seconds one dribbling connection lived before the server closed it (60 s at most)."""
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.settimeout(1.0)
            sock.sendall(f"POST /postbacks/dhan/{POSTBACK_TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())
            line = 0
            while time.monotonic() - started < 60:
                try:
                    if sock.recv(1024) == b"":
                        break
                except TimeoutError:
                    pass
                except OSError:
                    break
                try:
                    sock.sendall(f"X-Dribble-{line}: 1\r\n".encode())
                    line += 1
                except OSError:
                    break
        return time.monotonic() - started


class Staller(threading.Thread):
    """A client that sends complete headers and part of the body, then stops sending."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.answer = b""

    def run(self) -> None:
        """Announce 500 bytes, send 10, wait for the server's answer."""
        head = f"POST /postbacks/dhan/{POSTBACK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n"
        self.answer = raw_exchange(self.port, head.encode() + b'{"orderId"', wait=60)


def test_postbacks_answered_within_2s_while_16_clients_dribble_headers_and_4_stall_bodies(web):
    port, process = web
    stop = threading.Event()
    dribblers = [Dribbler(port, stop) for _ in range(16)]
    stallers = [Staller(port) for _ in range(4)]
    for client in dribblers + stallers:
        client.start()
    time.sleep(1.5)  # every slow connection is open and holding whatever it can hold
    latencies = []
    with requests.Session() as session:
        for number in range(20):
            started = time.monotonic()
            answer = session.post(
                f"http://127.0.0.1:{port}/postbacks/dhan/{POSTBACK_TOKEN}", data=dhan_body(f"SLOW{number}"), timeout=2
            )
            latencies.append(time.monotonic() - started)
            assert answer.status_code == 202, answer.text
            time.sleep(0.1)
    assert max(latencies) < 2.0, latencies
    assert all(d.is_alive() for d in dribblers), "every dribbler kept dribbling while the postbacks went through"

    stop.set()
    for client in dribblers + stallers:
        client.join(90)
    # A header dribbler is cut by the keep-alive deadline on the headers, not allowed to dribble forever.
    lifetimes = [seconds for dribbler in dribblers for seconds in dribbler.lifetimes]
    assert len(lifetimes) >= 16 and max(lifetimes) < KEEPALIVE + 15, lifetimes
    # A stalled body is answered 408 (JSON) once the socket read has waited WEB_BODY_TIMEOUT seconds.
    for staller in stallers:
        status, payload = json_error(staller.answer)
        assert status == 408 and "stopped arriving" in payload["error"]
    wait_until(lambda: "408" in process.log(), 10)
    assert POSTBACK_TOKEN not in process.log()


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n", 431),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(60)) + b"\r\n", 431),
        (b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
        (
            f"POST /postbacks/dhan/{POSTBACK_TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n".encode()
            + b"Content-Length: 2\r\n\r\n{}",
            400,
        ),
        (
            f"POST /postbacks/dhan/{POSTBACK_TOKEN} HTTP/1.1\r\nHost: x\r\n".encode()
            + b"Transfer-Encoding: xchunked\r\n\r\n{}",
            501,
        ),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header Name: 1\r\n\r\n", 400),
    ],
    ids=[
        "header-too-large",
        "too-many-headers",
        "request-line-too-long",
        "duplicate-content-length",
        "te-xchunked",
        "bad-header-name",
    ],
)
def test_server_refusals_are_json_and_never_log_the_token(web, request_bytes, status):
    port, process = web
    got, payload = json_error(raw_exchange(port, request_bytes, wait=10))
    assert got == status, payload
    wait_until(lambda: "refused request" in process.log(), 10)
    assert POSTBACK_TOKEN not in process.log()


def test_access_and_app_lines_share_the_request_id_and_redact_the_token(web):
    port, process = web
    answer = requests.post(
        f"http://127.0.0.1:{port}/postbacks/dhan/{POSTBACK_TOKEN}x",
        data=b"{}",
        headers={"X-Request-ID": "req-abc.123"},
        timeout=10,
    )
    assert answer.status_code == 404 and answer.headers["X-Request-ID"] == "req-abc.123"
    wait_until(lambda: "orderhook.access" in process.log(), 10)
    lines = [line for line in process.log().splitlines() if "req-abc.123" in line]
    assert any("postback refused: broker=dhan status=404" in line for line in lines), lines
    assert any('"POST /postbacks/dhan/<redacted>" 404' in line for line in lines), lines
    assert POSTBACK_TOKEN not in process.log()


def test_metrics_count_postbacks_across_both_workers(web):
    port, _ = web
    base = f"http://127.0.0.1:{port}"
    for number in range(12):
        # A new connection each time, so both workers take some of them.
        assert requests.post(f"{base}/postbacks/dhan/{POSTBACK_TOKEN}", data=dhan_body(f"M{number}"), timeout=10).ok
    assert requests.post(f"{base}/postbacks/dhan/{POSTBACK_TOKEN}", data=dhan_body("M0"), timeout=10).status_code == 200
    assert requests.post(f"{base}/postbacks/dhan/wrong-token-0000000", data=b"{}", timeout=10).status_code == 404
    assert requests.get(f"{base}/metrics", timeout=10).status_code == 401
    for _ in range(6):  # whichever worker answers the scrape, it sums every worker's counts
        text = requests.get(f"{base}/metrics", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10).text
        assert 'orderhook_postbacks_total{broker="dhan",outcome="accepted"} 12.0' in text
        assert 'orderhook_postbacks_total{broker="dhan",outcome="duplicate"} 1.0' in text
        assert 'orderhook_postbacks_total{broker="dhan",outcome="refused"} 1.0' in text
        assert "orderhook_ingest_backlog 12.0" in text
        assert "orderhook_ingest_ack_seconds_count 13.0" in text


def test_readyz_answers_503_within_a_second_or_so_when_redis_is_frozen(redis_client, sqlite_url, tmp_path):
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(64)  # accepts connections (the kernel does) and never answers: a frozen Redis
    env = make_env(f"redis://127.0.0.1:{frozen.getsockname()[1]}/0", sqlite_url, tmp_path)
    port = free_port()
    process = start_web(env, tmp_path, port, workers=1)
    try:
        started = time.monotonic()
        answer = requests.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
        elapsed = time.monotonic() - started
        assert answer.status_code == 503
        checks = answer.json()["checks"]
        assert checks["database"] == "ok" and checks["redis"].startswith("unavailable")
        # Generous for a shared machine: the point is "about a second", not redis-py's 5 s + retries.
        assert elapsed < 4, elapsed
        # The worker was not held: it answers at once meanwhile.
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        process.stop()
        frozen.close()


def test_json_logs_from_app_and_gunicorn_with_its_access_log_on(redis_client, redis_url, sqlite_url, tmp_path):
    env = make_env(redis_url, sqlite_url, tmp_path, LOG_FORMAT="json", GUNICORN_CMD_ARGS="--access-logfile -")
    port = free_port()
    process = start_web(env, tmp_path, port, workers=1)
    try:
        base = f"http://127.0.0.1:{port}"
        headers = {"X-Request-ID": "json-check-1"}
        assert (
            requests.post(f"{base}/postbacks/dhan/{POSTBACK_TOKEN}", data=b"{", headers=headers, timeout=10).status_code
            == 400
        )
        assert raw_exchange(port, b"GET /" + b"a" * 3000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", wait=10).startswith(
            b"HTTP/1.1 414"
        )
        wait_until(lambda: process.log().count("/postbacks/dhan/<redacted>") >= 2, 10)
    finally:
        process.stop()
    entries = [json.loads(line) for line in process.log().splitlines() if line.strip()]
    loggers = {entry["logger"] for entry in entries}
    assert {"orderhook.access", "orderhook.postbacks", "gunicorn.access", "gunicorn.error"} <= loggers
    gunicorn_access = [e for e in entries if e["logger"] == "gunicorn.access"]
    assert any("/postbacks/dhan/<redacted>" in e["message"] for e in gunicorn_access)
    refusal = next(e for e in entries if e["logger"] == "orderhook.postbacks")
    assert refusal["request_id"] == "json-check-1" and refusal["status"] == 400
    assert POSTBACK_TOKEN not in process.log()
