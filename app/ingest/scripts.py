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

# KEYS: stream, then one dedup key per update. ARGV: ttl seconds, then (event id, event JSON, raw body)
# per update. The same step for several updates in ONE script: Redis serves a blocked reader only after
# a script ends, so one worker reads them all, in this order (an order's history, docs/reconcile.md).
DEDUP_AND_APPEND_MANY = """
local added = {}
for i = 2, #KEYS do
  local at = 2 + (i - 2) * 3
  if redis.call('SET', KEYS[i], ARGV[at], 'NX', 'EX', ARGV[1]) then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[at + 1], 'b', ARGV[at + 2])
    added[i - 1] = 1
  else
    added[i - 1] = 0
  end
end
return added
"""
