"""A ``StopIteration`` that sync app code raises is one error, whatever runs the code.

Python turns one that leaves a generator or a coroutine into a ``RuntimeError`` (PEP 479): an
``async def`` handler's, a flow's. A ``def`` handler's became a ``RuntimeError`` from the
ASGI pool (a future refuses it) and through the core's generators, and stayed a
``StopIteration`` under WSGI without flows: error handlers and the log saw two errors.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterator

import pytest
from conftest import MakeClient, in_colour
from drive import http_scope

from microweb import App, Request, Response, Router
from microweb._types import Message


def _stops(request: Request) -> str:
    return next(iter(()))


def _app(where: str, offload: bool) -> App:
    app = App()
    if where == "router":
        router = Router(prefix="")

        @router.middleware
        def passes(request: Request):  # type: ignore[no-untyped-def]
            yield

        router.get("/", offload=offload)(_stops)
        app.include(router)
        return app
    if where == "flow":

        @app.middleware
        def passes_too(request: Request):  # type: ignore[no-untyped-def]
            yield

    app.get("/", offload=offload)(_stops)
    return app


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "inline"])
@pytest.mark.parametrize("where", ["alone", "flow", "router"])
def test_a_def_handlers_stop_iteration_is_one_error_to_error_handlers(
    make_client: MakeClient, where: str, offload: bool
) -> None:
    seen: list[BaseException] = []
    app = _app(where, offload)

    @app.error_handler(Exception)
    def answer(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return Response.text("answered", status=500)

    assert make_client(app).get("/").text == "answered"
    [error] = seen
    assert type(error) is RuntimeError
    assert str(error) == "sync app code raised StopIteration"
    assert type(error.__cause__) is StopIteration


@pytest.mark.parametrize("offload", [True, False], ids=["offload", "inline"])
@pytest.mark.parametrize("where", ["alone", "flow", "router"])
def test_a_def_handlers_stop_iteration_is_one_error_in_the_log(
    make_client: MakeClient, where: str, offload: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(_app(where, offload)).get("/")
    assert response.status_code == 500
    [error] = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert type(error) is RuntimeError
    assert type(error.__cause__) is StopIteration


def test_an_error_handlers_stop_iteration_is_one_error_in_the_log(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    @app.get("/")
    def fails(request: Request) -> None:
        raise KeyError("x")

    def stops(request: Request, exc: Exception) -> str:
        return next(iter(()))

    app.error_handler(KeyError)(in_colour(colour, stops))
    response = make_client(app).get("/")
    assert response.status_code == 500
    failures = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(error) for error in failures] == [RuntimeError]
    assert type(failures[0].__cause__) is StopIteration


def test_an_after_response_callbacks_stop_iteration_is_one_error_in_the_log(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: under WSGI the driver called it, under ASGI the pool's future carried it.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    @app.get("/")
    def later(request: Request) -> str:
        request.after_response(next, iter(()))
        return "ok"

    client = make_client(app)
    client.raise_server_exceptions = False
    assert client.get("/").text == "ok"
    [error] = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert type(error) is RuntimeError
    assert type(error.__cause__) is StopIteration


class _Stops:
    """A stream whose ``iter()`` or ``close()`` raises ``StopIteration``."""

    def __init__(self, where: str) -> None:
        self.where = where

    def __iter__(self):  # type: ignore[no-untyped-def]
        if self.where == "iter":
            raise StopIteration
        return iter([b"a"])

    def close(self) -> None:
        if self.where in ("close", "any-thread-close"):
            raise StopIteration


class _AnyThreadStops(_Stops):
    """One that any thread may read (as gzip's of a file says), endless but for ``iter``."""

    bound_to_no_thread = True

    def __iter__(self):  # type: ignore[no-untyped-def]
        if self.where == "iter":
            raise StopIteration
        return itertools.repeat(b"a" * 1024)


@pytest.mark.parametrize("where", ["iter", "close", "generator", "any-thread-close"])
def test_a_streams_stop_iteration_is_one_error_in_the_log(
    make_client: MakeClient, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a generator's own is Python's RuntimeError under both; an iter() or close() that
    # raised one left a StopIteration in the log under WSGI, a RuntimeError under ASGI.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    def stops() -> Iterator[bytes]:
        yield b"a"
        raise StopIteration

    @app.get("/")
    def streams(request: Request) -> Response:
        if where == "generator":
            return Response.stream(stops())
        return Response.stream(_Stops(where) if where != "any-thread-close" else _Finite(where))

    client = make_client(app)
    with pytest.raises(RuntimeError) as raised:
        client.get("/")
    assert type(raised.value.__cause__) is StopIteration
    [error] = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert type(error) is RuntimeError
    assert type(error.__cause__) is StopIteration
    if where != "generator":
        # NOTE: one that any thread may read, closed by the ASGI driver's coroutine, was
        # Python's "coroutine raised StopIteration".
        assert str(error) == "sync app code raised StopIteration"


class _Finite(_AnyThreadStops):
    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter([b"a"])


def test_a_stream_any_thread_reads_whose_close_stops_ends_when_the_client_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: closed in a thread once its client left, its StopIteration reached an asyncio
    # future, which refuses one ("interacts badly with generators"): the request never ended.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    @app.get("/")
    def streams(request: Request) -> Response:
        return Response.stream(_AnyThreadStops("any-thread-close"))

    sent: list[Message] = []

    async def call() -> None:
        started = asyncio.Event()
        messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

        async def receive() -> Message:
            message = next(messages, None)
            if message is not None:
                return message
            await started.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body":
                started.set()

        # NOTE: a guard against a hang, not a measure: the request ends at once.
        await asyncio.wait_for(app.as_asgi()(http_scope(), receive, send), 10)

    # NOTE: as another error of its close() after the start, raised to the server.
    with pytest.raises(RuntimeError) as raised:
        asyncio.run(call())
    assert str(raised.value) == "sync app code raised StopIteration"
    assert sent[0]["status"] == 200
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert errors
    assert all(type(error) is RuntimeError for error in errors), errors
    assert type(errors[0].__cause__) is StopIteration
