"""Every broker's genuine postbacks, found through the registry: tests/brokers/<name>/samples.py provides them.

Registry-driven tests (hostile input, the registry's own) take their brokers from app/brokers/registry.py
SPECS and their bodies from here, so a broker added to SPECS is covered at once, and one added without
samples fails loudly instead of being left out.
"""

from __future__ import annotations

import importlib
from typing import Any

from app.brokers.registry import SPECS
from app.brokers.spec import BrokerSpec

#: The brokers that take HTTP postbacks, in registry order.
POSTBACK_SPECS: tuple[BrokerSpec, ...] = tuple(spec for spec in SPECS if spec.postback)


class MissingSamples(LookupError):
    """A registered broker whose tests provide no genuine postback to send."""


def postback_samples(broker: str) -> list[dict[str, Any]]:
    """The genuine postbacks of `broker` (at least one), from tests/brokers/<broker>/samples.py `postbacks()`."""
    where = f"tests/brokers/{broker}/samples.py"
    name = f"tests.brokers.{broker}.samples"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name not in (name, name.rpartition(".")[0]):
            raise
        raise MissingSamples(f"{broker} is in app/brokers/registry.py SPECS but {where} does not exist") from None
    samples = module.postbacks()
    if not samples:
        raise MissingSamples(f"{where}: postbacks() returned no sample")
    return samples


def all_postback_samples() -> list[tuple[str, dict[str, Any]]]:
    """(broker, payload) for every sample of every broker that takes postbacks."""
    return [(spec.name, payload) for spec in POSTBACK_SPECS for payload in postback_samples(spec.name)]
