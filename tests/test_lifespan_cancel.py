"""A startup cut off by the server (its lifespan task cancelled) exits the lifespans entered.

A test harness that gives the startup a time limit (asgi-lifespan's ``LifespanManager``, say)
cancels the app's lifespan call when it runs out; nested ``async with`` blocks would exit what
they entered then, the last entered first, before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from typing import Any

import pytest

from microweb import App


def _recorded(events: list[str], name: str) -> Callable[[App], AsyncIterator[None]]:
    """An async lifespan that records its entering and its exit."""

    async def held(app: App) -> AsyncIterator[None]:
        events.append(f"enter {name}")
        try:
            yield
        finally:
            events.append(f"exit {name}")

    return held


def _recorded_sync(events: list[str], name: str) -> Callable[[App], Iterator[None]]:
    """The same lifespan as a def generator."""

    def held(app: App) -> Iterator[None]:
        events.append(f"enter {name}")
        try:
            yield
        finally:
            events.append(f"exit {name}")

    return held


def _app(events: list[str], kind: str, hook_started: asyncio.Event) -> App:
    app = App()
    app.lifespan(_recorded(events, "first"))
    app.lifespan((_recorded_sync if kind == "sync" else _recorded)(events, "second"))

    @app.on_startup
    async def slow() -> None:
        hook_started.set()
        await asyncio.Event().wait()  # longer than the server waits

    return app


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cancelled_asgi_startup_exits_the_lifespans_entered_before_it_ends(kind: str) -> None:
    events: list[str] = []

    async def serve() -> list[MutableMapping[str, Any]]:
        hook_started = asyncio.Event()
        asgi = _app(events, kind, hook_started).as_asgi()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        sent: list[MutableMapping[str, Any]] = []

        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        call = asyncio.ensure_future(asgi(scope, inbox.get, send))
        await hook_started.wait()
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        events.append("cancelled")
        return sent

    sent = asyncio.run(serve())
    assert events == [
        "enter first",
        "enter second",
        "exit second",
        "exit first",
        "cancelled",
    ]
    assert sent == []


def test_a_lifespan_cancelled_while_it_enters_cleans_up_before_those_entered_exit() -> None:
    events: list[str] = []
    app = App()
    app.lifespan(_recorded(events, "first"))

    @app.lifespan
    async def second(app: App) -> AsyncIterator[None]:
        events.append("enter second")
        try:
            await asyncio.Event().wait()  # a connection that never comes
            yield
        finally:
            await asyncio.sleep(0)  # its cleanup takes a turn or two of the loop
            await asyncio.sleep(0)
            events.append("second cleaned up")

    async def serve() -> None:
        asgi = app.as_asgi()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})

        async def send(message: MutableMapping[str, Any]) -> None:
            raise AssertionError(f"nothing is sent: {message}")

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        call = asyncio.ensure_future(asgi(scope, inbox.get, send))
        while "enter second" not in events:
            await asyncio.sleep(0)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        events.append("cancelled")

    asyncio.run(serve())
    assert events == [
        "enter first",
        "enter second",
        "second cleaned up",
        "exit first",
        "cancelled",
    ]
