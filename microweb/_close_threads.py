"""The close threads: a stream's sync ``close()`` run from async code, in a daemon thread.

``_close_in_a_thread`` is the hook ``_closing.aclose_of()`` runs a sync ``close()`` through
(``close_sync_in``, set as this module is imported, which ``_concurrency`` imports for it):
``CLOSE_THREADS`` threads for the closes that return, more as closes run past ``CLOSE_WAIT``,
up to ``CLOSE_THREADS_MOST``, then a bounded queue. ``closing_in_a_thread`` names the close a
task waits for, for a driver's warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from inspect import isawaitable, iscoroutine
from queue import Full
from typing import Any, cast

from ._app_loop import ContextRecord
from ._closing import close_sync_in
from ._pool import WorkerPool
from ._pool_futures import run_in_pool
from ._stream_ahead import closing_request
from ._unawaited import request_named, unawaited_ended

logger = logging.getLogger("microweb")

# NOTE: the threads that run the sync close() of a stream inside gzip's, SSE's or a declared
# length's async stream: not the ASGI driver's pool, which those streams do not know (and the
# WSGI app loop has none), nor a loop's default executor, whose threads the interpreter's exit
# joins (a close that never returns would keep the server's process from ending). Daemon
# threads, CLOSE_THREADS of them for closes that return: 10,000 closes that never returned held
# 10,000 threads, one each. A close that has run past CLOSE_WAIT no longer counts (a thread
# starts for a close that would wait, and ends once idle), up to CLOSE_THREADS_MOST threads in
# all: with 8 closes that never return, every later close waited for ever in the queue, its
# stream and request held. Past them, at most CLOSES_WAITING_MOST closes wait; later ones are
# dropped, with an error.
CLOSE_THREADS = 8
CLOSE_THREADS_MOST = 64
CLOSES_WAITING_MOST = 1_000


def _closes_stuck_after() -> float:
    return _close_wait()  # NOTE: read at each call: close_wait_from() sets it after this.


_told_stuck = False


def _closes_stuck(stuck: int) -> None:
    """Say, once, that closes run past ``CLOSE_WAIT`` and more close threads start."""
    global _told_stuck
    if _told_stuck:
        return
    _told_stuck = True
    logger.warning(
        "%d sync close() calls of streamed responses have run longer than %g s in the close "
        "threads: more threads start for the other closes, %d in all at most",
        stuck,
        _close_wait(),
        _CLOSES.most_workers,
    )


_CLOSES = WorkerPool(
    CLOSE_THREADS,
    name="microweb-close",
    stuck_after=_closes_stuck_after,
    most_workers=CLOSE_THREADS_MOST,
    most_queued=CLOSES_WAITING_MOST,
    on_spill=_closes_stuck,
)


class _ThreadClose:
    """A sync ``close()`` handed to a close thread: whose it is (the stream's, and the request
    the driver closes it for), whether it still waits for a thread (all of them running closes
    that have not returned), and whether a driver's warning named it already."""

    __slots__ = ("close", "loop", "request", "told", "waiting")

    def __init__(self, close: Callable[[], object], loop: asyncio.AbstractEventLoop) -> None:
        self.close, self.loop, self.waiting, self.told = close, loop, True, False
        self.request = closing_request()

    def run(self) -> object:
        self.waiting = False
        returned = self.close()
        if isawaitable(returned) and not self.loop.is_running():
            # NOTE: the loop stopped meanwhile (a WSGI app's close at the server's shutdown):
            # dropped with no word, an async close() that close() returned was "never awaited".
            if iscoroutine(returned):
                returned.close()
            logger.warning(
                "%sthe async close() that the close() of a streamed response's %s returned was "
                "not run: its event loop had stopped",
                request_named(self.request),
                self.named(),
            )
            return None
        return returned

    def named(self) -> str:
        owner = getattr(self.close, "__self__", self.close)
        return f"{type(owner).__module__}.{type(owner).__qualname__}"


# NOTE: the close each task waits for in a close thread now, for the warning of a driver that
# gives up on that task's close (closing_in_a_thread()).
_THREAD_CLOSES: dict[asyncio.Task[Any], _ThreadClose] = {}


def _ten_seconds() -> float:
    return 10.0


# NOTE: how long a close waits for a close thread at most: the drivers' CLOSE_WAIT, which
# _close_wait (a higher layer) sets (close_wait_from()).
_close_wait: Callable[[], float] = _ten_seconds


def close_wait_from(seconds: Callable[[], float]) -> None:
    """Have a close that waits for a close thread wait ``seconds()`` at most."""
    global _close_wait
    _close_wait = seconds


async def _close_in_a_thread(close: Callable[[], object]) -> object:
    """Run a stream's sync ``close()`` in a close thread, with the caller's context variables;
    its ``StopIteration`` comes as ``own_stop()`` makes it.

    A close that waits for a thread (all of them run closes that have not returned) is given
    up on after ``CLOSE_WAIT`` seconds, with a warning: it runs when a close thread takes it
    up, one that a call ahead of it leaves or one started for the closes that wait. One that
    cannot even wait (``CLOSES_WAITING_MOST``) is dropped with an error: never called.
    """
    task = asyncio.current_task()
    pending = _ThreadClose(close, asyncio.get_running_loop())
    # NOTE: what the close sets in its thread is set in the caller's context once it has run,
    # as a stream's other closes are: the after-response work of a stream inside gzip's or
    # SSE's saw nothing of it, under both interfaces (review403).
    record = ContextRecord()
    try:
        closing = cast(
            "asyncio.Future[object]", run_in_pool(_CLOSES, record.context.run, pending.run)
        )
    except Full:
        logger.error(
            "%sthe close() of a streamed response's %s was dropped, not run: all %d close "
            "threads run closes that have not returned, and %d more closes wait for them",
            request_named(pending.request),
            pending.named(),
            _CLOSES.most_workers,
            _CLOSES.most_queued,
        )
        return None
    if task is not None:
        _THREAD_CLOSES[task] = pending
    try:
        if pending.waiting:
            # NOTE: a normal response's close waited behind 8 that never returned, with no
            # bound under WSGI (7.8 s and more), where the app loop runs it.
            await asyncio.wait((closing,), timeout=_close_wait())
            if pending.waiting:
                closing.add_done_callback(partial(unawaited_ended, pending.request))
                # NOTE: the closes ahead of it may have run past CLOSE_WAIT meanwhile: where
                # they leave room, a thread starts for the closes queued before they were.
                # The warning said the close ran "once a thread is free", where the thread that
                # starts here may take it at once (review286).
                _CLOSES.spill()
                if not pending.told:
                    logger.warning(
                        "%sthe close() of a streamed response's %s has waited %g s for a close "
                        "thread (all %d run closes that have not returned): the response is "
                        "ended, and the close runs when a close thread takes it up",
                        request_named(pending.request),
                        pending.named(),
                        _close_wait(),
                        _CLOSES.running(),
                    )
                return None
        # NOTE: shielded: a close queued behind others whose caller is cancelled meanwhile (the
        # server gave up on the request) still runs, as it would in a thread of its own.
        return await asyncio.shield(closing)
    except asyncio.CancelledError:
        # NOTE: the shield took the close's error where its caller was cancelled: dropped.
        closing.add_done_callback(partial(unawaited_ended, pending.request))
        raise
    finally:
        if task is not None:
            _THREAD_CLOSES.pop(task, None)
        if closing.done() and not closing.cancelled():
            record.adopt()
        del closing  # NOTE: it holds the error, whose traceback holds this frame: no cycle.


def closing_in_a_thread(task: asyncio.Future[Any]) -> str | None:
    """Name the stream whose sync ``close()`` ``task`` waits for in a close thread, if it does,
    and say whether it still waits for a thread; for a driver's warning, which is then the
    only one about it."""
    pending = _THREAD_CLOSES.get(cast("asyncio.Task[Any]", task))
    if pending is None:
        return None
    pending.told = True
    if pending.waiting:
        return (
            f"{pending.named()} (its close() waits for a close thread: all {_CLOSES.running()} run "
            "closes that have not returned)"
        )
    return pending.named()


close_sync_in(_close_in_a_thread)
