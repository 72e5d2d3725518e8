"""X-Forwarded-Proto through the real server (gunicorn, Procfile's web command): only TRUSTED_PROXIES make it
count, whoever the peer is (gunicorn itself trusts 127.0.0.1 by default: it must not here)."""

from __future__ import annotations

import pytest
import requests

from tests.support.env import ADMIN_TOKEN, make_env
from tests.support.procs import free_port, start_web

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize(("trusted_proxies", "secure"), [("0", False), ("1", True)])
def test_the_session_cookie_is_secure_only_behind_trusted_proxies(
    redis_client, redis_url, sqlite_url, tmp_path, trusted_proxies, secure
):
    env = make_env(redis_url, sqlite_url, tmp_path, TRUSTED_PROXIES=trusted_proxies)
    port = free_port()
    web = start_web(env, tmp_path, port, workers=1)
    try:
        answer = requests.post(
            f"http://127.0.0.1:{port}/signin",
            data={"token": ADMIN_TOKEN},
            headers={"X-Forwarded-Proto": "https"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert ("Secure" in answer.headers["Set-Cookie"]) is secure
    finally:
        web.stop()
