"""Startup and shutdown steps that await a task ending in ``GeneratorExit``.

The task's ``GeneratorExit``, thrown by asyncio into the task that awaits it, closed that
task's coroutine as a whole: the startup's or shutdown's generator with it (review345).
"""

from __future__ import annotations

import asyncio
import contextvars

import pytest
from test_lifespan_edges import later_shutdown_steps, record_lifespans

from microweb import App
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
