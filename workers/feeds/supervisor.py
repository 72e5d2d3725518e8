"""The feeds process's supervisor: connections follow the accounts, live, shared by several processes (docs/feeds.md).

Every FEEDS_ACCOUNTS_POLL_SECONDS it:
1. refreshes this process's presence (the live process count) and renews every lease it holds; a connection whose
   lease was lost, or could not be renewed for most of its TTL, is closed at once (before the TTL passes, so no
   other process can have connected it yet);
2. polls `accounts.revisions()` and reads the accounts that changed; the wanted connections are the environment's
   feeds in FEEDS plus, for each account whose feed is on and whose session is usable, each per-account feed of its
   broker;
3. closes the connections no longer wanted (removed, disabled, logged out) and restarts those whose account changed
   in what the connection uses (new session, credentials), keeping the lease;
4. takes free leases, at most its fair share (wanted / live processes) per tick, plus any connection that stayed
   free for a grace period (a process died, or the count was off), and starts their connectors.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis

from app.accounts.model import Account, SessionState
from app.accounts.store import AccountNotFound, CredentialsUnreadable
from app.brokers.feed import FeedConnector
from app.brokers.feed_status import ALIVE_INTERVAL_SECONDS, FeedState, touch
from app.brokers.registry import BY_NAME
from workers.feeds.leases import Leases, process_id

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger("workers.feeds")

#: Bound on waiting for one connector to close (its socket's close handshake is 2 s) before cancelling it.
STOP_SECONDS = 5.0
#: A held connection is closed when its lease went unrenewed for this share of the TTL (the rest covers the close).
RENEW_DEADLINE_SHARE = 0.6
#: Ticks a connection must stay free before a process takes it beyond its fair share.
GRACE_TICKS = 2


@dataclass(frozen=True)
class Unit:
    """One wanted connection: a feed, for the environment (account None) or for one account."""

    name: str
    feed: str
    account: Account | None = None
    #: Changes when what the connection logs in with changes (a restart is needed), never holding a secret.
    fingerprint: str = ""


@dataclass
class Holding:
    """A connection this process holds the lease of, and its running connector."""

    unit: Unit
    connector: FeedConnector | None = None
    task: asyncio.Task | None = None
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: Loop time at the start of the last successful renewal (the lease lasts at least TTL from then).
    renewed_at: float = 0.0
    #: The stop under way (one at a time), and what follows it.
    stopping: asyncio.Task | None = None
    #: The lease is another process's now (or lapsed): nothing may start on it, and it is not released.
    lost: bool = False


def fingerprint(account: Account) -> str:
    """A digest of what an account's connection uses: a change means reconnect with the new values."""
    material = json.dumps(
        [account.account_id, sorted(account.credentials.items()), account.session.token, account.session.revision]
    )
    return hashlib.sha256(material.encode()).hexdigest()


def account_units(account: Account, connectors: dict[str, type[FeedConnector]]) -> list[Unit]:
    """The connections an account wants: one per per-account feed of its broker, when its feed is on and its
    session usable."""
    if not (account.feed and account.session.usable):
        return []
    digest = fingerprint(account)
    return [
        Unit(account.feed_status_name(feed.name), feed.name, account, digest)
        for feed in BY_NAME[account.broker].feeds
        if feed.per_account and feed.name in connectors
    ]


def parked_state(account: Account | None) -> str | None:
    """The state a stopped account connection keeps: auth_failed when its session ended, waiting when none."""
    if account is None:
        return None
    if account.session.state in (SessionState.EXPIRED, SessionState.REFUSED):
        return FeedState.AUTH_FAILED
    if account.session.state == SessionState.MISSING:
        return FeedState.WAITING
    return None


class Supervisor:
    """Runs this process's share of the connections until `stop` is set."""

    def __init__(
        self,
        services: Services,
        stop: asyncio.Event,
        connectors: dict[str, type[FeedConnector]],
        environment: tuple[str, ...],
        *,
        holder: str | None = None,
    ) -> None:
        self.services = services
        self.stop = stop
        self.connectors = connectors
        self.settings = services.config.feed_settings
        self.environment = [Unit(name, name) for name in dict.fromkeys(environment)]
        self.leases = Leases(services.redis, holder or process_id(), self.settings.lease_seconds)
        self.held: dict[str, Holding] = {}
        #: The accounts as last read (with secrets), by id, and the revisions they were read at.
        self.accounts: dict[str, Account] = {}
        self.revisions: dict[str, tuple[int, int]] | None = None
        #: name -> loop time this process first saw it wanted and free.
        self.free_since: dict[str, float] = {}
        self.live = 1
        self._last_touch = 0.0
        #: True while the accounts cannot be read (logged once, not every tick).
        self._accounts_failing = False

    @property
    def holder(self) -> str:
        """This process's id in the leases."""
        return self.leases.holder

    # The loop

    async def run(self) -> None:
        """Tick until stopped; then close every connection, release its lease and leave."""
        log.info("feeds supervisor %s up (environment feeds: %s)", self.holder, self._env_names() or "none")
        if not self.environment:
            log.info("no feed is enabled (FEEDS is empty); following the accounts only")
        try:
            await self._call(self.leases.announce)
            # Processes started together all announce before any takes a lease: their fair shares then agree.
            await self._wait(self.settings.accounts_poll)
            while not self.stop.is_set():
                try:
                    await self.tick()
                except Exception:  # noqa: BLE001 - the supervisor must outlive a bad tick (Redis or database away)
                    log.exception("feeds supervisor: a tick failed; trying again")
                    await self._enforce_deadlines()
                await self._wait(self.settings.accounts_poll)
        finally:
            await self.shutdown()

    async def tick(self) -> None:
        """One round: renew, follow the accounts, stop, restart, take."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        await self._renew(started)
        await self._enforce_deadlines()
        wanted = {unit.name: unit for unit in [*self.environment, *await self._account_units()]}
        self._follow(wanted)
        await self._take(wanted, started)
        await self._touch(started)

    async def shutdown(self) -> None:
        """Stop every connector (in parallel), releasing each lease after its connection closed, then leave."""
        for holding in list(self.held.values()):
            if holding.stopping is None:
                self._stop(holding, then=None)
        pending = [h.stopping for h in self.held.values() if h.stopping is not None]
        await asyncio.gather(*pending, return_exceptions=True)
        try:
            await self._call(self.leases.leave)
        except redis.RedisError:
            log.warning("feeds supervisor: could not leave the process set (Redis away); it lapses by itself")
        log.info("feeds supervisor %s stopped", self.holder)

    # Leases

    async def _renew(self, started: float) -> None:
        """Refresh presence and every held lease; a lost lease closes its connection at once."""
        self.live = max(1, await self._call(self.leases.announce))
        names = list(self.held)
        kept = await self._call(self.leases.renew, names)
        for name, ok in kept.items():
            holding = self.held.get(name)
            if holding is None:
                continue
            if ok:
                holding.renewed_at = started
                continue
            holding.lost = True
            if holding.stopping is None:
                log.warning("%s: lease lost (another feeds process holds it); closing this connection", name)
                self._stop(holding, then=None, lost=True)

    async def _enforce_deadlines(self) -> None:
        """Close what could not be renewed in time: the lease may lapse, and another process may then connect."""
        now = asyncio.get_running_loop().time()
        limit = self.settings.lease_seconds * RENEW_DEADLINE_SHARE
        for holding in list(self.held.values()):
            if holding.stopping is None and not holding.lost and now - holding.renewed_at > limit:
                unrenewed = now - holding.renewed_at
                log.error("%s: lease unrenewed for %.1f s; closing before it lapses", holding.unit.name, unrenewed)
                self._stop(holding, then=None, lost=True)

    async def _take(self, wanted: dict[str, Unit], started: float) -> None:
        """Take free leases: the fair share first, then whatever stayed free for the grace period."""
        free_names = [name for name in wanted if name not in self.held]
        holders = await self._call(self.leases.holders, free_names)
        free = [name for name, holder in zip(free_names, holders, strict=True) if holder is None]
        for name in list(self.free_since):
            if name not in free:
                del self.free_since[name]
        for name in free:
            self.free_since.setdefault(name, started)
        if not free:
            return
        random.shuffle(free)
        grace = GRACE_TICKS * self.settings.accounts_poll
        overdue = [name for name in free if started - self.free_since[name] >= grace]
        share = math.ceil(len(wanted) / self.live)
        budget = max(0, share - len(self.held))
        fresh = [name for name in free if name not in overdue][: max(0, budget - len(overdue))]
        taken = await self._call(self.leases.acquire, [*overdue, *fresh])
        for name in taken:
            self.free_since.pop(name, None)
            holding = Holding(wanted[name], renewed_at=started)
            self.held[name] = holding
            self._start(holding)
        if taken:
            log.info(
                "feeds supervisor: took %d connection(s) (%d held, %d processes)", len(taken), len(self.held), self.live
            )

    # Following the accounts

    async def _account_units(self) -> list[Unit]:
        """The connections the accounts want, reading only the accounts whose revision moved."""
        try:
            await asyncio.to_thread(self._refresh_accounts)
        except Exception:  # noqa: BLE001 - the database away: keep following what was last read
            if not self._accounts_failing:
                log.exception("feeds supervisor: could not read the accounts; keeping the last ones read")
            self._accounts_failing = True
        else:
            if self._accounts_failing:
                log.info("feeds supervisor: the accounts are readable again")
            self._accounts_failing = False
        return [unit for account in self.accounts.values() for unit in account_units(account, self.connectors)]

    def _refresh_accounts(self) -> None:
        """Poll the revisions; read the accounts that changed (with their secrets), drop the removed ones."""
        store = self.services.accounts
        revisions = store.revisions()
        if revisions == self.revisions:
            return
        accounts = {key: value for key, value in self.accounts.items() if key in revisions}
        if not accounts:
            accounts = self._read_all(store)
        for account_id, revision in revisions.items():
            known = accounts.get(account_id)
            if known is not None and (known.revision, known.session.revision) == revision:
                continue
            try:
                accounts[account_id] = store.get(account_id, secrets=True)
            except AccountNotFound:
                accounts.pop(account_id, None)
            except CredentialsUnreadable as exc:
                log.error("account %s: %s", account_id, exc)
                accounts.pop(account_id, None)
        self.accounts = accounts
        self.revisions = revisions

    def _read_all(self, store) -> dict[str, Account]:
        """Every account in one query (the first read); {} when one does not decrypt (then read one by one)."""
        try:
            return {account.id: account for account in store.list(secrets=True)}
        except CredentialsUnreadable:
            return {}

    def _follow(self, wanted: dict[str, Unit]) -> None:
        """Stop the connections no longer wanted; restart those whose account changed what they use."""
        for name, holding in list(self.held.items()):
            if holding.stopping is not None:
                continue
            unit = wanted.get(name)
            if unit is None:
                self._stop(holding, then=None, reason=self._why_unwanted(holding.unit))
            elif unit.fingerprint != holding.unit.fingerprint:
                log.info("%s: the account changed (new session or credentials); reconnecting", name)
                self._stop(holding, then=unit)

    def _why_unwanted(self, unit: Unit) -> str:
        """Why an account's connection closes, for the log and the state it keeps."""
        if unit.account is None:
            return "stopping"
        account = self.accounts.get(unit.account.id)
        if account is None:
            return "removed"
        if not account.feed:
            return "disabled"
        return "session " + account.session.state

    # Starting and stopping connectors

    def _start(self, holding: Holding) -> None:
        """Build and run the unit's connector (a bug in it is logged, never taking the others down)."""
        unit = holding.unit
        holding.stop = asyncio.Event()
        try:
            holding.connector = self.connectors[unit.feed](
                self.services, holding.stop, self.settings, account=unit.account
            )
        except Exception:  # noqa: BLE001 - one account's odd settings must not stop the others
            log.exception("%s: could not build its connector", unit.name)
            holding.connector = None
            return
        holding.task = asyncio.ensure_future(supervise(holding.connector))

    def _stop(self, holding: Holding, *, then: Unit | None, lost: bool = False, reason: str = "") -> None:
        """Close the connection in the background; then start `then` on the same lease, or release the lease."""
        holding.lost = holding.lost or lost
        if holding.lost and holding.connector is not None:
            holding.connector.status.muted = True  # the record is the new holder's now
        holding.stopping = asyncio.ensure_future(self._stopping(holding, then, reason=reason))

    async def _stopping(self, holding: Holding, then: Unit | None, *, reason: str) -> None:
        """Stop, wait (bounded) for the socket to close, publish the state it keeps; only then free the lease."""
        name = holding.unit.name
        if reason:
            log.info("%s: closing (%s)", name, reason)
        await close_connector(holding)
        await self._publish_stopped(holding, reason)
        holding.stopping = None
        if then is not None and not holding.lost and not self.stop.is_set() and self.held.get(name) is holding:
            holding.unit = then
            self._start(holding)
            return
        if self.held.get(name) is holding:
            del self.held[name]
        if not holding.lost:
            try:
                await self._call(self.leases.release, name)
            except redis.RedisError:
                log.warning("%s: could not release the lease (Redis away); it lapses by itself", name)

    async def _publish_stopped(self, holding: Holding, reason: str) -> None:
        """A removed account's record goes; a logged-out one keeps auth_failed/waiting; others say stopped."""
        connector = holding.connector
        unit = holding.unit
        if connector is None or unit.account is None or self.stop.is_set():
            return
        if reason == "removed":
            await connector.status.remove()
            return
        account = self.accounts.get(unit.account.id)
        state = parked_state(account) if reason.startswith("session") else None
        if state is not None:
            message = f"{account.describe()}: session {account.session.state}; log in again (Accounts page)"
            await connector.status.update(state=state, connected=False, last_error=account.last_error or message)

    async def _touch(self, now: float) -> None:
        """Refresh every held connection's `updated_at` (one round trip), so the API can tell a live process."""
        if now - self._last_touch < ALIVE_INTERVAL_SECONDS:
            return
        self._last_touch = now
        names = [name for name, h in self.held.items() if h.connector is not None and h.stopping is None]
        await self._call(touch, self.services.redis, names)

    # Helpers

    def _env_names(self) -> str:
        """The environment feeds, for the start-up line."""
        return ", ".join(unit.name for unit in self.environment)

    async def _call(self, function, *args):
        """Blocking Redis off the event loop."""
        return await asyncio.to_thread(function, *args)

    async def _wait(self, seconds: float) -> None:
        """Sleep, returning early on stop."""
        try:
            await asyncio.wait_for(self.stop.wait(), timeout=seconds)
        except TimeoutError:
            pass


async def supervise(connector: FeedConnector) -> None:
    """Run one connector; a bug in it is logged and the connector restarted, never taking the others down."""
    while not connector.stop.is_set():
        try:
            await connector.run()
            return
        except Exception as exc:  # noqa: BLE001 - isolation between connectors is the point
            log.exception("%s feed crashed; restarting it", connector.label)
            await connector.status.update(last_error=connector.describe(exc))
            await connector.pause(connector.settings.backoff_max)


async def close_connector(holding: Holding) -> None:
    """Set the connector's stop and wait for its socket to close; cancel it past STOP_SECONDS."""
    holding.stop.set()
    task = holding.task
    if task is None:
        return
    try:
        await asyncio.wait_for(asyncio.shield(task), timeout=STOP_SECONDS)
    except TimeoutError:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    except Exception:  # noqa: BLE001 - its crash was logged by supervise()
        pass
