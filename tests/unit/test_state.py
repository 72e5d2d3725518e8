"""The order state machine: any arrival order of an order's updates ends in the same final state."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.events import OrderEvent, OrderStatus
from app.state import CLAIM_GRACE_SECONDS, OrderState, apply_event, public_view

TERMINAL = OrderStatus.TERMINAL


def event(
    status: str, filled: int, quantity: int, second: int, avg: float | None = None, source="postback", **extra
) -> dict:
    """A normalized event dict as the pipeline stores it."""
    return OrderEvent(
        broker="kite",
        source=source,
        order_id="O1",
        status=status,
        broker_status=status,
        received_at=f"2026-01-01T00:{second // 60:02d}:{second % 60:02d}.000000Z",
        raw={},
        quantity=quantity,
        filled_quantity=filled,
        average_price=avg,
        exchange_time=f"2026-01-01T03:30:{second:02d}.000000Z",
        **extra,
    ).to_dict()


@st.composite
def lifecycles(draw):
    """A realistic life of one order: placed, opened, modified and filled in steps, then one outcome."""
    quantity = draw(st.integers(1, 500))
    fills = [f for f in sorted(set(draw(st.lists(st.integers(1, quantity), max_size=5)))) if f < quantity]
    outcome = draw(st.sampled_from(["FILLED", "CANCELLED", "REJECTED", "OPEN"]))
    if outcome == "REJECTED":
        return [event(OrderStatus.PENDING, 0, quantity, 0), event(OrderStatus.REJECTED, 0, quantity, 1)]
    steps = [("OPEN", 0)] + [("FILL", filled) for filled in fills]
    for _ in range(draw(st.integers(0, 3))):  # modifications (Kite UPDATE without a fill) anywhere after placing
        steps.insert(draw(st.integers(0, len(steps))), ("MODIFY", None))
    events = [event(OrderStatus.PENDING, 0, quantity, 0, price=100.0)]
    filled, price = 0, 100.0
    for second, (kind, value) in enumerate(steps, start=1):
        if kind == "MODIFY":
            price += 1
            events.append(event(OrderStatus.OPEN, filled, quantity, second, modified=True, price=price))
        elif kind == "OPEN":
            events.append(event(OrderStatus.OPEN, 0, quantity, second, price=price))
        else:
            filled = value
            avg = 100.0 + filled / 1000
            events.append(event(OrderStatus.PARTIALLY_FILLED, filled, quantity, second, avg, price=price))
    second = len(steps) + 1
    if outcome == "FILLED":
        events.append(event(OrderStatus.FILLED, quantity, quantity, second, avg=100.5, price=price))
    elif outcome == "CANCELLED":
        avg = events[-1]["average_price"] if filled else None
        events.append(event(OrderStatus.CANCELLED, filled, quantity, second, avg, price=price))
    return events


def fold(events: list[dict], confirming: frozenset[str] = frozenset()) -> dict:
    """Apply events one by one, as the worker does: the state goes through the database (JSON) between
    them; the stored form (orders.data) at the end."""
    state: OrderState | None = None
    stored = None
    for item in events:
        before = stored
        stored = json.loads(json.dumps(apply_event(state, item, confirming=confirming).stored()))
        state = OrderState.from_stored(stored)
        if before is not None and before.get("confirmed") is False:
            continue  # an unconfirmed claim is shown, not final: the checks below are for what is final
        if before is not None:
            if before["status"] in TERMINAL:
                assert stored["status"] == before["status"], "a terminal status was left"
            assert stored["filled_quantity"] >= before["filled_quantity"], "filled quantity went down"
    return stored


def summary(state: dict) -> tuple:
    return (
        state["status"],
        state["filled_quantity"],
        state["pending_quantity"],
        state["average_price"],
        state["quantity"],
        state["price"],
        state["event_count"],
    )


@settings(max_examples=300, deadline=None)
@given(data=st.data(), life=lifecycles())
def test_any_arrival_order_with_duplicates_gives_the_same_final_state(data, life):
    expected = summary(fold(life))
    arrivals = life + data.draw(st.lists(st.sampled_from(life), max_size=4))
    shuffled = data.draw(st.permutations(arrivals))
    got = fold(shuffled)
    assert summary(got)[:6] == expected[:6]
    assert got["event_count"] == len(arrivals)


def test_partial_fill_after_complete_does_not_reopen():
    """Kite forum comment/33971: a partial fill arrived after COMPLETE."""
    done = event(OrderStatus.FILLED, 10, 10, 5, avg=101.0)
    late = event(OrderStatus.PARTIALLY_FILLED, 4, 10, 3, avg=100.0)
    state = fold([done, late])
    assert (state["status"], state["filled_quantity"], state["average_price"]) == ("FILLED", 10, 101.0)


def test_cancel_after_partial_fill_keeps_the_fill():
    state = fold([event("OPEN", 0, 10, 1), event("PARTIALLY_FILLED", 4, 10, 2, avg=99.0), event("CANCELLED", 4, 10, 3)])
    assert (state["status"], state["filled_quantity"], state["pending_quantity"]) == ("CANCELLED", 4, 0)


def test_partially_filled_comes_from_quantities():
    state = fold([event("OPEN", 0, 10, 1), event("OPEN", 3, 10, 2)])
    assert state["status"] == "PARTIALLY_FILLED" and state["pending_quantity"] == 7


def test_modification_after_placing_proves_the_order_is_live_in_any_order():
    placed = event("PENDING", 0, 10, 1)
    modify = event("OPEN", 0, 10, 2, modified=True)
    assert fold([placed, modify])["status"] == fold([modify, placed])["status"] == "OPEN"


def test_a_stale_modification_does_not_undo_a_later_one():
    opened = event("OPEN", 0, 10, 1)
    first = event("OPEN", 0, 10, 3, modified=True, price=101.0)
    second = event("OPEN", 0, 10, 4, modified=True, price=102.0)
    assert fold([opened, second, first])["price"] == fold([first, opened, second])["price"] == 102.0


def test_modification_changes_price_not_status():
    trigger = event("TRIGGER_PENDING", 0, 10, 1)
    trigger["price"] = 100.0
    modify = event("OPEN", 0, 10, 2, modified=True)
    modify["price"] = 105.0
    state = fold([trigger, modify])
    assert state["status"] == "TRIGGER_PENDING" and state["price"] == 105.0


def test_pending_after_open_is_ignored():
    state = fold([event("OPEN", 0, 10, 2), event("PENDING", 0, 10, 1)])
    assert state["status"] == "OPEN"


def test_public_view_hides_bookkeeping():
    assert not [k for k in public_view(fold([event("OPEN", 0, 1, 1)])) if k.startswith("_")]


def test_an_average_from_a_smaller_fill_is_not_kept_for_a_larger_one():
    """Jainam sends no average with a fill of several trades: unknown beats the first trade's price."""
    first = event("PARTIALLY_FILLED", 4, 10, 1, avg=800.5)
    done = event("FILLED", 10, 10, 2)
    assert fold([first, done])["average_price"] is None
    assert fold([done, first])["average_price"] is None


# A forged status cannot stick (docs/reconcile.md): for a broker with REST credentials a
# terminal status by postback is a claim until the broker's own answer (a reconcile event) settles it.

KITE = frozenset({"kite"})
VERDICT_SECOND = 120  # the broker read comes well after every postback (more than the grace period)


@st.composite
def disputed(draw):
    """A life of one order by postback, forged terminal postbacks anywhere, and maybe the broker's verdict."""
    life = draw(lifecycles())
    truth = fold(life)  # what really happened (no claims without confirming brokers)
    quantity = truth["quantity"]
    forged = [
        event(
            draw(st.sampled_from(sorted(TERMINAL))),
            draw(st.integers(0, quantity)),
            quantity,
            draw(st.integers(0, 60)),
            tag="forged",
        )
        for _ in range(draw(st.integers(0, 2)))
    ]
    verdict = event(
        truth["status"],
        truth["filled_quantity"],
        quantity,
        VERDICT_SECOND,
        truth["average_price"],
        source="reconcile",
        price=truth["price"],
    )
    return life, forged, verdict, truth


@settings(max_examples=300, deadline=None)
@given(data=st.data(), case=disputed())
def test_claims_in_any_order_end_in_the_same_state_and_the_broker_has_the_last_word(data, case):
    life, forged, verdict, truth = case
    arrivals = life + forged + data.draw(st.lists(st.sampled_from(life + forged), max_size=3))
    unsettled = [fold(data.draw(st.permutations(arrivals)), KITE) for _ in range(2)]
    keys = [(s["status"], s["filled_quantity"], s["confirmed"], s.get("unconfirmed")) for s in unsettled]
    assert keys[0] == keys[1], "the same events in another order gave another state"
    if any(e["status"] in TERMINAL for e in life + forged):
        assert unsettled[0]["confirmed"] is False, "a postback terminal was taken as final without the broker"
    settled = fold(data.draw(st.permutations([*arrivals, verdict])), KITE)
    assert settled["confirmed"] is True
    assert (settled["status"], settled["filled_quantity"]) == (truth["status"], truth["filled_quantity"])
    assert settled["event_count"] == len(arrivals) + 1


def test_a_confirmed_terminal_cannot_be_moved_by_a_later_forgery():
    done = event(OrderStatus.FILLED, 10, 10, 5, avg=101.0)
    confirm = event(OrderStatus.FILLED, 10, 10, 30, avg=101.0, source="reconcile")
    forged = event(OrderStatus.CANCELLED, 0, 10, 40)
    state = fold([done, confirm, forged], KITE)
    assert (state["status"], state["confirmed"], state["filled_quantity"]) == ("FILLED", True, 10)


def test_the_latest_claim_is_shown_until_the_broker_answers():
    forged = event(OrderStatus.CANCELLED, 0, 10, 5)
    genuine = event(OrderStatus.FILLED, 10, 10, 6, avg=101.0)
    state = fold([genuine, forged], KITE)
    assert (state["status"], state["confirmed"], state["unconfirmed"]["pending_claims"]) == ("FILLED", False, 2)


def test_a_broker_read_within_the_grace_period_does_not_refute():
    opened = event(OrderStatus.OPEN, 0, 10, 1, source="websocket")
    claim = event(OrderStatus.CANCELLED, 0, 10, 10)
    early_read = event(OrderStatus.OPEN, 0, 10, 10 + int(CLAIM_GRACE_SECONDS) - 1, source="reconcile")
    assert fold([opened, claim, early_read], KITE)["status"] == "CANCELLED"
    late_read = event(OrderStatus.OPEN, 0, 10, 10 + int(CLAIM_GRACE_SECONDS) + 1, source="reconcile")
    state = fold([late_read, opened, claim], KITE)
    assert (state["status"], state["confirmed"]) == ("OPEN", True)


def test_websocket_terminals_and_brokers_without_credentials_are_final_at_once():
    by_feed = event(OrderStatus.CANCELLED, 0, 10, 5, source="websocket")
    assert fold([by_feed], KITE)["confirmed"] is True
    by_postback = event(OrderStatus.CANCELLED, 0, 10, 5)
    assert fold([by_postback], frozenset({"dhan"}))["confirmed"] is True
    assert fold([by_postback, event(OrderStatus.FILLED, 10, 10, 6)])["status"] == "CANCELLED"  # sticky as before


def test_claims_kept_are_bounded_and_dropped_once_final():
    from app.state import MAX_CLAIMS

    claims = [event(OrderStatus.CANCELLED, 0, 10, second, tag=f"f{second}") for second in range(MAX_CLAIMS + 10)]
    state = fold(claims, KITE)
    assert len(state["_claims"]) == MAX_CLAIMS and state["unconfirmed"]["received_at"] == claims[-1]["received_at"]
    final = fold([*claims, event(OrderStatus.FILLED, 10, 10, 100, source="reconcile")], KITE)
    assert (final["status"], final["confirmed"]) == ("FILLED", True) and "_claims" not in final


def test_the_stored_form_keeps_the_layers_beside_the_shown_fields_and_reads_back_the_same():
    opened = event(OrderStatus.OPEN, 0, 10, 1, source="websocket")
    claim = event(OrderStatus.CANCELLED, 0, 10, 10)
    read = event(OrderStatus.OPEN, 0, 10, 11, source="reconcile")
    state = apply_event(apply_event(apply_event(None, opened), claim, confirming=KITE), read, confirming=KITE)
    assert (state.shown["status"], state.confirmed, state.trusted["status"]) == ("CANCELLED", False, "OPEN")
    assert [c["id"] for c in state.claims] == [claim["id"]] and state.reconciled_at == read["received_at"]
    stored = state.stored()
    assert list(stored)[-3:] == ["_trusted", "_claims", "_reconciled_at"]
    assert OrderState.from_stored(json.loads(json.dumps(stored))) == state
    assert state.public() == public_view(stored) and "unconfirmed" in state.public()
