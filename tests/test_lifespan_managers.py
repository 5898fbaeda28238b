"""Lifespans: context managers held open from startup to shutdown (``app.lifespan``)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
from conftest import MakeClient
from drive import asgi_get, drive_lifespan

from microweb import App, Request
from microweb.testing import TestClient


def _register(app: App, kind: str, events: list[str], name: str = "held") -> None:
    """Register a lifespan of ``kind`` that records its entry and exit and yields a value."""

    def enter() -> dict[str, str]:
        events.append(f"enter {name}")
        return {name: f"{name} is open"}

    if kind == "asynccontextmanager":

        @asynccontextmanager
        async def held_async(app: App) -> AsyncIterator[dict[str, str]]:
            await asyncio.sleep(0)
            yield enter()
            await asyncio.sleep(0)
            events.append(f"exit {name}")

        app.lifespan(held_async)
    elif kind == "contextmanager":

        @contextmanager
        def held_sync(app: App) -> Iterator[dict[str, str]]:
            yield enter()
            events.append(f"exit {name}")

        app.lifespan(held_sync)
    elif kind == "async generator":

        async def held_agen(app: App) -> AsyncIterator[dict[str, str]]:
            yield enter()
            events.append(f"exit {name}")

        app.lifespan(held_agen)
    else:

        def held_gen(app: App) -> Iterator[dict[str, str]]:
            yield enter()
            events.append(f"exit {name}")

        app.lifespan(held_gen)


KINDS = ["asynccontextmanager", "contextmanager", "async generator", "generator"]


def _reads_state(app: App, name: str = "held") -> None:
    @app.get("/")
    def index(request: Request) -> str:
        return str(getattr(request.app.state, name))


# -- both interfaces ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_a_lifespan_is_entered_at_startup_and_exited_at_shutdown(
    make_client: MakeClient, kind: str
) -> None:
    events: list[str] = []
    app = App()
    _register(app, kind, events)
    _reads_state(app)
    client = make_client(app)
    with client:
        assert events == ["enter held"]
        assert client.get("/").text == "held is open"  # NOTE: the yielded mapping, on app.state
        assert events == ["enter held"]
    assert events == ["enter held", "exit held"]


def test_lifespans_start_with_the_hooks_and_exit_after_the_shutdown_hooks_reversed(
    make_client: MakeClient,
) -> None:
    events: list[str] = []
    app = App()

    class Plugin:
        name = "plugin"

        def close(self) -> None:
            events.append("plugin close")

    app.install(Plugin())
    app.on_startup(lambda: events.append("startup 1"))
    _register(app, "asynccontextmanager", events, "first")
    app.on_shutdown(lambda: events.append("shutdown 1"))
    app.on_startup(lambda: events.append("startup 2"))
    _register(app, "contextmanager", events, "second")
    app.on_shutdown(lambda: events.append("shutdown 2"))
    with make_client(app):
        assert events == ["startup 1", "enter first", "startup 2", "enter second"]
    assert events[4:] == [
        "shutdown 1",
        "shutdown 2",
        "exit second",
        "exit first",
        "plugin close",
    ]


def test_an_async_lifespan_runs_in_one_task_on_the_loop_of_the_async_handlers(
    make_client: MakeClient,
) -> None:
    seen: dict[str, Any] = {}
    app = App()

    @app.lifespan
    @asynccontextmanager
    async def held(app: App) -> AsyncIterator[None]:
        seen["enter task"] = asyncio.current_task()
        seen["loop"] = asyncio.get_running_loop()
        # NOTE: a task group must be exited in the task it was entered in.
        async with asyncio.TaskGroup() if hasattr(asyncio, "TaskGroup") else _nothing():
            yield
        seen["exit task"] = asyncio.current_task()

    @app.get("/")
    async def index(request: Request) -> str:
        return str(asyncio.get_running_loop() is seen["loop"])

    with make_client(app) as client:
        assert client.get("/").text == "True"
    assert seen["exit task"] is seen["enter task"]


def test_a_sync_lifespan_resets_at_shutdown_with_the_token_it_made_at_startup(
    make_client: MakeClient,
) -> None:
    # NOTE: under WSGI an async startup hook before it made the rest of the startup run in a
    # context of its own, and the shutdown in another: the reset raised ValueError ("created
    # in a different Context"), and the shutdown failed.
    current: contextvars.ContextVar[str] = contextvars.ContextVar("current")
    events: list[str] = []
    app = App()

    @app.on_startup
    async def first() -> None:
        await asyncio.sleep(0)

    @app.lifespan
    @contextmanager
    def held(app: App) -> Iterator[None]:
        token = current.set("open")
        yield
        current.reset(token)
        events.append(current.get("reset"))

    with make_client(app):
        pass
    assert events == ["reset"]


@asynccontextmanager
async def _nothing() -> AsyncIterator[None]:
    yield


def test_an_error_while_serving_is_not_thrown_into_the_lifespan(make_client: MakeClient) -> None:
    exits: list[tuple[Any, ...]] = []
    app = App()

    class Held:
        async def __aenter__(self) -> None:
            return None

        async def __aexit__(self, *exc_info: Any) -> None:
            exits.append(exc_info)

    app.lifespan(lambda app: Held())

    @app.get("/")
    def index(request: Request) -> str:
        raise RuntimeError("a bug in a handler")

    client = make_client(app)
    client.raise_server_exceptions = False
    with client:
        assert client.get("/").status_code == 500
    assert exits == [(None, None, None)]


def test_a_lifespan_that_fails_to_enter_fails_startup_and_exits_those_entered(
    make_client: MakeClient,
) -> None:
    events: list[str] = []
    app = App()
    _register(app, "asynccontextmanager", events, "first")
    _register(app, "contextmanager", events, "second")

    @app.lifespan
    @asynccontextmanager
    async def broken(app: App) -> AsyncIterator[None]:
        raise ConnectionError("database is down")
        yield

    app.on_startup(lambda: events.append("startup after"))
    app.on_shutdown(lambda: events.append("shutdown hook"))
    # NOTE: WSGI raises the error itself, the ASGI client names it in its RuntimeError.
    with pytest.raises((ConnectionError, RuntimeError), match="database is down"):
        make_client(app).__enter__()
    assert events == ["enter first", "enter second", "exit second", "exit first"]


def test_every_exit_runs_when_one_fails_and_the_failure_names_the_lifespan(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    app = App()
    _register(app, "contextmanager", events, "first")

    @app.lifespan
    @asynccontextmanager
    async def flaky(app: App) -> AsyncIterator[None]:
        yield
        raise OSError("pool stuck")

    _register(app, "asynccontextmanager", events, "third")
    app.on_shutdown(lambda: events.append("shutdown hook"))
    client = TestClient(app, interface=interface)
    with client, pytest.raises(RuntimeError, match="1 of 4 shutdown steps failed") as failure:
        client.close()
    assert events[2:] == ["shutdown hook", "exit third", "exit first"]
    assert "flaky (OSError: pool stuck)" in str(failure.value)
    logged = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert logged == [
        "shutdown step test_every_exit_runs_when_one_fails_and_the_failure_names_the_lifespan"
        ".<locals>.flaky failed"
    ]


def test_a_lifespan_that_ends_while_the_app_serves_is_logged_then(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    ended = asyncio.Event()

    @app.lifespan
    @asynccontextmanager
    async def refresher(app: App) -> AsyncIterator[None]:
        held = asyncio.current_task()
        assert held is not None
        # NOTE: a child that fails cancels the task that holds it, as a task group does.
        app.state.child = asyncio.get_running_loop().call_soon(held.cancel)
        try:
            yield
        except asyncio.CancelledError:
            ended.set()
            raise ConnectionError("cache server gone") from None

    @app.get("/")
    async def index(request: Request) -> str:
        await ended.wait()
        for _ in range(5):  # NOTE: a few turns of the loop for the lifespan's task to end.
            await asyncio.sleep(0)
        return "served"

    client = TestClient(app, interface=interface)
    with (
        client,
        pytest.raises(RuntimeError, match=r"refresher \(ConnectionError: cache server gone\)"),
    ):
        assert client.get("/").text == "served"
        logged = [r for r in caplog.records if r.name == "microweb"]
        assert [r.getMessage() for r in logged] == [
            "lifespan 'test_a_lifespan_that_ends_while_the_app_serves_is_logged_then.<locals>"
            ".refresher' ended while the app serves"
        ]
        assert "cache server gone" in str(logged[0].exc_info)
        client.close()  # NOTE: its exit raises the failure again, as a shutdown failure.


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_lifespan_that_does_not_yield_fails_startup_saying_so(
    make_client: MakeClient, kind: str
) -> None:
    app = App()
    if kind == "async":

        async def silent(app: App) -> AsyncIterator[None]:
            if False:
                yield

        app.lifespan(silent)
    else:

        @contextmanager
        def silent(app: App) -> Iterator[None]:
            if False:
                yield

        app.lifespan(silent)
    with pytest.raises(RuntimeError, match="silent' ended without yielding: it must yield once"):
        make_client(app).__enter__()


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_lifespan_that_yields_twice_fails_shutdown_saying_so(interface: str, kind: str) -> None:
    app = App()
    if kind == "async":

        async def twice(app: App) -> AsyncIterator[None]:
            yield
            yield

        app.lifespan(twice)
    else:

        @contextmanager
        def twice(app: App) -> Iterator[None]:
            yield
            yield

        app.lifespan(twice)
    client = TestClient(app, interface=interface)
    with client, pytest.raises(RuntimeError, match="twice' yielded twice: it must yield once"):
        client.close()


@pytest.mark.parametrize("value", [["a", 1], {1: "one"}, "open"], ids=["list", "int key", "str"])
def test_a_yielded_value_that_is_no_mapping_of_names_fails_startup_and_exits(
    make_client: MakeClient, value: Any
) -> None:
    events: list[str] = []
    app = App()

    @app.lifespan
    @contextmanager
    def odd(app: App) -> Iterator[Any]:
        yield value
        events.append("exited")

    with pytest.raises((TypeError, RuntimeError), match=r"odd' yielded .*: yield nothing, or a"):
        make_client(app).__enter__()
    assert events == ["exited"]


def test_the_test_client_under_both_enters_once_per_interface() -> None:
    events: list[str] = []
    app = App()
    _register(app, "asynccontextmanager", events)
    _reads_state(app)
    with TestClient(app, interface="both") as client:
        assert events == ["enter held", "enter held"]
        assert client.get("/").text == "held is open"
    assert events == ["enter held", "enter held", "exit held", "exit held"]


def test_a_lifespan_that_returns_no_context_manager_fails_startup(
    make_client: MakeClient,
) -> None:
    app = App()
    app.lifespan(lambda app: 42)
    with pytest.raises((TypeError, RuntimeError), match="returned int, not a context manager"):
        make_client(app).__enter__()


def test_a_lifespan_gets_the_app(make_client: MakeClient) -> None:
    app = App()
    given: list[Any] = []

    @app.lifespan
    def held(app: App) -> Iterator[None]:
        given.append(app)
        yield

    with make_client(app):
        pass
    assert given == [app]


# -- registration ------------------------------------------------------------------------------


def test_registration_refuses_an_async_def_without_yield() -> None:
    app = App()

    async def setup(app: App) -> None:
        pass

    with pytest.raises(TypeError, match="async def function without yield"):
        app.lifespan(setup)


def test_registration_refuses_a_function_that_does_not_take_the_app() -> None:
    app = App()

    @asynccontextmanager
    async def held() -> AsyncIterator[None]:
        yield

    with pytest.raises(TypeError, match=r"lifespan .*held' must accept being called as \(app\)"):
        app.lifespan(held)


@pytest.mark.parametrize("kind", ["startup", "shutdown"])
@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_generator_function_as_a_hook_is_refused_with_lifespan_named(
    kind: str, colour: str
) -> None:
    # NOTE: a lifespan written for on_startup (Starlette's, FastAPI's) was taken and ran
    # nothing: calling it makes a generator, which nobody iterated; the pool never opened.
    app = App()
    events: list[str] = []

    def opened() -> Iterator[None]:
        events.append("open")
        yield

    async def aopened() -> AsyncIterator[None]:
        events.append("open")
        yield

    register = app.on_startup if kind == "startup" else app.on_shutdown
    with pytest.raises(TypeError, match=r"is a generator function.*@app\.lifespan"):
        register(opened if colour == "sync" else aopened)
    assert app.startup_steps == [] and app.shutdown_hooks == []


def test_registration_returns_the_function_itself() -> None:
    def held(app: App) -> Iterator[None]:
        yield

    assert App().lifespan(held) is held


def _registered_late(app: App, events: list[str]) -> Callable[[], None]:
    def register() -> None:
        _register(app, "asynccontextmanager", events)

    return register


def test_a_lifespan_registered_after_as_asgi_or_by_a_startup_hook_is_entered() -> None:
    # NOTE: as a hook registered then: the callable's startup has not run yet, or is running.
    events: list[str] = []
    app = App()
    asgi = app.as_asgi()
    app.on_startup(_registered_late(app, events))
    sent = asyncio.run(drive_lifespan(asgi, ["startup", "shutdown"]))
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert events == ["enter held", "exit held"]


def test_a_lifespan_registered_after_as_wsgi_is_entered_by_the_next_callable() -> None:
    events: list[str] = []
    app = App()
    app.as_wsgi().close()
    _register(app, "contextmanager", events)
    wsgi = app.as_wsgi()
    assert events == ["enter held"]
    wsgi.close()
    assert events == ["enter held", "exit held"]


# -- ASGI --------------------------------------------------------------------------------------


def test_asgi_a_failing_enter_sends_startup_failed(caplog: pytest.LogCaptureFixture) -> None:
    app = App()

    @app.lifespan
    async def held(app: App) -> AsyncIterator[None]:
        raise ConnectionError("database is down")
        yield

    with caplog.at_level(logging.ERROR, logger="microweb"):
        sent = asyncio.run(drive_lifespan(app.as_asgi(), ["startup", "shutdown"]))
    assert [m["type"] for m in sent] == ["lifespan.startup.failed"]
    assert "database is down" in sent[0]["message"]
    assert [r.getMessage() for r in caplog.records] == ["startup failed"]


def test_asgi_without_lifespan_messages_enters_before_the_first_request() -> None:
    events: list[str] = []
    app = App()
    _register(app, "asynccontextmanager", events)
    _reads_state(app)

    async def scenario() -> tuple[int, bytes]:
        return await asgi_get(app.as_asgi(), "/")

    assert asyncio.run(scenario()) == (200, b"held is open")
    # NOTE: no shutdown comes, so no exit; the held task is cancelled with the loop.
    assert events == ["enter held"]
