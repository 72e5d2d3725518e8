"""`scripts/dev` (app/devrun.py): the blotter's URL and a one-time sign-in link; the warning printed once; web on
127.0.0.1 only; where events are forwarded; a generated Kite secret and a signed sample that it accepts."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import requests

from tests.support.procs import ROOT, free_port, interrupt_group, wait_until


def test_dev_runner_prints_the_blotter_link_once_and_the_warning_once(redis_client, redis_url, tmp_path):
    port = free_port()
    env = dict(
        os.environ,
        APP_ENV="development",
        PORT=str(port),
        REDIS_URL=redis_url,
        DATABASE_URL=f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        INSTANCE_PATH=str(tmp_path / "instance"),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        FEEDS="",
        PATH=f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
    )
    log = tmp_path / "dev.log"
    with open(log, "wb") as out:
        runner = subprocess.Popen(
            [sys.executable, "-m", "app.devrun"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: "Listening at" in log.read_text() and "worker up" in log.read_text(),
            60,
            message=log.read_text() if log.exists() else "",
        )
        time.sleep(2)  # every process has configured itself by now
        text = log.read_text()
        assert text.count("APP_ENV=development: Orderhook is running with development settings") == 1, text
        assert f"Blotter:     http://127.0.0.1:{port}/" in text
        # web listens on loopback only unless DEV_LISTEN_HOST widens it
        assert f"Listening at: http://127.0.0.1:{port} " in text and "0.0.0.0" not in text.replace(
            "DEV_LISTEN_HOST=0.0.0.0", ""
        ), text
        assert "Forwarding:  nowhere: set FORWARD_URLS to receive events" in text
        assert "Forwarding: nowhere: set FORWARD_URLS to receive events" in text  # the development warning
        assert "KITE_API_SECRET is not set" not in text  # generated with the other development secrets
        link = re.search(r"one-time sign-in link: (\S+)", text).group(1)
        with requests.Session() as browser:
            signed = browser.get(link, timeout=10)
            assert signed.status_code == 200 and "Sign out" in signed.text  # followed the 303 to the blotter
            assert browser.get(f"http://127.0.0.1:{port}/api/orders", timeout=10).status_code == 200
        assert requests.get(link, timeout=10, allow_redirects=False).status_code == 403  # single use
        assert_the_kite_sample_is_accepted(env, tmp_path, port)
    finally:
        interrupt_group(runner)


def assert_the_kite_sample_is_accepted(env: dict[str, str], tmp_path, port: int) -> None:
    """`scripts/dev sample kite` is signed with the generated secret (202), and the curl it prints repeats it (200)."""
    assert json.loads((tmp_path / "instance" / "dev-secrets.json").read_text())["KITE_API_SECRET"]
    sample = subprocess.run(
        [sys.executable, "-m", "app.devrun", "sample", "kite"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert sample.returncode == 0, sample.stdout + sample.stderr
    curl, answer, *_ = sample.stdout.splitlines()
    assert curl.startswith("curl ") and f"http://127.0.0.1:{port}/postbacks/kite" in curl
    assert answer.startswith('202 {"status":"accepted"'), sample.stdout
    again = subprocess.run(["bash", "-c", curl], cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert '"status":"duplicate"' in again.stdout, again.stdout + again.stderr
    order_id = re.search(r"order (\d+) ", sample.stdout).group(1)
    headers = {
        "Authorization": f"Bearer {json.loads((tmp_path / 'instance' / 'dev-secrets.json').read_text())['ADMIN_TOKEN']}"
    }
    wait_until(
        lambda: (
            requests.get(f"http://127.0.0.1:{port}/api/orders/kite/{order_id}", headers=headers, timeout=5).json()[
                "status"
            ]
            == "FILLED"
        ),
        60,
        message=f"the sample order {order_id} was not stored",
    )
