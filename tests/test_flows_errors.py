"""What a flow's mistakes log: the error itself, with no unrelated one chained to it."""

from __future__ import annotations

import asyncio
import gc
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request
from microweb.testing import TestClient


@pytest.mark.parametrize("flow_colour", ["sync", "async"])
def test_a_flow_that_never_yields_is_logged_without_the_end_of_its_generator(
    make_client: MakeClient, flow_colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: an async flow's StopAsyncIteration, thrown back in by the driver, was chained to
    # the RuntimeError ("During handling of the above exception, another exception
    # occurred"), as if the flow had failed while ending.
    app = App()
    if flow_colour == "sync":

        @app.middleware
        def silent(request: Request) -> Iterator[Any]:
            if request.path == "/never":
                yield

    else:

        @app.middleware
        async def silent(request: Request) -> AsyncIterator[Any]:
            if request.path == "/never":
                yield

    @app.get("/")
    async def home(request: Request) -> str:
        return "home"

    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(app).get("/")
    assert response.status_code == 500
    [error] = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert isinstance(error, RuntimeError)
    assert "ended without yielding once" in str(error)
    assert error.__suppress_context__ or error.__context__ is None
    assert error.__cause__ is None


def test_an_error_an_async_flow_lets_pass_by_returning_keeps_its_context(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the flow's end (StopAsyncIteration), thrown back in by the driver from its except
    # clause, became the __context__ of the handler's error: the log said the bug happened
    # "during handling of" a StopAsyncIteration.
    app = App()
    cleaned: list[str] = []

    @app.middleware
    async def rolls_back(request: Request) -> AsyncIterator[Any]:
        try:
            yield
        except LookupError:
            cleaned.append("rolled back")
            return  # the error stands

    def broken(request: Request) -> str:
        raise LookupError("the bug")

    app.get("/")(in_colour(colour, broken))
    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(app).get("/")
    assert response.status_code == 500
    assert cleaned == ["rolled back"]
    [error] = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert isinstance(error, LookupError)
    assert error.__context__ is None


@pytest.mark.parametrize("flow_colour", ["sync", "async"])
def test_an_error_a_flow_raises_after_catching_one_has_no_context(
    make_client: MakeClient, colour: str, flow_colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the handler's error was thrown in at the flow's yield from an except clause (the
    # core's, the drivers'), so the flow's own error, raised once it had caught that one, had
    # it as its __context__: the log said the flow failed "during handling of" it.
    app = App()
    caught: list[str] = []
    if flow_colour == "sync":

        @app.middleware
        def checks(request: Request) -> Iterator[Any]:
            try:
                yield
            except LookupError:
                caught.append("caught")
            raise RuntimeError("the flow's own")

    else:

        @app.middleware
        async def checks(request: Request) -> AsyncIterator[Any]:
            try:
                yield
            except LookupError:
                caught.append("caught")
            raise RuntimeError("the flow's own")

    def broken(request: Request) -> str:
        raise LookupError("the handler's")

    app.get("/")(in_colour(colour, broken))
    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(app).get("/")
    assert response.status_code == 500
    [error] = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert isinstance(error, RuntimeError)
    assert error.__context__ is None
    assert caught == ["caught"]


def _closing_flow(
    colour: str, events: list[str], note: str = "closed", *, awaits: bool = True
) -> Callable[[Request], Iterator[None] | AsyncIterator[None]]:
    """Return a flow of ``colour`` that adds ``note`` to ``events`` when it is closed.

    With ``awaits``, the async one awaits first: it must be closed as a cut, not by the core's
    own closing (an aclose() of a core closed as a whole), where it would ignore the
    GeneratorExit.
    """

    def sync_flow(request: Request) -> Iterator[None]:
        try:
            yield
        finally:
            events.append(note)

    async def async_flow(request: Request) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if awaits:
                await asyncio.sleep(0)
            events.append(note)

    return sync_flow if colour == "sync" else async_flow


def _ending_seen(
    app: App, interface: str, path: str, ending: type[BaseException], events: list[str]
) -> tuple[list[str], str]:
    """Ask for ``path``, which ends in ``ending``; return ``events`` as they were while the
    error was still held (as a server that logs it holds it), sorted, and the error's text.

    NOTE: the collector is off meanwhile: a flow closed only when its traceback is collected
    would pass otherwise.
    """
    gc.disable()
    try:
        with TestClient(app, interface=interface) as client, pytest.raises(ending) as caught:
            try:
                client.get(path)
            finally:
                seen = sorted(events)
        text = str(caught.value)
        del caught
        return seen, text
    finally:
        gc.enable()


@pytest.mark.parametrize("ending", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_a_handlers_process_ending_closes_the_flows(
    interface: str, colour: str, ending: type[BaseException]
) -> None:
    # NOTE: under ASGI a sync flow's finally ran only when the garbage collector got to it:
    # the traceback of a KeyboardInterrupt or SystemExit, kept by the task, held the core and
    # its flows (review172); under WSGI it ran at once. So it did for an async def handler's
    # own GeneratorExit, which no error handler sees either (review307), and a def handler's
    # under WSGI, called inline in the core, where it was taken for the core's own closing
    # (review319).
    events: list[str] = []
    app = App()
    app.middleware(_closing_flow("sync", events, "sync flow closed"))
    app.middleware(_closing_flow("async", events, "async flow closed", awaits=False))

    def handler(request: Request) -> str:
        raise ending

    app.get("/")(in_colour(colour, handler))
    # NOTE: a GeneratorExit closes the core as a whole: the async flow's aclose() after (so it
    # must not await as it closes). Under WSGI an async def handler's own GeneratorExit left
    # the flows to close when its traceback was let go (review314).
    seen, _ = _ending_seen(app, interface, "/", ending, events)
    assert seen == ["async flow closed", "sync flow closed"]


@pytest.mark.parametrize("offload", [True, False], ids=["offloaded", "inline"])
@pytest.mark.parametrize("app_flow", [False, True], ids=["router alone", "app and router"])
def test_a_def_handlers_generator_exit_closes_a_routers_flows(
    interface: str, colour: str, app_flow: bool, offload: bool
) -> None:
    # NOTE: a route with flows of its router alone goes through them from respond() itself;
    # with the app's too, from the app's. A def handler with offload=False is a plain call
    # under ASGI too (review319).
    from microweb import Router

    events: list[str] = []
    app, api = App(), Router(prefix="/api")
    flow = _closing_flow("sync", events)
    if app_flow:
        app.middleware(flow)
    api.middleware(flow)

    def handler(request: Request) -> str:
        raise GeneratorExit("the handler's")

    if colour == "sync":
        api.get("", offload=offload)(handler)
    else:
        api.get("")(in_colour(colour, handler))
    app.include(api)
    seen, _ = _ending_seen(app, interface, "/api", GeneratorExit, events)
    assert seen == ["closed"] * (1 + app_flow)


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
@pytest.mark.parametrize("when", ["before", "after"])
def test_a_sync_flows_own_generator_exit_closes_the_flows_outside_it(
    interface: str, colour: str, when: str, outer_colour: str
) -> None:
    # NOTE: a def flow runs in the core with no yield between, as a def handler called plainly
    # does: its GeneratorExit, raised before or after its own yield, went out as it was, and
    # the flows outside it were left open until its traceback was let go (under ASGI the test
    # client's task kept it until a collection), where a handler's closed them (review322).
    events: list[str] = []
    app = App()
    app.middleware(_closing_flow(outer_colour, events))

    @app.middleware
    def failing(request: Request) -> Iterator[None]:
        if when == "before":
            raise GeneratorExit("the flow's")
        yield
        raise GeneratorExit("the flow's")

    def handler(request: Request) -> str:
        return "ok"

    app.get("/")(in_colour(colour, handler))
    assert _ending_seen(app, interface, "/", GeneratorExit, events) == (["closed"], "the flow's")


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
@pytest.mark.parametrize("where", ["app", "router"])
def test_an_error_handlers_own_generator_exit_closes_the_flows_outside_it(
    interface: str, colour: str, where: str, outer_colour: str
) -> None:
    # NOTE: an error handler is app code called in the core as a handler is: its own
    # GeneratorExit closes the flows at once, as a handler's and a def flow's do (review328).
    from microweb import Router

    # NOTE: an async error handler's with an async flow outside: thrown back into the core as
    # it was, the GeneratorExit closed it as a whole (a yield from hands it to close()), and
    # the async flow was left to its collection ("ignored GeneratorExit" under WSGI); now
    # carried through the core, as a def one's is (review332).
    events: list[str] = []
    app, api = App(), Router(prefix="/api")
    flows = app if where == "app" else api
    flows.middleware(_closing_flow(outer_colour, events))

    def handler(request: Request) -> str:
        raise ValueError("the handler's")

    def on_error(request: Request, exc: ValueError) -> str:
        raise GeneratorExit("the error handler's")

    api.get("")(in_colour(colour, handler))
    app.include(api)
    app.error_handler(ValueError)(in_colour(colour, on_error))
    seen = _ending_seen(app, interface, "/api", GeneratorExit, events)
    assert seen == (["closed"], "the error handler's")


@pytest.mark.parametrize("ending", ["GeneratorExit", "SystemExit"])
def test_a_flow_failing_as_it_closes_for_an_ending_not_a_cancellation_says_what_ended(
    interface: str, colour: str, ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: closed for a handler's own GeneratorExit or SystemExit, a flow whose cleanup failed
    # was logged as having "failed while its request was cancelled": nothing cancelled it.
    app = App()

    @app.middleware
    def outer(request: Request) -> Iterator[None]:
        try:
            yield
        finally:
            raise ValueError("the flow's cleanup")

    raised: type[BaseException] = GeneratorExit if ending == "GeneratorExit" else SystemExit

    def handler(request: Request) -> str:
        raise raised("the handler's")

    app.get("/")(in_colour(colour, handler))
    caplog.set_level(logging.ERROR, logger="microweb")
    with TestClient(app, interface=interface) as client, pytest.raises(raised):
        client.get("/")
    [record] = [r for r in caplog.records if "flow" in r.getMessage()]
    assert "cancelled" not in record.getMessage()
    assert ending in record.getMessage()
    assert "outer" in record.getMessage()


def test_a_handlers_own_generator_exit_closes_an_async_flow_outside(
    interface: str, colour: str
) -> None:
    # NOTE: thrown back into the core as it was, the GeneratorExit closed it as a whole, and
    # the async flow was left to its collection: under WSGI it "ignored GeneratorExit", under
    # ASGI the loop's finalizer of async generators closed it in time on some Python versions
    # and not on others. Carried through the core now, as the error handler's is (review332).
    events: list[str] = []
    app = App()
    app.middleware(_closing_flow("async", events))

    def handler(request: Request) -> str:
        raise GeneratorExit("the handler's")

    # NOTE: a def handler in the pool under ASGI; under WSGI, called plainly.
    app.get("/")(in_colour(colour, handler))

    seen = _ending_seen(app, interface, "/", GeneratorExit, events)
    assert seen == (["closed"], "the handler's")


def _driven_exit() -> Iterator[None]:
    """A generator that, thrown into, lets a ``GeneratorExit`` out with its own frame innermost
    in the traceback."""
    yield


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
def test_an_error_handlers_generator_exit_from_a_generator_it_drives_closes_the_flows(
    interface: str, colour: str, outer_colour: str
) -> None:
    # NOTE: the innermost frame of that GeneratorExit's traceback is a generator's: taken for
    # the core's own closing at a yield (_at_a_yield), it went out as it was, and the flows
    # outside were left to its traceback's collection (review336).
    events: list[str] = []
    app = App()
    app.middleware(_closing_flow(outer_colour, events))

    def handler(request: Request) -> str:
        raise ValueError("the handler's")

    def on_error(request: Request, exc: ValueError) -> str:
        driven = _driven_exit()
        next(driven)
        driven.throw(GeneratorExit("the driven generator's"))
        return "unreached"

    app.get("/")(in_colour(colour, handler))
    app.error_handler(ValueError)(in_colour(colour, on_error))
    seen = _ending_seen(app, interface, "/", GeneratorExit, events)
    assert seen == (["closed"], "the driven generator's")


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
def test_a_handlers_generator_exit_from_a_generator_it_drives_closes_the_flows(
    interface: str, colour: str, outer_colour: str
) -> None:
    events: list[str] = []
    app = App()
    app.middleware(_closing_flow(outer_colour, events))

    def handler(request: Request) -> str:
        driven = _driven_exit()
        next(driven)
        driven.throw(GeneratorExit("the driven generator's"))
        return "unreached"

    app.get("/")(in_colour(colour, handler))
    seen = _ending_seen(app, interface, "/", GeneratorExit, events)
    assert seen == (["closed"], "the driven generator's")


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
def test_a_handler_said_async_whose_call_raises_generator_exit_closes_the_flows(
    interface: str, outer_colour: str
) -> None:
    # NOTE: a def marked async (inspect.markcoroutinefunction) raises as it is called, before
    # any awaitable: its GeneratorExit went out as it was, not carried as an async handler's,
    # and the flows outside were left to its traceback's collection (review336).
    from test_colours import _said_async

    events: list[str] = []
    app = App()
    app.middleware(_closing_flow(outer_colour, events))

    def exits() -> None:
        raise GeneratorExit("the handler's")

    app.get("/")(_said_async(exits))
    seen = _ending_seen(app, interface, "/", GeneratorExit, events)
    assert seen == (["closed"], "the handler's")


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
@pytest.mark.parametrize("when", ["before", "after", "on an error"])
def test_an_async_flows_own_generator_exit_closes_the_flows_outside_it(
    interface: str, colour: str, when: str, outer_colour: str
) -> None:
    # NOTE: thrown back into the core by the driver as it was, an async flow's GeneratorExit
    # closed it as a whole (a throw() at a yield from closes what it delegates to), and an
    # async flow outside was left to its collection ("ignored GeneratorExit"), where a def
    # flow's is carried out and closes it (review336).
    events: list[str] = []
    app = App()
    app.middleware(_closing_flow(outer_colour, events))

    @app.middleware
    async def failing(request: Request) -> AsyncIterator[None]:
        if when == "before":
            raise GeneratorExit("the flow's")
        try:
            yield
        except ValueError:
            raise GeneratorExit("the flow's") from None
        raise GeneratorExit("the flow's")

    def handler(request: Request) -> str:
        if when == "on an error":
            raise ValueError("the handler's")
        return "ok"

    app.get("/")(in_colour(colour, handler))
    assert _ending_seen(app, interface, "/", GeneratorExit, events) == (["closed"], "the flow's")


@pytest.mark.parametrize("outer_colour", ["sync", "async"])
@pytest.mark.parametrize("path", ["/nothing", "/api/x"], ids=["no route", "converter refuses"])
def test_a_404_handlers_own_generator_exit_closes_the_flows_outside_it(
    interface: str, colour: str, outer_colour: str, path: str
) -> None:
    # NOTE: the router's refusal is answered inside the flows with no _answer_in_flows: its
    # error handler's GeneratorExit went out as it was, and the flows were left to its
    # traceback's collection, where a bug's error handler's closes them (review336).
    from microweb import Router

    events: list[str] = []
    app, api = App(), Router(prefix="/api")
    app.middleware(_closing_flow(outer_colour, events))

    @api.get("/{n:int}")
    def item(request: Request, n: int) -> str:
        return "item"

    app.include(api)

    def on_404(request: Request, exc: Exception) -> str:
        raise GeneratorExit("the error handler's")

    app.error_handler(404)(in_colour(colour, on_404))
    seen = _ending_seen(app, interface, path, GeneratorExit, events)
    assert seen == (["closed"], "the error handler's")


# NOTE: a program that imports microweb first on a running loop, then closes the loop without
# asyncio.run()'s closing of its async generators.
_IMPORTED_ON_A_LOOP = """
import asyncio

async def main():
    import microweb

loop = asyncio.new_event_loop()
loop.run_until_complete(main())
loop.close()
print("imported")
"""


def test_importing_microweb_on_a_running_loop_leaves_nothing_on_it() -> None:
    # NOTE: the type of an async flow's step, taken at import from a step of an async generator
    # never begun: the loop's hooks took the generator as first iterated, and its collection
    # queued its aclose() on the loop, a task destroyed pending as the loop closed (3.10-3.12;
    # logged "Task was destroyed but it is pending!") (review341).
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", _IMPORTED_ON_A_LOOP],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "imported\n", "")
