"""Closing what an app handed over to be sent (a stream, the iterator it gave, its events),
by whatever it has: ``aclose()``, or else ``close()``, awaited where it is ``async def``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Any

from ._routing import is_async_callable

InThread = Callable[[Callable[[], object]], Awaitable[object]]
# NOTE: how async code runs a sync close(): in a thread, so that a blocking one (a cursor's,
# a socket's) stalls no event loop. Set by _close_threads (this module is sans-IO) as it is
# imported, with _concurrency (every driver's import, and a bridge's that hands calls to
# threads); unset, the close runs inline.
_in_thread: InThread | None = None


def close_sync_in(in_thread: InThread) -> None:
    """Run the sync ``close()`` that ``aclose_of()`` calls through ``in_thread``."""
    global _in_thread
    _in_thread = in_thread


def close_of(stream: object) -> Awaitable[object] | None:
    """Call ``stream.close()`` if it has one; return what is left to await: the coroutine of an
    ``async def close()``, for the caller to run where it can (a driver: on its loop)."""
    close = getattr(stream, "close", None)
    if close is None:
        return None
    returned = close()
    # NOTE: dropped, an async def close() never ran ("never awaited"), and its stream stayed
    # open: that of a sync stream inside gzip's, SSE's or a declared length's.
    return returned if isawaitable(returned) else None


async def aclose_of(stream: object) -> None:
    """Await ``stream.aclose()``, or else its ``close()``: an ``async def close()`` on the loop
    this runs on, a sync one in a thread (as the ASGI driver runs a stream's), awaiting what it
    returns."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
        return
    close = getattr(stream, "close", None)
    if close is None:
        return
    # NOTE: a sync close() of the stream inside gzip's, a declared length's or SSE's async
    # stream ran on the event loop, where the driver runs an unwrapped stream's in a thread.
    in_thread = _in_thread
    if in_thread is None or is_async_callable(close):
        returned = close()
    else:
        returned = await in_thread(close)
    if isawaitable(returned):
        await returned


def close_both(iterator: Any, stream: Any) -> Awaitable[object] | None:
    """Close ``iterator``, the one ``stream`` gave, then ``stream`` where it is another object,
    even when the first close fails; return what is left to await (see ``close_of()``)."""
    try:
        left = close_of(iterator)
    except BaseException as exc:
        if stream is iterator or (rest := close_of(stream)) is None:
            raise
        return _raising(rest, exc)
    if stream is iterator:
        return left
    if left is None:
        return close_of(stream)
    # NOTE: the stream's close after the iterator's, which awaits: its finally may use it.
    return _then(left, stream)


async def _then(left: Awaitable[object], stream: Any) -> None:
    try:
        await left
    finally:
        returned = close_of(stream)
        if returned is not None:
            await returned


async def _raising(rest: Awaitable[object], error: BaseException) -> None:
    """Await the stream's close, then raise the error of its iterator's."""
    try:
        await rest
    finally:
        try:
            raise error
        finally:
            del error  # NOTE: no cycle through this frame and the traceback.


async def aclose_both(iterator: Any, stream: Any) -> None:
    """``close_both()`` for an async stream (``aclose_of()`` each)."""
    try:
        await aclose_of(iterator)
    finally:
        if stream is not iterator:
            await aclose_of(stream)
