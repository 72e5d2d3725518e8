"""The raw postback log is the only copy of a body: `raw` is rebuilt from it whenever an event leaves.

`raw_postbacks.body` keeps the bytes as received; `events.data` has no `raw` (issue 12: a 65 kB
postback was stored twice). The forwarded event and the API's event list both get their `raw` from
`raw_view`, so what leaves is the same everywhere and a Kite checksum never leaves (docs/delivery.md).
"""

from __future__ import annotations

from typing import Any

from app.exceptions import PostbackPayloadError
from app.parsing import loads, repair_missing_values

#: Kite signs with this key; one leaked checksum forges any status of its order, so it never leaves.
KITE_SECRET_KEYS = ("checksum",)


def raw_view(broker: str, body: bytes) -> Any:
    """The body as JSON, parsed leniently like the adapters (Dhan's `"key": ,`), minus Kite's checksum;
    text that is not JSON comes back as a string."""
    text = bytes(body).decode("utf-8-sig", errors="replace")
    try:
        data = loads(text)
    except PostbackPayloadError:
        try:  # only bodies that need it pay for the repair (a character loop)
            data = loads(repair_missing_values(text))
        except PostbackPayloadError:
            return text
    if broker == "kite":
        _drop_secrets(data)
    return data


def _drop_secrets(data: Any) -> None:
    """Remove Kite's checksum from the payload (and from the `data` object of a WebSocket frame)."""
    for holder in (data, data.get("data") if isinstance(data, dict) else None):
        if isinstance(holder, dict):
            for key in KITE_SECRET_KEYS:
                holder.pop(key, None)


def with_raw(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    """A stored event (events.data) with its `raw` rebuilt from the body it came in."""
    shown = {key: value for key, value in event.items() if key != "raw"}
    shown["raw"] = raw_view(shown.get("broker", ""), body)
    return shown
