"""examples/chat.py: a client that takes no message holds up no one else's.

The chat's page and its broadcast between real clients are tested against Uvicorn in
``test_servers_websocket.py``; here the broadcast meets a client whose sends never end, as a
browser's that reads nothing (its connection full) do.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from conftest import load_example

from microweb import WebSocketDisconnect
from microweb.testing import TestClient


class Stuck:
    """A client whose connection is full: a send never returns; nor does a close, if
    ``closes`` is false."""

    def __init__(self, closes: bool = True) -> None:
        self.closes, self.closed_with = closes, 0

    async def send_json(self, message: Any) -> None:
        await asyncio.Event().wait()

    async def close(self, code: int = 1000) -> None:
        if not self.closes:
            await asyncio.Event().wait()
        self.closed_with = code


class Gone:
    """A client that left: every send and close fails."""

    async def send_json(self, message: Any) -> None:
        raise ConnectionError("gone")

    async def close(self, code: int = 1000) -> None:
        raise ConnectionError("gone")


class Reader:
    """A client that takes every message at once."""

    def __init__(self) -> None:
        self.got: list[Any] = []

    async def send_json(self, message: Any) -> None:
        self.got.append(message)


def test_a_client_that_takes_no_message_is_forgotten_and_holds_up_no_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: every broadcast waited for each client's send, under the room's lock: one browser
    # that read nothing held every message of the room, and every new joiner's, for good.
    chat = load_example("chat.py", "chat_example")
    monkeypatch.setattr(chat, "SEND_DEADLINE", 0.05)
    stuck, deaf, gone, reader = Stuck(), Stuck(closes=False), Gone(), Reader()

    async def scenario() -> None:
        await chat.open_room()
        chat.app.state.clients.update({stuck, deaf, gone, reader})
        # NOTE: guards against a hang, not timings: each broadcast ends, or never does.
        await asyncio.wait_for(chat.broadcast({"name": "ada", "text": "hi"}), timeout=10)
        await asyncio.wait_for(chat.broadcast({"name": "ada", "text": "again"}), timeout=10)

    asyncio.run(scenario())
    assert reader.got == [{"name": "ada", "text": "hi"}, {"name": "ada", "text": "again"}]
    assert chat.app.state.clients == {reader}
    # NOTE: the page of a forgotten client said "connected", and showed no more messages.
    assert stuck.closed_with == 1013


def test_a_sender_dismissed_by_its_own_broadcast_ends_without_an_error(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a client that sends while it reads nothing (a script that floods the room) misses
    # the deadline of its own message's echo: its own handler closed it (1013), then asked the
    # closed WebSocket for the next message: RuntimeError ("receive after close()"), logged as
    # an error in the handler.
    chat = load_example("chat.py", "chat_example")
    deliver = chat._deliver

    async def deaf_ada(client: Any, message: dict[str, str]) -> Any:
        if client.request.query.get("name") == "ada":
            return client  # NOTE: as a delivery that missed its deadline.
        return await deliver(client, message)

    monkeypatch.setattr(chat, "_deliver", deaf_ada)
    with (
        caplog.at_level(logging.ERROR, logger="microweb"),
        TestClient(chat.app, interface="asgi") as client,
        client.websocket_connect("/ws?name=bob") as bob,
    ):
        with client.websocket_connect("/ws?name=ada") as ada:
            ada.send_text("hello")
            with pytest.raises(WebSocketDisconnect) as closed:
                ada.receive_text()
            assert closed.value.code == 1013
        assert bob.receive_json() == {"name": "ada", "text": "hello"}
    assert caplog.records == []
