"""Which feeds process holds which connection: one lease per connection in Redis (docs/feeds.md "Several processes").

A lease is `SET oh:feed-lease:<name> <process id> NX PX <ttl>`, renewed by its holder every tick and deleted by it
after a clean stop (compare-and-delete, so a process never frees another's). A process also keeps its presence in
a sorted set scored by when it lapses (Redis's own clock), so each process knows how many share the accounts.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from secrets import token_hex

import redis

from app.redis_keys import FEED_PROCESSES_KEY, feed_lease_key

# KEYS: the processes set. ARGV: this process's id, its presence TTL in ms. Returns the live process count.
_PRESENCE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
return redis.call('ZCARD', KEYS[1])
"""

# KEYS: lease keys. ARGV: this process's id, TTL in ms. Returns 1 per key still ours (renewed), 0 per key lost.
_RENEW = """
local kept = {}
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('PEXPIRE', key, ARGV[2])
    kept[i] = 1
  else
    kept[i] = 0
  end
end
return kept
"""

# KEYS: one lease key. ARGV: this process's id. Deletes it only when it is ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def process_id() -> str:
    """A feeds process's id: host and pid (for people reading Redis) and randomness (pids repeat across dynos)."""
    return f"{socket.gethostname()}:{os.getpid()}:{token_hex(4)}"


class Leases:
    """One process's side of the leases; every method is one round trip (blocking: call it off the event loop)."""

    def __init__(self, client: redis.Redis, holder: str, ttl_seconds: float) -> None:
        self.client = client
        self.holder = holder
        self.ttl_ms = int(ttl_seconds * 1000)
        self._presence = client.register_script(_PRESENCE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def announce(self) -> int:
        """Refresh this process's presence; the number of live feeds processes (this one included)."""
        return int(self._presence(keys=[FEED_PROCESSES_KEY], args=[self.holder, self.ttl_ms]))

    def leave(self) -> None:
        """This process stops: the others count one fewer at once."""
        self.client.zrem(FEED_PROCESSES_KEY, self.holder)

    def holders(self, names: Sequence[str]) -> list[str | None]:
        """Who holds each connection's lease (None: nobody)."""
        if not names:
            return []
        values = self.client.mget([feed_lease_key(name) for name in names])
        return [value.decode() if value is not None else None for value in values]

    def acquire(self, names: Sequence[str]) -> list[str]:
        """Take every free lease among `names`; the names now ours."""
        if not names:
            return []
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.set(feed_lease_key(name), self.holder, nx=True, px=self.ttl_ms)
        return [name for name, taken in zip(names, pipe.execute(), strict=True) if taken]

    def renew(self, names: Sequence[str]) -> dict[str, bool]:
        """Extend each lease still ours; False for one another process holds or that lapsed."""
        if not names:
            return {}
        kept = self._renew(keys=[feed_lease_key(name) for name in names], args=[self.holder, self.ttl_ms])
        return {name: bool(flag) for name, flag in zip(names, kept, strict=True)}

    def release(self, name: str) -> None:
        """Free a lease after its connection closed (only if still ours)."""
        self._release(keys=[feed_lease_key(name)], args=[self.holder])
