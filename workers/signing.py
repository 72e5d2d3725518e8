"""Standard Webhooks signing of forwarded events, with the `standardwebhooks` library (docs/delivery.md).

Headers: `webhook-id` (the event id, the same on every retry), `webhook-timestamp` (Unix seconds of
this attempt), `webhook-signature` (`v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, one per key,
space-separated, while FORWARD_SECRET lists several keys during a rotation).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

log = logging.getLogger(__name__)


def signing_keys(forward_secret: str) -> list[Webhook]:
    """One signer per key of FORWARD_SECRET (several, space-separated, during a rotation).

    Production refuses an undecodable key at start-up (app/config.py); development skips it, loudly.
    """
    signers = []
    for item in forward_secret.split():
        encoded = item[len("whsec_") :] if item.startswith("whsec_") else item
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            log.error("a FORWARD_SECRET key is not valid base64 and is not used for signing")
            continue
        if key:
            signers.append(Webhook(key))
    return signers


def sign(signers: list[Webhook], msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<signature>` under each key, space-separated (the body is UTF-8, so signing its text is exact)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    text = body.decode("utf-8")
    return " ".join(signer.sign(msg_id, when, text) for signer in signers)


def event_body(event: dict[str, Any]) -> bytes:
    """The exact bytes sent (and signed) for an event: UTF-8, or ASCII escapes if the text cannot be."""
    try:
        return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate somewhere in the raw payload
        return json.dumps(event, separators=(",", ":")).encode()


def webhook_headers(signers: list[Webhook], event_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    """Standard Webhooks headers for one attempt: same id every time, fresh timestamp."""
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Orderhook/1",
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
    }
    if signers:
        headers["webhook-signature"] = sign(signers, event_id, timestamp, body)
    return headers
