"""The bounded thread pool that runs ``def`` handlers under ASGI.

A ``concurrent.futures.Executor``, so ``submit()`` and ``shutdown()`` work as with a
``ThreadPoolExecutor``; ``call()`` is the lean path the bridges use: no future per call.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Callable
from concurrent.futures import Executor, Future
from queue import SimpleQueue
from typing import Any, Protocol, TypeVar

T = TypeVar("T")

_Item = tuple[Callable[..., object], tuple[Any, ...]]
_PoolRef = weakref.ReferenceType["WorkerPool"]


class WorkerPool(Executor):
    """Up to ``max_workers`` daemon threads, started as work comes, fed from one queue.

    Args:
        max_workers: The most threads the pool starts.
        name: Threads are named ``{name}-1``, ``{name}-2``, ...
    """

    def __init__(self, max_workers: int, name: str = "microweb-worker") -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self.max_workers = max_workers
        self._name = name
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
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
        self._finalizer = weakref.finalize(self, _end_threads, self._queue, self._threads)

    def call(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` in a worker and forget it; ``fn`` must not raise.

        Returns:
            Whether a thread takes the call at once (an idle one or a new one); otherwise it
            waits in the queue for a busy thread.

        Raises:
            RuntimeError: The pool is shut down.
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
            else:
                self._queued += 1
                self._queue.put((fn, args))
                return False
            self._queue.put((fn, args))
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
        name = f"{self._name}-{len(self._threads) + 1}"
        # NOTE: daemon threads: a handler stuck at interpreter exit does not keep it alive.
        work = (self._queue, weakref.ref(self))
        thread = threading.Thread(target=_work, args=work, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _done(self) -> None:
        """Count the calling thread back at the queue, after a call."""
        with self._lock:
            # NOTE: a queued call is this thread's next one: it is not idle for a new call.
            if self._queued:
                self._queued -= 1
            else:
                self._idle += 1


def _work(queue: SimpleQueue[_Item | None], ref: _PoolRef) -> None:
    get = queue.get
    while True:
        item = get()
        if item is None:
            return
        fn, args = item
        fn(*args)
        del item, fn, args  # NOTE: no reference kept to the last call while idle.
        pool = ref()
        if pool is not None:
            pool._done()
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
