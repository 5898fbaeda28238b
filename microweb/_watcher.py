"""A ``--workers`` worker's watcher: a thread that looks at the worker's event loop and notes,
in memory the main process reads (``_worker_process``), whether the loop makes progress.

The main process cannot tell a blocked loop from a slow one by pinging it: a loop that answers
pings itself, among 40 CPU-bound ``def`` handlers in the pool, waited so long for the GIL that
one turn of it took 10 s, while it ran callback after callback. A thread that looks at it sees
the difference: the task the loop runs changes between two looks, or the loop turns; where an
``async def`` handler that blocks the loop (``time.sleep()``, CPU-bound work) is the same task
at every look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
import traceback
from collections.abc import MutableSequence, Sequence
from multiprocessing.connection import Connection
from types import CodeType, FrameType
from typing import TYPE_CHECKING

from ._errors import log_failure
from ._serve_options import MIN_BEAT

if TYPE_CHECKING:
    from ._uvicorn import OrderlyUvicorn

logger = logging.getLogger("microweb")

# NOTE: what a worker says on its pipe: that it started.
STARTED = b"started"
# NOTE: the slots of a worker's beats, memory it shares with the main process: how many times
# its watcher thread looked at the event loop, how many of those looks found that the loop
# had made progress, whether the shutdown hooks run (1) or not (0), and how many times the
# loop turned (its timer came): progress too, seen even while the watcher waits for the GIL;
# and, written by the main process, how many signals past its first it has passed on.
LOOKS, PROGRESS, HOOKS, TURNS, PASSED_ON = range(5)
SLOTS = 5
# NOTE: how often, in seconds, a worker's loop notes that it turned and its watcher looks:
# at most BEAT, four times within the timeout, never more often than MIN_BEAT (which
# _serve_options holds, with the shortest timeout it lets through).
BEAT = 0.25


def beat_for(timeout: float) -> float:
    """How often a worker's loop notes that it turned, and its watcher looks, for ``timeout``."""
    return min(BEAT, max(MIN_BEAT, timeout / 4))


def say_started(
    pipe: Connection,
    beats: MutableSequence[int],
    timeout: float,
    server: OrderlyUvicorn,
    port: int,
) -> None:
    """Say on ``pipe`` that the worker started; from now on, note in ``beats`` whether its
    event loop makes progress, and log where it is once it has made none for ``timeout``
    seconds. A worker whose watcher cannot start stops in order, and says nothing."""
    loop = asyncio.get_running_loop()
    # NOTE: the code that calls the loop's callbacks, as the loop's turns learn it: asyncio's
    # Handle._run, or, under a loop that calls them from C (uvloop), the code that runs the loop.
    runner = [_RUN_CALLBACK]
    watcher = threading.Thread(
        target=_watch,
        args=(loop, threading.get_ident(), beats, timeout, server, runner),
        name="microweb-watcher",
    )
    watcher.daemon = True
    try:
        watcher.start()
    except RuntimeError as exc:
        # NOTE: "can't start new thread" (a container's pids limit counts threads too): the
        # worker would serve unwatched, and be killed as one whose watcher never ran, then
        # replaced, for ever. It stops, shutdown hooks run, and the main process, not told
        # that it started, stops the server (status 3), as when it cannot start a worker.
        log_failure("worker [%d] cannot start its watcher thread: %s; stopping", os.getpid(), exc)
        server.should_exit = True
        return
    beat = beat_for(timeout)

    def turn() -> None:
        runner[0] = sys._getframe(1).f_code
        beats[TURNS] += 1
        loop.call_later(beat, turn)

    loop.call_soon(turn)
    # NOTE: the main process may have gone while the app started; the worker sees it soon.
    with contextlib.suppress(OSError):
        pipe.send_bytes(STARTED)


def _watch(
    loop: asyncio.AbstractEventLoop,
    thread: int,
    beats: MutableSequence[int],
    timeout: float,
    server: OrderlyUvicorn,
    runner: Sequence[CodeType],
) -> None:
    """Look at ``loop``, run by ``thread``, every beat, and count in ``beats`` the looks that
    find it has made progress: it turned (its timer came), or it runs another task, or callback
    outside any task (one called by ``runner[0]``), than at the last look, or neither. Log where
    it is once it has made none for ``timeout`` seconds."""
    # NOTE: no cost per request: a timer on the loop and this thread, each once a beat.
    beat = beat_for(timeout)
    seen: tuple[int, object] | None = None
    progressed, told = time.monotonic(), False
    while not loop.is_closed():
        time.sleep(beat)
        running = asyncio.current_task(loop) or _callback_in(thread, runner[0])
        look = (beats[TURNS], running)
        if running is None or look != seen:
            beats[PROGRESS] += 1
            progressed, told = time.monotonic(), False
        elif not told and time.monotonic() - progressed >= timeout:
            told = True
            _say_where(thread, time.monotonic() - progressed)
        beats[HOOKS] = int(server.running_hooks)
        beats[LOOKS] += 1
        seen = look


def _callback_in(thread: int, runner: CodeType) -> FrameType | None:
    """Return the frame of the callback that the event loop's ``thread`` runs, called by
    ``runner``'s code, if it runs one."""
    # NOTE: a loop that runs no task was taken as one that waits for events: a plain callback
    # (loop.call_soon(), a future's done callback) that blocked it was progress at every look.
    # The callback's own frame, not its caller's: under uvloop the caller is the code that runs
    # the loop, whose frame is the thread's own while the loop waits for events (review368).
    frame = sys._current_frames().get(thread)
    while frame is not None and (frame.f_back is None or frame.f_back.f_code is not runner):
        frame = frame.f_back
    return frame


_RUN_CALLBACK = asyncio.Handle._run.__code__


def _say_where(thread: int, stuck: float) -> None:
    """Log where the event loop's ``thread`` is, stuck for ``stuck`` seconds."""
    frame = sys._current_frames().get(thread)
    if frame is not None:
        # NOTE: the main process can only say that the loop made no progress; here, which
        # code holds it, so that one can find the handler.
        where = "".join(traceback.format_stack(frame)).rstrip()
        logger.error(
            "worker [%d]'s event loop has made no progress for %.1f s; it is in (most recent "
            "call last):\n%s",
            os.getpid(),
            stuck,
            where,
        )
