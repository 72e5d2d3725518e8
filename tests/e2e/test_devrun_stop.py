"""Stopping `scripts/dev` (app/devrun.py) ends every process it started, the embedded Redis last, in bounded time.

The runner is started as `python -m app.devrun` on its own embedded Redis, with a backlog of deliveries to
a slow local consumer in flight and Telegram alerts going to a local fake. It is stopped as a terminal's
Ctrl-C does (SIGINT to the whole process group) or by SIGTERM to the runner alone. Every descendant
(web, worker and its pipeline loops, feeds, redis-server) is listed before the stop; none may be left once
the runner has exited, and no loop may have lost Redis while it was finishing its work in hand.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.fakes.telegram import BOT_TOKEN, CHAT_ID, FakeTelegram
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import ROOT, Consumer, free_port, wait_until

pytestmark = pytest.mark.e2e
SEED = load_fixture("kite_postback_complete.json")
#: The bound the runner promises (app/devrun.py STOP_GRACE_SECONDS plus Redis's own shutdown), with room
#: for a busy machine.
STOP_BOUND_SECONDS = 40
#: Postbacks posted before the stop: far more than the slow consumer answers in that time.
BACKLOG = 30
#: Seconds the slow consumer takes to answer each delivery: longer than any grace, within FORWARD_TIMEOUT.
CONSUMER_DELAY = 45.0
#: What a loop logs when Redis went away under it (RQ's reconnect loop, or the pipeline's).
LOST_REDIS = ("could not connect to Redis", "Redis unavailable")


def dev_environment(tmp_path: Path, consumer: Consumer, telegram: FakeTelegram) -> dict[str, str]:
    """The runner's environment: embedded Redis (REDIS_URL unset), SQLite, a slow consumer and fake Telegram."""
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "REDIS_URL"}
    env.update(
        APP_ENV="development",
        PORT=str(port),
        DATABASE_URL=f"sqlite:///{tmp_path / 'dev.sqlite3'}",
        INSTANCE_PATH=str(tmp_path / "instance"),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        FEEDS="",
        FORWARD_URLS=consumer.url,
        FORWARD_PARALLEL="2",
        FORWARD_TIMEOUT_SECONDS="60",
        TELEGRAM_BOT_TOKEN=BOT_TOKEN,
        TELEGRAM_CHAT_ID=CHAT_ID,
        TELEGRAM_API_URL=telegram.url,
        PATH=f"{os.path.dirname(sys.executable)}:{os.environ.get('PATH', '')}",
    )
    return env


def post_backlog(env: dict[str, str], count: int) -> None:
    """Post `count` signed Kite COMPLETE postbacks (new orders: each a delivery and a FILLED alert)."""
    secret = json.loads((Path(env["INSTANCE_PATH"]) / "dev-secrets.json").read_text())["KITE_API_SECRET"]
    for number in range(count):
        body = json.dumps(sign_kite(dict(SEED, order_id=f"25112900{number:04d}"), secret))
        answer = requests.post(f"{env['PUBLIC_BASE_URL']}/postbacks/kite", data=body, timeout=10)
        assert answer.status_code == 202, answer.text


def descendants(pid: int) -> list[psutil.Process]:
    """Every process under `pid` right now."""
    return psutil.Process(pid).children(recursive=True)


def still_running(processes: list[psutil.Process]) -> list[str]:
    """The processes of the list that have not ended (a zombie has ended), as `pid name cmdline`."""
    left = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                left.append(f"{process.pid} {' '.join(process.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return left


def kill_all(processes: list[psutil.Process]) -> None:
    """SIGKILL whatever of the list is still there (cleanup only)."""
    for process in processes:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def start_runner(env: dict[str, str], log: Path) -> subprocess.Popen:
    """`python -m app.devrun` in a process group of its own, as in a terminal."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.devrun"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def wait_for_backlog(runner: subprocess.Popen, env, log: Path, consumer: Consumer, telegram: FakeTelegram) -> None:
    """Up, both loops running, a backlog in flight to the slow consumer and an alert sent."""
    wait_until(lambda: "worker up" in log.read_text(), 90, 0.2, message=log.read_text())
    wait_until(
        lambda: requests.get(f"{env['PUBLIC_BASE_URL']}/healthz", timeout=2).status_code == 200,
        60,
        0.2,
        message=log.read_text(),
    )
    post_backlog(env, BACKLOG)
    wait_until(lambda: len(consumer.requests) >= 2, 60, 0.2, message=f"nothing forwarded:\n{log.read_text()}")
    wait_until(lambda: telegram.messages, 60, 0.2, message=f"no alert sent:\n{log.read_text()}")
    assert len(consumer.requests) < BACKLOG  # the backlog is still there at the stop
    assert runner.poll() is None, log.read_text()


@pytest.mark.parametrize("how", ["sigint-group", "sigterm-runner"])
def test_stopping_the_dev_runner_leaves_no_process_behind(tmp_path, how):
    consumer = Consumer(lambda _number, _request: (200, {}, CONSUMER_DELAY))
    telegram = FakeTelegram()
    env = dev_environment(tmp_path, consumer, telegram)
    log = tmp_path / "dev.log"
    runner = start_runner(env, log)
    tree: list[psutil.Process] = []
    try:
        wait_for_backlog(runner, env, log, consumer, telegram)
        tree = descendants(runner.pid)
        names = " ".join(" ".join(p.cmdline()) for p in tree)
        assert "redis-server" in names and "workers.worker" in names and "gunicorn" in names, names
        started = time.monotonic()
        if how == "sigint-group":
            os.killpg(runner.pid, signal.SIGINT)
        else:
            os.kill(runner.pid, signal.SIGTERM)
        try:
            runner.wait(STOP_BOUND_SECONDS)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the runner did not stop within {STOP_BOUND_SECONDS} s:\n{log.read_text()[-6000:]}")
        took = time.monotonic() - started
        left = still_running(tree)
        print(f"{how}: stopped in {took:.1f} s; {len(tree)} descendants, {len(left)} left")
        assert not left, f"outlived the runner: {left}\n{log.read_text()[-6000:]}"
        text = log.read_text()
        print("\n".join([line for line in text.splitlines() if line.lstrip().startswith(("dev |", "worker |"))][-12:]))
        assert not [line for line in text.splitlines() if any(lost in line for lost in LOST_REDIS)], text[-6000:]
        assert text.rstrip().endswith("dev | stopped"), text[-3000:]
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait(10)
        kill_all(tree)
        consumer.close()
        telegram.close()
