"""A sync stream iterated from async code in one pool thread, ahead of the loop.

``iterate_in_pool`` (the ASGI driver's, for a sync stream): ``iter()``, each ``next()`` and the
closing run in one worker, up to ``AHEAD`` items (and ``AHEAD_BYTES``) ahead of the loop; its
``aclose()`` waits for the closing in that thread (``through_one_cancellation``).
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from inspect import iscoroutine
from typing import Any, TypeVar, cast

from ._app_loop import ContextRecord
from ._closing import close_both
from ._errors import own_stop
from ._pool import WorkerPool
from ._pool_futures import set_result
from ._request import Request
from ._stream_ahead import AHEAD, AHEAD_BYTES, Raised, closing_request, held, size_of
from ._unawaited import (
    close_failed_unawaited,
    closed_with,
    run_unawaited,
    through_one_cancellation,
)

T = TypeVar("T")

_DONE: Any = object()


def iterate_in_pool(iterable: Iterable[T], pool: WorkerPool) -> AsyncIterator[T]:
    """Iterate a sync iterable from async code, in one worker of ``pool`` from start to end.

    ``iter()``, each ``next()`` and the closing run in that one thread, as a WSGI server runs
    them: a stream that holds a thread-bound resource (an ``sqlite3`` connection, a
    thread-local) works under both interfaces. The worker is held until the stream ends, and
    runs at most ``AHEAD`` items ahead of the loop. The caller owes the result an ``aclose()``,
    which waits for the closing: the ASGI driver's, which ``CLOSE_WAIT`` bounds.
    """
    if isinstance(iterable, (list, tuple)):
        return _items(iterable)
    return _InPool(iterable, pool)


def stepped_of(chunks: object) -> Callable[[], ContextRecord | None] | None:
    """``chunks.stepped`` where ``iterate_in_pool()`` gave ``chunks`` a thread, else ``None``
    (a stream of the app's own may have an attribute of that name)."""
    return chunks.stepped if type(chunks) is _InPool else None


async def _items(items: Iterable[T]) -> AsyncIterator[T]:
    for item in items:
        yield item


class _InPool(AsyncIterator[T]):
    """``iterate_in_pool``'s async iterator of a sync iterable that is not a list or a tuple.

    NOTE: an object, not an async generator: a generator that returned at the end of the
    items waited there for the closing (a close() that never returned held its request for
    ever), before the driver's aclose(), which CLOSE_WAIT bounds, could begin.
    """

    __slots__ = ("_closed", "_iterable", "_pinned", "_pool", "_waiting")

    def __init__(self, iterable: Iterable[T], pool: WorkerPool) -> None:
        self._iterable, self._pool = iterable, pool
        self._pinned: _Pinned | None = None
        self._closed = self._waiting = False

    async def __anext__(self) -> T:
        if self._closed:
            # NOTE: as an async generator's: an item made ahead was handed out after aclose().
            raise StopAsyncIteration
        pinned = self._pinned
        if pinned is None:
            pinned = self._pinned = _Pinned(self._iterable, asyncio.get_running_loop())
            try:
                # NOTE: run() raises nothing: its errors go to the loop.
                self._pool.call(pinned.run)
            except RuntimeError:
                # NOTE: the pool is shut down (Uvicorn's stop): a thread of its own, as
                # in_a_thread().
                threading.Thread(target=pinned.run, name="microweb-stream", daemon=True).start()
        ready = pinned.ready
        if not ready:
            if self._waiting:
                # NOTE: as an async generator's: a second waiter waited for ever, the thread's
                # one wake-up given to the first.
                raise RuntimeError("anext(): asynchronous generator is already running")
            self._waiting = True
            try:
                await pinned.wait()
            finally:
                self._waiting = False
            if self._closed:
                raise StopAsyncIteration  # NOTE: aclose() came while this one waited.
        item = ready.popleft()
        if item is _DONE or type(item) is Raised:
            # NOTE: the thread makes no more items: the next call ends at once.
            ready.appendleft(_DONE)
            if item is _DONE:
                raise StopAsyncIteration
            item.reraise()
        pinned.taken(item)
        return cast("T", item)

    async def aclose(self) -> None:
        """Stop the thread, which closes the iterable; wait until it has, once."""
        if self._closed:
            return
        self._closed = True
        pinned = self._pinned
        if pinned is not None:
            # NOTE: told here, the thread stops also where the close's task never begins (all
            # the loop's tasks cancelled at once): it held its worker for ever.
            pinned.ask_stop()
            try:
                # NOTE: a step cancelled mid-way still runs in its thread; the closing comes
                # after.
                await through_one_cancellation(pinned.stop(), never_begun=pinned.given_up)
            finally:
                pinned.adopt()

    def stepped(self) -> ContextRecord | None:
        """The stream's context in its thread as it began and as its close began, once it has
        (``None`` before): what it set in its steps, for a close given up on; on the loop."""
        pinned = self._pinned
        return None if pinned is None else pinned.stepped


class _Pinned:
    """A sync iterable iterated in one thread, up to ``AHEAD`` items (and ``AHEAD_BYTES``
    bytes, one item over at most) ahead of the loop.

    Closed in that thread too (the iterator, then the iterable where it is another object, as
    the WSGI driver closes them), once it ends, fails, or the loop stops taking items.
    """

    def __init__(self, iterable: Iterable[Any], loop: asyncio.AbstractEventLoop) -> None:
        self._iterable, self._loop = iterable, loop
        # NOTE: the values of the stream's context variables, kept from step to step, and
        # those it began with: what it changed is set in the caller's once it has closed.
        self._record = ContextRecord()
        self._context = self._record.context
        # NOTE: set by the thread as the close begins: the record with a copy of the context
        # as it is then.
        self.stepped: ContextRecord | None = None
        # NOTE: the items made and not yet taken: the thread appends, the loop pops.
        self.ready: deque[Any] = deque()
        # NOTE: guards the loop's "nothing ready, wake me" against the thread's append, and
        # the count of items made ahead and their bytes; the thread waits on room_changed
        # while either is at its bound.
        self._lock = threading.Lock()
        self._room_changed = threading.Condition(self._lock)
        self._items = self._bytes = 0
        self._waiter: asyncio.Future[None] | None = None
        self._stopping = False
        # NOTE: set once the thread closed the iterable, to what is left to await on the loop.
        self._closed: asyncio.Future[Awaitable[object] | None] = loop.create_future()
        # NOTE: the context stop() ran in: the end of the close is handed back in it; and the
        # request whose stream it closed, which a close nobody awaits any more names.
        self._stopped_in: contextvars.Context | None = None
        self._stopped_for: Request | None = None

    def wait(self) -> asyncio.Future[None]:
        """Return what the loop awaits until an item is ready; on the loop."""
        waiter = self._loop.create_future()
        with self._lock:
            if self.ready:
                waiter.set_result(None)
            else:
                self._waiter = waiter
        return waiter

    def ask_stop(self) -> None:
        """Ask the thread to close the iterable and end; on the loop."""
        self._stopping = True
        self._stopped_in = contextvars.copy_context()
        self._stopped_for = closing_request()
        with self._lock:
            self._room_changed.notify()
            waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            # NOTE: an __anext__ waiting for an item: a thread told to stop before its first
            # step makes none, and it waited for ever (aclose() as the thread was queued).
            waiter.set_result(None)

    def adopt(self) -> None:
        """Set in the current context what the stream set in its thread, once the thread has
        closed it (its close run, failed or not): its iteration and its close run in one
        context, which the request's after-response work sees the end of, as under WSGI,
        where they run in the request's own; on the loop."""
        closed = self._closed
        if closed.done() and not closed.cancelled():
            self._record.adopt()

    def given_up(self) -> None:
        """Nobody will await the end of the close (``stop()`` never began): what is left of it
        runs in a task of its own, its error logged, as where ``stop()`` was cancelled."""
        closed = self._closed
        if not closed.done():
            closed.cancel()  # NOTE: closed_with(), to come, runs or logs what is left.
            return
        if closed.cancelled():
            return
        # NOTE: the thread had closed the stream already (it ended before aclose()).
        error = closed.exception()
        if error is not None:
            close_failed_unawaited(error, self._stopped_for)
        elif (left := closed.result()) is not None:
            run_unawaited(left, self._stopped_for)

    async def stop(self) -> None:
        """Ask the thread to close the iterable and end; wait until it has; on the loop."""
        self.ask_stop()
        left = await self._closed
        if left is not None:
            # NOTE: the async close() of a sync stream (or of the one inside gzip's, SSE's or a
            # declared length's), which its close() in the thread returned: dropped there.
            await left

    def run(self) -> None:
        """Make items while there is room, then close; in the worker."""
        iterator: Iterator[Any] | None = None
        try:
            iterator = self._context.run(iter, self._iterable)
            while self._step(iterator):
                pass
        except BaseException as exc:
            # NOTE: iter()'s StopIteration (a generator's own is a RuntimeError already), as
            # the WSGI driver makes it; raised as it is in an async generator, Python's own.
            self._put(Raised(own_stop(exc) if isinstance(exc, StopIteration) else exc))
        finally:
            self.stepped = self._record.copy()
            try:
                left = self._context.run(close_both, iterator, self._iterable)
            except BaseException as exc:
                # NOTE: the closing's error is the stream's too: stop() raises it.
                self._call(
                    closed_with,
                    self._closed,
                    exc,
                    None,
                    self._stopped_for,
                    context=self._stopped_in,
                )
            else:
                closed = self._call(
                    closed_with,
                    self._closed,
                    None,
                    left,
                    self._stopped_for,
                    context=self._stopped_in,
                )
                if not closed and iscoroutine(left):
                    left.close()  # NOTE: it will never run: no "never awaited" warning.

    def taken(self, item: Any) -> None:
        """Give back the room of ``item``, taken from ``ready``; on the loop."""
        with self._lock:
            self._items -= 1
            self._bytes -= size_of(item)
            self._room_changed.notify()

    def _step(self, iterator: Iterator[Any]) -> bool:
        with self._lock:
            while not self._stopping and (self._items >= AHEAD or self._bytes >= AHEAD_BYTES):
                self._room_changed.wait()
        if self._stopping:
            return False
        item = held(self._context.run(next, iterator, _DONE))
        self._put(item)
        return item is not _DONE

    def _put(self, item: Any) -> None:
        with self._lock:
            self.ready.append(item)
            self._items += 1
            self._bytes += size_of(item)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._call(set_result, waiter, None)

    def _call(
        self,
        settle: Callable[..., None],
        *args: Any,
        context: contextvars.Context | None = None,
    ) -> bool:
        """Call ``settle(*args)`` on the loop, in ``context`` if given; return whether the loop
        took it."""
        try:
            self._loop.call_soon_threadsafe(settle, *args, context=context)
        except RuntimeError:
            return False  # NOTE: a closed loop (the server is gone): nobody waits for this now.
        return True
