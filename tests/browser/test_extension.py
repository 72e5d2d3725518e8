"""The capture extension (extension/, docs/extension.md) loaded unpacked in a real headless Chromium.

Chromium reaches a fake https://web.dhan.co page and a fake wss://order-feed.dhan.co socket on loopback
(`--host-resolver-rules`, a throwaway self-signed certificate) and a real Orderhook web process (the
Procfile's `web` command). The end is the Procfile's `feeds` process logging in to a fake Dhan web feed
with exactly the bytes the page sent.

One difference from a user's browser: the prompt `chrome.permissions.request` opens at Save is a native
dialog no automation can click, so the copy of the extension loaded here also lists
`http://127.0.0.1/*` in `host_permissions` (already granted, so the request resolves at once). Every
other file is the shipped one.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import requests
from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright

from app.db import upgrade
from tests.support.env import ADMIN_TOKEN, OWNER_KEY, make_env
from tests.support.fakes import FakeDhanWebSocket
from tests.support.fakes.dhan_web_site import FakeDhanSite
from tests.support.fakes.samples import dhan_web_login_frame
from tests.support.procs import ROOT, Process, free_port, start_web, wait_until

CHROMIUM = "/usr/bin/chromium"
EXTENSION = ROOT / "extension"
FRAME_PATH = "/api/feeds/dhan-web/login-frame"
FEED_KEY = "x4sVJQ8pVd2cS1yS0d3vPZ2F0bQ2b0Zr9Jg3rXW2m7E="  # a Fernet key for the tests only
PUT_LINE = re.compile(r'"PUT /api/feeds/dhan-web/login-frame HTTP/1\.[01]" (\d{3})')
WAIT = 30.0


def frame(day: int) -> bytes:
    """A 703-byte frame in seed 003's layout; the session token differs per `day`, as Dhan's does."""
    return dhan_web_login_frame(token=f"{day:032d}")


# Orderhook, the fake Dhan site and the browser, shared by the module's tests.


class Orderhook:
    """The real web process, its environment and what its access log says about frame uploads."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.port = free_port()
        self.web = start_web(env, workdir, self.port)
        self.url = f"http://127.0.0.1:{self.port}"

    def puts(self) -> list[int]:
        """The status of every PUT of the login frame so far, in order."""
        return [int(code) for code in PUT_LINE.findall(self.web.log())]

    def frame_info(self, token: str = ADMIN_TOKEN) -> requests.Response:
        """GET the stored frame's size and time."""
        return requests.get(self.url + FRAME_PATH, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture(scope="module")
def orderhook(redis_url, tmp_path_factory) -> Iterator[Orderhook]:
    """A migrated SQLite database, a clean Redis database and the web process with an access log."""
    workdir = tmp_path_factory.mktemp("orderhook")
    database = f"sqlite:///{workdir / 'orderhook.sqlite3'}"
    upgrade(database)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.set(OWNER_KEY, os.getpid(), ex=3600)
    env = make_env(
        redis_url,
        database,
        workdir,
        FEEDS="dhan_web",
        FEEDS_SECRET_KEY=FEED_KEY,
        GUNICORN_CMD_ARGS="--access-logfile -",
    )
    service = Orderhook(env, workdir)
    yield service
    service.web.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[FakeDhanSite]:
    """web.dhan.co and order-feed.dhan.co on one loopback TLS port."""
    with FakeDhanSite(tmp_path_factory.mktemp("site")) as fake:
        yield fake


class Browser:
    """Chromium with the extension loaded; a tab on one of its pages reads and clears its storage."""

    def __init__(self, context: BrowserContext, extension_id: str) -> None:
        self.context = context
        self.extension_id = extension_id
        # A fresh install opens the options page by itself; wait for it so it cannot take over the probe's tab.
        options = self.page_url("options.html")
        deadline = time.monotonic() + WAIT
        while not any(page.url == options for page in context.pages):
            assert time.monotonic() < deadline, "the options page did not open on install"
            context.pages[0].wait_for_timeout(100)  # lets Playwright take in the browser's events
        self.probe = context.new_page()
        self.probe.goto(self.page_url("popup.html"))

    def page_url(self, name: str) -> str:
        """chrome-extension:// URL of one of the extension's pages."""
        return f"chrome-extension://{self.extension_id}/{name}"

    def storage(self) -> dict:
        """Everything in chrome.storage.local (read from a trusted extension page)."""
        return self.probe.evaluate("chrome.storage.local.get(null)")

    def status(self) -> dict:
        """The capture/upload status the popup shows."""
        return self.storage().get("status") or {}

    def badge(self) -> str:
        """The toolbar badge text."""
        return self.probe.evaluate("chrome.action.getBadgeText({})")

    def reset(self) -> None:
        """Forget settings, the last uploaded frame's hash, the status and any pending frame."""
        self.probe.evaluate("Promise.all([chrome.storage.local.clear(), chrome.storage.session.clear()])")

    def configure(self, url: str, token: str) -> str:
        """Fill the options page like a user and press Save; the message it shows."""
        page = self.context.new_page()
        try:
            page.goto(self.page_url("options.html"))
            page.get_by_label("Orderhook URL").fill(url)
            page.get_by_label("Admin token").fill(token)
            page.get_by_role("button", name="Save").click()
            return wait_message(page)
        finally:
            page.close()

    def open_dhan(self, url: str) -> Page:
        """Open the fake Dhan page and wait until its order-feed socket is open."""
        page = self.context.new_page()
        page.goto(url)
        page.wait_for_function("window.results && window.results.opened", timeout=WAIT * 1000)
        return page


def build_zip(out_dir: Path) -> Path:
    """scripts/build-extension, as a user or CI runs it; the zip it wrote."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build-extension"), "--out", str(out_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return Path(result.stdout.strip())


def extension_copy(workdir: Path) -> Path:
    """The built zip unpacked, plus host access to loopback (see the module docstring)."""
    copy = workdir / "extension"
    with zipfile.ZipFile(build_zip(workdir / "dist")) as archive:
        archive.extractall(copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["host_permissions"] = ["http://127.0.0.1/*"]
    (copy / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return copy


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """One Playwright driver for the module (the sync API allows one at a time per thread)."""
    with sync_playwright() as playwright:
        yield playwright


@contextmanager
def launched(playwright: Playwright, extension: Path, profile: Path) -> Iterator[Browser]:
    """Headless Chromium (Debian's) with `extension` loaded unpacked, the Dhan names mapped to loopback."""
    args = [
        f"--disable-extensions-except={extension}",
        f"--load-extension={extension}",
        "--host-resolver-rules=MAP web.dhan.co 127.0.0.1, MAP order-feed.dhan.co 127.0.0.1",
        "--ignore-certificate-errors",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ]
    context = playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=CHROMIUM,
        headless=True,
        args=args,
        ignore_https_errors=True,
        viewport={"width": 900, "height": 700},
    )
    try:
        worker = (
            context.service_workers[0]
            if context.service_workers
            else context.wait_for_event("serviceworker", timeout=WAIT * 1000)
        )
        yield Browser(context, worker.url.split("/")[2])
    finally:
        context.close()


@pytest.fixture(scope="module")
def browser(playwright_driver, tmp_path_factory, site) -> Iterator[Browser]:
    """The browser most tests share: the built extension with host access to loopback."""
    workdir = tmp_path_factory.mktemp("chromium")
    with launched(playwright_driver, extension_copy(workdir), workdir / "profile") as shared:
        yield shared


@pytest.fixture
def fresh(browser: Browser) -> Browser:
    """The extension as just installed."""
    browser.reset()
    return browser


def wait_message(page: Page) -> str:
    """The options page's message once it has a final one (extension pages forbid eval: poll from here)."""
    text: list[str] = []

    def final() -> bool:
        text[:] = [page.inner_text("#message")]
        return bool(text[0]) and not text[0].startswith("Testing")

    wait_until(final, WAIT, message="the options page showed no message")
    return text[0]


def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: $SCREENSHOT_DIR when set (to look at them), else the test's tmp dir."""
    directory = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def wait_puts(orderhook: Orderhook, count: int) -> list[int]:
    """Wait until `count` frame PUTs reached Orderhook; their statuses."""
    wait_until(lambda: len(orderhook.puts()) >= count, WAIT, message=f"{count} PUTs expected: {orderhook.puts()}")
    return orderhook.puts()


def wait_capture_after(browser: Browser, moment: str | None) -> dict:
    """Wait until the extension noted a capture later than `moment`; the status."""
    wait_until(
        lambda: (browser.status().get("capture") or {}).get("at", "") > (moment or ""),
        WAIT,
        message=f"no new capture after {moment}: {browser.status()}",
    )
    return browser.status()


def wait_upload(browser: Browser, check) -> dict:
    """Wait until the upload status satisfies `check`; the status."""
    wait_until(lambda: check(browser.status().get("upload") or {}), WAIT, message=f"upload status: {browser.status()}")
    return browser.status()


def wait_feed_messages(site: FakeDhanSite, sessions: int, messages: int) -> None:
    """Wait until the fake order feed saw `sessions` sockets and the last one `messages` messages."""
    wait_until(
        lambda: len(site.feed_sessions()) >= sessions and len(site.feed_sessions()[sessions - 1].messages) >= messages,
        WAIT,
        message="the fake order feed did not receive the page's messages",
    )


# The package


def test_build_script_makes_a_reproducible_zip_with_minimal_permissions(tmp_path):
    """The zip is named after the version, builds byte-identical twice, and asks for no more than it needs."""
    first, second = build_zip(tmp_path / "one"), build_zip(tmp_path / "two")
    assert first.read_bytes() == second.read_bytes()
    with zipfile.ZipFile(first) as archive:
        names = set(archive.namelist())
        manifest = json.loads(archive.read("manifest.json"))
    assert first.name == f"orderhook-extension-{manifest['version']}.zip"
    assert manifest == json.loads((EXTENSION / "manifest.json").read_text())
    assert {"manifest.json", "background.js", "hook.js", "relay.js", "lib.js", "options.html", "popup.html"} <= names
    assert "README.md" not in names
    assert manifest["manifest_version"] == 3
    assert manifest["permissions"] == ["storage"]
    assert "host_permissions" not in manifest  # the Orderhook origin is requested at Save
    assert manifest["optional_host_permissions"] == ["https://*/*", "http://*/*"]
    scripts = {tuple(s["js"]): s for s in manifest["content_scripts"]}
    assert all(s["matches"] == ["https://web.dhan.co/*"] for s in scripts.values())
    assert scripts[("hook.js",)]["world"] == "MAIN" and scripts[("hook.js",)]["run_at"] == "document_start"
    assert "world" not in scripts[("relay.js",)]


def test_extension_scripts_never_log():
    """No console output anywhere: nothing could print the frame or the token."""
    for script in EXTENSION.glob("*.js"):
        assert "console." not in script.read_text(), script.name


# Options page


def test_options_save_and_test_connection(fresh: Browser, orderhook: Orderhook, tmp_path):
    """Save keeps the settings; Test connection tells a wrong token, a right one and an unreachable URL apart."""
    page = fresh.context.new_page()
    page.goto(fresh.page_url("options.html"))
    url_input, token_input = page.get_by_label("Orderhook URL"), page.get_by_label("Admin token")
    save, test = page.get_by_role("button", name="Save"), page.get_by_role("button", name="Test connection")

    url_input.fill("http://orderhook.example.com")
    token_input.fill(ADMIN_TOKEN)
    save.click()
    assert "https://" in page.inner_text("#message")
    assert "orderhookUrl" not in fresh.storage()

    def run(button) -> str:
        page.evaluate("document.getElementById('message').textContent = ''")
        button.click()
        return wait_message(page)

    url_input.fill(orderhook.url + "/")
    token_input.fill("not-the-admin-token")
    assert run(save).startswith("Saved.")
    assert fresh.storage()["orderhookUrl"] == orderhook.url  # the trailing slash is dropped
    assert "refused the admin token (401)" in run(test)

    token_input.fill(ADMIN_TOKEN)
    assert run(save).startswith("Saved.")
    stored = fresh.storage()
    assert stored["orderhookUrl"] == orderhook.url and stored["adminToken"] == ADMIN_TOKEN
    answer = run(test)
    assert answer.startswith("Connected: the URL answers and the admin token works.")
    assert "dhan_web feed is not in" not in answer  # the web runs with FEEDS=dhan_web
    page.screenshot(path=str(screenshot_dir(tmp_path) / "extension-options.png"), full_page=True)

    url_input.fill(f"http://127.0.0.1:{free_port()}")
    assert "unreachable" in run(test)
    page.reload()
    assert url_input.input_value() == orderhook.url and token_input.input_value() == ADMIN_TOKEN
    page.close()


# Capture and upload


def test_capture_uploads_each_distinct_frame_once_and_leaves_the_sockets_working(
    fresh: Browser, orderhook: Orderhook, site: FakeDhanSite, tmp_path
):
    """One PUT per distinct 703-byte first binary frame; later frames, other sizes and other hosts are not sent."""
    assert fresh.configure(orderhook.url, ADMIN_TOKEN).startswith("Saved.")
    site.frames.update(
        first=frame(1), second=frame(2), blob=frame(3), other=frame(4), later=b"\x2a" + bytes(99), short=frame(5)[:702]
    )
    puts_before = len(orderhook.puts())
    sessions_before = len(site.feed_sessions())

    # The login frame, then a second binary message; another socket to web.dhan.co sends another frame.
    page = fresh.open_dhan(site.page_url("first", "later", other="other"))
    assert wait_puts(orderhook, puts_before + 1)[puts_before:] in ([201], [200])
    info = orderhook.frame_info()
    assert info.status_code == 200 and info.json()["size"] == 703 and info.json()["stored_at"]
    status = wait_upload(fresh, lambda u: u.get("ok"))
    assert status["capture"]["size"] == 703 and status["capture"]["alreadyUploaded"] is False
    assert fresh.badge() == "OK"

    # The page's socket is unchanged: every message reached the feed in order, answers came back.
    wait_feed_messages(site, sessions_before + 1, 3)
    feed = site.feed_sessions()[sessions_before]
    assert feed.messages == [frame(1), b"\x2a" + bytes(99), "text after the frames"]
    assert feed.path == "/?src=W&id=1100000001"
    page.wait_for_function("window.results.received.length >= 3", timeout=WAIT * 1000)
    sockets = page.evaluate(
        """() => ({
            received: window.results.received,
            binaryType: window.feed.binaryType,
            isWebSocket: window.feed instanceof WebSocket,
            ownProperties: Object.getOwnPropertyNames(window.feed).concat(Object.getOwnPropertyNames(window.other)),
            sendIsNative: [window.feed, window.other].every((s) => s.send === WebSocket.prototype.send),
            otherOpened: window.results.otherOpened,
            constants: [WebSocket.CONNECTING, WebSocket.OPEN, WebSocket.CLOSING, WebSocket.CLOSED],
            errors: window.results.errors,
        })"""
    )
    assert json.loads(sockets["received"][0])["Type"] == "order_alert"
    assert sockets["received"][1:3] == ["binary:true:703", "binary:true:100"]
    assert sockets["binaryType"] == "arraybuffer" and sockets["isWebSocket"] is True
    assert sockets["ownProperties"] == [] and sockets["sendIsNative"] is True
    assert sockets["otherOpened"] is True and sockets["errors"] == []
    assert sockets["constants"] == [0, 1, 2, 3]
    wait_until(lambda: any(s.binary == [frame(4)] for s in site.other_sessions()), WAIT, message="other socket")
    page.close()

    # The same frame again (a reload): captured, not uploaded.
    moment = fresh.status()["capture"]["at"]
    page = fresh.open_dhan(site.page_url("first"))
    status = wait_capture_after(fresh, moment)
    assert status["capture"]["alreadyUploaded"] is True
    page.close()

    # A first binary frame of another size, and a 703-byte frame that is not the first binary one.
    page = fresh.open_dhan(site.page_url("short", "second"))
    wait_feed_messages(site, len(site.feed_sessions()), 3)
    time.sleep(1.5)  # room for a wrong upload to show up
    assert fresh.status()["capture"]["at"] == status["capture"]["at"]
    page.close()
    assert len(orderhook.puts()) == puts_before + 1

    # A new day's frame, sent as a Blob this time, goes up; then the frame that came from web.dhan.co's own
    # socket earlier (never uploaded) goes up too when the page sends it to the order feed.
    page = fresh.open_dhan(site.page_url("blob", send_as="blob"))
    assert wait_puts(orderhook, puts_before + 2)[puts_before + 1 :] == [200]
    page.close()
    page = fresh.open_dhan(site.page_url("other", send_as="view"))
    assert wait_puts(orderhook, puts_before + 3)[puts_before + 2 :] == [200]
    page.close()
    status = wait_upload(fresh, lambda u: u.get("ok") and u.get("at", "") > status["upload"]["at"])
    assert orderhook.frame_info().json()["size"] == 703
    assert len(orderhook.puts()) == puts_before + 3  # nothing else went up: not the short, late or other-host ones

    popup = fresh.context.new_page()
    popup.set_viewport_size({"width": 360, "height": 300})
    popup.goto(fresh.page_url("popup.html"))
    assert "stored in Orderhook" in popup.inner_text("#upload")
    assert "703 bytes" in popup.inner_text("#capture")
    popup.screenshot(path=str(screenshot_dir(tmp_path) / "extension-popup.png"))
    popup.close()


def test_upload_failures_say_what_to_fix_and_a_fixed_setting_sends_the_frame(
    fresh: Browser, orderhook: Orderhook, site: FakeDhanSite, tmp_path
):
    """Wrong token (401), a refused frame (400 with the server's words), an unreachable URL; Save retries."""
    site.frames.update(day6=frame(6), bad=bytes(703), day7=frame(7))
    puts_before = len(orderhook.puts())

    fresh.configure(orderhook.url, "not-the-admin-token")
    page = fresh.open_dhan(site.page_url("day6"))
    status = wait_upload(fresh, lambda u: u.get("kind") == "wrong_token")
    assert "401" in status["upload"]["message"] and fresh.badge() == "!"
    page.close()
    popup = fresh.context.new_page()
    popup.set_viewport_size({"width": 360, "height": 300})
    popup.goto(fresh.page_url("popup.html"))
    assert "refused the admin token" in popup.inner_text("#problem")
    popup.screenshot(path=str(screenshot_dir(tmp_path) / "extension-popup-error.png"))
    popup.close()

    # Fixing the token uploads the frame captured before, without visiting Dhan again.
    fresh.configure(orderhook.url, ADMIN_TOKEN)
    assert wait_puts(orderhook, puts_before + 2)[puts_before:] in ([401, 200], [401, 201])
    wait_upload(fresh, lambda u: u.get("ok"))
    assert fresh.badge() == "OK"

    page = fresh.open_dhan(site.page_url("bad"))
    status = wait_upload(fresh, lambda u: u.get("kind") == "refused_frame")
    message = status["upload"]["message"]  # Orderhook's own words follow, whatever they are
    assert status["upload"]["status"] == 400 and message.startswith("Orderhook refused the frame (400): ")
    assert len(message) > len("Orderhook refused the frame (400): ") + 10 and "bad request" not in message
    page.close()

    fresh.configure(f"http://127.0.0.1:{free_port()}", ADMIN_TOKEN)
    page = fresh.open_dhan(site.page_url("day7"))
    status = wait_upload(fresh, lambda u: u.get("kind") == "unreachable")
    assert "unreachable" in status["upload"]["message"]
    page.close()
    assert orderhook.puts()[puts_before:] in ([401, 200, 400], [401, 201, 400])
    assert "not-the-admin-token" not in orderhook.web.log() and ADMIN_TOKEN not in orderhook.web.log()


def test_not_set_up_keeps_the_frame_until_save(fresh: Browser, orderhook: Orderhook, site: FakeDhanSite):
    """A capture before any setup says so; saving the settings then uploads it.

    The page first calls send() before the socket is open: that throws as it does without the extension
    and does not use up the capture, which takes the frame actually sent after "open".
    """
    site.frames["day8"] = frame(8)
    puts_before = len(orderhook.puts())
    page = fresh.open_dhan(site.page_url("day8", early=True))
    status = wait_upload(fresh, lambda u: u.get("kind") == "not_configured")
    assert "options" in status["upload"]["message"]
    assert page.evaluate("window.results.early") == "InvalidStateError"
    page.close()
    fresh.configure(orderhook.url, ADMIN_TOKEN)
    assert wait_puts(orderhook, puts_before + 1)[puts_before:] in ([200], [201])


def test_without_host_access_nothing_is_sent(playwright_driver, orderhook: Orderhook, site: FakeDhanSite, tmp_path):
    """The shipped manifest as is: settings saved but access to the Orderhook origin declined -> no request."""
    extension = tmp_path / "extension"
    with zipfile.ZipFile(build_zip(tmp_path / "dist")) as archive:
        archive.extractall(extension)
    site.frames["day9"] = frame(9)
    puts_before = len(orderhook.puts())
    with launched(playwright_driver, extension, tmp_path / "profile") as shipped:
        granted = shipped.probe.evaluate("chrome.permissions.getAll()")
        assert granted == {"origins": ["https://web.dhan.co/*"], "permissions": ["storage"]}
        shipped.probe.evaluate(
            "(s) => chrome.storage.local.set(s)", {"orderhookUrl": orderhook.url, "adminToken": ADMIN_TOKEN}
        )
        page = shipped.open_dhan(site.page_url("day9"))
        status = wait_upload(shipped, lambda u: u.get("kind") == "no_permission")
        assert "press Save" in status["upload"]["message"] and shipped.badge() == "!"
        page.close()
    assert len(orderhook.puts()) == puts_before


# The end: the feeds process logs in with the captured bytes.


class LoopThread:
    """An asyncio loop in a thread, so a synchronous test can run the async fake broker."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coroutine, timeout: float = WAIT):
        """Run a coroutine on the loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def close(self) -> None:
        """Stop the loop."""
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_feeds_process_logs_in_to_dhan_web_with_exactly_the_captured_bytes(
    fresh: Browser, orderhook: Orderhook, site: FakeDhanSite
):
    """Browser capture -> PUT -> stored encrypted -> the `feeds` process's first binary message, byte for byte."""
    site.frames["today"] = frame(20261128)
    fresh.configure(orderhook.url, ADMIN_TOKEN)
    puts_before = len(orderhook.puts())
    page = fresh.open_dhan(site.page_url("today"))
    wait_puts(orderhook, puts_before + 1)
    page.close()
    sent_by_page = site.feed_sessions()[-1].binary[0]
    assert sent_by_page == frame(20261128) and len(sent_by_page) == 703

    loop = LoopThread()
    fake = FakeDhanWebSocket({sent_by_page})
    loop.run(fake.__aenter__())
    feeds = Process(
        "feeds",
        dict(orderhook.env, DHAN_WEB_WS_URL=fake.url, FEEDS_FRAME_POLL_SECONDS="0.2"),
        orderhook.workdir,
    )
    try:
        session = loop.run(fake.wait_sessions(1, timeout=WAIT), timeout=WAIT + 5)
        assert session.first == sent_by_page and isinstance(session.first, bytes)
        assert struct.unpack_from("<bh", session.first) == (42, 105)

        def connected() -> bool:
            answer = requests.get(
                orderhook.url + "/api/feeds", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=5
            ).json()
            return any(f["name"] == "dhan_web" and f["connected"] for f in answer["feeds"])

        wait_until(connected, WAIT, message=f"dhan_web not connected:\n{feeds.log()}")
        assert base64.b64encode(sent_by_page).decode() not in feeds.log() + orderhook.web.log()
    finally:
        feeds.stop()
        loop.run(fake.__aexit__(None, None, None))
        loop.close()
