"""Test helpers: signed payloads, seed fixtures and running the real pipeline loop in-process."""

from __future__ import annotations

import copy
import json
from pathlib import Path

from app import create_app
from app.brokers.kite.adapter import kite_checksum
from app.config import load_config
from app.services import Services, set_services
from tests.support.env import KITE_SECRET, make_env
from workers.pipeline import Pipeline

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def load_fixture(name: str) -> dict:
    """A sanitized real payload from tests/support/fixtures/."""
    return json.loads((FIXTURES / name).read_text())


def fixture_bytes(name: str) -> bytes:
    """A fixture file's exact bytes (for bodies that are not valid JSON)."""
    return (FIXTURES / name).read_bytes()


def sign_kite(payload: dict, secret: str) -> dict:
    """A copy of a Kite payload with the checksum Kite would send."""
    signed = copy.deepcopy(payload)
    signed["checksum"] = kite_checksum(str(signed["order_id"]), signed["order_timestamp"], secret)
    return signed


def forwarding_services(redis_url: str, database_url: str, tmp_path: Path, **environ: str):
    """Services for a test that forwards (FORWARD_URLS and the like in `environ`), installed for jobs run in
    this process, and a Flask test client over them."""
    built = Services.build(load_config(make_env(redis_url, database_url, tmp_path, **environ)))
    set_services(built)
    return built, create_app(built.config, built).test_client()


def post_kite(client, seed: dict, **changes) -> str:
    """A signed Kite postback of `seed` with `changes`, which must be taken (202); its event id."""
    answer = client.post("/postbacks/kite", data=json.dumps(sign_kite(dict(seed, **changes), KITE_SECRET)))
    assert answer.status_code == 202, answer.get_json()
    return answer.get_json()["id"]


def run_pipeline(services: Services, *, timeout: float = 30.0) -> None:
    """Run the worker loop in-process until nothing is queued, pending, due or in flight.

    The loop is the worker's own (workers/pipeline.py). Entries another consumer left pending are taken
    over at once (claim_idle_ms=0), as a replacement would.
    """
    loop = Pipeline(services, consumer="test-run", claim_idle_ms=0)
    try:
        loop.run_until_idle(timeout)
    finally:
        loop.close()


def body(payload: dict) -> bytes:
    """A JSON request body."""
    return json.dumps(payload).encode()


def content(event) -> dict:
    """The event without what depends on the delivery (source, arrival time, raw body)."""
    data = event.to_dict()
    for key in ("source", "received_at", "raw"):
        data.pop(key)
    return data
