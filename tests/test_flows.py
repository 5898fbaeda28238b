"""Middleware flows: order, colours, short-circuits, replaced responses and exceptions."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import http_scope, requests_left_in_cycles

from microweb import App, HTTPError, Request, Response

Flow = Iterator[Any]
AsyncFlow = AsyncIterator[Any]


def test_mixed_colours_and_order(make_client: MakeClient) -> None:
    app = App()
    events: list[str] = []

    @app.middleware
    def outer(request: Request) -> Flow:
        events.append("outer in")
        response = yield
        events.append("outer out")
        response.headers.add("x-trail", "outer")

    @app.middleware
    async def middle(request: Request) -> AsyncFlow:
        await asyncio.sleep(0)
        events.append("middle in")
        response = yield
        await asyncio.sleep(0)
        events.append("middle out")
        response.headers.add("x-trail", "middle")

    @app.middleware
    def inner(request: Request) -> Flow:
        events.append("inner in")
        response = yield
        events.append("inner out")
        response.headers.add("x-trail", "inner")

    @app.get("/")
    async def index(request: Request) -> str:
        events.append("handler")
        return "ok"

    response = make_client(app).get("/")
    assert response.status_code == 200
    assert response.text == "ok"
    assert events == [
        "outer in",
        "middle in",
        "inner in",
        "handler",
        "inner out",
        "middle out",
        "outer out",
    ]
    assert response.headers.get_list("x-trail") == ["inner", "middle", "outer"]


def test_flows_wrap_def_handler(make_client: MakeClient, colour: str) -> None:
    app = App()

    if colour == "sync":

        @app.middleware
        def flow(request: Request) -> Flow:
            request.state.seen = "flow"
            response = yield
            response.headers["x-flow"] = colour

    else:

        @app.middleware
        async def flow(request: Request) -> AsyncFlow:
            request.state.seen = "flow"
            response = yield
            response.headers["x-flow"] = colour

    @app.get("/")
    def index(request: Request) -> str:
        return request.state.seen

    response = make_client(app).get("/")
    assert response.text == "flow"
    assert response.headers["x-flow"] == colour


def test_short_circuit_before_inner_stack(make_client: MakeClient, colour: str) -> None:
    app = App()
    called: list[str] = []

    if colour == "sync":

        @app.middleware
        def guard(request: Request) -> Flow:
            if request.headers.get("authorization") != "yes":
                yield Response.json({"error": "forbidden"}, status=403)
                return
            yield

    else:

        @app.middleware
        async def guard(request: Request) -> AsyncFlow:
            await asyncio.sleep(0)
            if request.headers.get("authorization") != "yes":
                yield Response.json({"error": "forbidden"}, status=403)
                return
            yield

    @app.middleware
    def later(request: Request) -> Flow:
        called.append("later flow")
        yield

    @app.get("/")
    def index(request: Request) -> str:
        called.append("handler")
        return "secret"

    client = make_client(app)
    response = client.get("/")
    assert response.status_code == 403
    assert response.json() == {"error": "forbidden"}
    assert called == []
    response = client.get("/", headers={"authorization": "yes"})
    assert response.text == "secret"
    assert called == ["later flow", "handler"]


def test_replace_response_after(make_client: MakeClient, colour: str) -> None:
    app = App()

    if colour == "sync":

        @app.middleware
        def replace(request: Request) -> Flow:
            response = yield
            yield Response.text(f"replaced {response.status}", status=202)

    else:

        @app.middleware
        async def replace(request: Request) -> AsyncFlow:
            response = yield
            yield Response.text(f"replaced {response.status}", status=202)

    @app.get("/")
    def index(request: Request) -> str:
        return "original"

    response = make_client(app).get("/")
    assert response.status_code == 202
    assert response.text == "replaced 200"


class Cursor:
    """A streamed body holding a resource (a cursor, a file): it must be closed, once."""

    def __init__(self) -> None:
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        yield b"rows"

    def close(self) -> None:
        self.closed += 1


class AsyncCursor:
    """The async twin of ``Cursor``."""

    def __init__(self) -> None:
        self.closed = 0

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[bytes]:
        yield b"rows"

    async def aclose(self) -> None:
        self.closed += 1


def streaming_route(app: App, streams: list[Any], kind: str) -> None:
    """``GET /`` streams a ``Cursor`` (kind "sync") or an ``AsyncCursor``, kept in ``streams``."""

    @app.get("/")
    def index(request: Request) -> Response:
        stream = Cursor() if kind == "sync" else AsyncCursor()
        streams.append(stream)
        return Response.stream(stream, "text/plain")


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_replaced_stream_is_closed_after_the_response(
    make_client: MakeClient, colour: str, kind: str, method: str
) -> None:
    app = App()
    streams: list[Any] = []
    seen: list[int] = []

    if colour == "sync":

        @app.middleware
        def replace(request: Request) -> Flow:
            yield
            seen.append(streams[0].closed)
            yield Response.text("replaced")

    else:

        @app.middleware
        async def replace(request: Request) -> AsyncFlow:
            yield
            seen.append(streams[0].closed)
            yield Response.text("replaced")

    streaming_route(app, streams, kind)
    response = make_client(app).request(method, "/")
    assert (response.status_code, response.text) == (200, "replaced" if method == "GET" else "")
    assert seen == [0], "closed before the flow had seen it"
    assert streams[0].closed == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_replaced_by_a_flow_error_is_closed(
    make_client: MakeClient, colour: str, kind: str
) -> None:
    app = App()
    streams: list[Any] = []

    @app.middleware
    def refuse(request: Request) -> Flow:
        yield
        raise HTTPError(503, "not now")

    streaming_route(app, streams, kind)
    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (503, "not now")
    assert streams[0].closed == 1


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_wrapped_in_a_new_response_is_read_then_closed_once(
    make_client: MakeClient, kind: str
) -> None:
    app = App()
    streams: list[Any] = []

    def upper(chunks: Any) -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk.upper()

    async def aupper(chunks: Any) -> AsyncIterator[bytes]:
        async for chunk in chunks:
            yield chunk.upper()

    @app.middleware
    def shout(request: Request) -> Flow:
        response = yield
        wrapped = upper(response.chunks) if kind == "sync" else aupper(response.chunks)
        yield Response.stream(wrapped, "text/plain")

    @app.middleware
    def same(request: Request) -> Flow:
        # NOTE: a new response streaming the very same object: the driver closes it.
        response = yield
        yield Response.stream(response.chunks, "text/plain", 201)

    streaming_route(app, streams, kind)
    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (200, "ROWS")
    assert streams[0].closed == 1


class LoggedCursor:
    """A stream reading a connection that ``after_response`` closes: it must be closed first."""

    def __init__(self, log: list[str], name: str) -> None:
        self.log, self.name = log, name

    def __iter__(self) -> Iterator[bytes]:
        yield b"rows"

    def close(self) -> None:
        self.log.append(f"{self.name} closed")


@pytest.mark.parametrize("replaced", [False, True])
def test_a_replaced_stream_is_closed_before_the_callbacks_as_a_sent_one(
    make_client: MakeClient, colour: str, replaced: bool
) -> None:
    app = App()
    log: list[str] = []

    if colour == "sync":

        @app.middleware
        def replace(request: Request) -> Flow:
            yield
            request.after_response(log.append, "outer callback")
            if replaced:
                yield Response.text("replaced")

    else:

        @app.middleware
        async def replace(request: Request) -> AsyncFlow:
            yield
            request.after_response(log.append, "outer callback")
            if replaced:
                yield Response.text("replaced")

    @app.middleware
    def wrap(request: Request) -> Flow:
        # NOTE: the cursor is replaced twice: closed from the outside in, as a wrapper and what
        # it reads would be.
        yield
        if replaced:
            yield Response.stream(LoggedCursor(log, "wrapper"), "text/plain")

    @app.get("/")
    def index(request: Request) -> Response:
        # NOTE: as a plugin closes the connection a streamed body reads (docs/plugins.md).
        request.after_response(log.append, "connection closed")
        return Response.stream(LoggedCursor(log, "cursor"), "text/plain")

    response = make_client(app).get("/")
    assert response.status_code == 200
    if replaced:
        assert log == ["wrapper closed", "cursor closed", "connection closed", "outer callback"]
    else:
        assert log == ["cursor closed", "connection closed", "outer callback"]


@pytest.mark.parametrize("when", ["before", "after", "error"])
def test_the_stream_of_a_flow_whose_cleanup_fails_is_closed(
    make_client: MakeClient, colour: str, when: str
) -> None:
    app = App()
    log: list[str] = []

    def answer(response: Response | None) -> Response | None:
        if (when == "after") == (response is not None):
            return Response.stream(LoggedCursor(log, "answer"), "text/plain")
        return None

    if colour == "sync":

        @app.middleware
        def answers(request: Request) -> Flow:
            try:
                yield answer(None)
                yield answer(Response.text("ok"))
            except HTTPError:
                yield answer(None)
            finally:
                raise RuntimeError("cleanup failed")

    else:

        @app.middleware
        async def answers(request: Request) -> AsyncFlow:
            try:
                yield answer(None)
                yield answer(Response.text("ok"))
            except HTTPError:
                yield answer(None)
            finally:
                raise RuntimeError("cleanup failed")

    @app.get("/")
    def index(request: Request) -> Response:
        if when == "error":
            raise HTTPError(409)
        return Response.stream(LoggedCursor(log, "cursor"), "text/plain")

    response = make_client(app).get("/")
    assert response.status_code == 500
    # NOTE: the flow's answer, never sent; after the handler, the cursor it replaced too.
    assert sorted(log) == (
        ["answer closed", "cursor closed"] if when == "after" else ["answer closed"]
    )


def test_modify_response_headers_and_status(make_client: MakeClient) -> None:
    app = App()

    @app.middleware
    def headers(request: Request) -> Flow:
        response = yield
        response.headers["x-added"] = "1"
        del response.headers["x-remove-me"]
        response.status = 201

    @app.get("/")
    def index(request: Request) -> Response:
        return Response.text("body", headers={"x-remove-me": "1"})

    response = make_client(app).get("/")
    assert response.status_code == 201
    assert response.headers["x-added"] == "1"
    assert "x-remove-me" not in response.headers
    assert response.text == "body"


def test_exception_thrown_in_at_yield(make_client: MakeClient, colour: str) -> None:
    app = App()
    seen: list[BaseException] = []

    if colour == "sync":

        @app.middleware
        def recover(request: Request) -> Flow:
            try:
                yield
            except LookupError as exc:
                seen.append(exc)
                yield Response.text(f"recovered: {exc.args[0]}", status=418)

    else:

        @app.middleware
        async def recover(request: Request) -> AsyncFlow:
            try:
                yield
            except LookupError as exc:
                seen.append(exc)
                yield Response.text(f"recovered: {exc.args[0]}", status=418)

    @app.get("/sync")
    def sync_boom(request: Request) -> str:
        raise KeyError("from def")

    @app.get("/async")
    async def async_boom(request: Request) -> str:
        raise IndexError("from async def")

    client = make_client(app)
    response = client.get("/sync")
    assert response.status_code == 418
    assert response.text == "recovered: from def"
    response = client.get("/async")
    assert response.status_code == 418
    assert response.text == "recovered: from async def"
    assert [type(exc) for exc in seen] == [KeyError, IndexError]


def test_unhandled_exception_through_flow_is_500(make_client: MakeClient, colour: str) -> None:
    app = App()
    events: list[str] = []

    if colour == "sync":

        @app.middleware
        def watch(request: Request) -> Flow:
            try:
                yield
            except ValueError:
                events.append("saw error")
                raise
            finally:
                events.append("finally")

    else:

        @app.middleware
        async def watch(request: Request) -> AsyncFlow:
            try:
                yield
            except ValueError:
                events.append("saw error")
                raise
            finally:
                events.append("finally")

    @app.get("/")
    def index(request: Request) -> str:
        raise ValueError("not handled")

    response = make_client(app).get("/")
    assert response.status_code == 500
    assert "not handled" not in response.text
    assert events == ["saw error", "finally"]


def test_flow_ignoring_exception_gives_500(make_client: MakeClient) -> None:
    app = App()

    @app.middleware
    def swallow_nothing(request: Request) -> Flow:
        # NOTE: the error is neither re-raised nor answered with a response: it stands.
        with contextlib.suppress(RuntimeError):
            yield

    @app.get("/")
    def index(request: Request) -> str:
        raise RuntimeError("boom")

    assert make_client(app).get("/").status_code == 500


def test_flows_see_404_and_405(make_client: MakeClient) -> None:
    app = App()
    statuses: list[int] = []

    @app.middleware
    def tag(request: Request) -> Flow:
        response = yield
        statuses.append(response.status)
        response.headers["x-tagged"] = "yes"

    @app.get("/only-get")
    def only_get(request: Request) -> str:
        return "ok"

    client = make_client(app)
    response = client.get("/missing")
    assert response.status_code == 404
    assert response.headers["x-tagged"] == "yes"
    response = client.post("/only-get")
    assert response.status_code == 405
    assert response.headers["x-tagged"] == "yes"
    assert "GET" in response.headers["allow"]
    assert statuses == [404, 405]


def test_flows_see_http_error_responses(make_client: MakeClient) -> None:
    app = App()
    statuses: list[int] = []

    @app.middleware
    async def tag(request: Request) -> AsyncFlow:
        response = yield
        statuses.append(response.status)
        response.headers["x-tagged"] = "yes"

    @app.get("/")
    def index(request: Request) -> str:
        raise HTTPError(409, "conflict here")

    response = make_client(app).get("/")
    assert response.status_code == 409
    assert response.text == "conflict here"
    assert response.headers["x-tagged"] == "yes"
    assert statuses == [409]


@pytest.mark.parametrize("when", ["before", "after"])
def test_flow_yielding_non_response_is_500(make_client: MakeClient, when: str) -> None:
    app = App()

    @app.middleware
    def bad(request: Request) -> Iterator[Any]:
        if when == "before":
            yield "not a response"
        else:
            yield
            yield {"not": "a response"}

    @app.get("/")
    def index(request: Request) -> str:
        return "ok"

    assert make_client(app).get("/").status_code == 500


def test_async_flow_yielding_non_response_is_500(make_client: MakeClient) -> None:
    app = App()

    @app.middleware
    async def bad(request: Request) -> AsyncIterator[Any]:
        yield 42

    @app.get("/")
    def index(request: Request) -> str:
        return "ok"

    assert make_client(app).get("/").status_code == 500


def test_flow_that_never_yields_is_500(make_client: MakeClient, colour: str) -> None:
    app = App()
    called: list[str] = []

    if colour == "sync":

        @app.middleware
        def never(request: Request) -> Flow:
            return
            yield  # a generator function that ends without yielding

    else:

        @app.middleware
        async def never(request: Request) -> AsyncFlow:
            return
            yield  # an async generator function that ends without yielding

    @app.get("/")
    def index(request: Request) -> str:
        called.append("handler")
        return "ok"

    assert make_client(app).get("/").status_code == 500
    assert called == []


@pytest.mark.parametrize("when", ["before", "after"])
def test_http_error_in_flow_gives_its_status(
    make_client: MakeClient, colour: str, when: str
) -> None:
    app = App()

    if colour == "sync":

        @app.middleware
        def deny(request: Request) -> Flow:
            if when == "before":
                raise HTTPError(401, "who are you", {"www-authenticate": "Basic"})
            yield
            raise HTTPError(401, "who are you", {"www-authenticate": "Basic"})

    else:

        @app.middleware
        async def deny(request: Request) -> AsyncFlow:
            if when == "before":
                raise HTTPError(401, "who are you", {"www-authenticate": "Basic"})
            yield
            raise HTTPError(401, "who are you", {"www-authenticate": "Basic"})

    @app.get("/")
    def index(request: Request) -> str:
        return "ok"

    response = make_client(app).get("/")
    assert response.status_code == 401
    assert response.text == "who are you"
    assert response.headers["www-authenticate"] == "Basic"


def test_outer_flow_sees_inner_flow_short_circuit(make_client: MakeClient) -> None:
    app = App()

    @app.middleware
    def outer(request: Request) -> Flow:
        response = yield
        response.headers["x-outer"] = str(response.status)

    @app.middleware
    async def inner(request: Request) -> AsyncFlow:
        yield Response.text("stopped", status=429)

    @app.get("/")
    def index(request: Request) -> str:
        return "ok"

    response = make_client(app).get("/")
    assert response.status_code == 429
    assert response.text == "stopped"
    assert response.headers["x-outer"] == "429"


def test_middleware_refuses_non_generator() -> None:
    app = App()

    def not_a_flow(request: Request) -> None:
        return None

    with pytest.raises(TypeError, match="yield"):
        app.middleware(not_a_flow)


# -- errors no flow answers: the response they become goes out through the flows that wait --


def waiting_flow(app: App, colour: str, name: str, seen: list[str]) -> None:
    """Register a flow that catches any error, lets it be answered further out, and labels
    the response it becomes (or any other response) with ``x-trail: name``."""
    if colour == "sync":

        @app.middleware
        def label(request: Request) -> Flow:
            try:
                response = yield
            except Exception as exc:
                seen.append(f"{name} saw {type(exc).__name__}")
                response = yield
            response.headers.add("x-trail", name)

    else:

        @app.middleware
        async def alabel(request: Request) -> AsyncFlow:
            try:
                response = yield
            except Exception as exc:
                seen.append(f"{name} saw {type(exc).__name__}")
                response = yield
            await asyncio.sleep(0)
            response.headers.add("x-trail", name)


def failing_routes(app: App) -> None:
    @app.get("/sync")
    def sync_boom(request: Request) -> str:
        raise ValueError("from def")

    @app.get("/async")
    async def async_boom(request: Request) -> str:
        raise ValueError("from async def")


def test_waiting_flows_get_the_500_of_an_unhandled_error(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[str] = []
    waiting_flow(app, colour, "outer", seen)
    waiting_flow(app, "async" if colour == "sync" else "sync", "inner", seen)
    failing_routes(app)
    client = make_client(app)
    for path in ("/sync", "/async"):
        seen.clear()
        for response in (client.get(path), client.head(path)):
            assert response.status_code == 500
            assert response.headers.get_list("x-trail") == ["inner", "outer"]
        assert response.content == b""
        assert seen == ["inner saw ValueError", "outer saw ValueError"] * 2


def test_waiting_flows_get_the_500_handlers_response(make_client: MakeClient, colour: str) -> None:
    app = App()
    seen: list[str] = []
    waiting_flow(app, colour, "label", seen)
    failing_routes(app)

    @app.error_handler(500)
    def server_error(request: Request, exc: Exception) -> dict[str, str]:
        return {"error": str(exc)}

    response = make_client(app).get("/async")
    assert (response.status_code, response.json()) == (500, {"error": "from async def"})
    assert response.headers["x-trail"] == "label"
    assert seen == ["label saw ValueError"]


def test_an_outer_flow_still_sees_the_error_and_may_answer_it(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[str] = []

    @app.middleware
    def answer(request: Request) -> Flow:
        try:
            response = yield
        except ValueError as exc:
            seen.append("answer saw ValueError")
            yield Response.text(f"answered: {exc}", status=409)
            return
        response.headers.add("x-trail", "answer")

    waiting_flow(app, colour, "inner", seen)
    failing_routes(app)
    response = make_client(app).get("/sync")
    # NOTE: the inner flow waited, and got the outer flow's answer, not a 500.
    assert (response.status_code, response.text) == (409, "answered: from def")
    assert response.headers.get_list("x-trail") == ["inner"]
    assert seen == ["inner saw ValueError", "answer saw ValueError"]


def test_flows_that_let_the_error_pass_end_and_the_others_still_wait(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[str] = []
    waiting_flow(app, colour, "outer", seen)

    @app.middleware
    def plain(request: Request) -> Flow:
        response = yield
        response.headers.add("x-trail", "plain")  # NOTE: never runs for an error

    @app.middleware
    async def rethrow(request: Request) -> AsyncFlow:
        try:
            yield
        except ValueError:
            seen.append("rethrow saw ValueError")
            raise

    waiting_flow(app, colour, "inner", seen)
    failing_routes(app)
    response = make_client(app).get("/async")
    assert response.status_code == 500
    assert response.headers.get_list("x-trail") == ["inner", "outer"]
    assert seen == ["inner saw ValueError", "rethrow saw ValueError", "outer saw ValueError"]


def test_waiting_flows_get_the_response_of_an_error_raised_by_a_flow(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[str] = []
    waiting_flow(app, colour, "outer", seen)

    @app.middleware
    def deny(request: Request) -> Flow:
        if request.path == "/denied":
            raise HTTPError(401, "who are you", {"www-authenticate": "Basic"})
        response = yield
        if request.path == "/broken":
            raise KeyError(response.status)

    @app.get("/{name}")
    def index(request: Request, name: str) -> str:
        return name

    client = make_client(app)
    denied = client.get("/denied")
    assert (denied.status_code, denied.text) == (401, "who are you")
    assert denied.headers["www-authenticate"] == "Basic"
    assert denied.headers["x-trail"] == "outer"
    broken = client.get("/broken")
    assert broken.status_code == 500
    assert broken.headers["x-trail"] == "outer"
    assert seen == ["outer saw HTTPError", "outer saw KeyError"]


def test_a_waiting_flow_may_replace_the_response_or_fail(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[str] = []
    waiting_flow(app, colour, "outer", seen)

    @app.middleware
    def middle(request: Request) -> Flow:
        try:
            yield
        except ValueError:
            response = yield
            if request.query.get("do") == "fail":
                raise LookupError("the waiting flow failed") from None
            yield Response.text(f"sorry ({response.status})", status=503)

    failing_routes(app)
    client = make_client(app)
    replaced = client.get("/sync")
    assert (replaced.status_code, replaced.text) == (503, "sorry (500)")
    assert replaced.headers["x-trail"] == "outer"
    failed = client.get("/sync?do=fail")
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")
    assert failed.headers["x-trail"] == "outer"


def test_a_flow_that_ends_after_catching_leaves_the_error_standing(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[str] = []
    waiting_flow(app, colour, "outer", seen)

    @app.middleware
    async def swallow(request: Request) -> AsyncFlow:
        try:
            yield
        except ValueError:
            seen.append("swallow ended")

    failing_routes(app)
    response = make_client(app).get("/sync")
    assert response.status_code == 500
    assert response.headers["x-trail"] == "outer"
    assert seen == ["swallow ended", "outer saw ValueError"]


def add_waiting_flow(app: App, colour: str, events: list[str]) -> None:
    """A flow (of ``colour``) that waits for the answer to a ``ValueError``; notes its closing."""
    if colour == "sync":

        @app.middleware
        def wait(request: Request) -> Flow:
            try:
                yield
            except ValueError:
                try:
                    yield
                finally:
                    events.append("closed")

    else:

        @app.middleware
        async def await_(request: Request) -> AsyncFlow:
            try:
                yield
            except ValueError:
                try:
                    yield
                finally:
                    events.append("closed")


def post_with_the_client_gone(
    app: App, events: list[str]
) -> tuple[list[str], list[dict[str, Any]]]:
    """POST to ``app`` under ASGI from a client already gone; ``events`` then, and what was sent."""
    sent: list[dict[str, Any]] = []
    seen: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        scope = http_scope("POST", headers=[(b"content-length", b"10")])
        await app.as_asgi()(scope, receive, send)
        # NOTE: read before asyncio.run() finalizes the async generators left open.
        seen.extend(events)

    asyncio.run(main())
    return seen, sent


def test_waiting_flows_are_closed_when_the_client_leaves(colour: str) -> None:
    events: list[str] = []
    app = App()

    @app.middleware
    async def reads_on_error(request: Request) -> AsyncFlow:
        try:
            yield
        except ValueError:
            events.append("reading")
            await request.aread()  # NOTE: the client has left: ClientDisconnect
            yield Response.text("never sent")

    add_waiting_flow(app, colour, events)

    @app.post("/")
    async def index(request: Request) -> str:
        raise ValueError("boom")

    assert post_with_the_client_gone(app, events) == (["reading", "closed"], [])


def test_waiting_flows_are_closed_when_an_error_handler_finds_the_client_gone(
    colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the error handler reads the body to report it, and the client has left: nothing is
    # sent, and nothing logged but the error itself, as when a handler's read finds it gone.
    events: list[str] = []
    app = App()
    add_waiting_flow(app, colour, events)

    @app.error_handler(500)  # NOTE: thrown in at the flows first, which wait for its answer.
    async def report(request: Request, exc: ValueError) -> str:
        return f"{exc} with {len(await request.aread())} bytes"

    @app.post("/")
    async def index(request: Request) -> str:
        raise ValueError("boom")

    assert post_with_the_client_gone(app, events) == (["closed"], [])
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    assert errors == ["unhandled error in POST /"]


# -- an error that passes a flow leaves no reference cycle --------------------------------------


def test_an_error_passing_a_flow_leaves_no_cycle_holding_the_request(
    interface: str, colour: str
) -> None:
    # NOTE: the error thrown in at the flow's yield came back out through frames that held it
    # (a cycle with its traceback): each 500 kept its request, body and form until a full
    # garbage collection.
    app = App()

    def passing(request: Request) -> Iterator[None]:
        yield

    async def apassing(request: Request) -> AsyncIterator[None]:
        yield

    app.middleware(passing if colour == "sync" else apassing)

    @app.post("/")
    def boom(request: Request) -> None:
        raise RuntimeError("no")

    assert requests_left_in_cycles(app, interface, "POST", "/", b"body") == 0


# -- a request the server cancels (ASGI) --------------------------------------------------------


def add_flow_with_cleanup(app: App, colour: str, name: str, events: list[str]) -> None:
    """A flow (of ``colour``) that notes what reaches its ``yield``, and its ``finally``."""
    if colour == "sync":

        @app.middleware
        def flow(request: Request) -> Flow:
            try:
                yield
            except BaseException as exc:
                events.append(f"{name} {type(exc).__name__}")
                raise
            finally:
                events.append(f"{name} finally")

    else:

        @app.middleware
        async def aflow(request: Request) -> AsyncFlow:
            try:
                yield
            except BaseException as exc:
                events.append(f"{name} {type(exc).__name__}")
                raise
            finally:
                events.append(f"{name} finally")


@pytest.mark.parametrize("handler", ["async", "def"])
def test_flows_are_closed_when_the_server_cancels_the_request(colour: str, handler: str) -> None:
    # NOTE: Uvicorn cancels a request's task when its graceful shutdown times out. The flows'
    # finally blocks ran only when their generators were collected, if ever: an async flow's
    # aclose() was left to a task of a loop that was about to stop.
    events: list[str] = []
    started = asyncio.Event()
    app = App()
    add_flow_with_cleanup(app, colour, "outer", events)
    add_flow_with_cleanup(app, "async" if colour == "sync" else "sync", "inner", events)

    if handler == "async":

        @app.get("/")
        async def slow(request: Request) -> str:
            started.set()
            await asyncio.sleep(3600)
            return "never"

    else:
        release = threading.Event()

        @app.get("/")
        def slow_def(request: Request) -> str:
            started.set()  # NOTE: an asyncio.Event set from a pool thread: polled below.
            release.wait(5)
            return "never sent"

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # NOTE: the client stays; the server gives up.
        return {}

    async def send(message: dict[str, Any]) -> None:
        return None

    async def main() -> list[str]:
        task = asyncio.create_task(app.as_asgi()(http_scope(), receive, send))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # NOTE: read before asyncio.run() finalizes the async generators left open.
        return list(events)

    try:
        seen = asyncio.run(main())
    finally:
        if handler == "def":
            release.set()
    assert seen == [
        "inner GeneratorExit",
        "inner finally",
        "outer GeneratorExit",
        "outer finally",
    ]


def test_a_second_bare_yield_ends_the_flow_there(make_client: MakeClient, colour: str) -> None:
    # NOTE: as docs/middleware.md says: the flow is closed, its finally runs, nothing after.
    events: list[str] = []
    app = App()

    if colour == "sync":

        @app.middleware
        def twice(request: Request) -> Flow:
            try:
                response = yield
                response.headers["x-first"] = "yes"
                yield
                events.append("after the second yield")
            finally:
                events.append("finally")

    else:

        @app.middleware
        async def atwice(request: Request) -> AsyncFlow:
            try:
                response = yield
                response.headers["x-first"] = "yes"
                yield
                events.append("after the second yield")
            finally:
                events.append("finally")

    @app.get("/")
    def index(request: Request) -> str:
        return "ok"

    response = make_client(app).get("/")
    assert (response.status_code, response.text, response.headers["x-first"]) == (200, "ok", "yes")
    assert events == ["finally"]


def add_flow_failing_to_close(app: App, colour: str, events: list[str]) -> None:
    """A flow (of ``colour``) that waits for an error's response, and whose cleanup fails."""
    if colour == "sync":

        @app.middleware
        def flow(request: Request) -> Flow:
            try:
                yield
            except ValueError:
                yield  # NOTE: waits for the response the error becomes.
            finally:
                events.append("failing finally")
                raise RuntimeError("cleanup failed")

    else:

        @app.middleware
        async def aflow(request: Request) -> AsyncFlow:
            try:
                yield
            except ValueError:
                yield
            finally:
                events.append("failing finally")
                raise RuntimeError("cleanup failed")


@pytest.mark.parametrize("when", ["in the handler", "in the error handler"])
def test_a_flow_whose_cleanup_fails_leaves_the_cancellation_going_on(
    colour: str, when: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the cleanup's error took the cancellation's place: the flows outside got it thrown
    # in, and the request the server had given up on was answered with a 500, its task ending as
    # if never cancelled; or (a flow waiting for an error's response) the task ended with the
    # cleanup's error. It is logged now, the other flows are closed, the cancellation goes on.
    events: list[str] = []
    started = asyncio.Event()
    app = App()
    add_flow_with_cleanup(app, "async" if colour == "sync" else "sync", "outer", events)
    add_flow_failing_to_close(app, colour, events)

    @app.get("/")
    async def index(request: Request) -> str:
        if when == "in the error handler":
            raise ValueError("boom")
        started.set()
        await asyncio.sleep(3600)
        return "never"

    @app.error_handler(500)  # NOTE: thrown in at the flows first; the failing one waits.
    async def slow(request: Request, exc: Exception) -> str:
        if isinstance(exc, ValueError):
            started.set()
            await asyncio.sleep(3600)
        return "answered"

    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # NOTE: the client stays; the server gives up.
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> list[str]:
        task = asyncio.create_task(app.as_asgi()(http_scope(), receive, send))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return list(events)

    seen = asyncio.run(main())
    assert sent == []
    if when == "in the handler":
        assert seen == ["failing finally", "outer GeneratorExit", "outer finally"]
    else:  # NOTE: the outer flow let the error pass and ended; the failing one waited.
        assert seen == ["outer ValueError", "outer finally", "failing finally"]
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [str(exc) for exc in logged if isinstance(exc, RuntimeError)] == ["cleanup failed"]


KEPT = Response.redirect("/", 303, {"x-kept": "yes"})
"""A response kept at module level, as an app keeps a constant page; returned by many requests."""


@pytest.mark.parametrize("source", ["handler", "tuple", "flow", "replacing flow", "error handler"])
def test_a_kept_response_is_never_changed_by_a_request(
    make_client: MakeClient, colour: str, source: str
) -> None:
    app = App()
    before = (KEPT.status, KEPT.headers.items(), KEPT.body)

    @app.middleware
    def per_user(request: Request) -> Flow:
        response = yield
        # NOTE: as Sessions adds its cookie: a value of this request's own.
        response.headers.add("set-cookie", f"user={request.query.get('user')}")

    if source in ("flow", "replacing flow"):

        @app.middleware
        def answer(request: Request) -> Flow:
            if source == "flow":
                yield KEPT
            else:
                yield
                yield KEPT

    @app.error_handler(404)
    def missing(request: Request, exc: HTTPError) -> Response:
        return KEPT

    def home(request: Request) -> Any:
        if source == "error handler":
            raise HTTPError(404)
        if source == "tuple":
            return KEPT, 302, {"x-user": str(request.query.get("user"))}
        return KEPT

    app.get("/")(in_colour(colour, home))
    client = make_client(app)
    for user in ("alice", "bob"):
        response = client.get(f"/?user={user}", follow_redirects=False)
        assert response.headers.get_list("set-cookie") == [f"user={user}"]
        assert response.headers["x-kept"] == "yes"
        assert response.status_code == (302 if source == "tuple" else 303)
        if source == "tuple":
            assert response.headers["x-user"] == user
    assert (KEPT.status, KEPT.headers.items(), KEPT.body) == before


class Page(Response):
    """A subclass made from its own arguments, with a slot of its own and a ``__dict__``."""

    __slots__ = ("__dict__", "__title")

    def __new__(cls, title: str) -> Page:
        return super().__new__(cls)

    def __init__(self, title: str) -> None:
        super().__init__(f"<h1>{title}</h1>", media_type="text/html")
        self.__title = title
        self.extra = [title]

    @property
    def title(self) -> str:
        return self.__title


KEPT_PAGE = Page("home")


def test_a_kept_response_of_a_subclass_is_copied_whole(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    seen: list[Any] = []

    @app.middleware
    def tag(request: Request) -> Flow:
        response = yield
        seen.append((type(response), response.title, response.extra, response is KEPT_PAGE))
        response.headers["x-tag"] = "on"

    app.get("/")(in_colour(colour, lambda request: KEPT_PAGE))
    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (200, "<h1>home</h1>")
    assert response.headers["x-tag"] == "on"
    assert seen == [(Page, "home", ["home"], False)]
    assert "x-tag" not in KEPT_PAGE.headers


FIELDS = ("author", "edited")


class Article(Response):
    """A subclass whose ``__slots__`` were a generator, spent once the class was made."""

    __slots__ = (f"_{field}" for field in FIELDS)

    def __init__(self, author: str) -> None:
        super().__init__(f"by {author}")
        self._author, self._edited = author, False


class _(Response):
    """A class whose name is all underscores: Python mangles no slot name in it."""

    __slots__ = ("__seen",)

    def __init__(self) -> None:
        super().__init__("underscores")
        self.__seen = True

    def seen(self) -> bool:
        return self.__seen


KEPT_ARTICLE, KEPT_UNDERSCORES = Article("ann"), _()


def test_a_kept_subclass_keeps_slots_read_from_their_descriptors(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: the slots were copied by the names in __slots__: none for a generator, and a
    # wrongly mangled one under a class named "_": an AttributeError, a 500, each request.
    app = App()
    seen: list[Any] = []

    @app.middleware
    def tag(request: Request) -> Flow:
        response = yield
        if isinstance(response, Article):
            seen.append((response._author, response._edited, response is KEPT_ARTICLE))
        else:
            seen.append((response.seen(), response is KEPT_UNDERSCORES))

    app.get("/article", name="article")(in_colour(colour, lambda request: KEPT_ARTICLE))
    app.get("/underscores", name="u")(in_colour(colour, lambda request: KEPT_UNDERSCORES))
    client = make_client(app)
    assert client.get("/article").text == "by ann"
    assert client.get("/underscores").text == "underscores"
    assert seen == [("ann", False, False), (True, False)]


class Frozen(Response):
    """A subclass that says it is immutable: its ``__copy__`` returns it."""

    __slots__ = ()

    def __copy__(self) -> Frozen:
        return self


KEPT_FROZEN = Frozen("frozen")


def test_a_kept_response_whose_copy_is_itself_is_still_copied(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: copy.copy() gave the kept response back: each user's cookie stayed on it, and
    # went to every later client.
    app = App()

    @app.middleware
    def login(request: Request) -> Flow:
        response = yield
        response.set_cookie("user", str(request.query.get("user")))

    app.get("/")(in_colour(colour, lambda request: KEPT_FROZEN))
    client = make_client(app)
    for user in ("alice", "bob"):
        response = client.get(f"/?user={user}")
        assert (response.text, response.headers.get_list("set-cookie")) == (
            "frozen",
            [f"user={user}; Path=/; SameSite=Lax"],
        )
    assert "set-cookie" not in KEPT_FROZEN.headers


@pytest.mark.parametrize("body", ["text", "stream", "file"])
def test_a_flow_that_keeps_its_response_keeps_it_as_it_gave_it(
    make_client: MakeClient, colour: str, body: str, tmp_path: Any
) -> None:
    # NOTE: a cache of pages, inside a flow that adds the request's own cookie (as Sessions
    # does): the cached response went to the next client with the first one's cookie.
    page = tmp_path / "page.txt"
    page.write_text("page")
    app = App()
    cache: dict[str, Response] = {}
    made: list[str] = []

    @app.middleware
    def per_user(request: Request) -> Flow:
        response = yield
        response.headers.add("set-cookie", f"user={request.query.get('user')}")
        response.status = 201

    @app.middleware
    def cached(request: Request) -> Flow:
        if request.path in cache:
            yield cache[request.path]
            return
        response = yield
        response.headers["x-cached"] = "yes"
        cache[request.path] = response

    def home(request: Request) -> Any:
        made.append(str(request.query.get("user")))
        if body == "stream":
            return Response.stream(iter([b"pa", b"ge"]))
        if body == "file":
            return Response.file(page)
        return "page"

    app.get("/")(in_colour(colour, home))
    client = make_client(app)
    for user in ("alice", "bob", "carol"):
        response = client.get(f"/?user={user}")
        assert response.status_code == 201
        assert response.headers.get_list("set-cookie") == [f"user={user}"]
        assert response.headers["x-cached"] == "yes"
        if body != "stream" or user == "alice":  # NOTE: a stream is read once, as documented.
            assert response.text == "page"
    assert made == ["alice"]
    kept = cache["/"]
    assert (kept.status, kept.headers.get("set-cookie")) == (200, None)
