"""How long a driver waits for a stream's close: ``CLOSE_WAIT`` seconds, after which the
response ends and the close runs on, its task kept until it ends (ASGI's, and WSGI's async
closes on the app loop); and the watch on a WSGI server's thread that runs a sync close, which
says when one has run longer."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Coroutine
from functools import partial
from threading import Thread
from typing import Any, cast

from ._app_loop import ContextRecord, Hop
from ._close_threads import close_wait_from, closing_in_a_thread
from ._error_logs import stream_failed, unsent_stream_failed, was_reported
from ._errors import ClientDisconnect
from ._pool import WorkerPool
from ._request import Request, logged_method, logged_path

logger = logging.getLogger("microweb")


class Sending:
    """What the driver knows of a stream's sending task: whether it closes the stream (done
    from then on), whether the close returned, whether its chunks all went out, and whether
    the driver gave up on it (then the driver, not the sender, sends the end of the body);
    and the sender's context as it began and as it is (``values``), what the stream set in it,
    as its close begins, then once its close has run; where a sync stream's thread ran it,
    what ``stepped()`` gives: its context as it began and as its close began, once it has."""

    __slots__ = ("closed", "closing", "ended", "given_up", "stepped", "values")

    def __init__(self, closing: asyncio.Future[None]) -> None:
        self.closing = closing
        self.closed = self.ended = self.given_up = False
        self.values: ContextRecord | None = None
        self.stepped: Callable[[], ContextRecord | None] | None
        self.stepped = None


# NOTE: how long a sent stream's close() may hold its response (seconds): past it, the response
# ends and the close runs on (Starlette's users see a response end with its body's last chunk).
CLOSE_WAIT = 10.0


def close_wait() -> float:
    """``CLOSE_WAIT``, read at each call: tests set a shorter one."""
    return CLOSE_WAIT


close_wait_from(close_wait)
# NOTE: the sending tasks whose close outlived CLOSE_WAIT, kept while they run (a loop holds
# its tasks weakly).
_LATE_CLOSES: set[asyncio.Task[None]] = set()


def give_up_on_close(
    sender: asyncio.Future[None], sending: Sending, stream: Any, request: Request
) -> None:
    """Give up on a stream whose close has not returned after ``CLOSE_WAIT`` seconds, whose
    response the driver ends; the close runs on, in its task, kept until it ends."""
    sending.given_up = True
    _keep_late(cast("asyncio.Task[None]", sender), stream, request)


def _keep_late(task: asyncio.Task[None], stream: Any, request: Request) -> None:
    """Keep the task of ``request``'s stream's close until it ends, and say that it has not
    returned in time."""
    # NOTE: kept first: a log filter that raised at the warning left the task held weakly by
    # the loop alone, and a sys.exit() of its close went with no word (review288).
    _LATE_CLOSES.add(task)
    task.add_done_callback(partial(_late_close_ended, request))
    _say_late(
        request,
        # NOTE: the stream inside gzip's, SSE's or a declared length's whose sync close() the
        # task waits for, in a close thread or for one, where the warning named the outer one.
        # NOTE: named here alone, not for every streamed response.
        closing_in_a_thread(task) or _named(stream),
        " at most, less if the server cancelled the request",
        "the response is ended, and the close runs on",
    )


def _say_late(request: Request, named: str, bound: str, outcome: str) -> None:
    """Warn that the close of ``request``'s stream (``named``) has not returned within
    ``CLOSE_WAIT`` seconds (``bound`` qualifies them), and what follows (each driver's own)."""
    logger.warning(
        "%s %s: the close of its streamed response, %s, has not returned in time (%g s%s): %s",
        logged_method(request),
        logged_path(request),
        named,
        CLOSE_WAIT,
        bound,
        outcome,
    )


def _named(stream: Any) -> str:
    """The name of a stream's class, or of its generator's function."""
    name = getattr(stream, "__qualname__", None)  # NOTE: a generator's; no instance has one.
    if isinstance(name, str) and not isinstance(stream, type):
        return name
    return f"{type(stream).__module__}.{type(stream).__qualname__}"


async def close_awaited(
    sender: asyncio.Future[None],
    sending: Sending,
    stream: Any,
    request: Request,
    pool: WorkerPool | None,
) -> None:
    """Wait for the sender, its stream's close bounded by ``CLOSE_WAIT`` (and this task's
    cancellation); the end of the body after the close as long as the server's send()
    takes (a slow client's socket to drain).

    The sender was cancelled, unless its close had begun: an async generator cut where it
    awaited runs its ``finally`` in that cancelled step, before any close, and a sync stream's
    step runs on in its thread. ``CLOSE_WAIT`` bounds those and the close together.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CLOSE_WAIT
    try:
        if not sender.done():
            # NOTE: bounded too: a finally that awaited what never came held the request's
            # task, and its after-response work, for ever (review416).
            await asyncio.wait(
                {sender, sending.closing}, timeout=CLOSE_WAIT, return_when=asyncio.FIRST_COMPLETED
            )
        if not sender.done():
            await asyncio.wait({sender}, timeout=max(deadline - loop.time(), 0))
        if not sender.done() and sending.closed:
            # NOTE: CLOSE_WAIT timed the end of the body too: a quick close was said not
            # to have returned, and the body's end was sent twice.
            await asyncio.wait({sender})
    except asyncio.CancelledError:
        if pool is not None:
            pool.cut_off = True  # NOTE: a sync close may run on in its thread.
        raise
    finally:
        if not sender.done() and not sending.closed:
            # NOTE: here, for a request the server cancelled too (then or meanwhile): its
            # task ends now, the sender's is kept.
            if pool is not None:
                # NOTE: a sync stream's step or close may run on in its thread: given up on
                # with no cancellation, it went uncounted at the lifespan's shutdown, whose
                # hooks ran under it with no word (review418).
                pool.cut_off = True
            give_up_on_close(sender, sending, stream, request)


async def close_unsent(
    closing: Coroutine[Any, Any, None],
    stream: Any,
    request: Request,
    pool: WorkerPool | None = None,
) -> None:
    """Run ``closing``, the close of a stream that is not sent (a HEAD's, a 204's, a 304's),
    for ``CLOSE_WAIT`` seconds at most, as a sent stream's: past them, the answer ends and the
    close runs on in its task, kept until it ends (a sync one in ``pool``'s thread, which is
    marked cut off). ``closing`` logs what the close raises, and carries a
    ``KeyboardInterrupt`` or ``SystemExit`` (``Carried``), raised again here."""
    # NOTE: awaited in the request's task, a close that never returned left the client waiting
    # for the end of the answer for ever (and the server's shutdown for the task).
    task = asyncio.ensure_future(closing)
    try:
        await asyncio.wait({task}, timeout=CLOSE_WAIT)
    finally:
        if not task.done():
            if pool is not None:
                pool.cut_off = True  # NOTE: as a sent stream's (close_awaited()), review418.
            _keep_late(task, stream, request)
    if not task.done() or task.cancelled():
        return
    error = task.exception()
    if error is not None:
        # NOTE: ``closing`` logged any Exception; what is left is raised to the server, as a
        # sent stream's close raises it: a GeneratorExit of the close went with no word.
        try:
            raise error.escaped if isinstance(error, Carried) else error
        finally:
            del error  # NOTE: no cycle through this frame and the traceback.


def _late_close_ended(request: Request, task: asyncio.Task[None]) -> None:
    _LATE_CLOSES.discard(task)
    if task.cancelled():
        return
    # NOTE: an error of the close was logged by the driver (_asgi_streams._aclose_logged), but not a
    # sys.exit() (or KeyboardInterrupt) it carries to the request's task, which has ended, nor
    # another BaseException (a GeneratorExit), which went with no word.
    error = task.exception()
    escaped = error.escaped if isinstance(error, Carried) else error
    if escaped is not None and not isinstance(escaped, Exception):
        logger.error(
            "%s %s: the late close of its streamed response raised %s, dropped: the request "
            "had ended",
            logged_method(request),
            logged_path(request),
            type(escaped).__name__,
            exc_info=escaped,
        )


class Carried(Exception):
    """App code's ``KeyboardInterrupt`` or ``SystemExit``, carried out of the stream's task."""

    def __init__(self, escaped: BaseException) -> None:
        super().__init__(repr(escaped))
        self.escaped = escaped


# NOTE: under WSGI the server's thread runs a sync close (PEP 3333), which Python cannot interrupt:
# one that never returns holds that thread (Waitress has 4), and only a watcher can say why the
# server stops answering. A hop to a close thread that the server's thread waits for with a
# bound would free it, but cost every streamed response 13 us, 39 us beside a busy thread, where
# the whole response takes 7 to 40 (review287), and would close a generator in another thread
# than the one that ran it (a thread-bound sqlite3 connection fails there). An async close runs
# on the app loop already: the thread's wait for it ends after CLOSE_WAIT (wsgi_close_late()).
# NOTE: the closes that WSGI server threads run now: each request's [stream, since when, False,
# or None while the thread waits for an async close, bounded (bounded()), which the watcher
# leaves alone]. One the watcher says has not returned in time it moves to _TOLD first.
_WATCHED: dict[Request, list[Any]] = {}
# NOTE: the closes said not to have returned in time, whose return is to be said too. Each
# close is taken out of _WATCHED by one pop, the watcher's or its thread's: whoever pops it
# first says what it has to say (lock-free). The watcher's copy of the table and its flag
# left a window where a close that returned went unsaid, after its warning (review290). A
# close that returns just as the watcher has popped it may say so just before its warning.
_TOLD: dict[Request, list[Any]] = {}
_watching = False
_watching_lock = threading.Lock()


def watch_close(stream: Any, request: Request) -> None:
    """Watch the close of ``request``'s ``stream`` that this thread runs now, until
    ``close_returned()``: one that runs longer than ``CLOSE_WAIT`` seconds is said to hold this
    thread, as the ASGI driver says of a close it gives up on."""
    # PERF: with close_returned(), a dict's set and pop: 0.25 us a streamed response, which
    # takes 7 us in-process (best of 9 runs of 200,000, 2026-12-06). The watcher thread wakes
    # at most once a second while closes run, and ends once none has run for CLOSE_WAIT.
    _WATCHED[request] = [stream, time.monotonic(), False]
    if not _watching:
        _start_watching()


def close_returned(request: Request) -> None:
    """End the watch on a close that has returned (or raised); said where it was told late."""
    if _WATCHED.pop(request, None) is not None:
        return  # NOTE: popped before the watcher's pop: it says nothing of this close.
    # NOTE: the watcher popped it (it put it in _TOLD before), or nobody watched it: a child
    # forked during the close, a wait for an async close that went late (wsgi_close_late()).
    watched = _TOLD.pop(request, None)
    if watched is not None:
        stream, since, _ = watched
        logger.warning(
            "%s %s: the close of its streamed response, %s, returned after %.1f s: the "
            "server's thread is free again",
            logged_method(request),
            logged_path(request),
            _named(stream),
            time.monotonic() - since,
        )


def bounded(request: Request, bound: bool) -> None:
    """Have the watcher leave alone (``bound``), or watch again, the close of ``request``'s
    stream while this thread waits for an async close on the app loop: that wait ends after
    ``CLOSE_WAIT`` seconds (``wsgi_close_late``), which says so itself."""
    watched = _WATCHED.get(request)
    if watched is None:
        return
    if bound and watched[2] is False:
        watched[2] = None  # NOTE: left alone by the watcher (False: to be told).
    elif not bound and watched[2] is None:
        watched[2] = False


def wsgi_close_late(
    stream: Any,
    request: Request,
    hop: Hop,
    loop: asyncio.AbstractEventLoop,
    unsent: bool = False,
) -> None:
    """In the WSGI server's thread that has waited ``CLOSE_WAIT`` seconds for the async close
    of ``request``'s ``stream`` on the app loop: say that the response ends and the close runs
    on, its task kept until it ends, where its error is logged naming the request (as that of
    a stream not sent, where ``unsent``: a HEAD's, a 204's, a 304's)."""
    _WATCHED.pop(request, None)  # NOTE: the watcher must not say it holds the thread.
    _TOLD.pop(request, None)  # NOTE: nor close_returned() that it is free again.
    try:
        # NOTE: queued after hop.start, which makes the hop's task; a loop's tasks are its own.
        loop.call_soon_threadsafe(_keep_late_hop, hop, stream, request, unsent)
    except RuntimeError:
        # NOTE: the loop closed meanwhile, its tasks ended: said here, no task to keep.
        _say_late(request, _named(stream), "", _RUNS_ON)


_RUNS_ON = "the response is ended, and the close runs on"


def _keep_late_hop(hop: Hop, stream: Any, request: Request, unsent: bool) -> None:
    task = hop.task
    if task is None:
        return  # NOTE: the hop's start failed, and so did its thread's wait.
    # NOTE: said on the loop, where the close thread that a sync close inside gzip's waits
    # for is known, and named (as ASGI's _keep_late does).
    _say_late(request, closing_in_a_thread(task) or _named(stream), "", _RUNS_ON)
    _LATE_CLOSES.add(task)
    task.add_done_callback(partial(_late_hop_ended, hop, request, unsent))


def _late_hop_ended(hop: Hop, request: Request, unsent: bool, task: asyncio.Task[None]) -> None:
    _LATE_CLOSES.discard(task)
    error, hop.error = hop.error, None
    # NOTE: no thread waits to raise it: the server's thread has ended the response. Logged
    # as the WSGI driver logs one raised in time, and as ASGI logs a late close's.
    try:
        if error is None or isinstance(error, asyncio.CancelledError):
            return  # NOTE: cancelled by the app loop's stop, which ends its tasks.
        if unsent and isinstance(error, Exception):
            # NOTE: a HEAD's close was logged as an error "while streaming" it, where one in
            # time (and ASGI's, late or not) is said to be of a stream not sent.
            unsent_stream_failed(request, error)
            return
        if isinstance(error, ClientDisconnect) and request._client_gone():
            return  # NOTE: a read of the body in its finally: ends quietly, as in time.
        if isinstance(error, Exception):
            if not was_reported(error):
                stream_failed(request, error)
            return
        logger.error(
            "%s %s: the late close of its streamed response raised %s, dropped: the request "
            "had ended",
            logged_method(request),
            logged_path(request),
            type(error).__name__,
            exc_info=error,
        )
    finally:
        del error  # NOTE: no cycle through this frame and the traceback.


def _start_watching() -> None:
    global _watching
    with _watching_lock:
        if _watching:
            return
        try:
            Thread(target=_watch, name="microweb-close-watch", daemon=True).start()
        except RuntimeError:
            # NOTE: no thread to be had (the process's limit): raised, it failed the response;
            # flagged as started, no close was ever watched again. This one goes unwatched.
            return
        _watching = True  # NOTE: before the watcher can read it: this lock is held.


def _watch() -> None:
    """Say which closes have run longer than ``CLOSE_WAIT``; end once none has run for as long."""
    global _watching
    try:
        _watch_while_closing()
    except BaseException:
        # NOTE: an error of the watcher's (a log handler's) stopped it for good: the next
        # watch starts another. Not at its own end, where a watch may have started one.
        with _watching_lock:
            _watching = False
        raise


def _watch_while_closing() -> None:
    global _watching
    idle_since = time.monotonic()
    while True:
        wait = CLOSE_WAIT  # NOTE: read at each tick: tests set a shorter one.
        time.sleep(min(wait / 4, 1.0))
        now = time.monotonic()
        for request, watched in _WATCHED.copy().items():
            if now - watched[1] >= wait and watched[2] is False:
                _TOLD[request] = watched  # NOTE: before the pop, for the thread's that follows.
                if _WATCHED.pop(request, None) is None:
                    _TOLD.pop(request, None)  # NOTE: it returned since the copy: nothing to say.
                    continue
                _say_late(
                    request,
                    _named(watched[0]),
                    "",
                    "it runs in the WSGI server's thread, which it holds, and the end of the "
                    "response with it, until it returns",
                )
        if _WATCHED:
            idle_since = now
            continue
        if now - idle_since < wait:
            continue
        with _watching_lock:
            # NOTE: cleared before the dict is read: a watch added meanwhile starts a watcher
            # (it reads the flag after its add), or is seen here.
            _watching = False
            if not _WATCHED:
                return
            _watching = True


def _forget_watching() -> None:
    """In a forked child: no watcher thread runs there, and no close of the parent's."""
    global _watching, _watching_lock
    _WATCHED.clear()
    _TOLD.clear()
    _watching, _watching_lock = False, threading.Lock()


os.register_at_fork(after_in_child=_forget_watching)
