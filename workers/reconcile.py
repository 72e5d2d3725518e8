"""The reconciliation job and its scheduler (docs/reconcile.md).

`run_reconcile(name, reason)` is the job: one run of one account at a time across every process (a redis-py Lock,
keyed by the account's reconcile name, whose TTL is restarted before each order it catches up), never raising.
`start_scheduler(services)` starts the loop the worker process runs in a thread. It reconciles every account: the
environment's one per broker with REST credentials (named by the broker, as before accounts were data) and each
account added as data with reconciliation on and a usable session (`<broker>:<id>`), re-reading the accounts every
few seconds, so an added account is reconciled at once and a removed one no more, without a restart. Each account
runs at start-up (or when it appears), every RECONCILE_INTERVAL_SECONDS (0 = never periodically), whenever
`app.reconcile.request_reconcile` asked for it (a feed reconnected, a new session, POST /api/reconcile), and
shortly after a postback's terminal status arrives that needs confirming. Each account runs in its own thread
under its own rate window (app/brokers/rest.py), so a slow, rate-limited or logged-out account never delays another.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from datetime import timedelta
from typing import TYPE_CHECKING

import redis
from redis.exceptions import LockNotOwnedError
from redis.lock import Lock

from app.accounts.directory import all_accounts
from app.accounts.model import Account
from app.accounts.store import AccountNotFound
from app.brokers.registry import BY_NAME
from app.db import utcnow
from app.reconcile import request_reconcile
from app.reconcile.clients import account_ready, configured_brokers
from app.reconcile.engine import Scope, claim_holders, reconcile_account, reconcile_broker
from app.reconcile.polling import poll_seconds
from app.reconcile.status import RunResult
from app.redis_keys import (
    reconcile_lock_key,
    reconcile_request_key,
    reconcile_status_key,
    reconcile_unconfirmed_key,
)
from app.services import get_services
from app.state import CLAIM_GRACE_SECONDS

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

#: The lease of a run: longer than any one request (RECONCILE_ANSWER_SECONDS, at most app/config.py
#: MAX_ANSWER_SECONDS), so renewing it before each order keeps it while the run waits on its broker.
LOCK_SECONDS = 60.0
TICK_SECONDS = 1.0
#: How often the database is checked for newly arrived postback terminals awaiting confirmation.
CLAIM_SCAN_SECONDS = 2.0
#: Orders left unconfirmed by a REST error are retried this often (doubling up to the interval).
UNCONFIRMED_RETRY_SECONDS = 30.0
#: How often the accounts' revisions are compared (one small query); the accounts are re-read when they moved.
REFRESH_SECONDS = 3.0
#: Runs at once in one worker process: each holds a database connection while it compares and stores, and
#: hundreds of accounts due together (start-up) must not drain the pool. The others wait their turn, in rotation.
MAX_RUNS = 8
#: `due` reads the request itself when not given one.
_READ = object()


def run_reconcile(
    name: str,
    reason: str = "requested",
    services: Services | None = None,
    *,
    others: frozenset[str] | None = None,
) -> RunResult | None:
    """Job: reconcile one account, by its reconcile name, unless another process is doing it (then its request
    is kept for later). An account added as data is read afresh (its latest token), and skipped when it is gone,
    has reconciliation off or no usable session. `others`: for the environment's account, the client ids of the
    broker's accounts added as data (read from the store when not given)."""
    services = services or get_services()
    lock = services.redis.lock(reconcile_lock_key(name), timeout=LOCK_SECONDS, blocking=False)
    try:
        if not lock.acquire():
            request_reconcile(services.redis, name, reason)  # served once the running one is done
            return None
    except redis.RedisError as exc:
        log.warning("%s reconciliation skipped: Redis unavailable (%s)", name, type(exc).__name__)
        return None
    try:
        keep_alive = lambda: _renewed(lock)  # noqa: E731 - a one-line callback
        if ":" not in name:
            held = others if others is not None else _data_account_ids(services, name)
            return reconcile_broker(services, name, reason=reason, keep_alive=keep_alive, others=held)
        account = _usable_account(services, name)
        if account is None:
            return None
        return reconcile_account(services, account, reason=reason, keep_alive=keep_alive)
    finally:
        with contextlib.suppress(redis.RedisError):  # lapsed or Redis away: the TTL frees it
            lock.release()


def _usable_account(services: Services, name: str) -> Account | None:
    """The account reconciled as `<broker>:<id>`, with its secrets, or None (logged) when it is not to be run."""
    broker, _, account_id = name.partition(":")
    try:
        account = services.accounts.get(account_id, secrets=True)
    except AccountNotFound:
        log.info("%s reconciliation skipped: the account was removed", name)
        return None
    if account.broker != broker or not account.reconcile or not account.session.usable:
        log.info("%s reconciliation skipped: reconciliation is off or the session is not active", name)
        return None
    return account


def _data_account_ids(services: Services, broker: str) -> frozenset[str]:
    """Client ids of the broker's accounts added as data: their orders are their own runs' to look at."""
    try:
        return frozenset(account.account_id for account in services.accounts.list(broker=broker))
    except Exception as exc:  # noqa: BLE001 - without the list the run covers the broker as before
        log.warning("could not list the %s accounts (%s)", broker, type(exc).__name__)
        return frozenset()


def _renewed(lock: Lock) -> bool:
    """Restart the lock's TTL; False when it lapsed, so another process may be running the account now."""
    try:
        return lock.reacquire()
    except LockNotOwnedError:
        return False


class Scheduler:
    """Decides when each account is reconciled; runs each account's job in its own thread."""

    def __init__(self, services: Services, stop: threading.Event | None = None) -> None:
        self.services = services
        self.stop = stop or threading.Event()
        #: The environment's accounts, by broker name (fixed for the process's life, like the environment).
        self.brokers = configured_brokers(services.config)
        self.interval = services.config.reconcile.interval
        #: Accounts added as data being reconciled, by reconcile name.
        self.accounts: dict[str, Account] = {}
        #: Client ids of each broker's accounts added as data (reconciled or not): not the environment's to look at.
        self.others: dict[str, frozenset[str]] = {}
        now = time.monotonic()
        #: Polled brokers (docs/reconcile.md "Polled order books"): broker -> seconds between its accounts' runs.
        self.polled = {spec: seconds for spec in BY_NAME if (seconds := poll_seconds(services.config, spec))}
        self.next_periodic = {broker: now + self.interval_of(broker) for broker in self.brokers}
        self.next_unconfirmed = {broker: now + UNCONFIRMED_RETRY_SECONDS for broker in self.brokers}
        self.due_claims: dict[str, float] = {}
        #: Runs this scheduler owes an account that just appeared ("start-up", "added").
        self.owed: dict[str, str] = {}
        self.threads: dict[str, threading.Thread] = {}
        self.last_scan = 0.0
        self.scan_since = utcnow() - timedelta(minutes=10)
        self.last_refresh = -1e9
        self.revisions: dict[str, tuple[int, int]] | None = None
        #: Where the next tick starts looking, so that when runs are capped every account gets its turn.
        self.turn = 0

    def interval_of(self, name: str) -> float:
        """Seconds between an account's periodic runs: its broker's poll period when polled, else the interval."""
        return self.polled.get(name.partition(":")[0], self.interval)

    @property
    def names(self) -> list[str]:
        """Every account reconciled now, by reconcile name: the environment's first."""
        return [*self.brokers, *self.accounts]

    def start(self) -> threading.Thread:
        """Start the loop in a daemon thread (it runs even with no account yet: accounts may be added)."""
        for broker in self.brokers:
            request_reconcile(self.services.redis, broker, "start-up")
        log.info(
            "reconciliation scheduled for %s and the accounts added as data (every %s)",
            ", ".join(self.brokers) or "no environment account",
            f"{self.interval:g} s" if self.interval else "start-up, reconnect and on demand only",
        )
        thread = threading.Thread(target=self.run, name="reconcile-scheduler", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        """Loop until stopped, riding out Redis and database outages."""
        while not self.stop.is_set():
            try:
                self.tick()
            except Exception as exc:  # noqa: BLE001 - the scheduler must outlive any outage
                log.warning("reconcile scheduler: %s; retrying", type(exc).__name__)
            self.stop.wait(TICK_SECONDS)

    def tick(self) -> None:
        """One pass: follow the accounts, then start every account that is due and not already running here."""
        now = time.monotonic()
        if now - self.last_refresh >= REFRESH_SECONDS:
            self.last_refresh = now
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - the accounts known so far keep being served
                log.warning("reconcile scheduler: the accounts could not be read (%s)", type(exc).__name__)
        if now - self.last_scan >= CLAIM_SCAN_SECONDS:
            self.last_scan = now
            self.scan_claims()
        names = self.names
        self.turn = (self.turn + 1) % max(len(names), 1)
        idle = [name for name in names[self.turn :] + names[: self.turn] if not self.running(name)]
        free = MAX_RUNS - sum(thread.is_alive() for thread in self.threads.values())
        requests = self.take_requests(idle)
        for name in idle:
            reason = self.due(name, now, requests.get(name))
            if not reason:
                continue
            if free <= 0:
                self.owed[name] = reason  # kept: served when a run ends
                continue
            self.launch(name, reason)
            free -= 1

    def take_requests(self, names: list[str]) -> dict[str, str | None]:
        """The requests of these (idle) accounts, taken in one round trip (GETDEL each)."""
        pipe = self.services.redis.pipeline(transaction=False)
        for name in names:
            pipe.getdel(reconcile_request_key(name))
        values = pipe.execute() if names else []
        return {
            name: value.decode(errors="replace") if value is not None else None
            for name, value in zip(names, values, strict=True)
        }

    def refresh(self) -> None:
        """Re-read the accounts when any moved (revisions: one small query): an added (or logged-in) account is
        owed a run, a removed, switched-off or logged-out one is no longer scheduled."""
        store = self.services.accounts
        revisions = store.revisions()
        if revisions == self.revisions:
            return
        first = self.revisions is None
        data = [account for account in all_accounts(self.services.config, store, secrets=True) if not account.read_only]
        self.revisions = revisions
        others: dict[str, set[str]] = {}
        for account in data:
            others.setdefault(account.broker, set()).add(account.account_id)
        self.others = {broker: frozenset(ids) for broker, ids in others.items()}
        config = self.services.config
        wanted = {account.reconcile_name: account for account in data if account_ready(config, account)}
        now = time.monotonic()
        for name in wanted.keys() - self.accounts.keys():
            self.owed[name] = "start-up" if first else "added"
            self.next_periodic[name] = now + self.interval_of(name) * random.uniform(0.95, 1.05)
            self.next_unconfirmed[name] = now + UNCONFIRMED_RETRY_SECONDS
            log.info("reconciliation of %s scheduled", name)
        for name in self.accounts.keys() - wanted.keys():
            self._drop(name, gone=name.partition(":")[2] not in revisions)
        self.accounts = wanted

    def _drop(self, name: str, *, gone: bool) -> None:
        """Stop scheduling an account (a run under way ends on its own); a removed one's status goes too."""
        for table in (self.owed, self.next_periodic, self.next_unconfirmed, self.due_claims):
            table.pop(name, None)
        if not self.running(name):
            self.threads.pop(name, None)
        log.info("reconciliation of %s no longer scheduled (%s)", name, "removed" if gone else "off or logged out")
        if gone:
            with contextlib.suppress(redis.RedisError):
                self.services.redis.delete(reconcile_status_key(name), reconcile_unconfirmed_key(name))

    def due(self, name: str, now: float, requested: object = _READ) -> str | None:
        """Why the account should run now, or None; `requested` is its request when already taken."""
        if requested is _READ:
            raw = self.services.redis.getdel(reconcile_request_key(name))
            requested = raw.decode(errors="replace") if raw is not None else None
        if isinstance(requested, str):
            if self.running(name):  # keep the request: served after the current run
                request_reconcile(self.services.redis, name, requested)
                return None
            self.owed.pop(name, None)  # one run serves both
            return requested
        if name in self.owed and not self.running(name):
            return self.owed.pop(name)
        if self.interval_of(name) and now >= self.next_periodic.get(name, now + 1):
            return "poll" if name.partition(":")[0] in self.polled else "periodic"
        if name in self.due_claims and now >= self.due_claims[name]:
            return "confirm postback"
        if now >= self.next_unconfirmed.get(name, now + 1):
            self.next_unconfirmed[name] = now + UNCONFIRMED_RETRY_SECONDS
            if self.services.redis.hlen(reconcile_unconfirmed_key(name)):
                return "retry unconfirmed"
        return None

    def scope(self, name: str) -> Scope:
        """The stored orders the account's runs look at."""
        account = self.accounts.get(name)
        if account is not None:
            return Scope(account.broker, account_id=account.account_id)
        return Scope(name, others=self.others.get(name, frozenset()))

    def scan_claims(self) -> None:
        """Find orders changed since the last scan that show an unconfirmed postback terminal (one query for
        every account); run their account once the grace period has passed, so one read settles each claim."""
        since, self.scan_since = self.scan_since, utcnow() - timedelta(seconds=2)
        holders = claim_holders(self.services.engine, since)
        if not holders:
            return
        for name in self.names:
            scope = self.scope(name)
            if any(scope.covers(broker, account_id) for broker, account_id in holders):
                at = time.monotonic() + CLAIM_GRACE_SECONDS + 1.0
                self.due_claims[name] = min(self.due_claims.get(name, at), at)

    def running(self, name: str) -> bool:
        """True while this process runs the account's job."""
        thread = self.threads.get(name)
        return thread is not None and thread.is_alive()

    def launch(self, name: str, reason: str) -> None:
        """Run the account's job in its own thread; schedule the next periodic run."""
        now = time.monotonic()
        interval = self.interval_of(name)
        if interval:
            # A little jitter, so several accounts (and several worker machines) do not fire together.
            self.next_periodic[name] = now + interval * random.uniform(0.95, 1.05)
        if reason == "confirm postback":
            self.due_claims.pop(name, None)
        kwargs = {} if name in self.accounts else {"others": self.others.get(name, frozenset())}
        thread = threading.Thread(
            target=run_reconcile,
            args=(name, reason, self.services),
            kwargs=kwargs,
            name=f"reconcile-{name}",
            daemon=True,
        )
        self.threads[name] = thread
        thread.start()


def start_scheduler(services: Services, stop: threading.Event | None = None) -> Scheduler:
    """Start reconciliation in this (worker) process; returns the scheduler (its `stop` event ends it)."""
    scheduler = Scheduler(services, stop)
    scheduler.start()
    return scheduler
