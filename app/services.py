"""Per-process handles (config, Redis, database engine, ingestor) shared by web, workers and feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from sqlalchemy.engine import Engine

from app.accounts.store import AccountStore
from app.brokers.loader import adapter_classes
from app.config import Config, load_config
from app.db import make_engine
from app.ingest import Ingestor
from app.redis_conn import check_redis_at_start, connect

if TYPE_CHECKING:
    from app.brokers.base import BrokerAdapter


@dataclass
class Services:
    """What a process needs to talk to the outside; built once, after any fork."""

    config: Config
    redis: redis.Redis
    engine: Engine
    ingestor: Ingestor
    adapters: dict[str, BrokerAdapter] = field(default_factory=dict)

    @property
    def accounts(self) -> AccountStore:
        """The accounts added as data (app/accounts/store.py)."""
        return AccountStore(self.config, self.engine)

    @classmethod
    def build(cls, config: Config, *, check_redis: bool = True) -> Services:
        """Connect to Redis and the database (the database lazily); with `check_redis`, refuse in
        production a Redis whose maxmemory-policy evicts (app/redis_conn.py), warn in development."""
        client = connect(config)
        if check_redis:
            check_redis_at_start(client, config)
            client.connection_pool.disconnect()  # no socket inherited by forked children (gunicorn --preload)
        engine = make_engine(config.database_url)
        return cls(
            config=config,
            redis=client,
            engine=engine,
            # The database keeps what Redis cannot take (it survives a replaced dyno); SPOOL_DIR adds a
            # local fsynced spool after it, for machines whose disk persists (docs/ingest.md).
            ingestor=Ingestor(
                client, dedup_ttl=config.dedup_ttl_seconds, engine=engine, spool_dir=config.ingest.spool_dir
            ),
            adapters={name: adapter(config) for name, adapter in adapter_classes().items()},
        )


_current: Services | None = None


def get_services() -> Services:
    """This process's services, built from the environment on first use."""
    global _current
    if _current is None:
        _current = Services.build(load_config())
    return _current


def set_services(services: Services | None) -> None:
    """Install services built elsewhere (create_app, tests, worker start-up)."""
    global _current
    _current = services
