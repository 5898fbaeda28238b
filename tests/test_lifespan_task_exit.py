"""Startup and shutdown steps that await a task ending in ``GeneratorExit``.

The task's ``GeneratorExit``, thrown by asyncio into the task that awaits it, closed that
task's coroutine as a whole: the startup's or shutdown's generator with it (review345).
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import pytest
from test_lifespan_edges import later_shutdown_steps, record_lifespans

from microweb import App, Request
from microweb.testing import TestClient


async def _await_a_task_ending_in_generator_exit() -> None:
    async def ending() -> None:
        raise GeneratorExit("the task ends it")

    await asyncio.get_running_loop().create_task(ending())


def test_a_startup_hook_awaiting_a_task_ending_in_generator_exit_exits_the_lifespans(
    interface: str,
) -> None:
    # NOTE: the lifespans entered before it were left unexited, to their collection.
    events: list[str] = []
    app = App()
    record_lifespans(app, events)

    @app.on_startup
    async def configure() -> None:
        try:
            await _await_a_task_ending_in_generator_exit()
        finally:
            events.append("configure's finally")

    client = TestClient(app, interface=interface)
    with pytest.raises(GeneratorExit, match="the task ends it"), client:
        pass
    assert events == [
        "enter sync",
        "enter async",
        "configure's finally",
        "exit async",
        "exit sync",
    ]
    # NOTE: the step's task, and the lifespans', ended: a second startup starts cleanly.
    app.on_startup(lambda: events.append("registered again"))


def test_a_shutdown_hook_awaiting_a_task_ending_in_generator_exit_lets_the_later_steps_run(
    interface: str,
) -> None:
    # NOTE: the later steps (the lifespans' exits, plugins' close()) were skipped.
    events: list[str] = []
    app = App()
    record_lifespans(app, events)

    @app.on_shutdown
    async def flush() -> None:
        await _await_a_task_ending_in_generator_exit()

    later_shutdown_steps(app, events)
    client = TestClient(app, interface=interface)
    client.__enter__()
    events.clear()
    with pytest.raises(GeneratorExit, match="the task ends it"):
        client.close()
    assert events == ["goodbye", "exit async", "exit sync", "pool closed"]


_HELD: contextvars.ContextVar[str] = contextvars.ContextVar("_HELD", default="unset")


def test_async_hooks_each_run_in_a_task_of_their_own_under_both_interfaces(interface: str) -> None:
    # NOTE: under ASGI the hooks ran in the lifespan's task until review345, under WSGI each in
    # a task of the app loop: a token one made, another reset there alone. What they set is
    # still seen by the steps after them (docs/lifespan.md) (review356).
    events: list[str] = []
    app = App()

    @app.on_startup
    async def opens() -> None:
        app.state.token = _HELD.set("open")
        app.state.task = asyncio.current_task()

    @app.on_startup
    async def sees() -> None:
        events.append(_HELD.get())
        events.append("same task" if asyncio.current_task() is app.state.task else "own task")

    @app.on_shutdown
    async def resets() -> None:
        events.append(_HELD.get())
        _HELD.reset(app.state.token)

    with pytest.raises(Exception, match="different Context"), TestClient(app, interface=interface):
        pass
    assert events == ["open", "own task", "open"]


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_what_a_lifespan_sets_in_context_variables_is_seen_by_the_later_steps_unless_async(
    interface: str, colour: str
) -> None:
    # NOTE: an async def lifespan runs in a task of its own from its entry to its exit: what it
    # sets stays there; a sync one's, as a hook's, is seen by the steps after it. The requests
    # see neither (docs/lifespan.md) (review364).
    events: list[tuple[str, str]] = []
    app = App()
    if colour == "sync":

        @app.lifespan
        @contextmanager
        def held(app: App) -> Iterator[None]:
            _HELD.set("lifespan")
            yield
            events.append(("exit", _HELD.get()))

    else:

        @app.lifespan  # type: ignore[arg-type]
        @asynccontextmanager
        async def held(app: App) -> AsyncIterator[None]:
            _HELD.set("lifespan")
            yield
            events.append(("exit", _HELD.get()))

    app.on_startup(lambda: events.append(("startup", _HELD.get())))
    app.on_shutdown(lambda: events.append(("shutdown", _HELD.get())))

    @app.get("/")
    async def index(request: Request) -> str:
        return _HELD.get()

    with TestClient(app, interface=interface) as client:
        events.append(("request", client.get("/").text))
    seen = "lifespan" if colour == "sync" else "unset"
    assert events == [
        ("startup", seen),
        ("request", "unset"),
        ("shutdown", seen),
        ("exit", "lifespan"),
    ]
