"""An async stream under WSGI: run on the app loop in one task, ahead of the server thread
that takes its chunks; and what a stream's queue of chunks holds (both bridges)."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, NoReturn

from ._app_loop import (
    CUT_TASKS,
    STOP_CHECK,
    AppClosed,
    AppLoop,
    Hop,
    LoopStopped,
    adopt,
    adopt_hop,
    loop_stopped,
    wait_for,
)
from ._errors import own_cancellation

if TYPE_CHECKING:
    from ._request import Request

# NOTE: the request whose stream is being closed, set by the drivers around that close alone,
# in the task that closes it: a sync close() that waited too long for a close thread names it in
# its warning (_close_threads._close_in_a_thread()). Reset in that task: a WSGI driver's thread
# adopts the context of a hop's task at its end, and kept the request until its next stream.
# Held in a ClosingFor that lets go of the request as the close ends: a task the close created
# (asyncio.create_task(), asyncio.to_thread() copy the context) kept it for as long as it ran,
# and named it in the warnings of its own later closes (review286); what outlives the close on
# its behalf takes the request as it is set up (closing_request()).
# NOTE: set and reset inline (no coroutine around the close), for a streamed response's close
# alone, never for a request with no stream.
CLOSING_FOR: contextvars.ContextVar[ClosingFor | None] = contextvars.ContextVar(
    "closing_for", default=None
)


class ClosingFor:
    """Set ``CLOSING_FOR`` to ``request`` until ``end()``, in the same context."""

    __slots__ = ("request", "token")

    def __init__(self, request: Request | None) -> None:
        self.request = request
        self.token = CLOSING_FOR.set(self)

    def end(self) -> None:
        self.request = None
        # NOTE: ValueError, "created in a different Context": a coroutine closed outside its
        # task (its loop closed first), whose context is gone with it.
        with contextlib.suppress(ValueError):
            CLOSING_FOR.reset(self.token)


def closing_request() -> Request | None:
    """The request whose stream the current context closes, where a driver said so."""
    closing = CLOSING_FOR.get()
    return None if closing is None else closing.request


def iterate_on_loop(
    aiterable: Any,
    app_loop: AppLoop,
    gone: Callable[[], bool] | None = None,
    request: Request | None = None,
    late: Callable[[Hop, asyncio.AbstractEventLoop], None] | None = None,
    within: Callable[[], float | None] | None = None,
) -> Iterator[Any]:
    """Iterate an async iterable from a server thread; it runs on the app loop, in one task.

    The task makes up to ``AHEAD`` items ahead of the thread that takes them. Closing this
    iterator early cancels the task (the iterable is closed in it); a call cut off by the
    app's close or the server's stop raises ``LoopStopped`` here. ``gone`` (the server's word
    that the client left, Waitress's) is asked while the thread waits for an item: this
    iterator then ends, and the iterable is closed. ``request`` is the one whose stream it is
    (``CLOSING_FOR`` as the iterable is closed). Given ``late`` and ``within``, the close of
    this iterator waits ``within()`` seconds at most (``None``: no bound) for the task's end,
    then calls ``late(hop, loop)`` and lets the task run on.
    """
    loop = app_loop.loop
    if asyncio._get_running_loop() is loop:
        raise RuntimeError("the app loop cannot wait for itself; await instead")
    ahead = _Ahead(aiterable, app_loop, loop, request)
    producing = ahead.produce()
    hop = Hop(producing)
    try:
        loop.call_soon_threadsafe(hop.start)
    except RuntimeError:
        producing.close()  # NOTE: the loop is closed; it will never run.
        raise
    ended = closed = False
    try:
        while (item := ahead.take(gone)) is not _END:
            if item is _LEFT:
                return
            if type(item) is Raised:
                item.reraise()
            yield item
        ended = True
    except GeneratorExit:
        closed = True
        raise
    finally:
        if app_loop.stopped and not ended:
            # NOTE: the loop's stop cancelled the task, which closed the iterable. Closed by
            # the server after that, the stream has ended as asked: raised from the body's
            # close(), AppClosed was Waitress's traceback. Taken from after it, it was cut off.
            if not closed:
                raise AppClosed("the app loop was stopped: this WSGI app was closed")
        else:
            ahead.stop(hop)
            if late is None or within is None:
                wait_for(hop, loop)
                bounded_out = False
            else:
                bounded_out = not wait_for(hop, loop, within=within())
            if not bounded_out:
                hop.task = None
                _end_of_stream(hop, app_loop, ended)
            elif late is not None:
                # NOTE: the iterable's aclose() has not returned: it runs on; what it sets does
                # not cross back, and its error is late()'s to log. What the stream set before
                # its close began does, as under ASGI (review403).
                ahead.adopt_iterated()
                late(hop, loop)


# PERF: how many chunks a stream may make ahead of the one who takes them, across threads: an
# async stream under WSGI (its task on the app loop, ahead of the server's thread) and a sync
# one under ASGI (its pool thread, ahead of the loop; _in_pool.iterate_in_pool). Each side
# then wakes the other only when it waits, not for every chunk. 2,000 chunks, us a chunk (best
# of 7, 2-CPU VM, 2026-12-03): a def generator under ASGI, one at a time 34-47, 2 ahead 23, 4
# ahead 11-13, 8 ahead 7-8, 16 ahead 5-7; an async one under WSGI 30-37 as a call per chunk,
# 4-4.3 16 ahead. The chunks ahead are all the memory it holds.
AHEAD = 16
# NOTE: and the bytes: no chunk more is made while those made ahead hold this many, so that at
# most one chunk more is held. 16 chunks of 64 KiB (a file's, gzip's) as before; 16 chunks of
# 1 MiB made 16 MiB ahead of a client that reads slowly, 8 MiB ones 128 MiB, for each stream.
AHEAD_BYTES = AHEAD * 64 * 1024
_END: Any = object()
# NOTE: what take() gives when the server says the client left while it waited.
_LEFT: Any = object()


def size_of(item: Any) -> int:
    """Return what a chunk made ahead counts against ``AHEAD_BYTES``: its length, if it is
    ``bytes`` or ``str`` (as ``held()`` leaves it); 0 for anything else (an end, an error)."""
    return len(item) if type(item) is bytes or type(item) is str else 0


def held(item: Any) -> Any:
    """Return a chunk made ahead of its sending as it is now: a ``bytearray`` or a
    ``memoryview`` copied to ``bytes``, other items as they are.

    NOTE: a stream may fill one buffer again for each chunk (a ``readinto()`` loop that yields
    a view of it), as a server takes each chunk before it asks for the next. Copied once sent,
    the chunks made ahead went out as the buffer's last contents (review181).
    """
    if type(item) is not bytes and isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    return item


class Raised:
    """What a stream raised, in the queue of its items (here and in ``iterate_in_pool``)."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException | None) -> None:
        self.error = error

    def reraise(self) -> NoReturn:
        """Raise the error, let go by this item first: the traceback, which holds the frames
        it passes, then holds no cycle that keeps the request until a full collection."""
        error, self.error = self.error, None
        assert error is not None
        try:
            raise error
        finally:
            del error


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


class _Ahead:
    """An async iterable run on a loop by one task, ahead of the thread that takes its items.

    The task waits for room once ``AHEAD`` items, or ``AHEAD_BYTES`` bytes, wait in ``ready``;
    the thread waits for an item when there is none. Each wakes the other only when it waits.
    """

    def __init__(
        self,
        aiterable: Any,
        app_loop: AppLoop,
        loop: asyncio.AbstractEventLoop,
        request: Request | None,
    ) -> None:
        self._aiterable, self._app_loop, self._loop = aiterable, app_loop, loop
        self._request = request
        self._ready: deque[Any] = deque()
        self._lock = threading.Lock()
        self._room = AHEAD
        self._bytes = 0  # NOTE: what the items in ready hold (size_of()).
        self._item_waiter: threading.Lock | None = None
        self._room_waiter: asyncio.Future[None] | None = None
        self._stopping = False
        self.closing = False
        # NOTE: the task's context as the iterable's close begins, for a close given up on.
        self.iterated: contextvars.Context | None = None

    async def produce(self) -> None:
        """Make items while there is room, until the end, an error or stop(); on the loop."""
        iterator = None
        try:
            iterator = self._aiterable.__aiter__()
            while await self._wait_for_room():
                try:
                    item = held(await iterator.__anext__())
                except StopAsyncIteration:
                    return
                except asyncio.CancelledError as exc:
                    if self._stopping or self._app_loop.stopped or _is_cut():
                        raise
                    # NOTE: the stream's own (it awaited a task it cancelled): its error, as
                    # when each step was a call of its own.
                    self._put(Raised(own_cancellation(exc)))
                    return
                except BaseException as exc:
                    if self._stopping:
                        # NOTE: raised as the thread closed it (its finally, at the await that
                        # stop() cancelled): queued, it was lost with no word, as the thread
                        # takes no more items. Raised, it is the task's, which the close raises.
                        raise
                    self._put(Raised(exc))
                    return
                self._put(item)
        finally:
            # NOTE: from here on, stop() cancels nothing: its cancellation, come late, cut the
            # iterable's own closing short where it awaited.
            self.closing = True
            self.iterated = contextvars.copy_context()
            try:
                aclose = getattr(iterator, "aclose", None)
                if aclose is not None:
                    closing = ClosingFor(self._request)
                    try:
                        await aclose()
                    finally:
                        closing.end()
            finally:
                self._put(_END)

    def adopt_iterated(self) -> None:
        """Set in this thread what the stream set before its close began, once it has; in the
        server's thread, whose context the task's began as a copy of."""
        if (iterated := self.iterated) is not None:
            adopt(iterated)

    async def _wait_for_room(self) -> bool:
        while not self._stopping:
            with self._lock:
                if self._room and self._bytes < AHEAD_BYTES:
                    self._room -= 1
                    return True
                self._room_waiter = waiter = self._loop.create_future()
            await waiter
        return False

    def _put(self, item: Any) -> None:
        with self._lock:
            self._ready.append(item)
            self._bytes += size_of(item)
            waiter, self._item_waiter = self._item_waiter, None
        if waiter is not None:
            waiter.release()

    def take(self, gone: Callable[[], bool] | None) -> Any:
        """Return the next item, ``_END`` at the end, ``_LEFT`` once ``gone()`` says the client
        left while no item was ready; in the server's thread."""
        while True:
            with self._lock:
                if self._ready:
                    item = self._ready.popleft()
                    self._room += 1
                    self._bytes -= size_of(item)
                    room, self._room_waiter = self._room_waiter, None
                    break
                self._item_waiter = waiter = threading.Lock()
                waiter.acquire()
            while not waiter.acquire(timeout=STOP_CHECK):
                if loop_stopped(self._loop) and not self._ready:
                    raise LoopStopped("the event loop stopped before the call ended")
                if gone is not None and gone():
                    # NOTE: a quiet stream (an event stream with no news) learnt nothing of
                    # its client's leaving under Waitress, and held a thread until its next
                    # chunk or the server's stop.
                    return _LEFT
        if room is not None:
            with contextlib.suppress(RuntimeError):  # NOTE: the loop closed meanwhile.
                self._loop.call_soon_threadsafe(_wake, room)
        return item

    def stop(self, hop: Hop) -> None:
        """Cancel the task unless it has ended (it closes the iterable); in the thread."""
        self._stopping = True
        if not hop.done.locked():
            return
        with contextlib.suppress(RuntimeError):  # NOTE: the loop closed meanwhile.
            self._loop.call_soon_threadsafe(_cancel_producing, self, hop)


def _is_cut() -> bool:
    return asyncio.current_task() in CUT_TASKS


def _cancel_producing(ahead: _Ahead, hop: Hop) -> None:
    # NOTE: on the loop, as produce() is: it cannot start its closing meanwhile.
    if hop.task is not None and not ahead.closing:
        hop.task.cancel()


def _end_of_stream(hop: Hop, app_loop: AppLoop, ended: bool) -> None:
    """Raise what ended a stream's task: the app's close or the server's cut as
    ``LoopStopped`` (``ended``: while the thread took its items), an error of its closing as
    it is; the cancellation of a stream that the thread stopped taking is none."""
    error, hop.error = hop.error, None
    try:
        if isinstance(error, asyncio.CancelledError):
            if ended and (app_loop.stopped or hop.cut):
                raise LoopStopped("the event loop stopped before the call ended")
            # NOTE: the server closed the stream (its client gone, or cut off by its stop,
            # which logged it): it ended as asked, whoever cancelled it first. Raised from the
            # body's close(), LoopStopped was Waitress's "Exception while serving" traceback.
            if not (app_loop.stopped or hop.cut):
                # NOTE: closed in its task, its finally run: the after-response work of a
                # stream its client left saw nothing it set, under ASGI all (review403).
                adopt_hop(hop)
            return
        # NOTE: set before a close's error is raised too: the after-response work saw nothing
        # of a stream whose finally failed, under ASGI it sees what it set (review403).
        adopt_hop(hop)
        if error is not None:
            raise error
    finally:
        del error  # NOTE: no cycle through this frame and the traceback.
