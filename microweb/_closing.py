"""Closing what an app handed over to be sent (a stream, the iterator it gave, its events),
by whatever it has: ``aclose()``, or else ``close()``, awaited where it is ``async def``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from inspect import isawaitable
from typing import Any

from ._routing import is_async_callable

InThread = Callable[[Callable[[], object]], Awaitable[object]]
# NOTE: how async code runs a sync close(): in a thread, so that a blocking one (a cursor's,
# a socket's) stalls no event loop. Set by _concurrency (this module is sans-IO); unset, the
# close runs inline.
_in_thread: InThread | None = None


def close_sync_in(in_thread: InThread) -> None:
    """Run the sync ``close()`` that ``aclose_of()`` calls through ``in_thread``."""
    global _in_thread
    _in_thread = in_thread


def close_of(stream: object) -> None:
    """Call ``stream.close()`` if it has one."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


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


def close_both(iterator: Any, stream: Any) -> None:
    """Close ``iterator``, the one ``stream`` gave, then ``stream`` where it is another object,
    even when the first close fails."""
    try:
        close_of(iterator)
    finally:
        if stream is not iterator:
            close_of(stream)


async def aclose_both(iterator: Any, stream: Any) -> None:
    """``close_both()`` for an async stream (``aclose_of()`` each)."""
    try:
        await aclose_of(iterator)
    finally:
        if stream is not iterator:
            await aclose_of(stream)
