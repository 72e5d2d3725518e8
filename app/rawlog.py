"""The raw postback log is the only copy of a body: `raw` is rebuilt from it whenever an event leaves.

`raw_postbacks.body` keeps the bytes as received; `events.data` has no `raw` (a 65 kB
postback would be stored twice otherwise). The forwarded event and the API's event list both get their `raw` from
`raw_view`, so what leaves is the same everywhere, and every secret key a broker's spec declares (Kite's checksum:
one leaked checksum forges any status of its order) is blanked by app.brokers.redaction.redact_raw.
"""

from __future__ import annotations

from typing import Any

from app.brokers.redaction import redact_raw
from app.exceptions import PostbackPayloadError
from app.wire.body import loads, repair_missing_values


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
    return redact_raw(broker, data)


def with_raw(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    """A stored event (events.data) with its `raw` rebuilt from the body it came in."""
    shown = {key: value for key, value in event.items() if key != "raw"}
    shown["raw"] = raw_view(shown.get("broker", ""), body)
    return shown
