"""The file threads: blocking file I/O from async code, and a form's spooled writes.

``run_blocking`` starts a call (an upload's ``aread()``/``asave()``) in a file thread;
``aiter_file_read`` reads a file response (or gzip's of one) from async code in the pool,
batches of chunks; ``close_in_file_thread`` closes an ASGI request's files on disk as it ends;
``ThreadSpooler`` writes a form's spooled files one batch while the next is parsed.
``ThreadHooks`` gives both drivers' requests these hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from inspect import GEN_SUSPENDED, getgeneratorstate, isawaitable, iscoroutine
from itertools import islice
from types import GeneratorType
from typing import Any, TypeVar

from ._concurrency import in_a_thread, stop_owned, sync_only
from ._forms import Steps, write_steps
from ._pool import WorkerPool
from ._pool_futures import run_in_pool, set_result, settle_future
from ._request import Request
from ._stream_ahead import closing_request
from ._unawaited import close_failed_unawaited, run_unawaited, through_one_cancellation

T = TypeVar("T")


# NOTE: the threads of blocking file I/O from async code (uploads' aread/asave, aform()'s
# spooled writes, the closing of files on disk as an ASGI request ends), as many as asyncio's
# default executor has; started as calls come.
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


def close_in_file_thread(close: Callable[[], None]) -> Awaitable[None]:
    """Start ``close`` (files on disk to close) in a file thread now; await it to wait for it.

    The call runs to its end even when the task awaiting it is cancelled, so nothing is left
    open; a second ``close`` meanwhile would race it.
    """
    # NOTE: shielded, as a cancelled awaiter would cancel the call before a thread took it.
    return asyncio.shield(in_a_thread(FILE_THREADS, close))


async def aiter_file_read(chunks: Iterator[bytes], pool: WorkerPool) -> AsyncIterator[bytes]:
    """Iterate a stream bound to no thread (``bound_to_no_thread``: a file's read, gzip's of
    one) from async code, each read a call in ``pool``: the next one runs while a chunk is
    sent, and no thread waits for the client.

    ``iterate_in_pool`` holds one thread from a stream's start to its end, for the streams
    bound to a thread (a ``sqlite3`` cursor); a file's read is bound to none.
    """
    # NOTE: in one pool thread, a file's read waited there while its client took each chunk:
    # App.max_threads clients that stopped reading a large file (or slow ones, downloading a
    # video) held the whole pool, and every def handler, Static's own included, waited.
    step: asyncio.Future[list[bytes]] | None = None
    finished = False
    # NOTE: held by each read in its thread: a close that nobody awaits (_close_read_apart)
    # waits for the read under way, the chunks being "already executing" until it ends.
    reading = threading.Lock()
    try:
        step = _read_in(pool, chunks, reading)
        while True:
            batch = await asyncio.shield(step)
            ended = len(batch) < READS_PER_CALL  # NOTE: the read has ended, checks made.
            if not ended:
                step = _read_in(pool, chunks, reading)
            for chunk in batch:
                yield chunk
            if ended:
                finished = True
                return
    finally:
        await through_one_cancellation(
            _close_read(step, chunks, pool, finished),
            never_begun=partial(_close_read_apart, step, chunks, reading, closing_request()),
        )


# PERF: the chunks one call in the pool reads; the next call's are read while these are sent.
# A 20 MiB file through Uvicorn on 127.0.0.1 (curl, 4 runs each, 2-CPU VM, 2026-12-05): 74 ms
# with a call per 64 KiB chunk, 27 ms with 8, 21 ms held in one thread as any sync stream is.
# At most two calls' chunks (1 MiB) wait for a client, as many as such a thread reads ahead.
READS_PER_CALL = 8


def _read_some(chunks: Iterator[bytes], reading: threading.Lock) -> list[bytes]:
    with reading:
        return list(islice(chunks, READS_PER_CALL))


def _read_in(
    pool: WorkerPool, chunks: Iterator[bytes], reading: threading.Lock
) -> asyncio.Future[list[bytes]]:
    try:
        return asyncio.ensure_future(run_in_pool(pool, _read_some, chunks, reading))
    except RuntimeError:
        # NOTE: the pool is shut down (Uvicorn's stop): a thread of its own, as in_a_thread().
        return asyncio.ensure_future(asyncio.to_thread(_read_some, chunks, reading))


async def _close_read(
    step: asyncio.Future[list[bytes]] | None,
    chunks: Iterator[bytes],
    pool: WorkerPool,
    finished: bool,
) -> None:
    if step is not None:
        # NOTE: a read under way when the client left ends first: the generator can't be
        # closed while it runs ("generator already executing").
        await asyncio.wait((step,))
        # NOTE: its error (a file that shrank) is no one's now: untaken, asyncio logged
        # "Future exception was never retrieved" with its traceback.
        if not step.cancelled():
            step.exception()
    close = getattr(chunks, "close", None)
    if close is None:
        return
    if finished or (type(chunks) is GeneratorType and getgeneratorstate(chunks) != GEN_SUSPENDED):
        left = stop_owned(close)  # NOTE: ended, or never started: nothing to run.
    else:
        left = await in_a_thread(pool, close)  # NOTE: closes the file, which may block.
    if isawaitable(left):
        # NOTE: the async close() of a stream that says any thread may read it, which its
        # close() returned: dropped, it never ran ("never awaited"), where the WSGI driver and
        # a stream held in one thread run it (review295).
        await left


def _close_read_apart(
    step: asyncio.Future[list[bytes]] | None,
    chunks: Iterator[bytes],
    reading: threading.Lock,
    request: Request | None,
) -> None:
    """Close a file's read whose close never began (its task cancelled before its first step:
    a loop's shutdown cancels all its tasks at once), in a file thread; on the loop. The error
    of the read under way, ``step``, is taken, as ``_close_read()`` takes it.

    NOTE: _close_read() closed, the chunks were closed only when let go (collected, in any
    thread), the file held open until then (review332).
    """
    if step is not None:
        # NOTE: untaken, asyncio logged "Future exception was never retrieved" (review336).
        if step.done():
            _take_error(step)
        else:
            step.add_done_callback(_take_error)
    close = getattr(chunks, "close", None)
    if close is not None:
        FILE_THREADS.call(_close_apart, close, reading, asyncio.get_running_loop(), request)


def _take_error(step: asyncio.Future[list[bytes]]) -> None:
    if not step.cancelled():
        step.exception()  # NOTE: no one's: the read's request was let go.


def _close_apart(
    close: Callable[[], object],
    reading: threading.Lock,
    loop: asyncio.AbstractEventLoop,
    request: Request | None,
) -> None:
    # NOTE: runs in a file thread, once the read under way (if any) has ended. Nobody awaits
    # it: its error is logged, and the async close() it returns runs in a task of its own.
    try:
        with reading:
            left = stop_owned(close)
    except BaseException as exc:
        close_failed_unawaited(exc, request)
        return
    if isawaitable(left):
        try:
            loop.call_soon_threadsafe(run_unawaited, left, request)
        except RuntimeError:
            if iscoroutine(left):
                left.close()  # NOTE: the loop is closed: it will never run.


def _start(
    started: threading.Lock,
    loop: asyncio.AbstractEventLoop,
    future: asyncio.Future[Any],
    context: contextvars.Context,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
) -> None:
    started.release()
    settle_future(loop, future, context, fn, args, {})


class ThreadSpooler:
    """A form's spooled file data, written in a file thread: one batch while the next is parsed.

    The drivers' ``Spooler``. ``put()`` queues a batch and waits until the thread takes it,
    which it does once the batch before it is written, and then only when the file is on disk
    and the write about to start: the write runs (without the GIL) while the caller parses.
    So at most two batches are in memory, and the thread is the form's only while batches
    wait: a slow upload holds none between them, and while other calls wait for a file
    thread, a fast one goes back in line after each batch.
    """

    def __init__(self, write: Callable[[Steps, Callable[[], object]], None] = write_steps) -> None:
        self._write = write
        self._batches: deque[_Batch] = deque()
        self._lock = threading.Lock()
        self._working = False
        self._error: BaseException | None = None
        self._failed = False

    def put(self, steps: Steps) -> None:
        """Hand over a batch; blocks until the batch before it is written."""
        self._add(steps).taken.acquire()
        self._raise()

    async def aput(self, steps: Steps) -> None:
        """Hand over a batch; the event loop waits at most ``START_WAIT``, then it awaits."""
        await self._taken(self._add(steps))
        self._raise()

    def end(self) -> None:
        """Wait until every batch is written."""
        if self._busy():
            self._add(None).taken.acquire()
        self._raise()

    async def aend(self) -> None:
        """Wait from async code until every batch is written."""
        if self._busy():
            await self._taken(self._add(None))
        self._raise()

    def _busy(self) -> bool:
        # NOTE: a thread that left has written every batch: a form with nothing spooled (or
        # whose last write ended) waits for no file thread, which may all be busy elsewhere.
        with self._lock:
            return self._working

    def _add(self, steps: Steps | None) -> _Batch:
        batch = _Batch(steps)
        with self._lock:
            self._batches.append(batch)
            start, self._working = not self._working, True
        if start:
            try:
                FILE_THREADS.call(self._work)
            except BaseException:
                # NOTE: no thread for it (the pool shut down, or none could start): nothing
                # waits for this batch, and end() must not wait for a thread that never runs.
                with self._lock:
                    self._batches.clear()
                    self._working = False
                raise
        return batch

    async def _taken(self, batch: _Batch) -> None:
        # PERF: a short blocking wait, as in run_blocking(): the thread takes the batch within
        # its wake-up time (0.11-0.22 ms a hand-over on the 2-CPU VM), and only a slow disk
        # makes the loop await instead. aform() of 10 MiB, best of 15 x 5 (2026-11-30):
        # 6.63 ms with run_blocking() per batch (four thread wake-ups each) -> 5.57 ms.
        if batch.taken.acquire(timeout=START_WAIT):
            return
        future = asyncio.get_running_loop().create_future()
        with self._lock:
            if batch.waiter is _TAKEN:
                return
            batch.waiter = future
        await future

    def _work(self) -> None:
        # NOTE: runs in a file thread until no batch waits.
        first = True
        while True:
            with self._lock:
                if not self._batches:
                    self._working = False
                    return
                if not first and FILE_THREADS.waiting():
                    break
                batch = self._batches.popleft()
                waiter, batch.waiter = batch.waiter, _TAKEN
            first = False
            if waiter is not None:
                with contextlib.suppress(RuntimeError):  # NOTE: a closed loop awaits nothing.
                    waiter.get_loop().call_soon_threadsafe(set_result, waiter, None)
            if batch.steps is not None and not self._failed:
                try:
                    # NOTE: write_steps() lets the caller go on when the write itself begins.
                    self._write(batch.steps, batch.release)
                except BaseException as exc:
                    with self._lock:
                        self._error, self._failed = exc, True
            batch.release()
        # NOTE: other calls wait for a file thread (every one busy): this form takes its turn
        # again behind them, or a client faster than the disk would keep the thread to the
        # end of its upload while the others' writes, and their clients, wait.
        FILE_THREADS.call(self._work)

    def _raise(self) -> None:
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            try:
                raise error
            finally:
                del error  # NOTE: no cycle through this frame and the traceback.


class ThreadHooks:
    """The driver hooks of a request about blocking, the same under both drivers.

    A mixin of ``WSGIRequest`` and ``ASGIRequest`` (the hooks ``HeadProperties`` names): refuse
    a blocking call where an event loop runs, run one from async code in a file thread,
    write a form's spooled files in one, and tell the calling thread.
    """

    __slots__ = ()
    _sync_only = staticmethod(sync_only)
    _thread_id = staticmethod(threading.get_ident)
    _run_blocking = staticmethod(run_blocking)
    _spooler = ThreadSpooler


# NOTE: what _Batch.waiter becomes once the file thread took the batch.
_TAKEN: Any = object()


class _Batch:
    """A batch of writes handed to a ``ThreadSpooler``; ``None`` asks for the end of the writes."""

    __slots__ = ("released", "steps", "taken", "waiter")

    def __init__(self, steps: Steps | None) -> None:
        self.steps = steps
        self.taken = threading.Lock()
        self.taken.acquire()
        self.released = False
        self.waiter: asyncio.Future[None] | None = None

    def release(self) -> None:
        """Let the caller waiting on ``taken`` go on (once; only the file thread calls this)."""
        if not self.released:
            self.released = True
            self.taken.release()
