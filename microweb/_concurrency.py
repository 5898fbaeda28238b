"""The bridges from async code to threads, and the effect drivers that use both directions.

Async code hands calls to the thread pool (``def`` handlers under ASGI); ``drive_sync`` and
``drive_async`` run the core's effects. The file threads (blocking file I/O) are
``_file_threads``; the other direction, threads waiting on a loop, is ``_app_loop``.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from typing import Any, TypeVar

from ._app_loop import AppLoop, LoopStopped
from ._effects import Effects, Offload
from ._errors import own_cancellation
from ._pool import WorkerPool

T = TypeVar("T")


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
    """Run a core generator in this thread: offloads inline, awaitables on the app loop."""
    send = effects.send
    try:
        effect = send(None)
        while True:
            try:
                if type(effect) is Offload:
                    value = effect.fn(*effect.args, **effect.kwargs)
                else:
                    value = app_loop.run(effect)
            except LoopStopped:
                # NOTE: the call was cut off, not failed: the flows' and callbacks' handlers of
                # errors don't get it, their finally blocks run.
                effects.close()
                raise
            except Exception as exc:
                effect = effects.throw(exc)
            except asyncio.CancelledError as exc:
                # NOTE: no server cancels a call in this thread: a def handler's, flow's or
                # callback's own, an error as under ASGI (where the pool's future carries it).
                effect = effects.throw(own_cancellation(exc))
            else:
                effect = send(value)
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
                    value = await run_in_pool(pool, effect.fn, *effect.args, **effect.kwargs)
                else:
                    value = await effect
            except Exception as exc:
                effect = effects.throw(exc)
            except asyncio.CancelledError as exc:
                # NOTE: the server's cancellation is thrown in too, so that the flows it cuts
                # off are closed (their aclose() awaited) before it goes on, instead of when
                # they are collected. App code's own is an error of the request, as under WSGI.
                effect = effects.throw(exc if cancelled_here() else own_cancellation(exc))
            else:
                effect = send(value)
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
        raise exc
    return own_cancellation(exc)


def run_in_pool(pool: WorkerPool, fn: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]:
    """Run ``fn`` in ``pool`` with the caller's context variables.

    Raises:
        RuntimeError: The pool is shut down.
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()
    # PERF: the worker settles this future with one call_soon_threadsafe, where
    # run_in_executor chains a concurrent future to it by callbacks: 45 us -> 32 us a call in
    # a ThreadPoolExecutor, 21 us in a WorkerPool (best of 7 x 2,000, 2-CPU VM).
    pool.call(settle_future, loop, future, contextvars.copy_context(), fn, args, kwargs)
    return future


def settle_future(
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    context: contextvars.Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    # NOTE: runs in a worker. A call whose awaiter was cancelled before it started never runs,
    # as with run_in_executor (which cancels the queued concurrent future).
    if future.cancelled():
        return
    try:
        value = context.run(fn, *args, **kwargs)
    except BaseException as exc:
        settle: Callable[[asyncio.Future[Any], Any], None] = _set_exception
        value = exc
    else:
        settle = set_result
    try:
        loop.call_soon_threadsafe(settle, future, value)
    except RuntimeError:
        return  # NOTE: the loop is closed (the server is gone); nobody waits for this now.
    finally:
        # NOTE: an exception's traceback holds this frame: without the del, the frame, the
        # exception and the future (which holds the exception) make a cycle that keeps the
        # request and its body alive until a full garbage collection.
        del future, value


def set_result(future: asyncio.Future[Any], value: Any) -> None:
    if not future.cancelled():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.cancelled():
        if isinstance(exc, StopIteration):
            # NOTE: a future refuses StopIteration (it would end a generator); say what it was.
            error = RuntimeError(f"{type(exc).__name__} raised in a worker thread")
            error.__cause__ = exc
            exc = error
        future.set_exception(exc)


def make_pool(max_threads: int) -> WorkerPool:
    """Create the bounded pool that runs ``def`` handlers under ASGI."""
    return WorkerPool(max_threads, "microweb-worker")


_DONE: Any = object()


async def iterate_in_pool(iterable: Iterable[T], pool: WorkerPool) -> AsyncIterator[T]:
    """Iterate a sync iterable from async code; each ``next()`` runs in ``pool``."""
    if isinstance(iterable, (list, tuple)):
        for item in iterable:
            yield item
        return
    iterator = iter(iterable)
    loop = asyncio.get_running_loop()
    step: Future[Any] | None = None
    try:
        while True:
            future = loop.create_future()
            context = contextvars.copy_context()
            step = pool.submit(settle_future, loop, future, context, _next, (iterator,), {})
            try:
                item = await future
            finally:
                # NOTE: the future holds the iterator's error, whose traceback will hold this
                # frame: a cycle that kept the request until a full collection.
                del future
            if item is _DONE:
                return
            yield item
    finally:
        # NOTE: the iterator, then the iterable where it is another object (one whose __iter__
        # is a generator, holding a cursor), as the WSGI driver closes them.
        closes = [
            close
            for close in (
                getattr(iterator, "close", None),
                None if iterable is iterator else getattr(iterable, "close", None),
            )
            if close is not None
        ]
        if closes:
            # NOTE: a step cancelled mid-way still runs in its thread; close after it returns.
            await asyncio.shield(in_a_thread(pool, _close_after, step, closes))


def _next(iterator: Iterator[T]) -> T:
    return next(iterator, _DONE)


def in_a_thread(pool: WorkerPool, fn: Callable[..., None], *args: Any) -> Awaitable[None]:
    try:
        return asyncio.wrap_future(pool.submit(fn, *args))
    except RuntimeError:
        # NOTE: the pool is shut down: Uvicorn cancels what is left after its grace period and
        # runs the lifespan shutdown before this stream's cleanup; close it all the same.
        return asyncio.ensure_future(asyncio.to_thread(fn, *args))


def _close_after(step: Future[Any] | None, closes: list[Callable[[], object]]) -> None:
    if step is not None:
        wait([step])
    try:
        closes[0]()
    finally:
        for close in closes[1:]:
            close()


async def coroutine_of(awaitable: Awaitable[T]) -> T:
    """Wrap any awaitable in a coroutine (``run_coroutine_threadsafe`` takes only those)."""
    return await awaitable
