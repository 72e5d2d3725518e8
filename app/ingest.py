"""The one Redis round trip on the request path: dedup and append to the ingest stream, atomically."""

from __future__ import annotations

import json

import redis

from app.events import OrderEvent
from app.exceptions import NotDurableError

STREAM = "oh:ingest"
DEDUP_PREFIX = "oh:dedup:"

# KEYS: dedup key, stream. ARGV: event id, ttl seconds, event JSON, raw body.
# SET NX and XADD in one script: fifty concurrent copies of an update give exactly one entry.
_DEDUP_AND_APPEND = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[3], 'b', ARGV[4])
return 1
"""


class Ingestor:
    """Queues normalized events for the workers; one instance per process."""

    def __init__(self, client: redis.Redis, *, dedup_ttl: int) -> None:
        self.client = client
        self.dedup_ttl = dedup_ttl
        self._script = client.register_script(_DEDUP_AND_APPEND)

    def submit(self, event: OrderEvent, raw_body: bytes) -> bool:
        """True if the update is new (queued), False if it is a duplicate; NotDurableError if Redis is away."""
        payload = json.dumps(event.to_dict(), separators=(",", ":"), ensure_ascii=False)
        try:
            added = self._script(
                keys=[DEDUP_PREFIX + event.dedup_key, STREAM],
                args=[event.id, self.dedup_ttl, payload, raw_body],
            )
        except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
            raise NotDurableError(
                f"the update could not be queued durably ({type(exc).__name__}); please retry"
            ) from exc
        return bool(added)
