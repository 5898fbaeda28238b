"""The bridges from async code to threads, and the effect drivers that use both directions.

Async code hands calls to the thread pool (``def`` handlers under ASGI); ``drive_sync`` (and
``drive_in_thread``, for the startup and shutdown) and ``drive_async`` run the core's effects.
The file threads (blocking file I/O) are ``_file_threads``; the other direction, threads
waiting on a loop, is ``_app_loop``. The WSGI driver's closing of a request cut off is
``_cut_closing``; the closes of streams that nobody awaits any more are ``_unawaited``; a sync
stream iterated in one pool thread is ``_in_pool``; the threads that run a stream's sync
``close()`` are ``_close_threads``; a call into a pool, awaited on a loop, is ``_pool_futures``.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

# NOTE: imported for the hook it sets (close_sync_in): a stream's sync close() from async code
# then runs in a close thread wherever this module is, by every driver and by the bridges that
# hand calls to threads (_asgi_body, _file_threads). Set as a driver was imported (_close_wait
# imports _close_threads), the close ran on the event loop while only such a bridge was.
from . import _close_threads  # noqa: F401
from ._app_loop import AppLoop, LoopStopped, adopt
from ._cut_closing import close_stopped, named_by_its_flow
from ._effects import (
    FLOW_STEP,
    Apart,
    Effects,
    Ending,
    Offload,
    closing_here,
    flow_step_ending,
)
from ._errors import own_cancellation, own_stop
from ._pool import WorkerPool
from ._pool_futures import settle_future

T = TypeVar("T")
logger = logging.getLogger("microweb")


def sync_only(call: str, twin: str) -> None:
    """Refuse a blocking call where an event loop runs in this thread.

    Raises:
        RuntimeError: Naming the async twin to use instead.
    """
    if asyncio._get_running_loop() is not None:
        raise RuntimeError(
            f"request.{call} blocks, and an event loop is running in this thread: in async code "
            f"write `await request.{twin}`. (A def handler with offload=False runs on the loop; "
            "make it async def to read the body.)"
        )


def drive_sync(effects: Effects, app_loop: AppLoop) -> Any:
    """Run a request's core generator in this thread: offloads inline, awaitables on the loop.

    All of it runs in one context of the request's own, this thread's steps and the loop's
    alike (on Python 3.11 and later; a copy of it for each awaitable on 3.10), as a request's
    task runs them under ASGI: a ``ContextVar`` token made before a flow's ``yield`` resets
    after it, whatever the colour of the flow and of the code between. What that context holds
    at the end is set here.
    """
    steps = contextvars.copy_context()
    try:
        return _drive(effects, app_loop, steps.run, steps)
    finally:
        # NOTE: so the driver and the stream, which run after, see what the steps set.
        adopt(steps)


def drive_in_thread(effects: Effects, app_loop: AppLoop) -> Any:
    """Run a core generator in the current context: offloads inline, awaitables on the app
    loop, each in a copy of it, what they set set here afterwards.

    For the startup and the shutdown, which the WSGI driver runs in one context of its own,
    from whichever thread: a sync lifespan resets at the shutdown with the token it made at
    the startup.
    """
    return _drive(effects, app_loop, _call, None)


def _call(fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
    return fn(*args, **kwargs)


def _drive(
    effects: Effects,
    app_loop: AppLoop,
    run: Callable[..., Any],
    steps: contextvars.Context | None,
) -> Any:
    """Run ``effects``, each step of it through ``run``; awaitables in ``steps`` if given."""
    try:
        effect = run(effects.send, None)
        while True:
            try:
                if type(effect) is Offload:
                    value = run(effect.fn, *effect.args, **effect.kwargs)
                elif type(effect) is Apart:
                    value = app_loop.run(apart(effect), steps)
                else:
                    value = app_loop.run(effect, steps)
            except LoopStopped as stopped:
                if type(effect) is FLOW_STEP:
                    named_by_its_flow(stopped)  # NOTE: a flow's step, named as it is left.
                # NOTE: the call was cut off, not failed: the flows' and callbacks' handlers of
                # errors don't get it, their finally blocks run.
                close_stopped(effects, effect, app_loop, run, steps)
                raise
            except Exception as exc:
                # NOTE: an offloaded call's, as the pool's future makes it under ASGI.
                error: BaseException = own_stop(exc) if isinstance(exc, StopIteration) else exc
            except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
                if type(effect) is Offload:
                    raise
                # NOTE: Ctrl+C while this thread waited for the loop (the call cancelled and
                # ended: hop_to_loop): thrown in, as a def step's own goes through the
                # generator, so a startup exits the lifespans it entered before it goes on,
                # and a shutdown runs its other steps. Left out, they ran at collection.
                # NOTE: an async def step's own GeneratorExit too, as drive_async() takes it:
                # this is no generator, so none is its closing (review314).
                error = flow_step_ending(effect, exc)
            except asyncio.CancelledError as exc:
                # NOTE: no server cancels a call in this thread: a def handler's, flow's or
                # callback's own, an error as under ASGI (where the pool's future carries it).
                error = own_cancellation(exc)
            else:
                effect = run(effects.send, value)
                continue
            # NOTE: thrown in outside the except clauses (see drive_async).
            try:
                effect = run(effects.throw, error)
            finally:
                del error
    except StopIteration as stop:
        # NOTE: only send() and throw() can raise it here: the effect's own is thrown in.
        return stop.value


async def drive_async(effects: Effects, pool: WorkerPool) -> Any:
    """Run a core generator on the running loop: awaitables awaited, offloads in ``pool``."""
    # PERF: send() and throw() inline, not through a helper: 0.4 us less per request.
    send = effects.send
    try:
        effect = send(None)
        while True:
            try:
                if type(effect) is Offload:
                    value = await _offloaded(effect, pool)
                elif type(effect) is Apart:
                    value = await apart(effect)
                else:
                    value = await effect
            except Exception as exc:
                error: BaseException = exc
            except asyncio.CancelledError as exc:
                # NOTE: the server's cancellation is thrown in too, so that the flows it cuts
                # off are closed (their aclose() awaited) before it goes on, instead of when
                # they are collected. App code's own is an error of the request, as under WSGI.
                error = exc if cancelled_here() else own_cancellation(exc)
            except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
                # NOTE: thrown in, as under WSGI: the core closes its flows now (their finally
                # run; kept by the task, the traceback held them until a collection), and an
                # error handler's is told from a cut (closed, it was logged as "cut off"). An
                # async def handler's own GeneratorExit too; this coroutine's closing goes on.
                if closing_here(exc):
                    raise
                error = flow_step_ending(effect, exc)
            else:
                effect = send(value)
                continue
            # NOTE: thrown in outside the except clauses: there, an error the core or a sync
            # flow raised of its own after it had caught this one got it as its __context__
            # in the log, as if it had failed while handling it.
            try:
                effect = effects.throw(error)
            finally:
                del error  # NOTE: no cycle through this frame and the error's traceback.
    except StopIteration as stop:
        # NOTE: only send() and throw() can raise it here: the effect's own is thrown in.
        return stop.value


def cancelled_here() -> bool:
    """Return whether the running task was cancelled (the server gave up on its request), not
    app code that raised a ``CancelledError`` or awaited a task it had cancelled."""
    cancelling = getattr(asyncio.current_task(), "cancelling", None)
    # NOTE: Python 3.10 keeps no count of a task's cancellations: every CancelledError is
    # taken for the server's there.
    return cancelling is None or cancelling() > 0


def error_of_request(exc: Exception | asyncio.CancelledError) -> Exception:
    """Return ``exc`` as an error for the error handlers; re-raise the server's cancellation.

    App code's own ``CancelledError`` is an error of its request, as under WSGI.
    """
    if isinstance(exc, Exception):
        return exc
    if cancelled_here():
        try:
            raise exc
        finally:
            # NOTE: raised here, the cancellation's traceback holds this frame, which held it:
            # a cycle, and the frames below (the stream's sending, the handler's call) held
            # the request. Each client that left a stream under Uvicorn (an SSE page closed)
            # kept its request until a full collection (33 to 41 objects).
            del exc
    return own_cancellation(exc)


async def apart(effect: Apart) -> Any:
    """Await an ``Apart`` effect's awaitable in a task of its own; what it set of the context
    variables is set in the caller's context afterwards, as if it had run there, also where
    it raised.

    Raises:
        Ending: Carrying the ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit`` that
            ended it (see ``Apart``); its ``Exception`` or ``CancelledError`` (the server's,
            or its own) is raised as it is.
    """
    # PERF: a task, and the context carried back, cost 9-11 us an async def callback, where
    # awaiting its carrier directly cost 0.14 (20,000 awaits, 3.11, 2026-12-07): the price of
    # the callbacks after one whose awaited task raised GeneratorExit running at all.
    task = asyncio.ensure_future(_settled(effect.awaitable))
    try:
        returned, ended, context = await task
    finally:
        if not task.done():
            task.cancel()  # NOTE: this coroutine was closed: the awaitable's finally runs too.
    del task  # NOTE: it holds the error: no cycle through this frame.
    if not isinstance(ended, asyncio.CancelledError):
        adopt(context)  # NOTE: nothing crosses back from a cancelled call (_offloaded).
    if ended is not None:
        try:
            if isinstance(ended, (Exception, asyncio.CancelledError)):
                raise ended
            raise Ending(ended) from None
        finally:
            del ended  # NOTE: no cycle through this frame and the error's traceback.
    return returned


async def _settled(
    awaitable: Awaitable[Any],
) -> tuple[Any, BaseException | None, contextvars.Context]:
    """Await ``awaitable`` at the top of its task; return what it returned or what ended it
    (``None`` beside), its error included, and the task's context at the end."""
    try:
        returned, ended = await awaitable, None
    except (Exception, KeyboardInterrupt, SystemExit, GeneratorExit, asyncio.CancelledError) as exc:
        # NOTE: a GeneratorExit here is app code's, thrown at the task's own coroutine (none
        # closes it but its task, and a close() allows a return). A KeyboardInterrupt or
        # SystemExit returned, not raised: a task's stops the loop. An error returned too, with
        # the context: what a failing callback set was lost for the next (review328). A
        # CancelledError too, raised again by apart() in the task that awaits this one, where
        # it is the server's (which cancelled that task, and this one with it) or app code's
        # own: raised out of this task, Python 3.10 lost its message (a hook's own, at startup
        # under WSGI; review345).
        returned, ended = None, exc
    return returned, ended, contextvars.copy_context()


async def _offloaded(effect: Offload, pool: WorkerPool) -> Any:
    """Run an offloaded call (a ``def`` handler) in ``pool``; what it set of the context
    variables is set in the caller's context afterwards, as if it had run there.

    So the flows after it, its error handler and its stream see what a ``def`` handler set, as
    under WSGI, where it runs in the server's thread. Nothing crosses back from a call whose
    caller was cancelled before it ended (nor, then, is it waited for).
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    context = contextvars.copy_context()
    pool.call(settle_future, loop, future, context, effect.fn, effect.args, effect.kwargs)
    try:
        return await future
    finally:
        # NOTE: settled once the call has returned or raised: the worker is done with context.
        if future.done() and not future.cancelled():
            adopt(context)
        elif future.cancelled():
            pool.cut_off = True  # NOTE: the call may go on in its thread (_say_still_running).
        del future  # NOTE: it holds the error, whose traceback holds this frame: no cycle.


def make_pool(max_threads: int) -> WorkerPool:
    """Create the bounded pool that runs ``def`` handlers under ASGI."""
    return WorkerPool(max_threads, "microweb-worker")


def in_a_thread(pool: WorkerPool, fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    try:
        return asyncio.wrap_future(pool.submit(stop_owned, fn, *args))
    except RuntimeError:
        # NOTE: the pool is shut down: Uvicorn cancels what is left after its grace period and
        # runs the lifespan shutdown before this stream's cleanup; close it all the same.
        return asyncio.ensure_future(asyncio.to_thread(stop_owned, fn, *args))


def stop_owned(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn``, sync app code, and return what it returns; raise its ``StopIteration`` as
    ``own_stop()`` makes it."""
    # NOTE: an asyncio future refuses a StopIteration: one from a stream's close() (that of a
    # stream any thread may read, its client gone) never settled the request's, which hung.
    try:
        return fn(*args)
    except StopIteration as stop:
        raise own_stop(stop) from stop


async def coroutine_of(awaitable: Awaitable[T]) -> T:
    """Wrap any awaitable in a coroutine (``run_coroutine_threadsafe`` takes only those)."""
    return await awaitable
