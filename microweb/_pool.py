"""The bounded thread pool that runs ``def`` handlers under ASGI (and file I/O, and the sync
closes of streams; for those, calls stuck past a time stop counting against the bound).

A ``concurrent.futures.Executor``, so ``submit()`` and ``shutdown()`` work as with a
``ThreadPoolExecutor``; ``call()`` is the lean path the bridges use: no future per call.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import Full, SimpleQueue
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_Item = tuple[Callable[..., object], tuple[Any, ...]]
_PoolRef = weakref.ReferenceType["WorkerPool"]


class WorkerPool(Executor):
    """Up to ``max_workers`` daemon threads, started as work comes, fed from one queue.

    Args:
        max_workers: The most threads the pool starts.
        name: Threads are named ``{name}-1``, ``{name}-2``, ...
        stuck_after: Seconds (read at each use) after which a running call no longer counts
            against ``max_workers``: while such calls hold threads, a call that would wait
            starts one more thread, ``most_workers`` in all at most, which ends once it finds
            no call waiting. ``None``: every call counts, for as long as it runs.
        most_workers: The most threads in all, those of stuck calls included.
        most_queued: At ``most_workers`` threads, the most calls that wait in the queue.
        on_spill: Called with how many calls are stuck, under the pool's lock, each time a
            thread starts past ``max_workers`` for them.
    """

    def __init__(
        self,
        max_workers: int,
        name: str = "microweb-worker",
        *,
        stuck_after: Callable[[], float] | None = None,
        most_workers: int = 0,
        most_queued: int | None = None,
        on_spill: Callable[[int], None] | None = None,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self.most_workers = max(most_workers, max_workers)
        self.most_queued = most_queued
        self._stuck_after = stuck_after
        self._on_spill = on_spill
        self._name = name
        self._named = 0  # NOTE: threads end and start past max_workers: names stay unique.
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # NOTE: when each thread's call began (math.inf: none runs), where calls may get stuck.
        # A thread's key is there from its start to its end (both under the lock): the threads
        # change only values, so that the lock's holder may read them all at any time.
        self._began: dict[threading.Thread, float] | None = {} if stuck_after is not None else None
        self._idle = 0  # NOTE: threads back at the queue and not yet promised to a call.
        self._queued = 0  # NOTE: calls queued for a busy thread (call() returned False).
        self._shut_down = False
        # NOTE: whether a caller gave up on a call it waited for (its task cancelled), which
        # went on in its thread: set by the bridge, read at the lifespan's shutdown.
        self.cut_off = False
        forget_threads_after_fork(self)
        # NOTE: an App dropped without a lifespan shutdown (a test's, an httpx.ASGITransport's)
        # left its idle threads waiting on the queue for ever, one pool of them per App: the
        # threads hold only a weak reference to the pool, and its collection ends them.
        self._finalizer = weakref.finalize(self, _end_threads, self._queue, self._threads)

    def _after_fork(self) -> None:
        # NOTE: in a forked child the threads are gone (only the forking one is copied), and the
        # lock may have been held by one of them: start afresh, as an empty pool.
        self._finalizer.detach()
        self._queue = SimpleQueue()
        self._lock = threading.Lock()
        self._threads, self._idle, self._queued = [], 0, 0
        if self._began is not None:
            self._began = {}
        self._finalizer = weakref.finalize(self, _end_threads, self._queue, self._threads)

    def call(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` in a worker and forget it; ``fn`` must not raise.

        Returns:
            Whether a thread takes the call at once (an idle one or a new one); otherwise it
            waits in the queue for a busy thread.

        Raises:
            RuntimeError: The pool is shut down.
            queue.Full: ``most_workers`` threads are busy and ``most_queued`` calls wait.
        """
        # PERF: a queue of plain tuples, where ThreadPoolExecutor makes a Future (with its
        # Condition) per call and its worker keeps the GIL for its bookkeeping after the call,
        # while the loop it just woke waits for it: 32 us -> 21 us a round trip from the loop.
        with self._lock:
            if self._shut_down:
                raise RuntimeError("cannot schedule new calls after the pool is shut down")
            if self._idle:
                self._idle -= 1
            elif len(self._threads) < self.max_workers:
                # NOTE: started before the call is queued: a thread that cannot start raises
                # here and leaves no call waiting forever for it.
                self._start_thread()
            elif not self._spill():
                if self._full():
                    raise Full(f"{self.most_queued} calls wait for a thread already")
                self._queued += 1
                self._queue.put((fn, args))
                return False
            self._queue.put((fn, args))
            return True

    def spill(self) -> None:
        """Start a thread for a call that waits in the queue, where calls that run past
        ``stuck_after`` leave room for one."""
        with self._lock:
            if self._queued and not self._shut_down and self._spill():
                self._queued -= 1

    def _full(self) -> bool:
        """Whether no call may wait in the queue any more; under the lock."""
        most = self.most_queued
        return most is not None and self._queued >= most and len(self._threads) >= self.most_workers

    def _spill(self) -> bool:
        """Start a thread past ``max_workers`` if stuck calls leave room; under the lock."""
        began = self._began
        if began is None or len(self._threads) >= self.most_workers:
            return False
        assert self._stuck_after is not None
        since = time.monotonic() - self._stuck_after()
        stuck = sum(1 for start in began.values() if start < since)
        if len(self._threads) - stuck >= self.max_workers:
            return False
        self._start_thread()
        if self._on_spill is not None:
            self._on_spill(stuck)
        return True

    def running(self) -> int:
        """How many calls the threads run now (those queued for a busy thread not counted).

        A call that has just returned may be counted until its thread is back at the queue.
        """
        with self._lock:
            return len(self._threads) - self._idle

    def waiting(self) -> bool:
        """Whether calls wait in the queue (for a busy thread, or one about to take them)."""
        return not self._queue.empty()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Run ``fn(*args, **kwargs)`` in a worker; return its future.

        Raises:
            RuntimeError: The pool is shut down.
        """
        future: Future[T] = Future()
        self.call(_run_into, future, fn, args, kwargs)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Refuse new work; the threads end once the queued work is done.

        Args:
            wait: Wait here until every thread has ended.
            cancel_futures: Drop the queued work instead (its futures are cancelled).
        """
        with self._lock:
            if not self._shut_down:
                self._shut_down = True
                if cancel_futures:
                    self._drop_queued()
                for _ in self._threads:
                    self._queue.put(None)
            threads = list(self._threads)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()

    def _drop_queued(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and item[0] is _run_into:
                item[1][0].cancel()

    def _start_thread(self) -> None:
        self._named += 1
        name = f"{self._name}-{self._named}"
        # NOTE: daemon threads: a handler stuck at interpreter exit does not keep it alive.
        work = (self._queue, weakref.ref(self), self._began)
        thread = threading.Thread(target=_work, args=work, name=name, daemon=True)
        if self._began is not None:
            self._began[thread] = math.inf
        try:
            thread.start()
        except BaseException:
            if self._began is not None:
                del self._began[thread]
            raise
        self._threads.append(thread)

    def _done(self, thread: threading.Thread) -> bool:
        """Count ``thread``, the calling one, back at the queue after a call; return whether
        it stays (threads past ``max_workers`` end once no call waits for them)."""
        with self._lock:
            if self._began is not None:
                self._began[thread] = math.inf
            # NOTE: a queued call is this thread's next one: it is not idle for a new call.
            if self._queued:
                self._queued -= 1
            elif len(self._threads) > self.max_workers:
                self._threads.remove(thread)
                if self._began is not None:
                    del self._began[thread]
                return False
            else:
                self._idle += 1
            return True


def _work(
    queue: SimpleQueue[_Item | None], ref: _PoolRef, began: dict[threading.Thread, float] | None
) -> None:
    get = queue.get
    me = threading.current_thread()
    while True:
        item = get()
        if item is None:
            return
        if began is not None:
            began[me] = time.monotonic()
        fn, args = item
        fn(*args)
        del item, fn, args  # NOTE: no reference kept to the last call while idle.
        pool = ref()
        if pool is not None and not pool._done(me):
            return
        del pool  # NOTE: nor to the pool: its collection is what ends an idle thread.


def _end_threads(queue: SimpleQueue[_Item | None], threads: list[threading.Thread]) -> None:
    for _ in threads:
        queue.put(None)


def _run_into(
    future: Future[T], fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)
    finally:
        # NOTE: an error raised below this frame, and caught there, holds it in its traceback
        # (as a caller): the arguments kept here would make a cycle with what they hold.
        del fn, args, kwargs


class ForkAware(Protocol):
    """Something that holds threads, and forgets them in a forked child."""

    def _after_fork(self) -> None: ...


# NOTE: a fork copies only the forking thread: whatever waits on the others there waits forever.
_FORGETFUL: weakref.WeakSet[ForkAware] = weakref.WeakSet()


def forget_threads_after_fork(holder: ForkAware) -> None:
    """Have ``holder._after_fork()`` called in each forked child (gunicorn ``--preload``)."""
    _FORGETFUL.add(holder)


def _after_fork_in_child() -> None:
    for holder in list(_FORGETFUL):
        holder._after_fork()


if hasattr(os, "register_at_fork"):  # NOTE: not on Windows, which does not fork.
    os.register_at_fork(after_in_child=_after_fork_in_child)
