"""Shared Playwright helpers: Debian's headless Chromium (never a downloaded browser) and the real Procfile stack."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from playwright.sync_api import Browser, Page, sync_playwright

from tests.support.env import ADMIN_TOKEN, KITE_SECRET, make_env
from tests.support.helpers import load_fixture, sign_kite
from tests.support.procs import Process, free_port, start_web

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1366, "height": 800}
PHONE = {"width": 390, "height": 844}
KITE = load_fixture("kite_postback_complete.json")


@contextmanager
def chromium(extra_args: list[str] | None = None) -> Iterator[Browser]:
    """A headless Chromium from the system, closed afterwards."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS + (extra_args or [])
        )
        try:
            yield browser
        finally:
            browser.close()


class Stack:
    """The Procfile's web and worker on loopback, over the test Redis and database."""

    def __init__(self, redis_url: str, database_url: str, tmp_path: Path, **env: str) -> None:
        self.env = make_env(redis_url, database_url, tmp_path, **env)
        self.tmp_path = tmp_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.web: Process | None = None
        self.worker: Process | None = None

    def start(self) -> Stack:
        """Start web (if not running) and worker (if not running)."""
        if self.web is None:
            self.web = start_web(self.env, self.tmp_path, self.port)
        if self.worker is None:
            self.worker = Process("worker", self.env, self.tmp_path)
        return self

    def restart_web(self) -> float:
        """SIGTERM the web (streams open) and start it again on the same port; seconds the stop took."""
        started = time.monotonic()
        self.web.stop()
        took = time.monotonic() - started
        self.web = start_web(self.env, self.tmp_path, self.port)
        return took

    def stop(self) -> None:
        """Stop everything started."""
        for process in (self.web, self.worker):
            if process is not None:
                process.stop()

    def logs(self) -> str:
        """Both processes' output, for failure messages."""
        return "\n".join(p.log() for p in (self.web, self.worker) if p is not None)

    def kite(self, order_id: str, **changes) -> tuple[requests.Response, float]:
        """POST a signed Kite postback for `order_id`; the answer and how long it took."""
        payload = sign_kite(dict(KITE, order_id=order_id, **changes), KITE_SECRET)
        started = time.monotonic()
        answer = requests.post(f"{self.base}/postbacks/kite", data=json.dumps(payload), timeout=30)
        return answer, time.monotonic() - started


def sign_in(page: Page, base: str, token: str = ADMIN_TOKEN) -> None:
    """Through the form, as a person would."""
    page.goto(base + "/")
    page.get_by_label("Admin token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("button", name="Sign out").wait_for(timeout=30_000)


def wait_live(page: Page) -> None:
    """Until the page's stream is open and its snapshot applied."""
    page.locator("#live.on").wait_for(timeout=30_000)


def row(page: Page, key: str):
    """An order's row in the blotter, by its `data-order` hook (`<broker>/<order_id>`)."""
    return page.locator(f'tr[data-order="{key}"]')


def shoot(page: Page, directory: Path, name: str) -> Path:
    """A full-page screenshot into `directory` (SCREENSHOT_DIR keeps them for a person to look at)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $SCREENSHOT_DIR, else the test's temporary directory."""
    return Path(os.environ["SCREENSHOT_DIR"]) if os.environ.get("SCREENSHOT_DIR") else tmp_path / "screens"
