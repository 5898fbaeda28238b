"""Closing a response's stream from a WSGI server's thread: a sync ``close()`` there, an async
one (``aclose()``, an ``async def close()``, or what a sync ``close()`` returned to await) on
the app loop, named for its request, the last of a response's closes for ``CLOSE_WAIT`` seconds
at most; or said not run, once the app loop has stopped."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial
from inspect import CORO_CREATED, getcoroutinestate, isawaitable, iscoroutine
from types import AsyncGeneratorType
from typing import TYPE_CHECKING, Any

from ._close_wait import bounded, close_wait, wsgi_close_late
from ._routing import is_async_callable
from ._stream_ahead import ClosingFor

if TYPE_CHECKING:
    from ._app_loop import AppLoop
    from ._request import Request

logger = logging.getLogger("microweb")


def close_stream(
    stream: Any, app_loop: AppLoop, request: Request, last: bool = True, unsent: bool = False
) -> None:
    """Close ``stream``; an async close, where it is the ``last`` of the response's closes, for
    ``CLOSE_WAIT`` seconds at most (``_run_close()``). ``unsent``: the stream of an answer with
    no body (HEAD, 204, 304), whose late close's error is logged as such."""
    if stream is None:
        return
    if getattr(stream, "aclose", None) is not None:
        if app_loop.stopped:
            # NOTE: after the app's close, the loop's stop has closed what it ran (the stream's
            # task, the async generators it began); a generator it never began has no frame to
            # end. Closed again, it raised AppClosed from the body's close(), which Waitress
            # logged as a traceback. An object's own aclose() is no generator's: said below.
            if type(stream) is not AsyncGeneratorType:
                _log_close_not_run(stream, "aclose()")
            return
        # NOTE: aclose() called on the loop: a coroutine of it made here was "never awaited"
        # where the loop closed before the hop began.
        _run_close(app_loop, _closed_for(request, stream.aclose), stream, request, last, unsent)
    elif getattr(stream, "close", None) is not None:
        if is_async_callable(stream.close):
            # NOTE: awaited on the app loop, where the stream ran. Once that loop stopped
            # (wsgi.close() came first), there is no loop to run it on, and it is not started.
            if app_loop.stopped:
                _log_close_not_run(stream, "async close()")
            else:
                closing = _closed_for(request, stream.close)
                _run_close(app_loop, closing, stream, request, last, unsent)
        else:
            await_left(stream, stream.close(), app_loop, request, last, unsent)


async def _closed_for(request: Request, close: Callable[[], Awaitable[object]]) -> None:
    """Await ``close()``, a stream's async close, on the app loop, named for ``request`` until
    it ends (``CLOSING_FOR``), as under ASGI: an ``async def close()``, or one that a sync
    ``close()`` returned, was named for none, nor was a close it began (another stream's in a
    close thread), in its warning or its error."""
    closing = ClosingFor(request)
    try:
        await close()
    finally:
        closing.end()


def _run_close(
    app_loop: AppLoop,
    closing: Awaitable[Any],
    stream: Any,
    request: Request,
    last: bool,
    unsent: bool = False,
) -> None:
    """Run an async close on the app loop; the ``last`` of a response's closes for
    ``CLOSE_WAIT`` seconds at most: past them, the server's thread ends the response, and the
    close runs on (as under ASGI)."""
    if not last:
        # NOTE: a close that another follows (an iterator's, then its stream's): given up on,
        # the next would run beside it, where ASGI runs it after, in the close's task.
        app_loop.run(closing)
        return
    # NOTE: this thread waited for ever for a close that never returned, held (Waitress has 4).
    # A sync close still runs in this thread: moved to another, it would cost each response a
    # hop, and close a generator in another thread than the one that ran it (review287).
    bounded(request, True)
    late = partial(wsgi_close_late, stream, request, unsent=unsent)
    try:
        app_loop.run(closing, within=close_wait(), late=late)
    finally:
        bounded(request, False)


def await_left(
    stream: Any,
    left: object,
    app_loop: AppLoop,
    request: Request,
    last: bool,
    unsent: bool = False,
) -> None:
    """Await on the app loop what a sync ``close()`` returned to await: the async close of the
    stream inside gzip's, SSE's or a declared length's (dropped, "never awaited", before)."""
    if not isawaitable(left):
        return
    if app_loop.stopped:
        if iscoroutine(left):
            left.close()  # NOTE: it will never run; said below, not by a "never awaited".
        _log_close_not_run(stream, "async close() inside its close()")
    else:
        try:
            _run_close(app_loop, _closed_for(request, lambda: left), stream, request, last, unsent)
        except RuntimeError:
            # NOTE: not run where the loop closed meanwhile: closed, no "never awaited". One
            # begun is its task's (a loop stopped under it): closed here, its finally ran in
            # this thread.
            if iscoroutine(left) and getcoroutinestate(left) == CORO_CREATED:
                left.close()
            raise


def _log_close_not_run(stream: Any, close: str) -> None:
    # NOTE: it was dropped with no word (the server closed the body after wsgi.close(), at its
    # shutdown). Not run on a loop of its own: what it closes may be bound to the app loop.
    logger.warning(
        "the %s of a streamed response's %s was not run: the app loop had stopped (this WSGI "
        "app was closed before the server closed the response)",
        close,
        f"{type(stream).__module__}.{type(stream).__qualname__}",
    )
