"""Every Redis key name the ingest step writes, in one place (the worker side imports them from app.ingest)."""

from __future__ import annotations

#: The stream every accepted update is appended to; the persist worker reads it through a consumer group.
STREAM = "oh:ingest"
#: Prefix of the dedup keys: SET NX on the update's content key, kept `DEDUP_TTL_SECONDS` (3 days).
DEDUP_PREFIX = "oh:dedup:"
#: CLIENT SETNAME of the request path's connections (so `CLIENT LIST` shows how many the web holds).
CLIENT_NAME = "orderhook-ingest"
