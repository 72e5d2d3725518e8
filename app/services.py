"""Per-process handles (config, Redis, database engine, ingestor) shared by web, workers and feeds."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis
from sqlalchemy.engine import Engine

from app.config import Config, load_config
from app.db import make_engine
from app.ingest import Ingestor
from app.redis_conn import connect

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

    @classmethod
    def build(cls, config: Config) -> Services:
        """Connect (lazily: nothing is dialled until first use) to Redis and the database."""
        from app.brokers import ADAPTERS

        client = connect(config)
        return cls(
            config=config,
            redis=client,
            engine=make_engine(config.database_url),
            ingestor=Ingestor(client, dedup_ttl=config.dedup_ttl_seconds, spool_dir=config.instance_path / "spool"),
            adapters={name: adapter(config) for name, adapter in ADAPTERS.items()},
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
