"""The sans-IO core without a driver: ``respond(plan, request)`` and the effects it yields.

Each test compiles an ``App`` into a ``Plan``, builds a ``Request`` by hand and steps the
pipeline itself: a ``Response`` when nothing needs a bridge, or else a generator that yields an
awaitable (``async def`` code) or an ``Offload`` (a ``def`` handler that may block), and returns
the ``Response``.
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import logging
import threading
import warnings
from collections.abc import AsyncGenerator, Awaitable, Iterator
from contextlib import nullcontext
from types import GeneratorType
from typing import Any

import pytest

from microweb import App, Headers, HTTPError, Request, Response
from microweb._buffer import BodyMeter
from microweb._effects import Offload
from microweb._emission import outgoing
from microweb._errors import ClientDisconnect
from microweb._forms import InlineSpooler
from microweb._pipeline import NOT_AWAITED, fail, respond, settle
from microweb._request import new_request
from microweb._uploads import run_here

# NOTE: the collections here are of what each test makes (conftest.young_heap).
pytestmark = pytest.mark.usefixtures("young_heap")


class NoBody:
    """An empty request body, as a driver's body source gives it."""

    content_length = 0
    # NOTE: one thread reads it here: the claim of the body needs no lock.
    lock = nullcontext()

    def chunks(self, meter: BodyMeter, size: int | None = None) -> Iterator[bytes]:
        meter.finish()
        return iter(())

    def is_disconnected(self) -> bool:
        return False

    async def ais_disconnected(self) -> bool:
        return False

    async def achunks(self, meter: BodyMeter) -> AsyncGenerator[bytes, None]:
        meter.finish()
        for chunk in ():
            yield chunk

    def read_all(self, meter: BodyMeter) -> bytes:
        return b""

    async def aread_all(self, meter: BodyMeter) -> bytes:
        return b""


class HandmadeRequest(Request):
    """A request with the driver hooks a driver's own subclass gives (``HeadProperties``)."""

    __slots__ = ()
    _run_blocking = staticmethod(run_here)
    _spooler = InlineSpooler

    def _read_raw_path(self) -> bytes:
        return self.path.encode()

    def _make_body(self, limit: Any) -> NoBody:
        return NoBody()

    def _read_root_path(self) -> str:
        return ""

    def _read_header_lines(self, limit: int) -> list[tuple[str, str]]:
        return Headers(self._raw).items()

    def _read_content_type(self) -> str | None:
        return Headers(self._raw).get("content-type")

    def _read_server(self) -> tuple[str, int | None]:
        return ("testserver", 80)

    def _read_client(self) -> None:
        return None

    def _sync_only(self, call: str, twin: str) -> None:
        pass

    _thread_id = staticmethod(threading.get_ident)


class WSGIRequest(HandmadeRequest):
    __slots__ = ()
    interface, may_block = "wsgi", True


class ASGIRequest(HandmadeRequest):
    __slots__ = ()
    interface, may_block = "asgi", False


def request_for(
    app: App, method: str = "GET", path: str = "/", *, wsgi: bool = False, **headers: str
) -> Request:
    """A request for ``app`` as the WSGI driver (``wsgi=True``) or the ASGI driver builds it."""
    plan = app.compile()
    kind = WSGIRequest if wsgi else ASGIRequest
    return new_request(kind, plan.app, plan.limits, method, path, b"", "http", headers, None, None)


def run_to_end(awaitable: Awaitable[Any]) -> Any:
    """Run an awaitable that never suspends (no I/O in these tests) to its result."""
    steps = awaitable.__await__()
    try:
        while True:
            next(steps)
    except StopIteration as done:
        return done.value


def drive(result: Response | Any) -> tuple[Response, list[str]]:
    """Run the effects as a driver does; return the response and the kinds of effects seen."""
    if isinstance(result, Response):
        return result, []
    seen: list[str] = []
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = result.throw(error) if error is not None else result.send(value)
        except StopIteration as done:
            return done.value, seen
        value, error = None, None
        try:
            if isinstance(effect, Offload):
                seen.append("offload")
                value = effect.fn(*effect.args, **effect.kwargs)
            else:
                assert inspect.isawaitable(effect), effect
                seen.append("await")
                value = run_to_end(effect)
        except Exception as exc:
            error = exc


def hello_app(**options: Any) -> App:
    app = App()

    @app.get("/items/{item_id:int}", **options)
    def item(request: Request, item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @app.get("/live")
    async def live(request: Request) -> str:
        return "ok"

    return app


# -- the handler's colour, and the effect it needs ---------------------------------------------


def test_a_def_handler_under_wsgi_is_a_plain_call() -> None:
    app = hello_app()
    request = request_for(app, path="/items/7", wsgi=True)
    # NOTE: its plain result comes back as plain_answer() makes it: (body, Content-Type).
    assert respond(app.compile(), request) == (b'{"id":7}', "application/json")
    assert request.path_params == {"item_id": 7}


def test_a_def_handler_under_wsgi_answers_head_with_a_response() -> None:
    app = hello_app()
    response = respond(app.compile(), request_for(app, "HEAD", "/items/7", wsgi=True))
    assert isinstance(response, Response)  # NOTE: outgoing() leaves its body out.
    assert (response.status, response.body) == (200, b'{"id":7}')


def test_a_def_handler_under_asgi_yields_one_offload() -> None:
    app = hello_app()
    request = request_for(app, path="/items/7")
    effects = respond(app.compile(), request)
    assert not isinstance(effects, Response)
    offload = next(effects)
    assert isinstance(offload, Offload)
    assert offload.args == (request,) and offload.kwargs == {"item_id": 7}
    with pytest.raises(StopIteration) as done:
        effects.send(offload.fn(*offload.args, **offload.kwargs))
    assert done.value.value.body == b'{"id":7}'


def test_a_def_handler_with_offload_false_runs_inline_under_asgi() -> None:
    app = hello_app(offload=False)
    response = respond(app.compile(), request_for(app, path="/items/3"))
    assert isinstance(response, Response) and response.body == b'{"id":3}'


@pytest.mark.parametrize("wsgi", [True, False])
def test_an_async_handler_outside_flows_is_handed_over_as_its_awaitable(wsgi: bool) -> None:
    app = hello_app()
    plan = app.compile()
    request = request_for(app, path="/live", wsgi=wsgi)
    outcome = respond(plan, request)
    assert not isinstance(outcome, NOT_AWAITED)
    assert inspect.isawaitable(outcome)
    response = settle(plan, request, run_to_end(outcome))
    assert isinstance(response, Response) and response.body == b"ok"


@pytest.mark.parametrize(
    ("method", "path", "wsgi", "kind"),
    [
        ("GET", "/items/7", True, tuple),  # NOTE: a def handler's plain answer (WSGI)
        ("HEAD", "/items/7", True, Response),
        ("GET", "/items/7", False, GeneratorType),  # NOTE: its offload to the pool (ASGI)
        # NOTE: a 404 that no error handler can see: its default answer, at once.
        ("GET", "/missing", False, Response),
    ],
)
def test_what_respond_returns_that_is_no_handlers_awaitable_is_not_awaited(
    method: str, path: str, wsgi: bool, kind: type
) -> None:
    app = hello_app()
    outcome = respond(app.compile(), request_for(app, method, path, wsgi=wsgi))
    assert isinstance(outcome, kind) and isinstance(outcome, NOT_AWAITED)


@pytest.mark.parametrize("wsgi", [True, False])
def test_an_awaited_handler_that_returns_no_value_gets_a_500(wsgi: bool) -> None:
    app = hello_app()
    plan = app.compile()
    request = request_for(app, path="/live", wsgi=wsgi)
    response = settle(plan, request, object())
    assert not isinstance(response, Response)
    with pytest.raises(StopIteration) as done:
        next(response)
    assert done.value.value.status == 500


@pytest.mark.parametrize(("error", "status"), [(HTTPError(418), 418), (ValueError("boom"), 500)])
def test_an_awaited_handler_error_becomes_its_response(error: Exception, status: int) -> None:
    app = hello_app()
    plan = app.compile()
    request = request_for(app, path="/live")
    with pytest.raises(StopIteration) as done:
        next(fail(plan, request, error))
    assert done.value.value.status == status


def test_an_awaited_handler_that_saw_the_client_leave_answers_nothing() -> None:
    app = hello_app()
    plan = app.compile()
    with pytest.raises(ClientDisconnect):
        fail(plan, request_for(app, path="/live"), ClientDisconnect("gone"))


@pytest.mark.parametrize(
    ("flow_colour", "path", "wsgi", "expected"),
    [
        ("sync", "/items/1", True, []),
        ("sync", "/items/1", False, ["offload"]),
        ("sync", "/live", True, ["await"]),
        ("async", "/items/1", True, ["await", "await"]),
        ("async", "/items/1", False, ["await", "offload", "await"]),
        ("async", "/live", False, ["await", "await", "await"]),
    ],
)
def test_flows_add_effects_only_for_their_async_steps(
    flow_colour: str, path: str, wsgi: bool, expected: list[str]
) -> None:
    app = hello_app()
    if flow_colour == "sync":

        @app.middleware
        def tag(request: Request) -> Iterator[None]:
            response = yield
            response.headers["x-flow"] = "sync"

    else:

        @app.middleware
        async def atag(request: Request) -> AsyncGenerator[None, Response]:
            response = yield
            response.headers["x-flow"] = "async"

    response, seen = drive(respond(app.compile(), request_for(app, path=path, wsgi=wsgi)))
    assert response.status == 200 and response.headers["x-flow"] == flow_colour
    assert seen == expected


def app_in_a_flow() -> App:
    """An app with one flow that only passes through: its handlers run inside a flow."""
    app = App()

    @app.middleware
    def tag(request: Request) -> Iterator[None]:
        yield

    return app


@pytest.mark.parametrize("wsgi", [True, False])
def test_an_async_handler_inside_flows_closed_before_it_began_is_closed(wsgi: bool) -> None:
    # NOTE: the driver closes the core at the handler's effect, not awaited (its app loop
    # stopped): the handler's coroutine, never begun, is closed with it, not left to warn
    # "never awaited" when collected.
    app = app_in_a_flow()

    @app.get("/")
    async def index(request: Request) -> str:
        return "hello"

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = respond(app.compile(), request_for(app, wsgi=wsgi))
        effect = result.send(None)
        assert inspect.isawaitable(effect)
        result.close()
        effect.close()  # NOTE: the driver's part: the effect it never awaited.
        del result, effect
        gc.collect()
    assert not [w for w in caught if "never awaited" in str(w.message)]


@pytest.mark.parametrize("wsgi", [True, False])
def test_an_async_handler_inside_flows_closed_where_it_waits_closes_quietly(wsgi: bool) -> None:
    # NOTE: the effect that carries the handler's own GeneratorExit (own_exit_carried) is
    # closed where it waits (the driver's task closed, its loop gone): that closing is its
    # own, raised on as it came, not carried as the handler's (close() raised the carrier).
    app = app_in_a_flow()
    closed: list[str] = []

    @app.get("/")
    async def index(request: Request) -> str:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append("handler")
        return "hello"

    result = respond(app.compile(), request_for(app, wsgi=wsgi))
    effect = result.send(None)
    effect.send(None)  # NOTE: the handler waits at its sleep.
    effect.close()
    result.close()
    assert closed == ["handler"]


@pytest.mark.parametrize("wsgi", [True, False])
def test_an_async_error_handler_inside_flows_closed_where_it_waits_closes_quietly(
    wsgi: bool,
) -> None:
    # NOTE: as a handler's (above): the error handler's closing where it waits is its own
    # (_handling's closing_here), not carried as its GeneratorExit.
    app = app_in_a_flow()
    closed: list[str] = []

    @app.get("/")
    async def index(request: Request) -> str:
        raise ValueError("boom")

    @app.error_handler(ValueError)
    async def on_error(request: Request, exc: ValueError) -> str:
        try:
            await asyncio.sleep(0)
        finally:
            closed.append("error handler")
        return "handled"

    result = respond(app.compile(), request_for(app, wsgi=wsgi))
    effect = result.send(None)
    with pytest.raises(ValueError) as raised:
        run_to_end(effect)
    effect = result.throw(raised.value)
    effect.send(None)  # NOTE: the error handler waits at its sleep.
    effect.close()
    result.close()
    assert closed == ["error handler"]


# -- errors thrown in at a flow's yield ---------------------------------------------------------


@pytest.mark.parametrize("wsgi", [True, False])
def test_a_handlers_error_is_thrown_in_at_the_flows_yield(wsgi: bool) -> None:
    app = App()
    caught: list[str] = []

    @app.middleware
    def answer(request: Request) -> Iterator[Response | None]:
        try:
            yield
        except LookupError as exc:
            caught.append(type(exc).__name__)
            yield Response.text("looked up nothing", status=404)

    @app.get("/")
    async def index(request: Request) -> str:
        raise KeyError("nothing")

    effects = respond(app.compile(), request_for(app, wsgi=wsgi))
    assert not isinstance(effects, Response)
    awaitable = next(effects)
    with pytest.raises(KeyError):
        run_to_end(awaitable)  # NOTE: the driver runs the effect; it raises there...
    with pytest.raises(StopIteration) as done:
        effects.throw(KeyError("nothing"))  # ...and throws the error back in
    response = done.value.value
    assert (response.status, response.body, caught) == (404, b"looked up nothing", ["KeyError"])


@pytest.mark.parametrize("waits", [False, True])
def test_an_error_no_flow_answers_becomes_the_error_response(
    caplog: pytest.LogCaptureFixture, waits: bool
) -> None:
    app = App()
    trail: list[str] = []

    @app.middleware
    def passing(request: Request) -> Iterator[None]:
        try:
            yield
        except RuntimeError:
            trail.append("caught")
            if not waits:
                raise
            response = yield  # NOTE: yielding nothing waits for the error's response
            trail.append(f"saw {response.status}")

    @app.get("/")
    def index(request: Request) -> str:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="microweb"):
        response, seen = drive(respond(app.compile(), request_for(app, wsgi=True)))
    assert (response.status, seen) == (500, [])
    assert trail == (["caught", "saw 500"] if waits else ["caught"])
    assert "unhandled error in GET /" in caplog.text


def test_an_async_error_handler_is_one_more_effect() -> None:
    app = hello_app()

    @app.error_handler(404)
    async def missing(request: Request, exc: HTTPError) -> Response:
        return Response.json({"missing": request.path}, status=404)

    response, seen = drive(respond(app.compile(), request_for(app, path="/nope", wsgi=True)))
    assert (response.status, response.body, seen) == (404, b'{"missing":"/nope"}', ["await"])


# -- answers the core gives itself: 404, 405, OPTIONS, HEAD ------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "accept", "status", "body", "allow"),
    [
        ("GET", "/nope", "", 404, b"Not Found", None),
        ("GET", "/nope", "application/json", 404, b'{"status":404,"detail":"Not Found"}', None),
        ("POST", "/items/1", "", 405, b"Method Not Allowed", "GET, HEAD, OPTIONS"),
        ("OPTIONS", "/items/1", "", 204, b"", "GET, HEAD, OPTIONS"),
        ("OPTIONS", "*", "", 204, b"", "GET, HEAD, OPTIONS"),
    ],
)
@pytest.mark.parametrize("wsgi", [True, False])
def test_the_core_answers_without_a_handler(
    wsgi: bool, method: str, path: str, accept: str, status: int, body: bytes, allow: str | None
) -> None:
    app = hello_app()
    request = request_for(app, method, path, wsgi=wsgi, accept=accept)
    response, seen = drive(respond(app.compile(), request))
    assert seen == []  # NOTE: no handler ran, so there is no effect to drive
    assert (response.status, response.body) == (status, body)
    assert response.headers.get("allow") == allow


@pytest.mark.parametrize("wsgi", [True, False])
def test_head_runs_the_get_handler_and_sends_no_body(wsgi: bool) -> None:
    app = hello_app()
    response, _ = drive(respond(app.compile(), request_for(app, "HEAD", "/items/5", wsgi=wsgi)))
    assert (response.status, response.body) == (200, b'{"id":5}')
    headers, body = outgoing(response, "HEAD")
    assert body is None
    assert ("content-length", "8") in headers


def test_the_plan_returns_its_refusals_and_match_raises_them() -> None:
    app = App()
    app.post("/only-post")(_any)
    app.get("/items/{n:int}")(_any)
    plan = app.compile()
    for method, path, status, allow in [
        ("GET", "/missing", 404, None),
        ("GET", "/only-post", 405, "OPTIONS, POST"),
        ("HEAD", "/only-post", 405, "OPTIONS, POST"),
        ("POST", "/items/3", 405, "GET, HEAD, OPTIONS"),
        ("HEAD", "/items/x", 404, None),
    ]:
        request = request_for(app, method, path)
        refused = plan.route(request)
        assert isinstance(refused, HTTPError), (method, path)
        assert (refused.status, refused.headers.get("allow")) == (status, allow)
        assert refused.args == HTTPError(status).args and refused.__traceback__ is None
        with pytest.raises(HTTPError) as raised:
            plan.match(request_for(app, method, path))
        assert (raised.value.status, raised.value.headers) == (status, refused.headers)
    assert plan.route(request_for(app, "HEAD", "/items/3")) is not None


def _any(request: Request, **params: Any) -> str:
    return "ok"
