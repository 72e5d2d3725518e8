"""Local fake broker WebSocket servers (127.0.0.1 only) that play each broker's side for the feed tests."""

from tests.fakes.brokers import FakeDhan, FakeDhanWeb, FakeJainam, FakeKite, FakeNoren
from tests.fakes.server import FakeBroker

__all__ = ["FakeBroker", "FakeDhan", "FakeDhanWeb", "FakeJainam", "FakeKite", "FakeNoren"]
