"""A stream made ahead of its sending, across threads, holds at most ``AHEAD`` chunks and, past
its first, about ``AHEAD_BYTES`` bytes: large chunks no longer make it hold ``AHEAD`` of them
(16 MiB for 1 MiB chunks).

Both bridges: an ``async`` stream under WSGI (its task on the app loop, ahead of the server's
thread, ``iterate_on_loop``) and a ``def`` one under ASGI (its pool thread, ahead of the loop,
``iterate_in_pool``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from microweb._app_loop import AppLoop
from microweb._concurrency import make_pool
from microweb._in_pool import iterate_in_pool
from microweb._stream_ahead import AHEAD, AHEAD_BYTES, iterate_on_loop

MiB = 1024 * 1024


def _settled(made: list[int]) -> int:
    """Wait until ``made[0]`` stops growing (the stream waits for room); return it."""
    last, still = -1, 0
    while still < 5:
        time.sleep(0.02)
        still = still + 1 if made[0] == last else 0
        last = made[0]
    return last


def _async_chunks(made: list[int], size: int) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[bytes]:
        while made[0] < 1000:
            made[0] += 1
            yield b"x" * size

    return chunks()


def _sync_chunks(made: list[int], size: int) -> Iterator[bytes]:
    while made[0] < 1000:
        made[0] += 1
        yield b"x" * size


def _ahead_under_wsgi(size: int) -> int:
    """How many chunks of ``size`` bytes an async stream makes past the one taken."""
    app_loop = AppLoop()
    made = [0]
    try:
        chunks = iterate_on_loop(_async_chunks(made, size), app_loop)
        assert len(next(chunks)) == size
        ahead = _settled(made) - 1
        chunks.close()
    finally:
        app_loop.stop()
    return ahead


def _ahead_under_asgi(size: int) -> int:
    """How many chunks of ``size`` bytes a def stream makes past the one taken."""
    made = [0]

    async def main() -> int:
        chunks = iterate_in_pool(_sync_chunks(made, size), make_pool(2))
        assert len(await anext(chunks)) == size
        ahead = await asyncio.to_thread(_settled, made)
        await chunks.aclose()
        return ahead - 1

    return asyncio.run(main())


BRIDGES: dict[str, Callable[[int], int]] = {"wsgi": _ahead_under_wsgi, "asgi": _ahead_under_asgi}


@pytest.mark.parametrize("bridge", BRIDGES)
def test_large_chunks_are_made_ahead_up_to_the_byte_bound(bridge: str) -> None:
    ahead = BRIDGES[bridge](MiB)
    # NOTE: it makes one more while it holds less than AHEAD_BYTES: one chunk over at most.
    assert ahead * MiB <= AHEAD_BYTES + MiB, ahead
    assert ahead >= 1  # NOTE: still ahead: the next chunk is ready as this one goes.


@pytest.mark.parametrize("bridge", BRIDGES)
def test_small_chunks_are_made_ahead_up_to_the_chunk_bound(bridge: str) -> None:
    assert BRIDGES[bridge](100) == AHEAD
