"""Redis leases: at most one holder of a duty at a time (a broker's reconciliation, the alert sender).

A lease is a key with a random value and a short TTL that its holder refreshes; a holder that dies
lets it lapse, so the work it held is picked up again (reliable-queue semantics).
"""

from __future__ import annotations

import secrets

import redis

_REFRESH = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """A lock with a TTL that only its holder can refresh or release."""

    def __init__(self, client: redis.Redis, key: str, ttl_ms: int) -> None:
        self.client, self.key, self.ttl_ms = client, key, ttl_ms
        self.token = secrets.token_hex(8)
        self._refresh = client.register_script(_REFRESH)
        self._release = client.register_script(_RELEASE)

    def acquire(self) -> bool:
        """Take the lease if nobody holds it."""
        return bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def refresh(self) -> bool:
        """Extend the lease; False means it lapsed and someone else may hold it now."""
        return bool(self._refresh(keys=[self.key], args=[self.token, self.ttl_ms]))

    def release(self) -> None:
        """Give the lease back (no-op if it already lapsed)."""
        try:
            self._release(keys=[self.key], args=[self.token])
        except redis.RedisError:
            pass
