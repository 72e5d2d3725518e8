"""Every line the web process writes is one record: a request path cannot forge a log line, nor put ESC,
NUL or a right-to-left override into the log (docs/operations.md, Logs)."""

from __future__ import annotations

import json
import re

import pytest
import requests

from tests.support.env import make_env
from tests.support.procs import free_port, start_web, wait_until

pytestmark = pytest.mark.e2e

#: A second access line as the attacker would like it to read, then the characters that must not get through.
FORGED = '2026-12-03 15:00:00,000 INFO orderhook.access [0123abcd]: 10.0.0.1 "POST /postbacks/kite" 202 1.0ms FORGED'
HOSTILE_PATHS = (
    "/api/orders/kite/x%0a" + requests.utils.quote(FORGED),
    "/api/orders/kite/x%0d%0a" + requests.utils.quote(FORGED),
    "/api/orders/kite/esc%1b[31mRED%1b[0m%00nul%E2%80%AEreversed%C2%85nel%E2%80%A8ls",
)
#: What the attacker sent, still in the log, escaped.
ESCAPED = ("x\\u000A2026-12-03", "x\\u000D\\u000A2026-12-03", "esc\\u001B[31mRED\\u001B[0m\\u0000nul\\u202Ereversed")
RAW_CONTROLS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
#: The line shapes of a plain log: the app's records, gunicorn's error records, gunicorn's access lines.
PLAIN_LINE = re.compile(
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+ \[[^\]]*\]: "
    r"|\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[\d+\] \[[A-Z]+\] "
    r'|127\.0\.0\.1 - - \[[^\]]+\] "'
)


def _send_hostile_paths(port: int) -> None:
    """Each hostile path, unauthenticated: refused 401 with a JSON error."""
    for path in HOSTILE_PATHS:
        answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=10)
        assert answer.status_code == 401 and answer.json()["error"]


def _lines(log: str) -> list[str]:
    """The log's lines, split at every line break a reader or a terminal might honour."""
    return [line for line in log.splitlines() if line.strip()]


@pytest.mark.parametrize("log_format", ["plain", "json"])
def test_a_request_path_cannot_forge_a_line_or_reach_the_log_raw(
    redis_client, redis_url, sqlite_url, tmp_path, log_format
):
    env = make_env(redis_url, sqlite_url, tmp_path, LOG_FORMAT=log_format, GUNICORN_CMD_ARGS="--access-logfile -")
    port = free_port()
    web = start_web(env, tmp_path, port, workers=1)
    try:
        _send_hostile_paths(port)
        # Two access lines per request, the app's (orderhook.access) and gunicorn's; the last request's
        # gunicorn line comes after every other.
        wait_until(lambda: sum("reversed" in line for line in _lines(web.log())) >= 2, 20, message=web.log())
    finally:
        web.stop()
    log = web.log_path.read_bytes().decode("utf-8")
    assert not RAW_CONTROLS.search(log), [line for line in log.split("\n") if RAW_CONTROLS.search(line)]
    lines = _lines(log)
    if log_format == "json":
        entries = [json.loads(line) for line in lines]  # every line is one JSON object
        forged = [e for e in entries if "FORGED" in json.dumps(e)]
        assert all(e["logger"] in ("orderhook.access", "gunicorn.access") for e in forged), forged
        paths = [e["path"] for e in entries if e["logger"] == "orderhook.access" and "FORGED" in e["path"]]
        assert paths == ["/api/orders/kite/x\n" + FORGED, "/api/orders/kite/x\r\n" + FORGED]  # JSON keeps it exact
    else:
        strays = [line for line in lines if not PLAIN_LINE.match(line)]
        assert not strays, strays
        forged = [line for line in lines if "FORGED" in line]
        assert all("/api/orders/kite/x" in line and " 401 " in line for line in forged), forged
        own = [line for line in lines if " orderhook.access " in line and "/api/orders/kite/" in line]
        for escaped in ESCAPED:
            assert sum(escaped in line for line in own) == 1, (escaped, own)
