"""Browser sessions, sign-in throttling and development sign-in codes, all kept in Redis.

The blotter never holds the admin token: signing in trades it for a random session id (an HttpOnly
cookie) whose record lives in Redis, so signing out deletes it on the server and the old cookie is
worthless (docs/frontend.md). Failed sign-ins and wrong bearer tokens are counted per client in
Redis; past the limit the client gets 429 until the window passes. The functions that use Redis raise
redis.RedisError when it cannot answer, and callers never wave a request through a check they could
not make: they refuse (503), or decide in this process's own windows, the `*_here` functions
(app/api/auth.py).
"""

from __future__ import annotations

import functools
import hmac
import json
import math
import secrets
import time
from dataclasses import dataclass

import redis
from limits import RateLimitItem, RateLimitItemPerMinute
from limits.storage import MemoryStorage, RedisStorage
from limits.strategies import FixedWindowRateLimiter

from app.redis_keys import DEV_SIGNIN_PREFIX, RATE_LIMIT_PREFIX, SESSION_PREFIX

COOKIE_NAME = "oh_session"
IDLE_SECONDS = 12 * 3600  # a session unused for 12 hours ends
MAX_AGE_SECONDS = 7 * 24 * 3600  # and none lives longer than a week, used or not
DEV_CODE_SECONDS = 15 * 60


@dataclass(frozen=True)
class Session:
    """A signed-in browser: its id (the cookie) and the CSRF token its page sends with writes."""

    sid: str
    csrf: str
    created: float


def create(client: redis.Redis) -> Session:
    """A fresh session with its own CSRF token, stored with the idle expiry."""
    session = Session(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32), created=time.time())
    record = json.dumps({"csrf": session.csrf, "created": session.created})
    client.set(SESSION_PREFIX + session.sid, record, ex=IDLE_SECONDS)
    return session


def load(client: redis.Redis, sid: str | None) -> Session | None:
    """The live session for a cookie value (its idle clock restarts), or None."""
    if not sid or len(sid) > 128 or not sid.isascii():
        return None
    key = SESSION_PREFIX + sid
    raw = client.get(key)
    if raw is None:
        return None
    try:
        record = json.loads(raw)
        session = Session(sid=sid, csrf=str(record["csrf"]), created=float(record["created"]))
    except (ValueError, KeyError, TypeError):
        client.delete(key)
        return None
    if time.time() - session.created > MAX_AGE_SECONDS:
        client.delete(key)
        return None
    client.expire(key, IDLE_SECONDS)
    return session


def destroy(client: redis.Redis, sid: str | None) -> None:
    """Sign out: the session record goes, so the cookie stops working everywhere at once."""
    if sid and len(sid) <= 128 and sid.isascii():
        client.delete(SESSION_PREFIX + sid)


def csrf_matches(session: Session, given: str | None) -> bool:
    """The page's CSRF header equals its session's token (constant time)."""
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


#: Failures allowed per client: 10 failed sign-ins per 5 minutes, 30 wrong bearer tokens per minute. A fixed
#: window that starts at the client's first failure (limits' Redis storage: INCR, EXPIRE on the first).
SIGN_IN_LIMIT = RateLimitItemPerMinute(10, 5, namespace="signin")
BEARER_LIMIT = RateLimitItemPerMinute(30, 1, namespace="bearer")


@functools.lru_cache(maxsize=16)
def _limiter(pool: redis.ConnectionPool) -> FixedWindowRateLimiter:
    """limits' fixed windows kept in the app's own Redis, over its connection pool (built once per pool)."""
    return FixedWindowRateLimiter(RedisStorage("redis://", connection_pool=pool, key_prefix=RATE_LIMIT_PREFIX))


@functools.lru_cache(maxsize=1)
def _local_limiter() -> FixedWindowRateLimiter:
    """This process's own windows (limits' MemoryStorage), for when Redis cannot answer: the limit then
    still holds, per process, instead of lapsing."""
    return FixedWindowRateLimiter(MemoryStorage())


def blocked_for(client: redis.Redis, limit: RateLimitItem, who: str) -> int:
    """Seconds this client must wait before trying again (0 = may try)."""
    return _blocked(_limiter(client.connection_pool), limit, who)


def record_failure(client: redis.Redis, limit: RateLimitItem, who: str) -> int:
    """Count one failure in the client's current window (the window starts at its first failure); the
    seconds to wait when this one went past the limit, else 0. The count and the decision are one INCR,
    so concurrent failures cannot all slip under the limit."""
    return _count(_limiter(client.connection_pool), limit, who)


def blocked_here(limit: RateLimitItem, who: str) -> int:
    """blocked_for, in this process's own windows (Redis not answering)."""
    return _blocked(_local_limiter(), limit, who)


def record_failure_here(limit: RateLimitItem, who: str) -> int:
    """record_failure, in this process's own windows (Redis not answering)."""
    return _count(_local_limiter(), limit, who)


def _blocked(limiter: FixedWindowRateLimiter, limit: RateLimitItem, who: str) -> int:
    """0 while the client is under the limit, else the seconds until its window ends."""
    return 0 if limiter.test(limit, who) else _wait(limiter, limit, who)


def _count(limiter: FixedWindowRateLimiter, limit: RateLimitItem, who: str) -> int:
    """Count a failure; 0 while it stays within the limit, else the seconds until the window ends."""
    return 0 if limiter.hit(limit, who) else _wait(limiter, limit, who)


def _wait(limiter: FixedWindowRateLimiter, limit: RateLimitItem, who: str) -> int:
    """Whole seconds until the client's window ends (at least 1)."""
    reset_at = limiter.get_window_stats(limit, who).reset_time
    return max(math.ceil(reset_at - time.time()), 1)


def issue_dev_code(client: redis.Redis) -> str:
    """A single-use sign-in code for the developer at the keyboard (development only), short-lived."""
    code = secrets.token_urlsafe(24)
    client.set(DEV_SIGNIN_PREFIX + code, "1", ex=DEV_CODE_SECONDS)
    return code


def redeem_dev_code(client: redis.Redis, code: str | None) -> bool:
    """True once for a code that was issued and has not expired; the code is gone afterwards."""
    if not code or len(code) > 128 or not code.isascii():
        return False
    return client.getdel(DEV_SIGNIN_PREFIX + code) is not None
