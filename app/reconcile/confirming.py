"""Which postback terminals are claims (app/state.py): those of an account whose orders a reconciliation run asks
its broker about, so that the broker can confirm or refute them (docs/reconcile.md, "A forged status cannot stick").

The persist job asks per event `(broker, account_id) in confirming`. An account added as data with
reconciliation on confirms its own; the environment's account of a broker with REST credentials confirms every
other order of that broker (those of no account added as data), as its runs look at exactly those. The accounts
are re-read when their revisions move (checked at most every few seconds), so an added account counts at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from app.reconcile.clients import CLIENTS, configured_brokers

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)

#: How often the accounts' revisions are compared.
REFRESH_SECONDS = 5.0


class ConfirmingAccounts:
    """A live collection of the accounts whose postback terminals are claims; holds `(broker, account_id)`."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.brokers = frozenset(configured_brokers(services.config))
        self._lock = threading.Lock()
        self._checked = -1e9
        self._revisions: dict[str, tuple[int, int]] | None = None
        #: (broker, client id) of the accounts added as data: reconciled ones, and every one.
        self._reconciled: frozenset[tuple[str, str]] = frozenset()
        self._data: frozenset[tuple[str, str]] = frozenset()

    def __contains__(self, item: Any) -> bool:
        """True for `(broker, account_id)` of an order a reconciliation run asks its broker about."""
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        broker, account_id = item[0], item[1] or ""
        self._refresh()
        if (broker, account_id) in self._reconciled:
            return True
        return broker in self.brokers and (broker, account_id) not in self._data

    def __iter__(self) -> Iterator[tuple[str, str]]:
        self._refresh()
        return iter(sorted(self._reconciled))

    def __len__(self) -> int:
        self._refresh()
        return len(self._reconciled) + len(self.brokers)

    def _refresh(self) -> None:
        """Re-read the accounts when any moved; on a database error the last known ones stand."""
        with self._lock:
            now = time.monotonic()
            if now - self._checked < REFRESH_SECONDS:
                return
            self._checked = now
            try:
                revisions = self.services.accounts.revisions()
                if revisions == self._revisions:
                    return
                listed = self.services.accounts.list()
            except Exception as exc:  # noqa: BLE001 - storing events must not stop for this
                log.warning("could not read the accounts to decide claims (%s)", type(exc).__name__)
                return
            self._revisions = revisions
            self._data = frozenset((account.broker, account.account_id) for account in listed)
            self._reconciled = frozenset(
                (account.broker, account.account_id)
                for account in listed
                if account.reconcile and account.broker in CLIENTS
            )
