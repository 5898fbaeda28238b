"""Shared fixtures: behaviour tests run under both interfaces, body tests under both colours."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from microweb import App
from microweb.testing import TestClient


@pytest.fixture(params=["wsgi", "asgi"])
def interface(request: pytest.FixtureRequest) -> str:
    """The interface a behaviour test runs under: ``"wsgi"`` or ``"asgi"``."""
    return str(request.param)


@pytest.fixture(params=["sync", "async"])
def colour(request: pytest.FixtureRequest) -> str:
    """The handler colour a body test uses: ``"sync"`` (def) or ``"async"`` (async def)."""
    return str(request.param)


@pytest.fixture
def make_client(interface: str) -> Iterator[Callable[[App], TestClient]]:
    """Build TestClients for apps under the current interface; they are closed after the test."""
    clients: list[TestClient] = []

    def make(app: App) -> TestClient:
        client = TestClient(app, interface=interface)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
