"""An async stream under ASGI stops at its next turn once the server says what it sends is
dropped (``SENDS_DROPPED``, which microweb's Uvicorn protocols give every request).

Uvicorn's ``send()`` returns at once once the connection is lost, and the driver's watcher of
``receive()`` hears of the loss only some turns of the loop later; a stream that awaits
nothing else gives the loop a turn every ``TURN`` seconds, so it ran on for about 20 ms.
ASGI only: under WSGI the server's write fails, and the stream ends there.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
from drive import Message, http_scope

from microweb import App, Request, Response
from microweb._asgi_body_terms import SENDS_DROPPED

# NOTE: chunks sent before the connection is lost, and a bound on the stream, should it never
# hear of the loss (a few tenths of a second of 1-byte chunks, some 50 TURNs).
SENT_BEFORE = 50
MOST = 300_000


def _app(events: list[str], made: list[int]) -> App:
    app = App()

    async def chunks() -> AsyncIterator[bytes]:
        try:
            while made[0] < MOST:
                made[0] += 1
                yield b"x"  # NOTE: no await of its own: only the driver's turns.
        finally:
            events.append("closed")

    @app.get("/")
    async def stream(request: Request) -> Response:
        return Response.stream(chunks())

    return app


def _run(app: App, extensions: dict[str, object] | None, lose: Callable[[], None]) -> list[int]:
    """Serve ``/`` with ``extensions`` in its scope; ``lose()`` is called once the stream has
    sent ``SENT_BEFORE`` chunks; return the number of body chunks sent after that."""
    sent: list[int] = [0, 0]

    async def main() -> None:
        loop = asyncio.get_running_loop()

        async def receive() -> Message:
            await asyncio.Event().wait()  # NOTE: the watcher never hears of the loss.
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if not message.get("more_body"):
                return  # NOTE: the start, and the body's end.
            sent[0] += 1
            if sent[0] == SENT_BEFORE:
                # NOTE: as asyncio's transport does on a failed write: the loss is the
                # protocol's on the loop's next turn (its connection_lost()).
                loop.call_soon(lose)
            elif sent[0] > SENT_BEFORE:
                sent[1] += 1

        scope = http_scope()
        if extensions is not None:
            scope["extensions"] = extensions
        await asyncio.wait_for(app.as_asgi()(scope, receive, send), 30)

    asyncio.run(main())
    return sent


def test_an_async_stream_stops_at_the_turn_after_the_connection_is_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    made = [0]
    lost = [False]

    def lose() -> None:
        lost[0] = True

    def dropped() -> bool:
        return lost[0]

    with caplog.at_level(logging.INFO, logger="microweb"):
        sent = _run(_app(events, made), {SENDS_DROPPED: dropped}, lose)
    assert events == ["closed"]
    assert made[0] < MOST
    # NOTE: the chunks of one TURN at most (1-byte chunks take about a microsecond each, so
    # some 5,000), with room for a slow machine.
    assert sent[1] < MOST // 10, sent
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_without_the_extension_the_watcher_alone_ends_the_stream() -> None:
    # NOTE: plain Uvicorn gives none: the stream runs on until the watcher hears (never, here).
    events: list[str] = []
    made = [0]
    sent = _run(_app(events, made), None, lambda: None)
    assert events == ["closed"]
    assert made[0] == MOST
    assert sent[1] == MOST - SENT_BEFORE


def test_a_stream_whose_connection_stays_is_not_stopped() -> None:
    events: list[str] = []
    made = [0]
    sent = _run(_app(events, made), {SENDS_DROPPED: lambda: False}, lambda: None)
    assert made[0] == MOST and sent[1] == MOST - SENT_BEFORE
    assert events == ["closed"]
