"""The consumers a worker forwards to, with their signing keys: the table and FORWARD_URLS, re-read at most once
a TTL (docs/consumers.md "Changes without a restart").

A consumer's secrets are decrypted again only when its row's revision moves (or its previous secret's 24 h
end), so a re-read costs one small SELECT. While the database is away the last table read stays in use.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

from app.config import Config
from app.consumers.model import API, ENVIRONMENT, Consumer
from app.consumers.secrets import SecretUnreadable
from app.consumers.store import ConsumerStore, environment_consumers
from app.crypto import SecretKeyUnavailable
from app.db import as_utc, consumers, utcnow

log = logging.getLogger(__name__)

TTL = 1.0


class ConsumerDirectory:
    """id -> Consumer (secrets included), refreshed at most once a TTL; thread-safe."""

    def __init__(self, config: Config, engine: sa.Engine, ttl: float = TTL) -> None:
        self.store = ConsumerStore(config, engine)
        self.config, self.engine, self.ttl = config, engine, ttl
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._by_id: dict[str, Consumer] | None = None
        self._decrypted: dict[tuple[str, int, Any], Consumer] = {}

    @property
    def loaded(self) -> bool:
        """True once the table was read (before that nobody can say a consumer is gone)."""
        return self._by_id is not None

    def get(self, cid: str) -> Consumer | None:
        """The consumer, or None when it is not (any more) there."""
        return self._current().get(cid)

    def all(self) -> list[Consumer]:
        """Every consumer."""
        return list(self._current().values())

    def forget(self) -> None:
        """Read the table again at the next use."""
        self._read_at = float("-inf")

    def _current(self) -> dict[str, Consumer]:
        """The table, re-read when older than the TTL (the last one kept while the database is away)."""
        if time.monotonic() - self._read_at < self.ttl and self._by_id is not None:
            return self._by_id
        with self._lock:
            if time.monotonic() - self._read_at < self.ttl and self._by_id is not None:
                return self._by_id
            try:
                self._by_id = self._read()
            except sa.exc.SQLAlchemyError:
                log.warning("could not read the consumers (database unavailable?); using the last ones read")
                if self._by_id is None:
                    self._read_at = time.monotonic()
                    return {}
            self._read_at = time.monotonic()
            return self._by_id

    def _read(self) -> dict[str, Consumer]:
        """One SELECT of the table; secrets decrypted only for rows whose revision moved."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(consumers).order_by(consumers.c.created_at, consumers.c.id)).all()
        now = utcnow()
        environment = {row.id: row for row in rows if row.source == ENVIRONMENT}
        found = {c.id: c for c in environment_consumers(self.config, environment)}
        decrypted = {}
        for row in rows:
            if row.source != API:
                continue
            until = as_utc(row.previous_secret_until)
            key = (row.id, row.revision, until is not None and until > now)
            consumer = self._decrypted.get(key) or self._with_secrets(row)
            decrypted[key] = consumer
            found[row.id] = consumer
        self._decrypted = decrypted
        return found

    def _with_secrets(self, row: Any) -> Consumer:
        """The row's consumer with its secrets; without them (its http deliveries then fail and are retried,
        never sent unsigned) when they do not decrypt."""
        try:
            return self.store.consumer_from_row(row, secrets=True)
        except (SecretUnreadable, SecretKeyUnavailable) as exc:
            log.error("consumer %s: %s", row.id, exc)
            return self.store.consumer_from_row(row, secrets=False)
