"""Startup as the drivers run it: hooks called, lifespans entered, and what undoes them.

A lifespan (``app.lifespan``) is a context manager held open from startup to shutdown. Entering
one gives a shutdown step, its exit, which the driver keeps: each ``as_wsgi()`` callable and
each ``as_asgi()`` callable enters the app's lifespans for itself. An async one runs in a task
of its own on the loop that serves the async code, so that what it opens around its ``yield``
(a task group, a cancel scope) is entered and exited in one task, under either interface.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._effects import (
    Apart,
    Colored,
    Effects,
    Ending,
    Lifespan,
    ShutdownError,
    call_sync,
    carried,
    closing_here,
    run_shutdown,
)
from ._errors import raise_own
from ._plan import StartupSteps
from ._types import AppLike

logger = logging.getLogger("microweb")


def run_startup(steps: StartupSteps, app: AppLike) -> Effects:
    """Run the startup hooks and enter the lifespans, in registration order.

    Once every step ran, the callable counts as serving (``StartupSteps.serving``) until its
    driver's shutdown calls ``StartupSteps.stopped()``.

    Returns:
        The exits of the lifespans entered, in the order entered (shutdown runs them reversed).

    Raises:
        BaseException: The first step's failure (an exception, ``SystemExit`` or
            ``KeyboardInterrupt``), or the server's cancellation; the lifespans entered
            before it are exited first.
    """
    exits: list[Colored] = []
    ended: BaseException | None = None
    try:
        # NOTE: the live list: a step registered by a step before it runs too, as for hooks.
        for step in steps:
            if isinstance(step, Lifespan):
                yield from _enter(step, app, exits)
            elif step.is_async:
                yield Apart(step.fn())
            else:
                call_sync(step.fn, "startup")
    except Ending as carrier:
        ended = carrier.ended  # NOTE: raised below, out of this handler: no Ending chained.
    except (Exception, KeyboardInterrupt, SystemExit, asyncio.CancelledError):
        # NOTE: each failure of an exit is logged by run_shutdown; the startup's is the one
        # raised. A context manager closes what it opened, even when the app never serves,
        # and also when a step ends the process (sys.exit(), Ctrl+C), as a with block does;
        # and when the server gives up waiting (its time limit cancels the lifespan call),
        # as nested async with blocks do: the lifespans entered were left open, an async
        # one's task waiting for good, a sync one exited by the garbage collector.
        with contextlib.suppress(ShutdownError):
            yield from run_shutdown(exits[::-1])
        raise
    if ended is not None:
        with contextlib.suppress(ShutdownError):
            yield from run_shutdown(exits[::-1])
        raise ended
    steps.serving += 1
    return exits


def _enter(lifespan: Lifespan, app: AppLike, exits: list[Colored]) -> Effects:
    manager = lifespan.factory(app)
    if hasattr(manager, "__aenter__"):
        with _named(lifespan):
            value, leave = yield carried(_hold(manager, lifespan.name))
        exits.append(_exit_step(lifespan, leave, is_async=True))
    elif hasattr(manager, "__enter__"):
        with _named(lifespan):
            try:
                value = manager.__enter__()
            except BaseException as exc:
                raise_own(exc)  # NOTE: as a def startup hook's (call_sync).
                if isinstance(exc, GeneratorExit):
                    raise Ending(exc) from None  # NOTE: as call_sync carries it (review341).
                raise
        exits.append(_exit_step(lifespan, _sync_exit(manager), is_async=False))
    else:
        raise TypeError(
            f"lifespan {lifespan.name!r} returned {type(manager).__name__}, not a context "
            "manager: decorate it with @asynccontextmanager (or @contextmanager)"
        )
    # NOTE: after its exit is kept, so that a value refused here still exits it.
    _keep(value, lifespan, app)


async def _hold(manager: Any, name: str) -> tuple[Any, Callable[[], Awaitable[None]]]:
    """Enter ``manager`` in a task of its own; return what it gave and how to exit it."""
    loop = asyncio.get_running_loop()
    entered: asyncio.Future[Any] = loop.create_future()
    release = asyncio.Event()

    async def held() -> None:
        try:
            # NOTE: its block ends normally on release: no exception of the app is thrown in.
            async with manager as value:
                entered.set_result(value)
                await release.wait()
        except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
            if closing_here(exc):
                raise  # NOTE: this coroutine's closing.
            if not entered.done():
                # NOTE: a GeneratorExit carried: thrown as it was into the task that awaits
                # entered, it closed that task's coroutine as a whole ("coroutine ignored
                # GeneratorExit"), and the startup failed with that RuntimeError (review341).
                entered.set_exception(Ending(exc) if isinstance(exc, GeneratorExit) else exc)
                return
            # NOTE: let out of this task, it left the event loop (the app loop's thread, or the
            # server's): "Event loop is closed", and no later shutdown step ran. A GeneratorExit
            # let out was thrown into the task that awaits this one (its exit's), and closed
            # that task's coroutine as a whole: no later shutdown step ran either.
            raise Ending(exc) from None
        except BaseException as exc:
            if entered.done():
                raise  # NOTE: from its exit, or a cancellation while held: the exit's caller's.
            entered.set_exception(exc)

    task = loop.create_task(held())
    try:
        value = await entered
    except BaseException:
        task.cancel()
        # NOTE: its cleanup ends before the error goes on to the exits of the lifespans
        # entered before it, as in nested async with blocks: a startup cut off while it
        # entered exited those first, and it cleaned up after them.
        await asyncio.wait((task,))
        if not task.cancelled() and task.exception() is not None:
            logger.error("lifespan %r failed while cut off", name, exc_info=task.exception())
        raise
    task.add_done_callback(lambda task: _ended_early(task, release, name))

    async def leave() -> None:
        release.set()
        await task

    return value, leave


def _ended_early(task: asyncio.Task[None], release: asyncio.Event, name: str) -> None:
    # NOTE: a failure of what it holds (a task group's child) ends it while the app serves;
    # logged now, not at the shutdown that may be days away (or never, without lifespan
    # messages). Its exit raises it again, as a shutdown failure.
    if release.is_set() or task.cancelled() or task.exception() is None:
        return
    error = task.exception()
    if isinstance(error, Ending):
        error = error.ended
    logger.error("lifespan %r ended while the app serves", name, exc_info=error)


def _sync_exit(manager: Any) -> Callable[[], None]:
    def leave() -> None:
        manager.__exit__(None, None, None)

    return leave


def _exit_step(lifespan: Lifespan, leave: Callable[[], Any], is_async: bool) -> Colored:
    """Return the shutdown step that exits a lifespan with ``leave``."""
    if is_async:

        async def exit_async() -> None:
            with _named(lifespan):
                await leave()

        step: Callable[[], Any] = exit_async
    else:

        def exit_sync() -> None:
            with _named(lifespan):
                leave()

        step = exit_sync
    # NOTE: a failed shutdown step is reported by its name: the lifespan's, as a hook's.
    step.__qualname__ = step.__name__ = lifespan.name
    return Colored(step, is_async)


# NOTE: contextlib's words, the same from Python 3.10 to 3.13, for a generator that returned
# before its yield and one that yielded again after it.
_CONTEXTLIB_ERRORS = {
    "generator didn't yield": "ended without yielding",
    "generator didn't stop": "yielded twice",
}


@contextlib.contextmanager
def _named(lifespan: Lifespan) -> Any:
    try:
        yield
    except RuntimeError as exc:
        said = _CONTEXTLIB_ERRORS.get(str(exc))
        if said is None:
            raise
        raise RuntimeError(
            f"lifespan {lifespan.name!r} {said}: it must yield once, where the app serves"
        ) from exc


def _keep(value: Any, lifespan: Lifespan, app: AppLike) -> None:
    """Put what a lifespan yielded (a mapping, or ``None``) on ``app.state``."""
    if value is None:
        return
    if not isinstance(value, Mapping) or not all(isinstance(key, str) for key in value):
        raise TypeError(
            f"lifespan {lifespan.name!r} yielded {type(value).__name__}: yield nothing, or a "
            "mapping of names (str) to values, which go on app.state"
        )
    for key, item in value.items():
        setattr(app.state, key, item)
