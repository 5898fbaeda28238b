"""The colour bridges: the app loop (WSGI), the worker pool (ASGI) and what crosses them.

Behaviour through both interfaces and both colours first, then the bridges' own edges
(``AppLoop``, ``run_in_pool``, ``WorkerPool``), which no request can reach on purpose.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import inspect
import logging
import os
import queue
import sys
import threading
import time
import traceback
import warnings
import weakref
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import CancelledError
from typing import Any

import pytest
from conftest import MakeClient, in_colour, sleep_until_cancelled
from drive import asgi_get, http_scope, requests_left_in_cycles

from microweb import App, ClientDisconnect, Request, Response, _app_loop, _file_threads
from microweb._app_loop import AppLoop, LoopStopped, run_on_loop
from microweb._concurrency import make_pool
from microweb._file_threads import ThreadSpooler, run_blocking
from microweb._pool import WorkerPool
from microweb._pool_futures import run_in_pool

USER: contextvars.ContextVar[str] = contextvars.ContextVar("USER")
SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("SEEN")


class Boom(Exception):
    """An error only the handler raises."""


def test_context_variables_reach_the_handler_in_either_colour(
    make_client: MakeClient, colour: str
) -> None:
    app = App()

    @app.middleware
    def who(request: Request) -> Iterator[None]:
        USER.set("ada")
        yield

    def handler(request: Request) -> dict[str, Any]:
        return {"user": USER.get("nobody"), "thread": threading.current_thread().name}

    app.get("/")(in_colour(colour, handler))
    assert make_client(app).get("/").json()["user"] == "ada"


@pytest.mark.parametrize("stream_colour", ["sync", "async"])
def test_what_a_handler_sets_is_seen_after_it_in_either_colour(
    make_client: MakeClient, colour: str, stream_colour: str
) -> None:
    # NOTE: a def handler under ASGI runs in a copy of the request's context, in the pool:
    # what it set was lost to the flows after it, its error handler and its stream, where
    # under WSGI (one thread) all of them saw it. Under WSGI an async handler's values cross
    # back from the app loop (the wsgi-async cases).
    app = App()

    @app.middleware
    def report(request: Request) -> Iterator[None]:
        response: Any = yield
        response.headers["x-seen"] = SEEN.get("unset")

    def handler(request: Request) -> Response:
        SEEN.set(f"by the {colour} handler, request {request.query['n']}")
        if request.query.get("fail"):
            raise Boom("after setting it")

        def chunks() -> Iterator[str]:
            yield SEEN.get("unset")

        async def achunks() -> AsyncIterator[str]:
            yield SEEN.get("unset")

        return Response.stream(chunks() if stream_colour == "sync" else achunks())

    @app.error_handler(Boom)
    def on_boom(request: Request, exc: Boom) -> str:
        return SEEN.get("unset")

    app.get("/")(in_colour(colour, handler))
    client = make_client(app)
    response = client.get("/?n=1")
    assert (response.text, response.headers["x-seen"]) == (
        f"by the {colour} handler, request 1",
    ) * 2
    assert client.get("/?n=2&fail=1").text == f"by the {colour} handler, request 2"


def _assert_each_request_resets(
    make_client: MakeClient, app: App, colour: str, current: contextvars.ContextVar[str]
) -> None:
    """Serve a handler of ``colour`` that answers ``current``; the app's flow sets it from the
    query with a token, puts it in ``x-after`` and, once reset, in ``x-reset``."""

    def handler(request: Request) -> str:
        return current.get()

    app.get("/")(in_colour(colour, handler))
    client = make_client(app)
    for user in ("ada", "grace"):
        response = client.get(f"/?user={user}")
        assert (response.status_code, response.text) == (200, user)
        assert (response.headers["x-after"], response.headers["x-reset"]) == (user, "unset")


def test_an_async_flow_resets_with_the_token_it_made_before_yield(
    make_client: MakeClient, interface: str, colour: str
) -> None:
    # NOTE: under WSGI each step of an async flow ran in a task of its own, in a copy of the
    # server thread's context: reset(token) after yield answered 500, "created in a different
    # Context" (a tracing span's detach does it). Under ASGI the request's task runs them all.
    if interface == "wsgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 cannot run a task in a given context (sync-and-async.md)")
    # NOTE: a variable of this test's own: the WSGI client's thread keeps what others set.
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current")
    app = App()

    @app.middleware
    async def who(request: Request) -> AsyncIterator[None]:
        token = current.set(request.query["user"])
        try:
            response: Any = yield
            response.headers["x-after"] = current.get()
        finally:
            current.reset(token)
        response.headers["x-reset"] = current.get("unset")

    _assert_each_request_resets(make_client, app, colour, current)


def test_a_def_flow_resets_with_the_token_it_made_before_async_code_ran(
    make_client: MakeClient, interface: str, colour: str
) -> None:
    # NOTE: under WSGI the request's own context began at its first awaitable: a def flow
    # outside it set in the server thread's context and reset in that other one, a 500
    # ("created in a different Context"), whatever the handler's colour.
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current")
    app = App()

    @app.middleware
    def who(request: Request) -> Iterator[None]:
        token = current.set(request.query["user"])
        try:
            response: Any = yield
            response.headers["x-after"] = current.get()
        finally:
            current.reset(token)
        response.headers["x-reset"] = current.get("unset")

    @app.middleware
    async def inside(request: Request) -> AsyncIterator[None]:
        yield

    _assert_each_request_resets(make_client, app, colour, current)


def test_what_a_handler_set_before_its_own_cancellation_is_seen_by_its_error_handler(
    make_client: MakeClient, interface: str, colour: str
) -> None:
    # NOTE: a CancelledError of the handler's own is an error of its request like others, as
    # no server cancelled it: under WSGI what an async handler set before it was lost (taken
    # for the app loop's cut), where ASGI and a def handler kept it.
    if interface == "asgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (serving.md)")
    app = App()

    def handler(request: Request) -> str:
        SEEN.set(f"by the {colour} handler")
        raise asyncio.CancelledError

    @app.error_handler(Exception)
    def on_error(request: Request, exc: Exception) -> str:
        return SEEN.get("unset")

    app.get("/")(in_colour(colour, handler))
    assert make_client(app).get("/").text == f"by the {colour} handler"


def test_an_error_keeps_its_type_and_traceback_across_the_bridge(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    caught: list[BaseException] = []

    def handler(request: Request) -> str:
        raise Boom("from the handler")

    @app.error_handler(Boom)
    def on_boom(request: Request, exc: Boom) -> str:
        caught.append(exc)
        return "handled"

    app.get("/")(in_colour(colour, handler))
    assert make_client(app).get("/").text == "handled"
    (exc,) = caught
    assert type(exc) is Boom
    frames = [frame.name for frame in traceback.extract_tb(exc.__traceback__)]
    assert "handler" in frames


def test_an_async_handler_that_really_waits(make_client: MakeClient) -> None:
    app = App()

    @app.get("/")
    async def handler(request: Request) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        later = loop.create_future()
        loop.call_later(0.02, later.set_result, "woken")
        await asyncio.sleep(0.01)
        woken = await asyncio.wait_for(later, 5)
        return {"woken": woken, "task": asyncio.current_task() is not None}

    assert make_client(app).get("/").json() == {"woken": "woken", "task": True}


# -- AppLoop (WSGI) ----------------------------------------------------------------------------


@pytest.fixture
def app_loop() -> Iterator[AppLoop]:
    loop = AppLoop()
    yield loop
    loop.stop()


def test_app_loop_says_whether_it_was_stopped(app_loop: AppLoop) -> None:
    assert not app_loop.stopped
    app_loop.run(asyncio.sleep(0))
    assert not app_loop.stopped
    app_loop.stop()
    assert app_loop.stopped and not app_loop.started


class _Held:
    """An object a request holds in a ContextVar."""


HELD: contextvars.ContextVar[_Held | None] = contextvars.ContextVar("held_bridges", default=None)


def test_app_loop_keeps_nothing_of_the_request_that_started_it(app_loop: AppLoop) -> None:
    # NOTE: the loop's self-pipe reader copied the context new_event_loop() was called in:
    # the request that started the app loop kept its ContextVar values for the app's life.
    def request() -> weakref.ref[_Held]:
        held = _Held()
        HELD.set(held)
        app_loop.run(asyncio.sleep(0))
        return weakref.ref(held)

    kept = contextvars.copy_context().run(request)
    gc.collect()
    assert kept() is None


def test_app_loop_gives_back_the_result_and_the_context(app_loop: AppLoop) -> None:
    USER.set("grace")

    async def work() -> str:
        SEEN.set("on the loop")
        await asyncio.sleep(0.001)
        return f"{USER.get()} {threading.current_thread().name}"

    assert app_loop.run(work()) == "grace microweb-app-loop"
    assert SEEN.get() == "on the loop"


def test_app_loop_sets_back_what_a_coroutine_set_before_it_raised(app_loop: AppLoop) -> None:
    # NOTE: as a def handler that raises leaves it set in its thread, and an async one under
    # ASGI in the request's task: an error handler sees it under both interfaces.
    async def work() -> None:
        SEEN.set("half way")
        await asyncio.sleep(0)
        raise Boom("late")

    context = contextvars.Context()

    def in_fresh_context() -> None:
        with pytest.raises(Boom, match="late") as caught:
            app_loop.run(work())
        assert "work" in [frame.name for frame in traceback.extract_tb(caught.tb)]
        assert SEEN.get("unset") == "half way"

    context.run(in_fresh_context)


def test_app_loop_a_cancelled_coroutine_raises_cancelled_error(app_loop: AppLoop) -> None:
    async def work() -> None:
        future = asyncio.get_running_loop().create_future()
        future.cancel()
        await future

    with pytest.raises(CancelledError):
        app_loop.run(work())


def test_app_loop_serves_many_threads_at_once(app_loop: AppLoop) -> None:
    # NOTE: each call returns only once all eight are on the loop together, so calls served
    # one after another would time out. (It was timed, 0.35 s for eight sleeps of 0.05 s,
    # which a loaded 2-core CI machine can miss while the loop is right.)
    arrived: list[int] = []
    everyone = asyncio.Event()

    async def work(n: int) -> int:
        arrived.append(n)
        if len(arrived) == 8:
            everyone.set()
        await asyncio.wait_for(everyone.wait(), timeout=10)
        return n

    results: dict[int, int] = {}

    def call(n: int) -> None:
        results[n] = app_loop.run(work(n))

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert results == {n: n for n in range(8)}


def test_app_loop_refuses_to_wait_for_itself(app_loop: AppLoop) -> None:
    async def inner() -> None:
        return None

    async def outer() -> None:
        coroutine = inner()
        try:
            app_loop.run(coroutine)
        finally:
            coroutine.close()

    with pytest.raises(RuntimeError, match="cannot wait for itself"):
        app_loop.run(outer())


def test_app_loop_refusing_to_wait_for_itself_closes_the_coroutine(app_loop: AppLoop) -> None:
    # NOTE: an async shutdown hook of a close() called by an async handler was left to a
    # "coroutine was never awaited" warning.
    async def inner() -> None:
        return None

    async def outer() -> str:
        coroutine = inner()
        with pytest.raises(RuntimeError, match="cannot wait for itself"):
            app_loop.run(coroutine)
        return inspect.getcoroutinestate(coroutine)

    assert app_loop.run(outer()) == inspect.CORO_CLOSED


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_stopped_app_loop_refuses_and_closes_the_coroutine(app_loop: AppLoop) -> None:
    async def work() -> None:
        return None

    app_loop.run(work())
    app_loop.stop()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="stopped"):
            app_loop.run(work())
        gc.collect()


def _waiting_on(app_loop: AppLoop) -> tuple[threading.Thread, list[BaseException], list[str]]:
    """Start a thread that waits on a coroutine of the app loop that sleeps for a minute.

    Returns the thread (once the coroutine runs), the errors its call raised, and what the
    coroutine's ``finally`` recorded.
    """
    started = threading.Event()
    errors: list[BaseException] = []
    cleaned: list[str] = []

    async def forever() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            cleaned.append("finally")

    def wait() -> None:
        try:
            app_loop.run(forever())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    assert started.wait(5)
    return thread, errors, cleaned


def test_a_thread_waiting_on_the_app_loop_is_released_when_it_stops(app_loop: AppLoop) -> None:
    thread, errors, cleaned = _waiting_on(app_loop)
    app_loop.stop()  # NOTE: as app.close() does at exit, with a request still in flight.
    thread.join(5)
    assert not thread.is_alive()
    assert [type(exc) for exc in errors] == [LoopStopped]
    assert isinstance(errors[0], RuntimeError) and "stopped" in str(errors[0])
    assert cleaned == ["finally"]  # NOTE: the coroutine was cancelled, not left pending.


def test_cut_waiting_releases_waiting_threads_and_keeps_the_loop(app_loop: AppLoop) -> None:
    async def background() -> asyncio.Task[None]:
        # NOTE: a task of the app's own (a startup hook's), which no thread waits on.
        return asyncio.get_running_loop().create_task(asyncio.sleep(60))

    task = app_loop.run(background())
    thread, errors, cleaned = _waiting_on(app_loop)
    app_loop.cut_waiting()  # NOTE: as Waitress's stop does at the end of its grace period.
    thread.join(5)
    assert not thread.is_alive()
    assert [type(exc) for exc in errors] == [LoopStopped]
    assert cleaned == ["finally"]
    # NOTE: the loop runs on for the shutdown hooks; the app's own task is left to stop().
    assert app_loop.run(asyncio.sleep(0, "still running")) == "still running"
    assert not task.done()


def test_cut_waiting_releases_a_call_whose_task_has_not_started_yet(app_loop: AppLoop) -> None:
    # NOTE: a task cancelled before its first step never runs its coroutine's body: the hop's
    # lock was never released, and its thread waited until the loop stopped.
    loop = app_loop.loop
    hop = _app_loop.Hop(asyncio.sleep(60))

    def start_then_cut() -> None:
        hop.start()
        _app_loop._cancel_hops(loop)

    loop.call_soon_threadsafe(start_then_cut)
    assert hop.done.acquire(timeout=5)
    assert isinstance(hop.error, asyncio.CancelledError) and hop.cut


def test_a_call_after_cut_waiting_raises_its_own_cancellation(app_loop: AppLoop) -> None:
    # NOTE: a shutdown hook that cancels a task and awaits it runs after the cut: its own
    # CancelledError is an error of the hook, not LoopStopped, which ended the whole shutdown.
    async def awaits_a_cancelled_task() -> None:
        task = asyncio.get_running_loop().create_task(asyncio.sleep(60))
        await asyncio.sleep(0)
        task.cancel()
        await task

    assert app_loop.run(asyncio.sleep(0, "started")) == "started"
    app_loop.cut_waiting()
    with pytest.raises(CancelledError):
        app_loop.run(awaits_a_cancelled_task())


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_stop_from_a_coroutine_on_the_app_loop_ends_and_closes_it(app_loop: AppLoop) -> None:
    loop = app_loop.loop
    (thread,) = [t for t in threading.enumerate() if t.name == "microweb-app-loop"]

    async def stop_from_inside() -> str:
        app_loop.stop()  # NOTE: it cannot join its own thread; it must not try.
        return "stopped"

    assert app_loop.run(stop_from_inside()) == "stopped"
    thread.join(5)
    assert not thread.is_alive()
    assert loop.is_closed()  # NOTE: else its selector and self-pipe stay open until GC.
    with pytest.raises(RuntimeError, match="stopped"):
        app_loop.run(stop_from_inside())


def _destroyed_pending(caplog: pytest.LogCaptureFixture) -> list[str]:
    gc.collect()
    return [r.getMessage() for r in caplog.records if "destroyed but it is pending" in r.message]


def test_stop_cancels_a_pending_task_and_runs_its_cleanup(
    app_loop: AppLoop, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []

    async def spawn() -> None:
        # NOTE: fire and forget: only the loop knows of the task.
        asyncio.get_running_loop().create_task(sleep_until_cancelled(events))
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        app_loop.run(spawn())
        app_loop.stop()
        assert events == ["cancelled", "finally"]
        assert _destroyed_pending(caplog) == []


def test_a_call_handed_over_while_the_stopped_loop_cleans_up_never_starts(
    app_loop: AppLoop, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a thread that took the loop before stop() hands its call over while the tasks
    # left on it get their CLEANUP_WAIT: its task was made after they were cancelled, ran on
    # uncancelled, and was destroyed pending as the loop closed ("Task was destroyed but it
    # is pending! ... _run_hop()", review380). It is refused as a call after the app's close.
    cleaning, ran = threading.Event(), []

    async def slow_cleanup() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cleaning.set()
            await asyncio.sleep(0.3)

    async def spawn() -> None:
        asyncio.get_running_loop().create_task(slow_cleanup())
        await asyncio.sleep(0)

    async def late() -> None:
        ran.append(True)
        await asyncio.sleep(3600)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        app_loop.run(spawn())
        loop = app_loop.loop
        stopping = threading.Thread(target=app_loop.stop)
        stopping.start()
        assert cleaning.wait(5)
        with pytest.raises(_app_loop.AppClosed):
            run_on_loop(loop, late())
        stopping.join(5)
        assert ran == []
        assert _destroyed_pending(caplog) == []


def test_stop_closes_an_async_generator_left_suspended(app_loop: AppLoop) -> None:
    events: list[str] = []

    async def numbers() -> AsyncIterator[int]:
        try:
            yield 1
            yield 2
        finally:
            events.append("closed")

    held: list[AsyncIterator[int]] = []

    async def first() -> int:
        # NOTE: first iterated on the loop, so the loop knows of it (its asyncgen hooks).
        held.append(numbers())
        return await held[0].__anext__()

    assert app_loop.run(first()) == 1
    app_loop.stop()
    assert events == ["closed"]


def test_stop_returns_in_time_when_a_task_ignores_cancellation(
    app_loop: AppLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_app_loop, "CLEANUP_WAIT", 0.2)
    cancels: list[int] = []

    async def stubborn() -> None:
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                cancels.append(1)

    async def spawn() -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(stubborn())

    task = app_loop.run(spawn())
    time.sleep(0.05)
    started = time.monotonic()
    app_loop.stop()
    assert time.monotonic() - started < 5
    assert cancels == [1]
    assert not [t for t in threading.enumerate() if t.name == "microweb-app-loop"]
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # NOTE: it refused to end.


def test_a_task_that_raises_as_it_is_cancelled_is_reported(
    app_loop: AppLoop, caplog: pytest.LogCaptureFixture
) -> None:
    async def failing() -> None:
        try:
            await asyncio.sleep(3600)
        finally:
            raise Boom("in cleanup")

    async def spawn() -> None:
        asyncio.get_running_loop().create_task(failing())
        await asyncio.sleep(0)

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        app_loop.run(spawn())
        app_loop.stop()
    (record,) = [r for r in caplog.records if r.name == "asyncio"]
    assert "while its event loop stopped" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], Boom)


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_call_posted_to_a_loop_that_stops_first_is_released_and_closed() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)

    async def work() -> None:
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="stopped"):
            run_on_loop(loop, work())
        gc.collect()
    loop.close()


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_run_on_a_closed_loop_refuses_and_closes_the_coroutine() -> None:
    loop = asyncio.new_event_loop()
    loop.close()

    async def work() -> None:
        return None

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="closed"):
            run_on_loop(loop, work())
        gc.collect()


# -- run_in_pool (ASGI) ------------------------------------------------------------------------


def test_run_in_pool_sees_the_context_and_keeps_the_error() -> None:
    pool = make_pool(2)

    def work(suffix: str) -> str:
        return f"{USER.get()}{suffix} in {threading.current_thread().name}"

    def fail() -> None:
        raise Boom("in the pool")

    async def scenario() -> None:
        USER.set("linus")
        assert (await run_in_pool(pool, work, "!")).startswith("linus! in microweb-worker-")
        with pytest.raises(Boom, match="in the pool") as caught:
            await run_in_pool(pool, fail)
        assert "fail" in [frame.name for frame in traceback.extract_tb(caught.tb)]

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()


def test_run_in_pool_skips_a_call_cancelled_before_it_started() -> None:
    pool = make_pool(1)
    release = threading.Event()
    ran: list[str] = []

    async def scenario() -> None:
        busy = asyncio.ensure_future(run_in_pool(pool, release.wait, 5))
        queued = asyncio.ensure_future(run_in_pool(pool, ran.append, "queued"))
        await asyncio.sleep(0.01)
        queued.cancel()
        release.set()
        assert await busy is True
        await asyncio.sleep(0.05)

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()
    assert ran == []


def test_run_in_pool_drops_the_result_of_a_call_cancelled_while_it_ran(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pool = make_pool(1)
    started, release = threading.Event(), threading.Event()

    def call() -> str:
        started.set()
        release.wait(5)
        return "late"

    async def scenario() -> None:
        running = asyncio.ensure_future(run_in_pool(pool, call))
        await asyncio.sleep(0)
        assert await asyncio.to_thread(started.wait, 5)
        running.cancel()
        release.set()
        await asyncio.sleep(0.1)
        assert running.cancelled()

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()
    assert "InvalidStateError" not in caplog.text, caplog.text


def test_run_in_pool_a_stop_iteration_is_not_lost() -> None:
    pool = make_pool(1)

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="StopIteration") as caught:
            await asyncio.wait_for(run_in_pool(pool, next, iter(())), 5)
        assert isinstance(caught.value.__cause__, StopIteration)

    try:
        asyncio.run(scenario())
    finally:
        pool.shutdown()


def test_run_in_pool_after_the_loop_closed_drops_the_result_quietly() -> None:
    pool = make_pool(1)
    release = threading.Event()

    async def scenario() -> None:
        run_in_pool(pool, release.wait, 5)

    loop = asyncio.new_event_loop()
    loop.run_until_complete(scenario())
    loop.close()
    release.set()
    pool.shutdown()  # NOTE: the worker did not die on the closed loop: it takes the sentinel.


def test_run_in_pool_refuses_once_the_pool_is_shut_down() -> None:
    pool = make_pool(1)
    pool.shutdown()

    async def scenario() -> None:
        with pytest.raises(RuntimeError, match="shut down"):
            await run_in_pool(pool, int)

    asyncio.run(scenario())


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_an_asgi_app_dropped_without_a_lifespan_shutdown_leaves_no_thread() -> None:
    # NOTE: its pool's idle threads waited on the queue for ever: some 150 of them were left
    # at the end of this suite, one pool per App called without a lifespan (flake68).
    app = App()
    seen: list[threading.Thread] = []

    @app.get("/")
    def handler(request: Request) -> str:
        seen.append(threading.current_thread())
        return "ok"

    assert asyncio.run(asgi_get(app.as_asgi(), "/")) == (200, b"ok")
    del app, handler
    gc.collect()
    seen[0].join(timeout=10)
    assert not seen[0].is_alive()


# -- run_blocking ------------------------------------------------------------------------------


def test_run_blocking_returns_once_a_thread_runs_the_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_file_threads, "START_WAIT", 5.0)  # NOTE: a slow machine waits longer.
    started, release = threading.Event(), threading.Event()

    def blocking(value: str) -> str:
        started.set()
        release.wait(5)
        return f"{value} {USER.get()}"

    async def scenario() -> tuple[bool, str]:
        USER.set("ada")
        await run_blocking(int)  # NOTE: a thread now waits idle, as in a long upload.
        pending = run_blocking(blocking, "written by")
        # NOTE: nothing awaited yet, and this thread kept the GIL: the call runs all the same.
        running = started.is_set()
        release.set()
        return running, await pending

    assert asyncio.run(scenario()) == (True, "written by ada")


@pytest.fixture
def one_file_thread(monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkerPool]:
    """The file threads as one thread, shut down after the test."""
    pool = WorkerPool(1, "files")
    monkeypatch.setattr(_file_threads, "FILE_THREADS", pool)
    yield pool
    pool.shutdown()


def test_run_blocking_waits_for_no_busy_thread(
    one_file_thread: WorkerPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = one_file_thread
    monkeypatch.setattr(_file_threads, "START_WAIT", 5.0)
    release = threading.Event()
    busy = pool.submit(release.wait, 5)

    async def scenario() -> tuple[float, list[int]]:
        started = time.perf_counter()
        queued = run_blocking(divmod, 7, 2)
        waited = time.perf_counter() - started
        release.set()
        return waited, list(await queued)

    waited, result = asyncio.run(scenario())
    assert waited < 1.0 and result == [3, 1]  # NOTE: queued behind the busy thread, not awaited.
    assert busy.result(5) is True


def test_run_blocking_keeps_the_error() -> None:
    async def scenario() -> None:
        await run_blocking(os.write, -1, b"x")

    with pytest.raises(OSError):
        asyncio.run(scenario())


# -- ThreadSpooler ----------------------------------------------------------------------------


class GatedWrites:
    """A spooler's write function that records each batch; batches named in ``gated`` wait."""

    def __init__(self, *gated: str, fail: str = "") -> None:
        self.gates = {name: threading.Event() for name in gated}
        self.fail = fail
        self.events: list[str] = []

    def __call__(self, steps: list[str], ready: Any) -> None:
        name = steps[0]
        self.events.append(f"start {name}")
        ready()
        if name == self.fail:
            raise OSError(28, "No space left on device")
        if name in self.gates:
            assert self.gates[name].wait(5)
        self.events.append(f"end {name}")


def in_thread(fn: Any, *args: Any) -> threading.Thread:
    thread = threading.Thread(target=fn, args=args, daemon=True)
    thread.start()
    return thread


def test_spooler_writes_in_order_and_one_batch_while_the_caller_goes_on() -> None:
    writes = GatedWrites("one")
    spooler = ThreadSpooler(writes)
    spooler.put(["one"])  # NOTE: returns while "one" is still being written.
    assert writes.events == ["start one"]
    second = in_thread(spooler.put, ["two"])
    second.join(0.2)
    assert second.is_alive()  # NOTE: two batches at most: "two" waits for "one" to be written.
    writes.gates["one"].set()
    second.join(5)
    spooler.end()
    assert writes.events == ["start one", "end one", "start two", "end two"]


def test_spooler_raises_a_write_error_once_and_writes_nothing_after() -> None:
    writes = GatedWrites(fail="one")
    spooler = ThreadSpooler(writes)
    raised = []
    # NOTE: the error comes out of the first call after the write failed, whichever it is.
    calls = [lambda: spooler.put(["one"]), lambda: spooler.put(["two"]), spooler.end]
    for call in calls:
        try:
            call()
        except OSError as exc:
            raised.append(str(exc))
    assert raised == ["[Errno 28] No space left on device"]
    assert writes.events == ["start one"]


def test_spooler_holds_no_file_thread_between_batches(one_file_thread: WorkerPool) -> None:
    slow, other = GatedWrites(), GatedWrites()
    slow_upload, other_upload = ThreadSpooler(slow), ThreadSpooler(other)
    slow_upload.put(["first"])  # NOTE: its next batch is slow to come: the thread is free.
    finished = in_thread(lambda: (other_upload.put(["a"]), other_upload.end()))
    finished.join(5)
    assert not finished.is_alive() and other.events == ["start a", "end a"]
    slow_upload.put(["second"])
    slow_upload.end()
    assert slow.events == ["start first", "end first", "start second", "end second"]


def test_spooler_takes_turns_with_other_uploads_when_the_file_threads_are_busy(
    one_file_thread: WorkerPool,
) -> None:
    writes = GatedWrites("a1")
    fast, other = ThreadSpooler(writes), ThreadSpooler(writes)
    fast.put(["a1"])  # NOTE: the only file thread writes "a1" and waits for its gate.
    waiting = [in_thread(other.put, ["b1"]), in_thread(fast.put, ["a2"])]
    while not (other._batches and fast._batches):
        time.sleep(0.001)  # NOTE: "a2" waits behind "a1", as with a client faster than disk.
    writes.gates["a1"].set()
    for thread in waiting:
        thread.join(5)
    fast.end()
    other.end()
    # NOTE: a fast upload does not keep the thread to the end while another waits for one.
    assert writes.events == ["start a1", "end a1", "start b1", "end b1", "start a2", "end a2"]


def test_spooler_ends_without_a_file_thread_when_none_writes(one_file_thread: WorkerPool) -> None:
    pool = one_file_thread
    gates = [threading.Event(), threading.Event()]
    spooler = ThreadSpooler(GatedWrites())
    pool.call(gates[0].wait, 5)  # NOTE: the only file thread is busy with another upload.
    ended = in_thread(spooler.end)
    ended.join(2)
    gates[0].set()
    assert not ended.is_alive()  # NOTE: nothing was put: no file thread to wait for.
    pool.call(gates[1].wait, 5)
    asyncio.run(asyncio.wait_for(spooler.aend(), 2))
    gates[1].set()


def test_spooler_without_a_file_thread_raises_and_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = WorkerPool(1, "files")
    pool.shutdown()
    monkeypatch.setattr(_file_threads, "FILE_THREADS", pool)
    writes = GatedWrites()
    spooler = ThreadSpooler(writes)
    with pytest.raises(RuntimeError, match="shut down"):
        spooler.put(["one"])
    ending = in_thread(spooler.end)
    ending.join(5)
    assert not ending.is_alive() and writes.events == []  # NOTE: no wait for a thread to come.


def test_aput_awaits_a_slow_write_and_the_loop_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_file_threads, "START_WAIT", 0.001)
    writes = GatedWrites("one")
    spooler = ThreadSpooler(writes)

    async def scenario() -> int:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.005)

        ticking = asyncio.create_task(ticker())
        await spooler.aput(["one"])
        asyncio.get_running_loop().call_later(0.2, writes.gates["one"].set)
        await spooler.aput(["two"])  # NOTE: waits for "one" to be written: 0.2 s.
        await spooler.aend()
        ticking.cancel()
        return ticks

    assert asyncio.run(scenario()) >= 10  # NOTE: the loop was not blocked meanwhile.
    assert writes.events == ["start one", "end one", "start two", "end two"]


def test_aput_cancelled_while_it_waits_leaves_the_writes_going(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_file_threads, "START_WAIT", 0.001)
    writes = GatedWrites("one")
    spooler = ThreadSpooler(writes)

    async def scenario() -> None:
        await spooler.aput(["one"])
        waiting = asyncio.create_task(spooler.aput(["two"]))
        await asyncio.sleep(0.05)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        writes.gates["one"].set()
        await spooler.aend()

    asyncio.run(scenario())
    assert writes.events == ["start one", "end one", "start two", "end two"]


# -- WorkerPool --------------------------------------------------------------------------------


def test_worker_pool_queues_nothing_when_no_thread_can_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pool = WorkerPool(2, "unstartable")

    def refuse(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    with pytest.raises(RuntimeError, match="can't start"):
        pool.call(int)
    assert not pool.waiting()  # NOTE: no call left behind for a thread that never came.
    monkeypatch.undo()
    done = threading.Event()
    assert pool.call(done.set) is True and done.wait(5)
    pool.shutdown()


def test_worker_pool_counts_no_idle_thread_after_queued_calls() -> None:
    pool = WorkerPool(1, "counted")
    gate = threading.Event()
    done = threading.Event()
    assert pool.call(gate.wait, 5) is True
    assert [pool.call(int) for _ in range(3)] == [False, False, False]
    gate.set()
    pool.call(done.set)
    assert done.wait(5)
    # NOTE: until the thread is back at the queue (a fixed 0.05 s was too short on a loaded
    # machine: the call was then queued and said False).
    deadline = time.monotonic() + 5
    while pool._idle != 1:
        assert time.monotonic() < deadline, "the thread did not come back to the queue"
        time.sleep(0.001)
    second_gate = threading.Event()
    assert pool.call(second_gate.wait, 5) is True  # NOTE: the idle thread takes it.
    assert pool.call(int) is False  # NOTE: and it is busy: this call waits in the queue.
    second_gate.set()
    pool.shutdown()


def test_worker_pool_is_bounded_and_runs_in_parallel() -> None:
    pool = WorkerPool(3, "bounded")
    gate = threading.Barrier(3, timeout=5)
    names: set[str] = set()

    def work() -> None:
        names.add(threading.current_thread().name)
        gate.wait()
        time.sleep(0.01)

    futures = [pool.submit(work) for _ in range(9)]
    for future in futures:
        future.result(5)
    pool.shutdown()
    assert names <= {"bounded-1", "bounded-2", "bounded-3"}
    assert len(names) == 3


def test_worker_pool_submit_gives_a_future() -> None:
    with WorkerPool(2) as pool:
        assert pool.submit(pow, 2, 10).result(5) == 1024
        with pytest.raises(ZeroDivisionError):
            pool.submit(divmod, 1, 0).result(5)
        assert list(pool.map(abs, [-1, -2])) == [1, 2]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(int)


def test_worker_pool_shutdown_waits_for_queued_work_or_cancels_it() -> None:
    pool = WorkerPool(1, "drained")
    release = threading.Event()
    first = pool.submit(release.wait, 5)
    second = pool.submit(int, "7")
    release.set()
    pool.shutdown(wait=True)
    assert first.result(0) is True and second.result(0) == 7
    assert not [t for t in threading.enumerate() if t.name.startswith("drained-")]

    pool = WorkerPool(1)
    release.clear()
    taken = threading.Event()

    def hold() -> bool:
        taken.set()
        return release.wait(5)

    busy = pool.submit(hold)
    queued = pool.submit(int, "7")
    # NOTE: the thread has taken the first call (a fixed 0.01 s could leave it queued, and
    # cancelled with the second).
    assert taken.wait(5)
    pool.shutdown(wait=False, cancel_futures=True)
    release.set()
    assert busy.result(5) is True
    assert queued.cancelled()


def test_worker_pool_call_says_whether_a_thread_takes_it_at_once() -> None:
    pool = WorkerPool(1, "one")
    release = threading.Event()
    assert pool.call(release.wait, 5) is True  # NOTE: a new thread.
    assert pool.call(release.wait, 5) is False  # NOTE: queued behind it.
    release.set()
    pool.shutdown()


def test_worker_pool_refuses_no_threads() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        WorkerPool(0)


def _wait_for(done: Any, what: str) -> None:
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def _started_calls(pool: WorkerPool, count: int, gate: threading.Event) -> list[bool]:
    """Hand ``pool`` ``count`` calls that wait for ``gate``; return what call() said, once all
    of them run."""
    started = threading.Semaphore(0)

    def held() -> None:
        started.release()
        gate.wait(5)

    taken = [pool.call(held) for _ in range(count)]
    for _ in range(count):
        assert started.acquire(timeout=5)
    return taken


def test_worker_pool_starts_threads_past_its_bound_for_stuck_calls_then_ends_them() -> None:
    # NOTE: the close threads' pool: with max_workers calls that never returned, every later
    # call waited in the queue for ever (review283).
    spilled: list[int] = []
    pool = WorkerPool(
        2, "spill", stuck_after=lambda: 0.0, most_workers=3, most_queued=1, on_spill=spilled.append
    )
    gate = threading.Event()
    try:
        assert _started_calls(pool, 2, gate) == [True, True]
        # NOTE: both have run longer than 0 s: a third thread starts, past the 2.
        assert _started_calls(pool, 1, gate) == [True]
        assert spilled == [2]
        assert pool.call(int) is False  # NOTE: at most_workers, it waits...
        with pytest.raises(queue.Full):
            pool.call(int)  # NOTE: ...and most_queued wait already.
    finally:
        gate.set()
    _wait_for(lambda: len(pool._threads) == 2 and pool._idle == 2, "no thread ended")
    assert len({thread.name for thread in pool._threads}) == 2
    assert set(pool._began or ()) == set(pool._threads)
    pool.shutdown()


def test_worker_pool_spills_for_calls_queued_before_those_ahead_got_stuck() -> None:
    limit = [60.0]
    pool = WorkerPool(1, "spill", stuck_after=lambda: limit[0], most_workers=2)
    gate = threading.Event()
    ran = threading.Event()
    try:
        _started_calls(pool, 1, gate)
        assert pool.call(ran.set) is False
        pool.spill()  # NOTE: the running call is not stuck: nothing starts.
        assert not ran.wait(0.05)
        limit[0] = 0.0
        pool.spill()
        assert ran.wait(5)  # NOTE: while the first call still runs.
    finally:
        gate.set()
    _wait_for(lambda: len(pool._threads) == 1 and pool._idle == 1, "no thread ended")
    pool.shutdown()


def test_worker_pool_without_stuck_after_never_passes_its_bound() -> None:
    pool = WorkerPool(1, "bounded", most_workers=4, most_queued=1)
    gate = threading.Event()
    try:
        _started_calls(pool, 1, gate)
        time.sleep(0.01)
        assert [pool.call(int) for _ in range(3)] == [False, False, False]
        assert len(pool._threads) == 1
    finally:
        gate.set()
    pool.shutdown()


# -- a forked child (gunicorn --preload) --------------------------------------------------------


def _in_a_forked_child(work: Any) -> int:
    """Run ``work()`` in a forked child (it must finish within 10 s); return its exit status."""
    with warnings.catch_warnings():
        # NOTE: Python 3.12+ warns that forking a process with threads may deadlock: the case.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            done = threading.Event()
            answer: list[bool] = []
            thread = threading.Thread(target=lambda: (answer.append(work()), done.set()))
            thread.daemon = True
            thread.start()
            code = 0 if done.wait(10) and answer == [True] else 2
        finally:
            os._exit(code)
    for _ in range(200):
        finished, status = os.waitpid(pid, os.WNOHANG)
        if finished:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_a_worker_pool_used_before_a_fork_works_in_the_child() -> None:
    pool = WorkerPool(2, "fork-test")
    try:
        assert pool.submit(lambda: 1).result(timeout=5) == 1
        assert _in_a_forked_child(lambda: pool.submit(lambda: 2).result(timeout=5) == 2) == 0
    finally:
        pool.shutdown()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_an_app_loop_started_before_a_fork_works_in_the_child() -> None:
    async def answer() -> int:
        await asyncio.sleep(0)
        return 3

    app_loop = AppLoop()
    try:
        assert app_loop.run(answer()) == 3
        assert _in_a_forked_child(lambda: app_loop.run(answer()) == 3) == 0
    finally:
        app_loop.stop()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork() here")
def test_run_blocking_used_before_a_fork_works_in_the_child() -> None:
    async def twice() -> bool:
        return await run_blocking(lambda: 4) == 4

    assert asyncio.run(twice())
    assert _in_a_forked_child(lambda: asyncio.run(twice())) == 0


# -- a def handler under ASGI whose request is cancelled while it reads -----------------------


@pytest.mark.parametrize("read", ["read", "iter_bytes"])
def test_a_cancelled_request_frees_the_pool_thread_that_reads_its_body(read: str) -> None:
    # NOTE: ASGI only: a server may cancel a request's task (at shutdown, say) while receive()
    # still waits. The def handler's hop to receive() used to wait on, holding its thread.
    app = App()
    seen: list[BaseException] = []
    reading = threading.Event()

    @app.post("/")
    def upload(request: Request) -> str:
        reading.set()
        try:
            if read == "read":
                request.read()
            else:
                for _ in request.iter_bytes():
                    pass
        except BaseException as exc:
            seen.append(exc)
            raise
        return "read"

    async def main() -> None:
        asgi = app.as_asgi()
        headers = [(b"content-length", b"10")]
        first: list[Any] = [{"type": "http.request", "body": b"12345", "more_body": True}]

        async def receive() -> Any:
            if first:
                return first.pop()
            await asyncio.Event().wait()  # NOTE: the rest of the body never comes.

        async def send(message: Any) -> None:
            return None

        task = asyncio.create_task(asgi(http_scope("POST", "/", headers), receive, send))
        while not reading.is_set():
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert [type(exc) for exc in seen] == [ClientDisconnect]
    assert "the request ended before its body was read" in str(seen[0])


def test_after_a_cancel_the_handler_sees_the_client_gone() -> None:
    # NOTE: a def handler that polls is_disconnected() after its request's task was cancelled:
    # the request is over, and no receive() is left waiting (it said False, and left one).
    app = App()
    answers: list[bool] = []
    polling, cancelled = threading.Event(), threading.Event()

    @app.get("/")
    def poll(request: Request) -> str:
        answers.append(request.is_disconnected())
        polling.set()
        cancelled.wait(5)
        answers.append(request.is_disconnected())
        return "done"

    receives: list[int] = []

    async def main() -> None:
        asgi = app.as_asgi()

        async def receive() -> Any:
            receives.append(1)
            await asyncio.Event().wait()  # NOTE: the client stays; the server gives up.

        async def send(message: Any) -> None:
            return None

        task = asyncio.create_task(asgi(http_scope("GET", "/"), receive, send))
        while not polling.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled.set()
        for _ in range(100):
            if len(answers) == 2:
                break
            await asyncio.sleep(0.01)

    asyncio.run(main())
    assert answers == [False, True]
    assert len(receives) == 1


FORM_TYPE = b"application/x-www-form-urlencoded"
READS = {
    "read": Request.read,
    "iter_bytes": lambda request: list(request.iter_bytes()),
    "form": Request.form,
}


@pytest.mark.parametrize("read", list(READS))
@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_request_cancelled_before_its_handler_reads_the_body_frees_the_thread(read: str) -> None:
    # NOTE: the request's task is cancelled while the def handler works, before it first
    # touches the body: its read must not wait on receive() (which never answers here), and
    # the only thread of the pool must serve the next request.
    app = App(max_threads=1)
    seen: list[BaseException] = []
    working, cancelled = threading.Event(), threading.Event()

    @app.post("/")
    def upload(request: Request) -> str:
        working.set()
        cancelled.wait(5)
        try:
            READS[read](request)
        except BaseException as exc:
            seen.append(exc)
            raise
        return "read"

    @app.get("/next")
    def after(request: Request) -> str:
        return "served"

    async def main() -> list[Any]:
        asgi = app.as_asgi()
        headers = [(b"content-length", b"10"), (b"content-type", FORM_TYPE)]

        async def receive() -> Any:
            await asyncio.Event().wait()  # NOTE: the body never comes.

        async def send(message: Any) -> None:
            return None

        task = asyncio.create_task(asgi(http_scope("POST", "/", headers), receive, send))
        while not working.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        cancelled.set()
        sent: list[Any] = []

        async def no_body() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def keep(message: Any) -> None:
            sent.append(message)

        await asyncio.wait_for(asgi(http_scope("GET", "/next"), no_body, keep), 5)
        return sent

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NOTE: no coroutine left un-awaited.
        sent = asyncio.run(main())
        gc.collect()
    assert [type(exc) for exc in seen] == [ClientDisconnect]
    assert sent[1]["body"] == b"served"


# -- errors that cross a bridge leave no reference cycle ----------------------------------------


@pytest.mark.parametrize("cycle", [True, False], ids=["in-a-cycle", "freed"])
def test_requests_left_in_cycles_counts_a_request_in_a_cycle(
    interface: str, colour: str, cycle: bool
) -> None:
    # NOTE: the helper's own check: a handler that makes a cycle through its request is found
    # (what was frozen before the counted request, garbage or not, is not).
    app = App()

    def keeps_itself(request: Request) -> str:
        if cycle:
            request.state.me = request
        return "kept"

    app.get("/")(in_colour(colour, keeps_itself))
    assert requests_left_in_cycles(app, interface, "GET", "/") == int(cycle)


@pytest.mark.parametrize(
    ("path", "body"), [("/json", b'{"a": '), ("/boom", b"")], ids=["bad-json-400", "error-500"]
)
def test_a_handler_s_error_leaves_no_cycle_holding_the_request(
    interface: str, colour: str, path: str, body: bytes
) -> None:
    # NOTE: a def handler under ASGI raises in a pool thread: its frame, its error and the
    # future that carries the error back made a cycle, and a 400 for a 10 MiB body of invalid
    # JSON kept the body until a full collection (Uvicorn grew by 500 MB in 160 requests).
    app = App()
    app.post("/json")(in_colour(colour, lambda request: request.json()))

    def boom(request: Request) -> None:
        raise Boom("no")

    app.post("/boom")(in_colour(colour, boom))
    kept = requests_left_in_cycles(app, interface, "POST", path, body, "application/json")
    assert kept == 0


@pytest.mark.parametrize("read", ["read", "form"])
def test_a_body_cut_short_leaves_no_cycle_holding_the_request(
    interface: str, colour: str, read: str
) -> None:
    # NOTE: a client that left mid-body made cycles under Uvicorn: the ClientDisconnect's
    # traceback held the frame that raised it again, and the request kept the error of its
    # read; a form's builder and its part cut off referred to each other. The file received so
    # far waited for a full collection: 100 uploads left 1 MB in, 100 MB more each time.
    app = App()
    if colour == "sync":
        app.post("/")(lambda request: getattr(request, read)())
    else:

        @app.post("/")
        async def handler(request: Request) -> Any:
            return await getattr(request, "a" + read)()

    boundary = "cut"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a"\r\n\r\n'
    ).encode() + b"x" * 5000
    content_type = f"multipart/form-data; boundary={boundary}"
    kept = requests_left_in_cycles(app, interface, "POST", "/", body, content_type, cut=True)
    assert kept == 0


def test_a_stream_that_fails_midway_leaves_no_cycle_holding_the_request(
    interface: str, colour: str
) -> None:
    # NOTE: under ASGI the task that sent the stream, the frames its error passed (the pool
    # thread's call for a def generator, whose caller kept the call's arguments) and the
    # future that carried it made cycles: 75 objects per request left to the collector for an
    # async generator, 111 for a def one.
    app = App()

    def chunks() -> Iterator[bytes]:
        yield b"first"
        raise Boom("midway")

    async def achunks() -> AsyncIterator[bytes]:
        yield b"first"
        raise Boom("midway")

    @app.get("/stream")
    def stream(request: Request) -> Response:
        return Response.stream(chunks() if colour == "sync" else achunks())

    assert requests_left_in_cycles(app, interface, "GET", "/stream") == 0


def test_a_stream_its_client_left_leaves_no_cycle_holding_the_request(
    interface: str, colour: str
) -> None:
    # NOTE: under ASGI the server's cancellation of the sending was raised again from a frame
    # that held it, which its traceback then held: a cycle, with the frames of the sending
    # (and the request) below. Each client that left a stream or an SSE page kept its request
    # until a full collection (33 objects for an async generator, 41 for a def one). Under
    # WSGI the stream runs to its end.
    app = App()

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            time.sleep(0.001)
            yield b"chunk"

    async def achunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            await asyncio.sleep(0.001)
            yield b"chunk"

    @app.get("/stream")
    def stream(request: Request) -> Response:
        return Response.stream(chunks() if colour == "sync" else achunks())

    assert requests_left_in_cycles(app, interface, "GET", "/stream", cut=True) == 0


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_handler_the_server_cut_off_leaves_no_cycle_holding_the_request() -> None:
    # NOTE: the server's cancellation, raised again from the frame that held it: a cycle with
    # its traceback, whose frames held the request (35 objects a request cut off).
    app = App()

    @app.get("/")
    async def waits(request: Request) -> None:
        await asyncio.sleep(10)

    assert requests_left_in_cycles(app, "asgi", "GET", "/", cancel=True) == 0


def test_app_loop_lets_the_caller_go_once_its_task_has_left_run_in(
    app_loop: AppLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the caller enters run_in as soon as it is let go; let go while the task's step was
    # still in run_in, it raised "cannot enter context: ... is already entered" now and then
    # (mutation review384: the release made at once in _run_hop()).
    entered: list[bool] = []

    class CheckedDone:
        def __init__(self, run_in: contextvars.Context | None) -> None:
            self.lock, self.run_in = threading.Lock(), run_in
            self.lock.acquire()

        def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
            return self.lock.acquire(blocking, timeout)

        def release(self) -> None:
            if self.run_in is not None:
                try:
                    self.run_in.run(lambda: None)
                except RuntimeError:
                    entered.append(True)  # NOTE: still entered by the task's step.
                else:
                    entered.append(False)
            self.lock.release()

    class CheckedHop(_app_loop.Hop):
        def __init__(self, awaitable: Any, run_in: contextvars.Context | None = None) -> None:
            super().__init__(awaitable, run_in)
            self.done = CheckedDone(run_in)  # type: ignore[assignment]

    monkeypatch.setattr(_app_loop, "Hop", CheckedHop)
    steps = contextvars.copy_context()

    async def work() -> str:
        SEEN.set("in steps")
        await asyncio.sleep(0)
        return "done"

    for _ in range(3):
        assert app_loop.run(work(), steps) == "done"
    assert steps[SEEN] == "in steps"
    assert entered == [False, False, False], entered


@pytest.mark.parametrize("closed", [False, True], ids=["stopping", "closed"])
def test_a_call_the_loop_never_began_is_cut_off_or_after_the_close(closed: bool) -> None:
    # NOTE: handed to the app loop as it stops (stopped, not yet closed), a call is cut off
    # (LoopStopped); closed by the time its thread looks, it came after the app's close
    # (AppClosed: "reached async code after the app was closed") (mutations review384: the
    # call taken as begun, or the closed loop not asked).
    class Loop(asyncio.SelectorEventLoop):
        def call_soon_threadsafe(self, *args: Any, **kwargs: Any) -> Any:
            handle = super().call_soon_threadsafe(*args, **kwargs)
            if closed:
                self.close()  # NOTE: after the hand-over, before the thread looks.
            return handle

    app_loop = AppLoop()
    loop = Loop()  # NOTE: never run: as one that has stopped.
    app_loop._loop = loop
    try:
        with pytest.raises(LoopStopped) as raised:
            app_loop.run(asyncio.sleep(0))
    finally:
        loop.close()
    assert (type(raised.value) is _app_loop.AppClosed) is closed, raised.value
