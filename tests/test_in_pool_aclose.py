"""``iterate_in_pool``'s ``aclose()`` while an ``__anext__`` waits for the stream's first item,
its thread not begun yet (every worker of the pool busy).

The thread, told to stop before its first step, closes the stream and makes no item: the
waiting ``__anext__`` was woken by none, and waited for ever, its request with it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

from microweb._concurrency import make_pool
from microweb._in_pool import iterate_in_pool


def _chunks(began: list[str]) -> Iterator[bytes]:
    began.append("began")
    yield b"x"


def test_an_anext_waiting_while_aclose_runs_before_the_thread_began_ends() -> None:
    began: list[str] = []
    release = threading.Event()

    async def main() -> None:
        pool = make_pool(1)
        pool.call(release.wait)  # NOTE: the pool's one worker is busy until released.
        stream = iterate_in_pool(_chunks(began), pool)
        waiting = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)  # NOTE: it waits: its thread is queued behind the busy one.
        assert not waiting.done()
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)  # NOTE: aclose() told the thread to stop, and waits for it.
        release.set()
        done, _ = await asyncio.wait((closing,), timeout=5)
        assert done == {closing}
        # NOTE: the bound is a guard only: woken, it ends in a step or two of the loop.
        done, _ = await asyncio.wait((waiting,), timeout=5)
        assert done == {waiting}
        assert isinstance(waiting.exception(), StopAsyncIteration)
        pool.shutdown()

    asyncio.run(main())
    assert began == []  # NOTE: stopped before its first step, as the stream never began.
