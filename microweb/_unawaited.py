"""The closes of streams that nobody awaits any more, and the closing that outlives a cancellation.

``through_one_cancellation`` awaits a stream's close to its end through one cancellation of
its caller; a close given up on (a second cancellation, a ``stop()`` cancelled, the rest of a
close in a thread) runs in a task kept until it ends (``run_unawaited``), its error logged
naming its request (``close_failed_unawaited``); those whose loop has closed are let go of as
the next is kept, and at the interpreter's exit.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from inspect import CORO_CREATED, getcoroutinestate, isawaitable, iscoroutine
from typing import Any

from ._effects import closing_here
from ._errors import own_stop
from ._request import Request, logged_method, logged_path
from ._stream_ahead import ClosingFor, closing_request

logger = logging.getLogger("microweb")


async def through_one_cancellation(
    awaitable: Awaitable[None], never_begun: Callable[[], object] | None = None
) -> None:
    """Await ``awaitable`` to its end even when the caller is cancelled once meanwhile, then
    raise that cancellation; a second cancellation gives up on it, as a shield would.

    Where its task is cancelled before its first step (a loop's shutdown cancels all its tasks
    at once), ``awaitable`` never runs: a coroutine is closed, and ``never_begun`` called.

    For the closing of a stream: the driver cancels the sending once the client left, and that
    may come while the stream closes already (a ``send()`` that raised, as servers may once the
    client left). Cut there, the stream's ``finally`` ran after its request had ended, its
    after-response work included, or never ended.
    """
    request = closing_request()
    closing = _closing_task(awaitable, request, never_begun)
    try:
        await asyncio.wait((closing,))
    except asyncio.CancelledError:
        try:
            await asyncio.wait((closing,))
        except asyncio.CancelledError:
            # NOTE: given up on, it runs on: kept until it ends (a loop holds its tasks
            # weakly), its error logged, where it was dropped with no word.
            _keep_unawaited(closing, request)
            closing.add_done_callback(partial(unawaited_ended, request))
            raise
        # NOTE: the cancellation wins, as over a shield; the close's error, taken with no
        # word, is logged as that of a close nobody awaits.
        unawaited_ended(request, closing)
        raise
    error = closing.exception() or closing.result()
    del closing  # NOTE: the task holds the error: no cycle through this frame.
    if error is not None:
        try:
            raise error
        finally:
            del error


async def _exits_kept(
    awaitable: Awaitable[object], request: Request | None
) -> BaseException | None:
    """Await ``awaitable``, the close of ``request``'s stream; return the ``KeyboardInterrupt``
    or ``SystemExit`` it raises.

    NOTE: raised out of a task of its own, asyncio raises them again out of its loop: a
    stream's sys.exit() in its ``finally``, once its client left, ended the whole server
    (Uvicorn). Returned, the caller raises it in its own task, as a step's (review184).
    """
    # NOTE: named for its request until it ends, also where the driver gave up on it meanwhile
    # (its ClosingFor ended then).
    closing = ClosingFor(request)
    try:
        await awaitable
    except (KeyboardInterrupt, SystemExit) as exc:
        return exc
    except GeneratorExit as exc:
        if closing_here(exc):
            # NOTE: this coroutine closed before it ended: its loop closed first (_keep_unawaited
            # or its collection); what it awaited was closed, its finally blocks run.
            logger.warning(
                "%sthe close of a streamed response was cut off: its event loop closed before "
                "the close ended",
                request_named(request),
            )
        raise
    finally:
        closing.end()
    return None


def _closing_task(
    awaitable: Awaitable[object],
    request: Request | None,
    never_begun: Callable[[], object] | None = None,
) -> asyncio.Future[BaseException | None]:
    """Run ``_exits_kept(awaitable, request)`` in a task of its own; should that task be
    cancelled before its first step, close ``awaitable`` and call ``never_begun``."""
    task = asyncio.ensure_future(_exits_kept(awaitable, request))
    task.add_done_callback(partial(_close_if_never_begun, awaitable, never_begun))
    return task


def _close_if_never_begun(
    awaitable: Awaitable[object],
    never_begun: Callable[[], object] | None,
    task: asyncio.Future[Any],
) -> None:
    # NOTE: a task cancelled before its first step throws into a coroutine that never began:
    # _exits_kept() never awaited ``awaitable``, which warned "coroutine '_Pinned.stop' was
    # never awaited" (review326). Begun, it has ended with the task: close() does nothing.
    if iscoroutine(awaitable) and getcoroutinestate(awaitable) == CORO_CREATED:
        awaitable.close()
        if never_begun is not None:
            never_begun()


def closed_with(
    closed: asyncio.Future[Awaitable[object] | None],
    error: BaseException | None,
    left: Awaitable[object] | None,
    request: Request | None,
) -> None:
    """Hand ``stop()`` the end of a sync stream's close in its thread; on the loop.

    Where nobody awaits it any more (``stop()`` cancelled, a second cancellation given up on),
    the error is logged and what is left to await runs in a task of its own, logged too.
    """
    if not closed.cancelled():
        if error is None:
            closed.set_result(left)
        else:
            closed.set_exception(own_stop(error) if isinstance(error, StopIteration) else error)
        return
    # NOTE: stop()'s caller gone, the close's error was dropped with no word, and the async
    # close() its close() returned never ran ("never awaited"): the stream stayed open.
    if error is not None:
        close_failed_unawaited(error, request)
    elif left is not None:
        run_unawaited(left, request)


def close_failed_unawaited(error: BaseException, request: Request | None) -> None:
    """Log the error of a stream's close that nobody awaits any more (its caller cancelled),
    naming ``request``, whose stream it is."""
    # NOTE: named as the warning of a close given up on is: the error came with no word of
    # whose it was (review277).
    logger.error(
        "%serror while closing a streamed response after its request ended",
        request_named(request),
        exc_info=error,
    )


def run_unawaited(left: Awaitable[object], request: Request | None) -> None:
    """Run ``left``, the rest of a stream's close that nobody awaits any more, in a task kept
    until it ends; its error is logged, naming ``request``."""
    # NOTE: named for ``request`` as it runs, as a close given up on is (_exits_kept()): the
    # driver had let go of it, and a close that this rest began (another stream's, in a close
    # thread) named no request in its warning or its error. Its sys.exit() is logged too, where
    # asyncio raised it out of the loop.
    task = _closing_task(left, request)
    _keep_unawaited(task, request)
    task.add_done_callback(partial(unawaited_ended, request))


# NOTE: the closes nobody awaits (run_unawaited(), through_one_cancellation() given up on),
# kept while they run (a loop holds its tasks weakly), each with the request whose it is.
_UNAWAITED: dict[asyncio.Future[Any], Request | None] = {}
_GONE: Any = object()


def _keep_unawaited(task: asyncio.Future[Any], request: Request | None) -> None:
    """Keep ``task``, a close nobody awaits, until it ends (``unawaited_ended`` lets go of
    it); first let go of those whose loop has closed, which never will (``_let_go_of_closed``).

    NOTE: a close handed to the loop in its teardown (asyncio.run() cancels the tasks, then
    closes the loop) was kept here for ever, pending, with its stream and request; and at the
    interpreter's exit it was "destroyed but pending", its closing raising outside its task
    (review332).
    """
    _let_go_of_closed()
    _UNAWAITED[task] = request


def _let_go_of_closed() -> None:
    """Let go of the kept closes whose loop has closed: each is closed (its ``finally`` blocks
    run), with a warning naming its request.

    NOTE: asyncio tells no one of a loop's close: this runs as the next close is kept, and at
    the interpreter's exit, where one kept last (no close kept after it) was destroyed pending
    ("Task was destroyed but it is pending!", naming no request) and its coroutine closed
    outside its task (review345). Its ``_log_destroy_pending``, private, is the one way to say
    that a task that will never end was seen to: none can end a task whose loop has closed.
    """
    # NOTE: a copy first (one step under the GIL), then looked through: one for every loop
    # and thread, another thread's loop (a WSGI app loop beside a server's) kept or let go of
    # one meanwhile, and the looking raised "changed size during iteration" (review336).
    for kept in [kept for kept in list(_UNAWAITED) if kept.get_loop().is_closed()]:
        whose = _UNAWAITED.pop(kept, _GONE)
        if whose is _GONE:
            continue  # NOTE: another thread let go of it meanwhile.
        if isinstance(kept, asyncio.Task):
            # NOTE: _exits_kept() says it, naming the request: asyncio's word named none.
            kept._log_destroy_pending = False  # type: ignore[attr-defined]
            coroutine = kept.get_coro()
            if iscoroutine(coroutine):
                try:
                    coroutine.close()
                except Exception as exc:
                    # NOTE: its cleanup failed, or awaited again ("ignored GeneratorExit"):
                    # raised out of here, it was the error of the close being kept, another
                    # request's, a cancellation made a RuntimeError (review336).
                    close_failed_unawaited(exc, whose)
                    del exc


atexit.register(_let_go_of_closed)


def unawaited_ended(request: Request | None, closing: asyncio.Future[Any]) -> None:
    """A close that nobody awaits any more (its caller cancelled, or given up on) ended: log
    its error, or the ``SystemExit`` or ``KeyboardInterrupt`` it returned to be raised by its
    caller (``_exits_kept()``), and run the async close it returned (a close thread's)."""
    _UNAWAITED.pop(closing, None)
    if closing.cancelled():
        return
    error = closing.exception()
    if error is None:
        returned = closing.result()
        if isinstance(returned, BaseException):
            error = returned  # NOTE: a sys.exit() dropped with no word, its caller gone.
        elif isawaitable(returned):
            run_unawaited(returned, request)
    if error is not None:
        close_failed_unawaited(error, request)
    del error


def request_named(request: Request | None) -> str:
    """The start of a warning about a stream's close: its request's method and path, where a
    driver said whose stream it is (``closing_request()``)."""
    if request is None:
        return ""
    return f"{logged_method(request)} {logged_path(request)}: "
