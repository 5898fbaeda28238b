"""A stream's close whose task is cancelled before its first step (all the loop's tasks
cancelled at once, as a loop's shutdown does) is neither left unawaited nor lost.

The close of a ``def`` stream under ASGI (``iterate_in_pool``) runs in a task of its own
(``through_one_cancellation()``). A task cancelled before its first step never runs its
coroutine: the close it was given warned "coroutine '_Pinned.stop' was never awaited", and the
stream's thread, never told to stop, held its worker.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from microweb._concurrency import make_pool
from microweb._file_threads import READS_PER_CALL, aiter_file_read
from microweb._in_pool import iterate_in_pool
from microweb._unawaited import _UNAWAITED, run_unawaited, through_one_cancellation

# NOTE: the collections here are of what each test makes (conftest.young_heap).
pytestmark = pytest.mark.usefixtures("young_heap")


def _chunks(closed: threading.Event) -> Iterator[bytes]:
    try:
        while True:
            yield b"x"
    finally:
        closed.set()


def _cancel_the_others() -> None:
    for task in asyncio.all_tasks():
        if task is not asyncio.current_task():
            task.cancel()


def _never_awaited(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if "never awaited" in str(w.message)]


def test_a_def_stream_closed_in_a_task_cancelled_before_its_first_step() -> None:
    closed = threading.Event()

    async def main() -> None:
        stream = iterate_in_pool(_chunks(closed), make_pool(2))
        assert await stream.__anext__() == b"x"
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)  # NOTE: aclose() ran: its close's task is made, not begun.
        _cancel_the_others()
        await asyncio.wait((closing,))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert _never_awaited(caught) == []
    # NOTE: the thread was told to stop all the same: it closed the stream.
    assert closed.wait(5)


def test_any_close_given_through_one_cancellation_is_closed_if_never_begun() -> None:
    began: list[bool] = []

    async def close() -> None:
        began.append(True)

    async def main() -> None:
        closing = asyncio.ensure_future(through_one_cancellation(close()))
        await asyncio.sleep(0)
        _cancel_the_others()
        await asyncio.wait((closing,))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert _never_awaited(caught) == []
    assert began == []


class _ClosedAsync:
    """A sync stream whose close() returns its async close; ``endless`` or of three items."""

    def __init__(self, events: list[str], endless: bool) -> None:
        self.events, self.endless = events, endless

    def __iter__(self) -> Iterator[bytes]:
        return itertools.repeat(b"a") if self.endless else iter([b"a", b"b", b"c"])

    def close(self) -> Any:
        self.events.append("close()")
        return self._aclose()

    async def _aclose(self) -> None:
        await asyncio.sleep(0)
        self.events.append("async close")


@pytest.mark.parametrize("endless", [True, False], ids=["closed-after", "ended-before"])
def test_the_async_close_of_a_def_stream_runs_though_its_closer_never_began(
    endless: bool,
) -> None:
    events: list[str] = []

    async def main() -> None:
        stream = iterate_in_pool(_ClosedAsync(events, endless), make_pool(2))
        assert await stream.__anext__() == b"a"
        if not endless:
            # NOTE: the thread made the three items, then closed the stream: its close's end
            # was handed to the loop before aclose().
            while not events:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        _cancel_the_others()
        await asyncio.wait((closing,))
        for _ in range(100):
            if "async close" in events:
                break
            await asyncio.sleep(0.02)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        gc.collect()
    assert _never_awaited(caught) == []
    assert events == ["close()", "async close"]


def test_a_file_read_closed_in_a_task_cancelled_before_its_first_step_closes_its_chunks() -> None:
    # NOTE: a file's read under ASGI (aiter_file_read) closes its chunks in that task too:
    # never begun, the chunks were closed only when they were let go (collected, in whichever
    # thread), the file held open until then.
    closed = threading.Event()
    chunks = _chunks(closed)

    async def main() -> None:
        stream = aiter_file_read(chunks, make_pool(2))
        assert await stream.__anext__() == b"x"  # NOTE: the next batch's read is under way.
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        _cancel_the_others()
        await asyncio.wait((closing,))

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
    assert _never_awaited(caught) == []
    assert closed.wait(5)  # NOTE: the chunks are still held here: closed, not collected.


def test_a_file_read_closed_in_a_task_cancelled_before_its_first_step_waits_for_the_read(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the read of the next batch is under way in a pool thread as the close, never begun,
    # closes the chunks in a file thread: it waits for that read to end. Closed during it, the
    # generator raised "generator already executing" (logged), and stayed open.
    closed, reading, go = threading.Event(), threading.Event(), threading.Event()

    def chunks() -> Iterator[bytes]:
        try:
            for _ in range(READS_PER_CALL):
                yield b"x"
            reading.set()
            go.wait(5)
            while True:
                yield b"x"
        finally:
            closed.set()

    held = chunks()

    async def main() -> None:
        stream = aiter_file_read(held, make_pool(2))
        assert await stream.__anext__() == b"x"
        while not reading.is_set():
            await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        _cancel_the_others()
        await asyncio.wait((closing,))
        await asyncio.sleep(0.2)  # NOTE: the close has reached its file thread.
        go.set()

    caplog.set_level(logging.WARNING)
    asyncio.run(main())
    assert closed.wait(2)  # NOTE: the chunks are still held here: closed, not collected.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


class _ClosedLate:
    """A sync stream whose close() waits for ``release``, then returns an async close that
    waits for ever: its loop closes first."""

    def __init__(self, release: threading.Event, events: list[str]) -> None:
        self.release, self.events = release, events

    def __iter__(self) -> Iterator[bytes]:
        return itertools.repeat(b"a")

    def close(self) -> Any:
        self.release.wait(5)
        return self._aclose()

    async def _aclose(self) -> None:
        try:
            await asyncio.get_running_loop().create_future()
        finally:
            self.events.append("async close closed")


def test_a_loop_closed_before_a_streams_close_ends_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: asyncio.run()'s teardown cancels the tasks, then closes the async generators and
    # the loop: an async close that a def stream's close() returned by then, given up on
    # (run in a task nobody awaits), was destroyed pending ("Task was destroyed but it is
    # pending!", naming no request), and its closing, outside its task, raised "Exception
    # ignored ... was created in a different Context".
    release, events = threading.Event(), []
    unraisable: list[Any] = []
    pool = make_pool(2)

    async def held() -> Any:
        try:
            yield
        finally:
            # NOTE: in the teardown (shutdown_asyncgens): the close returns now, and its
            # thread hands the rest to the loop before this ends.
            release.set()
            pool.shutdown(wait=True)

    async def main() -> None:
        kept = held()
        await kept.__anext__()
        stream = iterate_in_pool(_ClosedLate(release, events), pool)
        assert await stream.__anext__() == b"a"
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        _cancel_the_others()
        await asyncio.wait((closing,))

    async def another() -> None:
        # NOTE: the next close nobody awaits lets go of those whose loop has closed.
        run_unawaited(asyncio.sleep(0), None)
        await asyncio.sleep(0)

    caplog.set_level(logging.WARNING)
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            asyncio.run(main())
            asyncio.run(another())
            # NOTE: closed as it is let go, not when a collection finds it (it is in a cycle
            # through its loop's future).
            let_go = list(events)
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert let_go == ["async close closed"]
    assert unraisable == []
    assert _never_awaited(caught) == []
    said = [r.getMessage() for r in caplog.records]
    assert not [m for m in said if "Task was destroyed" in m]
    [_] = [m for m in said if "its event loop closed before the close ended" in m]
    assert events == ["async close closed"]
    assert not [task for task in _UNAWAITED if task.get_loop().is_closed()]


async def _stuck_then(ending: str) -> None:
    try:
        await asyncio.get_running_loop().create_future()
    finally:
        if ending == "raises":
            raise ValueError("cleanup failed")
        await asyncio.sleep(0)  # NOTE: awaits again as it is closed: "ignored GeneratorExit".


@pytest.mark.parametrize("ending", ["raises", "awaits"])
def test_a_kept_close_whose_loop_closed_fails_as_it_is_let_go_is_logged(
    ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the next close nobody awaits closes the kept ones whose loop closed: what their
    # cleanup raised then came out of that close's run_unawaited(), into a request that had
    # nothing to do with it (review336).
    loop = asyncio.new_event_loop()

    async def first() -> None:
        run_unawaited(_stuck_then(ending), None)
        await asyncio.sleep(0)

    async def another() -> None:
        run_unawaited(asyncio.sleep(0), None)
        await asyncio.sleep(0)

    caplog.set_level(logging.WARNING)
    unraisable: list[Any] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        try:
            loop.run_until_complete(first())
        finally:
            loop.close()
        asyncio.run(another())
        gc.collect()
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
    [failed] = [r for r in caplog.records if r.exc_info is not None]
    assert "error while closing a streamed response" in failed.getMessage()
    assert not [task for task in _UNAWAITED if task.get_loop().is_closed()]


def _shrinking(closed: threading.Event, fail: threading.Event) -> Iterator[bytes]:
    try:
        yield from [b"x"] * 8  # NOTE: the first batch (READS_PER_CALL); the next read fails.
        fail.wait(5)
        raise OSError("the file shrank")
    finally:
        closed.set()


@pytest.mark.parametrize("when", ["failed before", "failing after"])
def test_a_file_reads_error_is_taken_when_its_close_never_began(
    when: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: _close_read() takes the error of the read under way, which is no one's; its close
    # never begun, the read was left untaken, and asyncio logged "Future exception was never
    # retrieved" with no word of whose (review336).
    closed, fail = threading.Event(), threading.Event()
    chunks = _shrinking(closed, fail)

    async def main() -> None:
        stream = aiter_file_read(chunks, make_pool(2))
        assert await stream.__anext__() == b"x"  # NOTE: the next batch's read is under way.
        if when == "failed before":
            fail.set()
            await asyncio.sleep(0.1)  # NOTE: it has failed.
        closing = asyncio.ensure_future(stream.aclose())
        await asyncio.sleep(0)
        _cancel_the_others()
        await asyncio.wait((closing,))
        fail.set()
        assert closed.wait(5)
        await asyncio.sleep(0.1)  # NOTE: its error has reached the loop.

    caplog.set_level(logging.ERROR)
    asyncio.run(main())
    gc.collect()
    assert not [r for r in caplog.records if "never retrieved" in r.getMessage()]


class _AddsAsLookedAt:
    """A kept close whose loop, asked for, has another close kept meanwhile: as another
    thread's loop (a WSGI app loop beside an ASGI server's) keeps one while this one looks."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop

    def get_loop(self) -> asyncio.AbstractEventLoop:
        _UNAWAITED[_AddsAsLookedAt(self.loop)] = None  # type: ignore[index]
        return self.loop


def test_closes_kept_by_another_thread_meanwhile_do_not_break_the_keeping() -> None:
    # NOTE: the closes nobody awaits are kept in one module-wide collection for every loop
    # and thread; looked through for those of closed loops, it changed size as another thread
    # kept one: "changed size during iteration" out of that close (review336).
    async def main() -> None:
        looked_at = _AddsAsLookedAt(asyncio.get_running_loop())
        _UNAWAITED[looked_at] = None  # type: ignore[index]
        try:
            run_unawaited(asyncio.sleep(0), None)
            await asyncio.sleep(0.01)
        finally:
            for kept in [k for k in _UNAWAITED if isinstance(k, _AddsAsLookedAt)]:
                del _UNAWAITED[kept]

    asyncio.run(main())


_KEPT_AT_EXIT = """
import asyncio, atexit, logging, threading
events = []
atexit.register(lambda: print("events", events, flush=True))  # NOTE: runs last.
from test_stream_close_unstarted import _ClosedLate, _cancel_the_others
from microweb._concurrency import make_pool
from microweb._in_pool import iterate_in_pool

logging.basicConfig()
release = threading.Event()
pool = make_pool(2)

async def held():
    try:
        yield
    finally:
        release.set()
        pool.shutdown(wait=True)

async def main():
    kept = held()
    await kept.__anext__()
    stream = iterate_in_pool(_ClosedLate(release, events), pool)
    assert await stream.__anext__() == b"a"
    closing = asyncio.ensure_future(stream.aclose())
    await asyncio.sleep(0)
    _cancel_the_others()
    await asyncio.wait((closing,))

asyncio.run(main())
"""


def test_a_close_kept_for_a_loop_closed_is_let_go_of_at_the_exit() -> None:
    # NOTE: no close kept after it to let go of it: the interpreter's exit destroyed it
    # pending ("Task was destroyed but it is pending!", naming no request) and closed its
    # coroutine outside its task ("different Context") (review345).
    tests = Path(__file__).parent
    done = subprocess.run(
        [sys.executable, "-c", _KEPT_AT_EXIT],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tests.parent), str(tests)])},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Task was destroyed" not in done.stderr, done.stderr
    assert "Exception ignored" not in done.stderr, done.stderr
    assert done.stderr.count("its event loop closed before the close ended") == 1, done.stderr
    assert done.stdout == "events ['async close closed']\n", done.stdout
