"""The Lua scripts of the ingest step, in one place."""

from __future__ import annotations

import hashlib

# KEYS: dedup key, stream. ARGV: event id, ttl seconds, event JSON, raw body.
# SET NX and XADD in one script: fifty concurrent copies of an update give exactly one entry.
DEDUP_AND_APPEND = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return 0
end
redis.call('XADD', KEYS[2], '*', 'e', ARGV[3], 'b', ARGV[4])
return 1
"""

#: What EVALSHA names it by (the SHA-1 Redis computes on SCRIPT LOAD).
DEDUP_AND_APPEND_SHA = hashlib.sha1(DEDUP_AND_APPEND.encode()).hexdigest()
