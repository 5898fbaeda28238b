"""Closing what an app handed over to be sent (a stream, the iterator it gave, its events),
by whatever it has: ``aclose()``, or else ``close()``, awaited where it is ``async def``."""

from __future__ import annotations

from inspect import isawaitable
from typing import Any


def close_of(stream: object) -> None:
    """Call ``stream.close()`` if it has one."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


async def aclose_of(stream: object) -> None:
    """Await ``stream.aclose()``, or else call its ``close()`` and await what that returns (an
    ``async def close()``), on the loop this runs on."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
    elif (close := getattr(stream, "close", None)) is not None and isawaitable(returned := close()):
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
