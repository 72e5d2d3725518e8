"""Eight blotter tabs in ONE Chromium profile share one live stream (docs/frontend.md, "How it stays live").

A stream per tab held the browser's six HTTP/1.1 connections per host: the sixth tab got no rows, the
seventh never loaded. Both ways of sharing are driven: the SharedWorker, and the Web Lock leader tab
with a BroadcastChannel that a browser without SharedWorker uses.
"""

from __future__ import annotations

import pytest

from tests.support.chromium import DESKTOP, sign_in, wait_live

pytestmark = pytest.mark.e2e
TABS = 8
OPEN = {"status": "OPEN", "filled_quantity": 0, "pending_quantity": 1, "average_price": 0}
NO_SHARED_WORKER = "delete window.SharedWorker;"


def open_tabs(context, base: str) -> list:
    """Sign in in the first tab, then open the rest; each must load and go live."""
    first = context.new_page()
    sign_in(first, base)
    wait_live(first)
    tabs = [first]
    for _ in range(TABS - 1):
        tab = context.new_page()
        tab.goto(base + "/", timeout=30_000)
        wait_live(tab)
        tabs.append(tab)
    return tabs


def every_tab_gets(tabs: list, key: str) -> None:
    for index, tab in enumerate(tabs):
        row = tab.locator(f'tr[data-order="{key}"]')
        row.wait_for(timeout=30_000)
        assert row.count() == 1, f"tab {index + 1} shows {key} {row.count()} times"
        assert tab.locator("#live").inner_text() == "live"


def open_order_in(tab, key: str) -> None:
    tab.locator(f'tr[data-order="{key}"] td[data-label="Symbol"]').click()
    tab.locator("#order-events tr[data-event-id]").first.wait_for(timeout=30_000)
    assert key.split("/", 1)[1] in tab.locator("#order-title").inner_text()


def test_eight_tabs_of_one_profile_all_load_all_get_rows_live_and_survive_closing_the_first(stack, browser):
    context = browser.new_context(viewport=DESKTOP)
    tabs = open_tabs(context, stack.base)
    assert {tab.locator("#live").get_attribute("data-mode") for tab in tabs} == {"shared-worker"}
    answer, _ = stack.kite("TABS-1", **OPEN)
    assert answer.status_code == 202, answer.text
    every_tab_gets(tabs, "kite/TABS-1")
    open_order_in(tabs[0], "kite/TABS-1")
    tabs[0].close()  # the tab that started the worker goes away; the worker stays with the others
    stack.kite("TABS-2", **OPEN)
    every_tab_gets(tabs[1:], "kite/TABS-2")
    open_order_in(tabs[-1], "kite/TABS-2")
    context.close()


def test_without_shared_worker_one_leader_tab_holds_the_stream_and_another_takes_over(stack, browser):
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(NO_SHARED_WORKER)
    tabs = open_tabs(context, stack.base)
    assert {tab.locator("#live").get_attribute("data-mode") for tab in tabs} == {"leader-tab"}
    leaders = [tab for tab in tabs if tab.locator("#live").get_attribute("data-leader") == "yes"]
    assert leaders == [tabs[0]]
    stack.kite("LEAD-1", **OPEN)
    every_tab_gets(tabs, "kite/LEAD-1")
    open_order_in(tabs[0], "kite/LEAD-1")
    tabs[0].close()  # the leader goes away: the next tab waiting for the lock opens the stream
    rest = tabs[1:]
    stack.kite("LEAD-2", **OPEN)
    every_tab_gets(rest, "kite/LEAD-2")
    assert sum(tab.locator("#live").get_attribute("data-leader") == "yes" for tab in rest) == 1
    context.close()


def test_every_tab_says_not_live_while_the_shared_stream_is_down(stack, browser):
    context = browser.new_context(viewport=DESKTOP)
    tabs = open_tabs(context, stack.base)
    stack.web.stop()
    for tab in tabs:
        tab.locator("#live.off").wait_for(timeout=30_000)
        assert tab.locator("#live").inner_text().startswith("not live")
    stack.web = None
    stack.start()
    for tab in tabs:
        wait_live(tab)
    stack.kite("BACK-1", **OPEN)
    every_tab_gets(tabs, "kite/BACK-1")
    context.close()
