"""The bridges between colours: the app loop (WSGI), the thread pool (ASGI) and effect drivers.

This is the one module, besides the drivers and body sources, that may use asyncio and threads.
"""

from __future__ import annotations

import asyncio
import contextvars
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future, wait
from typing import Any, TypeVar

from ._effects import Effects, Offload
from ._pool import WorkerPool, forget_threads_after_fork

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


# NOTE: how often a thread waiting for the loop checks that the loop still runs (seconds).
STOP_CHECK = 0.1


class _Hop:
    """One awaitable handed from a thread to an event loop, and what came of it."""

    __slots__ = ("awaitable", "context", "done", "error", "result", "task")

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable
        self.done = threading.Lock()
        self.done.acquire()
        self.result: Any = None
        self.error: BaseException | None = None
        self.context: contextvars.Context | None = None
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        # NOTE: runs on the loop, in the copy of the caller's context that call_soon_threadsafe
        # made; the task copies it again, so the awaitable sees the caller's values. The task
        # is kept here: the loop holds its tasks weakly.
        self.task = asyncio.get_running_loop().create_task(_run_hop(self))


async def _run_hop(hop: _Hop) -> None:
    try:
        hop.result = await hop.awaitable
    except BaseException as exc:
        hop.error = exc
    finally:
        hop.context = contextvars.copy_context()
        # NOTE: released here, not from a done callback: one turn of the loop less.
        hop.done.release()


def hop_to_loop(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> _Hop:
    """Run ``awaitable`` as a task on ``loop`` (running in another thread) and wait for it.

    The task sees this thread's context variables. Returns the finished hop: its ``result``,
    ``error`` and ``context`` (the task's, at its end).
    """
    hop = _Hop(awaitable)
    try:
        loop.call_soon_threadsafe(hop.start)
    except RuntimeError:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # NOTE: the loop is closed; it will never run.
        raise
    # PERF: a plain lock released by the task, instead of run_coroutine_threadsafe's chained
    # futures and the Condition of Future.result(): a round trip to the loop, 43 us -> 21 us
    # (best of 7 x 2,000, 2-CPU VM).
    while not hop.done.acquire(timeout=STOP_CHECK):
        # NOTE: a loop stopped under the call (the app closed at exit, the server gone) never
        # ends it: without this check the thread would wait forever.
        # PERF: the timed wait costs nothing measurable (22.8 -> 22.4 us a round trip).
        if not loop.is_running() and not hop.done.acquire(blocking=False):
            if hop.task is None and asyncio.iscoroutine(awaitable):
                awaitable.close()  # NOTE: it never started; say so without a warning.
            raise RuntimeError("the event loop stopped before the call ended")
    hop.task = None
    return hop


def outcome(hop: _Hop) -> Any:
    """Return the hop's result, or raise its exception (with its traceback)."""
    error = hop.error
    if error is None:
        return hop.result
    hop.error = None
    try:
        if isinstance(error, asyncio.CancelledError):
            # NOTE: what run_coroutine_threadsafe(...).result() raised for a cancelled task.
            raise CancelledError()
        raise error
    finally:
        del error  # NOTE: no cycle through this frame and the traceback.


def run_on_loop(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on ``loop`` (running in another thread); return or raise its outcome."""
    result: T = outcome(hop_to_loop(loop, awaitable))
    return result


class AppLoop:
    """The app's one long-lived event loop for async code under WSGI, on a daemon thread.

    Started on first need; every server thread hands its coroutines to this loop, so resources
    made by an async startup hook work in every request.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False
        forget_threads_after_fork(self)

    def _after_fork(self) -> None:
        # NOTE: in a forked child (gunicorn --preload) the loop's thread is gone: the next
        # request starts a loop of its own instead of waiting on one that never runs.
        self._loop = self._thread = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop, started if need be."""
        loop = self._loop
        if loop is None:
            with self._lock:
                if self._stopped:
                    raise RuntimeError("the app loop was stopped: this WSGI app was closed")
                if self._loop is None:
                    self._start()
                loop = self._loop
        assert loop is not None
        return loop

    def _start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        loop.call_soon(ready.set)
        self._thread = threading.Thread(
            target=loop.run_forever, name="microweb-app-loop", daemon=True
        )
        self._thread.start()
        ready.wait()
        self._loop = loop

    def run(self, awaitable: Awaitable[T]) -> T:
        """Run ``awaitable`` on the app loop and wait for its result in this thread.

        Context variables cross both ways: the coroutine sees this thread's values, and what it
        sets is set here afterwards, as if it had run in this thread.
        """
        try:
            loop = self.loop
        except RuntimeError:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # NOTE: it will never run; say so without a warning.
            raise
        if asyncio._get_running_loop() is loop:
            raise RuntimeError("the app loop cannot wait for itself; await instead")
        hop = hop_to_loop(loop, awaitable)
        if hop.error is None and hop.context is not None:
            # NOTE: this thread's context is as it was when the hop began: set what the task
            # changed (nothing crosses back when it raised).
            for var, value in hop.context.items():
                if var.get(_DONE) is not value:
                    var.set(value)
        result: T = outcome(hop)
        return result

    @property
    def started(self) -> bool:
        """Whether the loop has been started."""
        return self._loop is not None

    def stop(self) -> None:
        """Stop the loop and join its thread (a no-op when it never started)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
            self._stopped = True
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        if not thread.is_alive():
            loop.close()


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
            except Exception as exc:
                effect = effects.throw(exc)
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
            else:
                effect = send(value)
    except StopIteration as stop:
        # NOTE: only send() and throw() can raise it here: the effect's own is thrown in.
        return stop.value


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
    pool.call(_settle, loop, future, contextvars.copy_context(), fn, args, kwargs)
    return future


def _settle(
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
        settle = _set_result
    try:
        loop.call_soon_threadsafe(settle, future, value)
    except RuntimeError:
        return  # NOTE: the loop is closed (the server is gone); nobody waits for this now.


def _set_result(future: asyncio.Future[Any], value: Any) -> None:
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
            step = pool.submit(_settle, loop, future, context, _next, (iterator,), {})
            item = await future
            if item is _DONE:
                return
            yield item
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            # NOTE: a step cancelled mid-way still runs in its thread; close after it returns.
            await asyncio.shield(_in_a_thread(pool, _close_after, step, close))


def _next(iterator: Iterator[T]) -> T:
    return next(iterator, _DONE)


def _in_a_thread(pool: WorkerPool, fn: Callable[..., None], *args: Any) -> Awaitable[None]:
    try:
        return asyncio.wrap_future(pool.submit(fn, *args))
    except RuntimeError:
        # NOTE: the pool is shut down: Uvicorn cancels what is left after its grace period and
        # runs the lifespan shutdown before this stream's cleanup; close it all the same.
        return asyncio.ensure_future(asyncio.to_thread(fn, *args))


def _close_after(step: Future[Any] | None, close: Callable[[], object]) -> None:
    if step is not None:
        wait([step])
    close()


def iterate_on_loop(aiterable: Any, app_loop: AppLoop) -> Iterator[Any]:
    """Iterate an async iterable from a server thread; each step runs on the app loop."""
    iterator = aiterable.__aiter__()
    try:
        while True:
            try:
                item = app_loop.run(iterator.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            app_loop.run(aclose())


# NOTE: the threads of blocking file I/O from async code (uploads' aread/asave, aform()'s
# spooled writes), as many as asyncio's default executor has; started as calls come.
FILE_THREADS = WorkerPool(min(32, (os.cpu_count() or 1) + 4), "microweb-files")
# NOTE: the longest run_blocking() waits for a free thread to take its call (seconds).
START_WAIT = 0.001


def run_blocking(fn: Callable[..., T], *args: Any) -> Awaitable[T]:
    """Start a blocking call (file I/O) in a worker thread now; await it for its result.

    Where a thread is free, this returns once it runs ``fn`` (or after ``START_WAIT``), so
    the blocking part of the call, which releases the GIL, overlaps the caller's next work:
    ``aform()`` writes one batch of a spooled file while it parses the next.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()
    started = threading.Lock()
    started.acquire()
    context = contextvars.copy_context()
    if FILE_THREADS.call(_start, started, loop, future, context, fn, args):
        # PERF: a thread woken for the call needs the GIL to reach the call's I/O, and a loop
        # that goes on parsing keeps it until it next waits: the write of a batch only began
        # when aform() awaited it. Waiting here until the call runs lets the write overlap the
        # parsing. 10 MiB upload, best of 25 quiet-gated rounds (2-CPU VM), 1 MiB batches:
        # aform() 10.58 -> 7.30 ms (x3.97 -> x2.74 of the parser loop).
        started.acquire(timeout=START_WAIT)
    return future


def _start(
    started: threading.Lock,
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    context: contextvars.Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    started.release()
    _settle(loop, future, context, fn, args, {})


async def coroutine_of(awaitable: Awaitable[T]) -> T:
    """Wrap any awaitable in a coroutine (``run_coroutine_threadsafe`` takes only those)."""
    return await awaitable
