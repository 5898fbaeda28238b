"""Middleware flows: order, colours, short-circuits, replaced responses and exceptions."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from microweb import App, HTTPError, Request, Response
from microweb.testing import TestClient

MakeClient = Callable[[App], TestClient]
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
