"""The ingest step: after validation, one Redis round trip (dedup + append to the stream), with a
durable fallback while Redis cannot take updates.

Modules, one concept each: `scripts` (the Lua), `serialize` (the queued event JSON), `queue` (the
Redis step), `circuit` (stop waiting on a dead Redis), `fallback` (the database table and the opt-in
local spool), `replay` (feeding kept updates to Redis), `ingestor` (the `submit` entry point postbacks
and feeds call). The key names it writes are in app/redis_keys.py. See docs/ingest.md.
"""

from __future__ import annotations

from app.ingest.ingestor import Ingestor
from app.ingest.replay import replay_pending

__all__ = ["Ingestor", "replay_pending"]
