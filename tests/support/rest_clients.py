"""The REST order-book client tests share every broker's credentials and a config holding them (a conftest plugin)."""

from __future__ import annotations

import pytest

from app.brokers import rest as client_base
from app.config import load_config
from tests.support.env import make_env

CREDENTIALS = {
    "KITE_API_KEY": "kitekey",
    "KITE_ACCESS_TOKEN": "kitetoken",
    "DHAN_CLIENT_ID": "1000000003",
    "DHAN_ACCESS_TOKEN": "dhan.jwt.token",
    "NOREN_USER_ID": "FT0001",
    "NOREN_TOKEN": "noren-session-token",
}

#: Order ids shaped to leave their place in a URL (docs/reconcile.md, "Hostile answers and ids").
TRAVERSAL = ["../../user/margins", "a/b", "..", ".", "a\\b", "a\x00b", "a\nb", "a\x85b", ""]


@pytest.fixture
def rest_config(tmp_path, monkeypatch):
    """A config with every broker's REST credentials; retries do not sleep (they back off for real in production)."""
    monkeypatch.setattr(client_base, "BACKOFF_FACTOR", 0.0)
    monkeypatch.setattr(client_base, "BACKOFF_JITTER", 0.0)
    return load_config(make_env("redis://127.0.0.1:6379/15", "sqlite:///:memory:", tmp_path, **CREDENTIALS))
