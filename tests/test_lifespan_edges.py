"""Startup and shutdown at their edges: messages out of order, steps that end the process."""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from conftest import in_colour
from drive import drive_lifespan

from microweb import App, Request
from microweb.testing import TestClient


def test_an_asgi_shutdown_without_a_startup_runs_no_shutdown_step() -> None:
    events: list[str] = []
    app = App()

    @app.on_shutdown
    def shutdown() -> None:
        events.append("shutdown")

    sent = asyncio.run(drive_lifespan(app.as_asgi(), ["shutdown"]))
    assert [m["type"] for m in sent] == ["lifespan.shutdown.complete"]
    assert events == []


def test_an_asgi_second_shutdown_runs_the_shutdown_steps_once() -> None:
    events: list[str] = []
    app = App()

    @app.on_shutdown
    def shutdown() -> None:
        events.append("shutdown")

    asgi = app.as_asgi()

    async def serve() -> None:
        await drive_lifespan(asgi, ["startup", "shutdown"])
        sent = await drive_lifespan(asgi, ["shutdown"])
        assert [m["type"] for m in sent] == ["lifespan.shutdown.complete"]

    asyncio.run(serve())
    assert events == ["shutdown"]


@pytest.mark.parametrize("steps", [["shutdown"], ["startup", "shutdown", "shutdown"]])
def test_an_asgi_shutdown_without_a_startup_leaves_a_wsgi_callable_serving(
    steps: list[str],
) -> None:
    app = App()
    wsgi = app.as_wsgi()
    try:
        asgi = app.as_asgi()

        async def serve() -> None:
            if steps[0] == "startup":
                await drive_lifespan(asgi, steps[:2])
            await drive_lifespan(asgi, ["shutdown"])

        asyncio.run(serve())
        # NOTE: the WSGI callable's startup ran: a hook registered now would never run in it.
        with pytest.raises(RuntimeError, match="would never run"):
            app.on_startup(lambda: None)
    finally:
        wsgi.close()


def record_lifespans(app: App, events: list[str]) -> None:
    """Register a sync and an async lifespan that record their entry and exit."""

    @app.lifespan
    @contextmanager
    def sync_held(app: App) -> Iterator[None]:
        events.append("enter sync")
        yield
        events.append("exit sync")

    @app.lifespan
    @asynccontextmanager
    async def async_held(app: App) -> AsyncIterator[None]:
        events.append("enter async")
        yield
        events.append("exit async")


def later_shutdown_steps(app: App, events: list[str]) -> None:
    """Register the steps after a failing shutdown hook: one more hook ("goodbye") and a
    plugin's ``close()`` ("pool closed"); the lifespans' exits come between them."""

    @app.on_shutdown
    async def goodbye() -> None:
        events.append("goodbye")

    class Pool:
        name = "pool"

        def close(self) -> None:
            events.append("pool closed")

    app.install(Pool())


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_startup_hook_that_ends_the_process_exits_the_lifespans_entered(
    interface: str, colour: str, ending: type[BaseException]
) -> None:
    # NOTE: a GeneratorExit went out as it was, thrown into the startup's generator by the
    # driver (an async def hook's) or raised out of it (a def one's): the lifespans entered
    # were left to their collection; a shutdown hook's skipped the later steps (review341).
    events: list[str] = []
    app = App()
    record_lifespans(app, events)

    def configure() -> None:
        raise ending("no configuration")

    app.on_startup(in_colour(colour, configure))

    # NOTE: raised out of as_wsgi(), and out of the lifespan call (the client raises it).
    with pytest.raises(ending, match="no configuration"), TestClient(app, interface=interface):
        pass
    assert events == ["enter sync", "enter async", "exit async", "exit sync"]


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_shutdown_hook_that_ends_the_process_lets_the_later_steps_run(
    interface: str, colour: str, ending: type[BaseException]
) -> None:
    events: list[str] = []
    app = App()
    record_lifespans(app, events)

    def flush() -> None:
        raise ending("stop now")

    app.on_shutdown(in_colour(colour, flush))
    later_shutdown_steps(app, events)
    client = TestClient(app, interface=interface)
    client.__enter__()
    events.clear()
    with pytest.raises(ending, match="stop now"):
        client.close()
    assert events == ["goodbye", "exit async", "exit sync", "pool closed"]


def _first_lifespan(app: App, events: list[str]) -> None:
    """Give ``app`` a lifespan, entered first, that records its enter and exit in ``events``."""

    @app.lifespan
    @contextmanager
    def first(app: App) -> Iterator[None]:
        events.append("enter first")
        yield
        events.append("exit first")


def _ended_by_a_lifespan(
    app: App, interface: str, ending: type[BaseException], events: list[str]
) -> None:
    """Start and stop ``app`` under ``interface``: a lifespan raises ``ending`` ("the lifespan
    ends it") out of it, once the first was entered."""
    client = TestClient(app, interface=interface)
    with pytest.raises(ending, match="the lifespan ends it"), client:
        assert events == ["enter first"]


@pytest.mark.parametrize("where", ["enter", "exit"])
def test_a_sync_lifespans_generator_exit_exits_the_others_first(interface: str, where: str) -> None:
    # NOTE: raised in its enter, it went out of the startup as it was, and the lifespan
    # entered before it was left to its collection (review341).
    events: list[str] = []
    app = App()
    _first_lifespan(app, events)

    @app.lifespan
    @contextmanager
    def ending_held(app: App) -> Iterator[None]:
        if where == "enter":
            raise GeneratorExit("the lifespan ends it")
        yield
        raise GeneratorExit("the lifespan ends it")

    _ended_by_a_lifespan(app, interface, GeneratorExit, events)
    assert events == ["enter first", "exit first"]


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt, GeneratorExit])
@pytest.mark.parametrize("where", ["enter", "exit"])
def test_an_async_lifespan_that_ends_the_process_leaves_the_event_loop_running(
    interface: str, ending: type[BaseException], where: str
) -> None:
    # NOTE: raised in its exit, it left the task that holds the lifespan, and with it the event
    # loop (the app loop, or the server's): "Event loop is closed", the later steps unrun.
    events: list[str] = []
    app = App()
    _first_lifespan(app, events)

    @app.lifespan
    @asynccontextmanager
    async def ending_held(app: App) -> AsyncIterator[None]:
        if where == "enter":
            raise ending("the lifespan ends it")
        yield
        raise ending("the lifespan ends it")

    @app.on_shutdown
    def goodbye() -> None:
        events.append("goodbye")

    _ended_by_a_lifespan(app, interface, ending, events)
    if where == "enter":
        assert events == ["enter first", "exit first"]
    else:
        assert events == ["enter first", "goodbye", "exit first"]


def test_a_wsgi_close_from_another_thread_resets_a_sync_lifespan() -> None:
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="unset")
    events: list[str] = []
    app = App()

    @app.lifespan
    @contextmanager
    def held(app: App) -> Iterator[None]:
        token = current.set("open")
        yield
        current.reset(token)
        events.append(current.get())

    wsgi = app.as_wsgi()
    failed: list[BaseException] = []

    def close() -> None:
        try:
            wsgi.close()
        except BaseException as exc:  # collected and checked in the test thread
            failed.append(exc)

    closer = threading.Thread(target=close)
    closer.start()
    closer.join(10)
    assert failed == []
    assert events == ["unset"]


def test_what_startup_steps_set_in_context_variables_stays_out_of_requests(
    interface: str, colour: str
) -> None:
    # NOTE: under a WSGI TestClient, requests ran in the thread that ran the startup, and saw
    # what it set, where neither ASGI nor Waitress's threads do.
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current", default="unset")
    app = App()

    def start() -> None:
        current.set("startup")

    app.on_startup(in_colour(colour, start))

    @app.lifespan
    @contextmanager
    def held(app: App) -> Iterator[None]:
        current.set("lifespan")
        yield

    @app.get("/")
    def index(request: Request) -> str:
        return current.get()

    @app.get("/async")
    async def index_async(request: Request) -> str:
        return current.get()

    with TestClient(app, interface=interface) as client:
        assert [client.get("/").text, client.get("/async").text] == ["unset", "unset"]
    assert current.get() == "unset"


def test_a_hooks_own_cancellation_fails_that_step_in_both_colours(
    interface: str, colour: str
) -> None:
    # NOTE: a def hook's (an asyncio.run() of a call that was cancelled) was let out: at
    # startup the lifespans entered were not exited, at shutdown the later steps were skipped,
    # where an async def hook's failed that step alone.
    if interface == "asgi" and colour == "async" and sys.version_info < (3, 11):
        pytest.skip(
            "Python 3.10 counts no task's cancellations: taken for the server's (lifespan.md)"
        )
    events: list[str] = []
    app = App()
    record_lifespans(app, events)

    def flush() -> None:
        raise asyncio.CancelledError("flush cancelled")

    app.on_shutdown(in_colour(colour, flush))

    @app.on_shutdown
    def goodbye() -> None:
        events.append("goodbye")

    client = TestClient(app, interface=interface)
    client.__enter__()
    events.clear()
    with pytest.raises(RuntimeError, match=r"1 of 4 shutdown steps failed: .*flush"):
        client.close()
    assert events == ["goodbye", "exit async", "exit sync"]

    starting = App()
    record_lifespans(starting, events)
    starting.on_startup(in_colour(colour, flush))
    events.clear()
    with (
        pytest.raises(Exception, match="flush cancelled"),
        TestClient(starting, interface=interface),
    ):
        pass
    assert events == ["enter sync", "enter async", "exit async", "exit sync"]


def _asgi_lifespan(app: App, steps: tuple[str, ...], sent: list[dict[str, Any]]) -> None:
    """Run ``app``'s ASGI lifespan call, given a message for each of ``steps`` (``startup``,
    ``shutdown``); each message it sends goes to ``sent``, and what it raises out."""
    asgi = app.as_asgi()

    async def lifespan() -> None:
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        for step in steps:
            inbox.put_nowait({"type": f"lifespan.{step}"})

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        await asgi(scope, inbox.get, send)

    asyncio.run(lifespan())


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_startup_hooks_generator_exit_says_the_asgi_startup_failed(colour: str) -> None:
    # NOTE: carried out as a SystemExit is, it went out of the lifespan call with no
    # lifespan.startup.failed: Uvicorn took it for an app without the lifespan protocol and
    # served (review170's, for a GeneratorExit) (review341).
    app = App()

    def configure() -> None:
        raise GeneratorExit("no configuration")

    app.on_startup(in_colour(colour, configure))
    sent: list[dict[str, Any]] = []
    with pytest.raises(GeneratorExit, match="no configuration"):
        _asgi_lifespan(app, ("startup",), sent)
    assert [message["type"] for message in sent] == ["lifespan.startup.failed"]
    assert "no configuration" in sent[0]["message"]


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_shutdown_hook_that_ends_the_process_says_the_asgi_shutdown_failed(
    ending: type[BaseException],
) -> None:
    # NOTE: let out alone, Uvicorn took it for an app without the lifespan protocol ("ASGI
    # 'lifespan' protocol appears unsupported", its traceback under --lifespan on), as a
    # startup's was before review170.
    app = App()

    @app.on_shutdown
    def flush() -> None:
        raise ending("stop now")

    sent: list[dict[str, Any]] = []
    with pytest.raises(ending, match="stop now"):
        _asgi_lifespan(app, ("startup", "shutdown"), sent)
    assert [message["type"] for message in sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.failed",
    ]
    assert "stop now" in sent[1]["message"]


class _EntersPastTheEnd:
    """A sync lifespan, a class, whose ``__enter__`` (or ``__exit__``) calls ``next()`` past
    the end of an iterator."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        if self.where == "enter":
            next(iter(()))

    def __exit__(self, *exc_info: object) -> None:
        if self.where == "exit":
            next(iter(()))


def _past_the_end() -> None:
    next(iter(()))


@pytest.mark.parametrize("step", ["hook", "lifespan"])
def test_a_sync_startup_steps_stop_iteration_is_sync_app_codes_runtime_error(
    interface: str, step: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: it left the core's startup generator as Python's "generator raised
    # StopIteration", where every other sync app code's is this RuntimeError.
    app = App()
    if step == "hook":
        app.on_startup(_past_the_end)
    else:
        app.lifespan(lambda app: _EntersPastTheEnd("enter"))
    with pytest.raises(RuntimeError) as failed, TestClient(app, interface=interface):
        pass
    assert "sync app code raised StopIteration" in str(failed.value)
    assert "generator raised StopIteration" not in caplog.text


@pytest.mark.parametrize("step", ["hook", "lifespan"])
def test_a_sync_shutdown_steps_stop_iteration_is_sync_app_codes_runtime_error(
    interface: str, step: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: logged as a bare StopIteration, and named "StopIteration: " in the ShutdownError.
    app = App()
    if step == "hook":
        app.on_shutdown(_past_the_end)
    else:
        app.lifespan(lambda app: _EntersPastTheEnd("exit"))
    client = TestClient(app, interface=interface)
    client.__enter__()
    with pytest.raises(RuntimeError, match=r"RuntimeError: sync app code raised StopIteration"):
        client.close()
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [(type(error), str(error)) for error in logged] == [
        (RuntimeError, "sync app code raised StopIteration")
    ]
    assert type(logged[0].__cause__) is StopIteration
