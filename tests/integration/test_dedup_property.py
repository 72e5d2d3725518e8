"""Property: every distinct broker update is taken once, whatever the channel, spelling, order or redelivery.

Each update of an order's life is delivered by any mix of its broker's channels (a postback, the WebSocket
copy, a REST order-book or history row), with status words spelled as different sources spell them, in any
order and any number of times: all copies of one update share one dedup key and no two updates share one,
so the ingestor, which dedups on that key, takes exactly one copy of each (docs/brokers.md §7).
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.brokers.flattrade.adapter import FlattradeAdapter
from app.brokers.kite.adapter import KiteAdapter
from app.config import load_config
from tests.support.env import KITE_SECRET
from tests.support.helpers import load_fixture, sign_kite

KITE_SEED = load_fixture("kite_postback_complete.json")
NOREN_OPEN = load_fixture("flattrade_noren_open.json")
RECEIVED = "2026-01-01T00:00:00.000000Z"

#: One Kite order's updates: (status word, filled quantity, price). Three PENDING words, two MODIFY words
#: that keep OPEN, a modification with a new price, a partial fill, the fill.
KITE_UPDATES = [
    ("PUT ORDER REQ RECEIVED", 0, 470.5),
    ("VALIDATION PENDING", 0, 470.5),
    ("OPEN PENDING", 0, 470.5),
    ("OPEN", 0, 470.5),
    ("MODIFY VALIDATION PENDING", 0, 470.5),
    ("MODIFY PENDING", 0, 470.5),
    ("OPEN", 0, 471.0),
    ("UPDATE", 4, 471.0),
    ("COMPLETE", 10, 471.0),
]
#: The exchange's time of each Kite update: none before the exchange has the order, and the same time for
#: OPEN and the two MODIFY words that follow it, so only the word tells those three apart.
KITE_EXCHANGE_TIMES = [
    None,
    None,
    None,
    *["2022-03-03 09:24:25"] * 3,
    "2022-03-03 09:24:40",
    *["2022-03-03 09:25:00"] * 2,
]
#: One Noren order's updates: (status word, reporttype, fillshares).
NOREN_UPDATES = [
    ("ORDER ACK", "NewAck", ""),
    ("ORDER PENDING", "PendingNew", ""),
    ("PENDING", "NewAck", ""),  # as seed 001's pending sample: the report type alone tells these two apart
    ("PENDING", "PendingNew", ""),
    ("OPEN", "New", ""),
    ("OPEN", "Replaced", ""),
    ("OPEN", "Fill", "600"),
    ("COMPLETE", "Fill", "1500"),
]


def _spelled(word: str, style: int) -> str:
    """A status word as another source might spell it: as is, lower case, or with underscores."""
    return (word, word.lower(), word.replace(" ", "_"))[style]


def kite_copy(index: int, channel: int, style: int) -> tuple[dict, str]:
    """Update `index` as a signed postback (0), a WebSocket `data` object (1) or an order-book row (2)."""
    word, filled, price = KITE_UPDATES[index]
    order = dict(
        KITE_SEED,
        status=word,
        order_type="LIMIT",
        quantity=10,
        filled_quantity=filled,
        pending_quantity=10 - filled,
        price=price,
        average_price=471.0 if filled else 0,
        exchange_update_timestamp=KITE_EXCHANGE_TIMES[index],
    )
    if channel == 0:
        return sign_kite(order, KITE_SECRET), "postback"
    order["status"] = _spelled(word, style)
    if channel == 1:
        return dict(order, checksum=""), "websocket"
    row = {k: v for k, v in order.items() if k not in ("checksum", "user_id", "app_id")}
    return dict(row, account_id="AB1234", modified=False), "reconcile"


def noren_copy(index: int, channel: int, style: int) -> tuple[dict, str]:
    """Update `index` as a Noren push (0), a Tiqs camelCase postback (1) or a SingleOrdHist row (2)."""
    word, report, filled = NOREN_UPDATES[index]
    push = dict(NOREN_OPEN, status=_spelled(word, style), reporttype=report, fillshares=filled)
    if channel == 0:
        return dict(push, t="om"), "websocket"
    if channel == 1:
        renamed = {"norenordno": "id", "uid": "userId", "reporttype": "reportType", "fillshares": "fillShares"}
        tiqs = {renamed.get(k, k): v for k, v in push.items() if k not in ("actid",)}
        return dict(tiqs, type="orderUpdate"), "postback"
    row = {k: v for k, v in push.items() if k != "reporttype"}
    return dict(row, rpt=report, norentm="12-03-2024 13:53:04", stat="Ok"), "reconcile"


def deliveries(updates: int) -> st.SearchStrategy[list[tuple[int, int, int]]]:
    """Every update at least once, plus redeliveries, each by a random channel and spelling, shuffled."""
    one = st.tuples(st.integers(0, 2), st.integers(0, 2))
    required = st.lists(one, min_size=updates, max_size=updates).map(
        lambda picks: [(i, c, s) for i, (c, s) in enumerate(picks)]
    )
    extra = st.lists(st.tuples(st.integers(0, updates - 1), st.integers(0, 2), st.integers(0, 2)), max_size=12)
    return st.tuples(required, extra).flatmap(lambda parts: st.permutations(parts[0] + parts[1]))


PROPERTY = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _keys_by_update(adapter, build, plan) -> dict[int, set[str]]:
    """Each update's event ids over all its deliveries in the plan (the ingestor dedups on these keys)."""
    seen: dict[int, set[str]] = {}
    for index, channel, style in plan:
        payload, source = build(index, channel, style)
        event = adapter.event_from_payload(json.loads(json.dumps(payload)), source=source, received_at=RECEIVED)
        assert event.id == "evt_" + event.dedup_key[:32]
        assert event.raw.get("checksum") in (None, "")  # never a live Kite checksum in what goes out
        seen.setdefault(index, set()).add(event.dedup_key)
    return seen


def _assert_one_event_per_update(seen: dict[int, set[str]], updates: int) -> None:
    """Every copy of an update shares one key; no two updates share one."""
    assert sorted(seen) == list(range(updates))
    assert all(len(keys) == 1 for keys in seen.values()), seen
    assert len(set().union(*seen.values())) == updates


@PROPERTY
@given(plan=deliveries(len(KITE_UPDATES)))
def test_kite_every_distinct_update_is_one_event(env, plan):
    adapter = KiteAdapter(load_config(env))
    _assert_one_event_per_update(_keys_by_update(adapter, kite_copy, plan), len(KITE_UPDATES))


@PROPERTY
@given(plan=deliveries(len(NOREN_UPDATES)))
def test_noren_every_distinct_update_is_one_event(env, plan):
    adapter = FlattradeAdapter(load_config(env))
    _assert_one_event_per_update(_keys_by_update(adapter, noren_copy, plan), len(NOREN_UPDATES))


def test_the_ingestor_takes_one_copy_of_each_update(services, redis_client):
    """End to end through the real dedup + queue: every channel of every Kite update, twice, in reverse."""
    adapter = services.adapters["kite"]
    taken = 0
    for index in reversed(range(len(KITE_UPDATES))):
        for channel in (2, 1, 0, 1):
            payload, source = kite_copy(index, channel, channel)
            event = adapter.event_from_payload(payload, source=source, received_at=RECEIVED)
            taken += services.ingestor.submit(event, json.dumps(payload).encode())
    assert taken == len(KITE_UPDATES)
