"""Angel One's published order updates: every registry-driven test sends these (found by tests/support/samples.py).

Sources (docs/brokers.md §9):
- `angel_ws_ack.json`: the AB00 acknowledgement of Angel's announcement of the order socket
  (smartapi.angelbroking.com/topic/4041) [doc]; the excerpt ends at `orderid`, so the frame ends there too,
  its `user-id` the client code of the capture below.
- `angel_ws_open.json`: a live AB01 frame captured by a public Go client of the socket (verbatim) [3rd].
- `angel_details_complete.json`: a details-API answer for a complete order, from a public integration [3rd].
- `angel_details_rejected.json`: the individual-order answer a SmartAPI Java client's unit tests build (the repository
  behind the excerpt was not identified; its style is smartapi-java's) [3rd].
"""

from __future__ import annotations

from typing import Any

from tests.support.helpers import load_fixture


def postbacks() -> list[dict[str, Any]]:
    """A complete order row as a flat postback, and the socket's AB01 frame (both shapes are taken, §9.1)."""
    return [load_fixture("angel_details_complete.json")["data"], load_fixture("angel_ws_open.json")]
