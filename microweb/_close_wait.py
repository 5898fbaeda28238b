"""How long the ASGI driver waits for a sent stream's close: ``CLOSE_WAIT`` seconds, after
which the response ends and the close runs on, its task kept until it ends."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from functools import partial
from typing import Any, cast

from ._concurrency import close_wait_from, closing_in_a_thread
from ._pool import WorkerPool
from ._request import Request, logged_method, logged_path

logger = logging.getLogger("microweb")


class Sending:
    """What the driver knows of a stream's sending task: whether it closes the stream (done
    from then on), whether the close returned, whether its chunks all went out, and whether
    the driver gave up on it (then the driver, not the sender, sends the end of the body)."""

    __slots__ = ("closed", "closing", "ended", "given_up")

    def __init__(self, closing: asyncio.Future[None]) -> None:
        self.closing = closing
        self.closed = self.ended = self.given_up = False


# NOTE: how long a sent stream's close() may hold its response (seconds): past it, the response
# ends and the close runs on (Starlette's users see a response end with its body's last chunk).
CLOSE_WAIT = 10.0


def _close_wait() -> float:
    return CLOSE_WAIT  # NOTE: read at each call: tests set a shorter one.


close_wait_from(_close_wait)
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
    """Say that the close of ``request``'s stream has not returned in time, and keep its task
    until it ends."""
    logger.warning(
        "%s %s: the close of its streamed response, %s, has not returned in time (%g s at "
        "most, less if the server cancelled the request): the response is ended, and the "
        "close runs on",
        logged_method(request),
        logged_path(request),
        # NOTE: the stream inside gzip's, SSE's or a declared length's whose sync close() the
        # task waits for, in a close thread or for one, where the warning named the outer one.
        # PERF: named here alone, not for every streamed response.
        closing_in_a_thread(task) or _named(stream),
        CLOSE_WAIT,
    )
    _LATE_CLOSES.add(task)
    task.add_done_callback(partial(_late_close_ended, request))


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
    takes (a slow client's socket to drain)."""
    try:
        if not sender.done():
            await asyncio.wait({sender, sending.closing}, return_when=asyncio.FIRST_COMPLETED)
        if not sender.done():
            await asyncio.wait({sender}, timeout=CLOSE_WAIT)
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
            give_up_on_close(sender, sending, stream, request)


async def close_unsent(closing: Coroutine[Any, Any, None], stream: Any, request: Request) -> None:
    """Run ``closing``, the close of a stream that is not sent (a HEAD's, a 204's, a 304's),
    for ``CLOSE_WAIT`` seconds at most, as a sent stream's: past them, the answer ends and the
    close runs on in its task, kept until it ends. ``closing`` logs what the close raises, and
    carries a ``KeyboardInterrupt`` or ``SystemExit`` (``Carried``), raised again here."""
    # NOTE: awaited in the request's task, a close that never returned left the client waiting
    # for the end of the answer for ever (and the server's shutdown for the task).
    task = asyncio.ensure_future(closing)
    try:
        await asyncio.wait({task}, timeout=CLOSE_WAIT)
    finally:
        if not task.done():
            _keep_late(task, stream, request)
    if not task.done() or task.cancelled():
        return
    error = task.exception()
    if isinstance(error, Carried):
        try:
            raise error.escaped
        finally:
            del error  # NOTE: no cycle through this frame and the traceback.


def _late_close_ended(request: Request, task: asyncio.Task[None]) -> None:
    _LATE_CLOSES.discard(task)
    if task.cancelled():
        return
    # NOTE: an error of the close was logged by the driver (_asgi._aclose_logged), but not a
    # sys.exit() (or KeyboardInterrupt) it carries to the request's task, which has ended.
    error = task.exception()
    if isinstance(error, Carried):
        logger.error(
            "%s %s: the late close of its streamed response raised %s, dropped: the request "
            "had ended",
            logged_method(request),
            logged_path(request),
            type(error.escaped).__name__,
            exc_info=error.escaped,
        )


class Carried(Exception):
    """App code's ``KeyboardInterrupt`` or ``SystemExit``, carried out of the stream's task."""

    def __init__(self, escaped: BaseException) -> None:
        super().__init__(repr(escaped))
        self.escaped = escaped
