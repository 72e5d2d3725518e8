"""`scripts/dev` (app/devrun.py): the blotter's URL and a one-time sign-in link; the warning printed once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import requests

from tests.support.procs import ROOT, free_port, wait_until


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
        link = re.search(r"one-time sign-in link: (\S+)", text).group(1)
        with requests.Session() as browser:
            signed = browser.get(link, timeout=10)
            assert signed.status_code == 200 and "Sign out" in signed.text  # followed the 303 to the blotter
            assert browser.get(f"http://127.0.0.1:{port}/api/orders", timeout=10).status_code == 200
        assert requests.get(link, timeout=10, allow_redirects=False).status_code == 403  # single use
    finally:
        os.killpg(runner.pid, signal.SIGINT)
        try:
            runner.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(5)
