"""Local fake broker WebSocket servers (127.0.0.1 only) that play each broker's side for the feed tests."""

from tests.support.fakes.socket_server import FakeSocketBroker
from tests.support.fakes.sockets import (
    FakeDhanAccounts,
    FakeDhanSocket,
    FakeDhanWebSocket,
    FakeJainamSocket,
    FakeKiteAccounts,
    FakeKiteSocket,
    FakeNorenSocket,
)

__all__ = [
    "FakeDhanAccounts",
    "FakeKiteAccounts",
    "FakeSocketBroker",
    "FakeDhanSocket",
    "FakeDhanWebSocket",
    "FakeJainamSocket",
    "FakeKiteSocket",
    "FakeNorenSocket",
]
