"""examples/chat.py: a client that takes no message holds up no one else's.

The chat's page and its broadcast between real clients are tested against Uvicorn in
``test_servers_websocket.py``; here the broadcast meets a client whose sends never end, as a
browser's that reads nothing (its connection full) do.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from conftest import load_example


class Stuck:
    """A client whose connection is full: a send never returns."""

    async def send_json(self, message: Any) -> None:
        await asyncio.Event().wait()


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
    stuck, reader = Stuck(), Reader()

    async def scenario() -> None:
        await chat.open_room()
        chat.app.state.clients.update({stuck, reader})
        # NOTE: guards against a hang, not timings: each broadcast ends, or never does.
        await asyncio.wait_for(chat.broadcast({"name": "ada", "text": "hi"}), timeout=10)
        await asyncio.wait_for(chat.broadcast({"name": "ada", "text": "again"}), timeout=10)

    asyncio.run(scenario())
    assert reader.got == [{"name": "ada", "text": "hi"}, {"name": "ada", "text": "again"}]
    assert chat.app.state.clients == {reader}
