"""What a request sets of its context variables is unset in the next request (review379).

Under WSGI a server's thread serves one request after another: what a handler, a flow or a
streamed body set stayed set in that thread, and the next request it served (another
client's) saw it. Each request now runs in a context of its own, which its streamed body,
its body's ``close()`` and its after-response work run in too.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest
from conftest import MakeClient, stream_in_colour
from drive import start_response, wsgi_environ, wsgi_get

from microweb import App, Request, Response
from microweb._wsgi_end import AFTER_SENT

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")

# NOTE: the paths of context_app's kind: each sets SEEN its own way and answers "set".
SETTING_PATHS = [
    "/def",
    "/async",
    "/flow",
    "/async-flow",
    "/stream",
    "/async-stream",
    "/handler-stream",
]


def _setting_app(seen: list[str]) -> App:
    """An app whose paths set ``SEEN`` in a handler, a flow or a stream; ``/get`` reads it.

    What a request's later steps see of it goes to ``seen``: its stream's chunks after the
    first, its stream's ``finally`` and its after-response callback (a stream's paths have
    none: what a stream's after-response work sees is test_request_context_streams.py's).
    """
    app = App()
    app.middleware(_flow)
    app.middleware(_async_flow)

    def after() -> None:
        seen.append(f"after: {SEEN.get()}")

    @app.get("/def")
    def in_def(request: Request) -> str:
        SEEN.set("a def handler's")
        request.after_response(after)
        return "set"

    @app.get("/async")
    async def in_async(request: Request) -> str:
        SEEN.set("an async handler's")
        request.after_response(after)
        return "set"

    @app.get("/flow")
    @app.get("/async-flow")
    def flowed(request: Request) -> str:
        request.after_response(after)
        return "set"

    @app.get("/get")
    def get(request: Request) -> str:
        return SEEN.get()

    _add_streams(app, seen, after)
    return app


def _flow(request: Request) -> Generator[None, Response, Response]:
    if request.path == "/flow":
        SEEN.set("a flow's")
    response = yield
    return response


async def _async_flow(request: Request) -> AsyncIterator[None]:
    if request.path == "/async-flow":
        SEEN.set("an async flow's")
    yield


def _add_streams(app: App, seen: list[str], after: Callable[[], None]) -> None:
    """Add the paths whose stream sets ``SEEN``, or whose handler sets it and streams."""

    def chunks(sets: bool = True) -> Iterator[bytes]:
        if sets:
            SEEN.set("a stream's")
        try:
            yield b"se"
            seen.append(f"stream: {SEEN.get()}")
            yield b"t"
        finally:
            seen.append(f"closed: {SEEN.get()}")

    @app.get("/stream")
    def streamed(request: Request) -> Response:
        return Response.stream(chunks())

    @app.get("/async-stream")
    def streamed_async(request: Request) -> Response:
        return Response.stream(stream_in_colour("async", chunks))

    @app.get("/handler-stream")
    async def streaming_handler(request: Request) -> Response:
        SEEN.set("a streaming handler's")
        request.after_response(after)
        return Response.stream(chunks(sets=False))


@pytest.mark.parametrize("path", SETTING_PATHS)
def test_what_a_request_sets_is_unset_in_the_next_one(make_client: MakeClient, path: str) -> None:
    seen: list[str] = []
    client = make_client(_setting_app(seen))
    assert client.get(path).text == "set"
    assert client.get("/get").text == "unset"
    # NOTE: nor is it set in the test's thread, which called the app (the WSGI side's).
    assert SEEN.get() == "unset"


@pytest.mark.parametrize("path", SETTING_PATHS)
def test_what_a_request_sets_its_later_steps_still_see(make_client: MakeClient, path: str) -> None:
    seen: list[str] = []
    client = make_client(_setting_app(seen))
    assert client.get(path).text == "set"
    expected = client.get("/get").text  # NOTE: "unset"; what follows is the first request's.
    value = {
        "/def": "a def handler's",
        "/async": "an async handler's",
        "/flow": "a flow's",
        "/async-flow": "an async flow's",
        "/handler-stream": "a streaming handler's",
    }.get(path, "a stream's")
    if path in ("/stream", "/async-stream"):
        assert seen == [f"stream: {value}", f"closed: {value}"]
    elif path == "/handler-stream":
        assert seen == [f"stream: {value}", f"closed: {value}", f"after: {value}"]
    else:
        assert seen == [f"after: {value}"]
    assert expected == "unset"


@pytest.mark.parametrize("path", ["/stream", "/async-stream", "/handler-stream"])
def test_a_stream_read_as_it_comes_keeps_its_values_to_itself(
    make_client: MakeClient, path: str
) -> None:
    # NOTE: TestClient.stream() takes the WSGI side's chunks in the test's thread, between
    # which the test runs: it sees none of the request's values, before or after its close.
    seen: list[str] = []
    client = make_client(_setting_app(seen))
    with client.stream("GET", path) as response:
        chunks = response.iter_bytes()
        first = next(chunks)
        assert SEEN.get() == "unset"
        assert first + b"".join(chunks) == b"set"
    assert SEEN.get() == "unset"
    assert client.get("/get").text == "unset"
    assert [step.split(":")[0] for step in seen][:2] == ["stream", "closed"]


def test_a_client_that_calls_both_interfaces_keeps_no_value_for_the_next_request() -> None:
    # NOTE: interface="both" sends each request through the WSGI side, then the ASGI side,
    # whose task copies the test's thread: that thread kept the WSGI side's value, and both
    # sides answered the next request with it (their answers alike, no difference told).
    from microweb.testing import TestClient

    with TestClient(_setting_app([]), interface="both") as client:
        for path in ("/def", "/async", "/stream"):
            assert client.get(path).text == "set"
            assert client.get("/get").text == "unset"


# --- the WSGI callable called directly, as a server's thread does, one request after another
# (drive.wsgi_get() iterates the body, then closes it)


@pytest.mark.parametrize("path", SETTING_PATHS)
def test_a_server_thread_keeps_nothing_of_a_request_for_the_next(path: str) -> None:
    seen: list[str] = []
    wsgi = _setting_app(seen).as_wsgi()
    try:
        assert wsgi_get(wsgi, path) == ("200 OK", b"set")
        assert SEEN.get() == "unset"
        assert wsgi_get(wsgi, "/get") == ("200 OK", b"unset")
    finally:
        wsgi.close()


def test_work_left_for_after_the_response_is_sent_sees_the_requests_values() -> None:
    # NOTE: microweb serve's Waitress runs it once the body is closed and the answer sent,
    # outside the request's call and its body's close().
    seen: list[str] = []
    left: list[Callable[[], None]] = []
    wsgi = _setting_app(seen).as_wsgi()
    try:
        for path in ("/def", "/handler-stream"):
            assert wsgi_get(wsgi, path, **{AFTER_SENT: left.append}) == ("200 OK", b"set")
            while left:
                left.pop(0)()
            assert SEEN.get() == "unset"
        assert seen == [
            "after: a def handler's",
            "stream: a streaming handler's",
            "closed: a streaming handler's",
            "after: a streaming handler's",
        ]
    finally:
        wsgi.close()


def test_a_stream_closed_early_resets_its_token_in_the_context_it_set_it_in() -> None:
    # NOTE: a server closes a body whose client left between two chunks: the generator's
    # finally resets there what it set as it began (structlog's bound_contextvars).
    resets: list[str] = []
    app = App()

    def chunks() -> Iterator[bytes]:
        token = SEEN.set("streaming")
        try:
            yield b"first"
            yield b"second"
        finally:
            SEEN.reset(token)
            resets.append(SEEN.get())

    @app.get("/")
    def index(request: Request) -> Response:
        return Response.stream(chunks())

    wsgi = app.as_wsgi()
    try:
        body = wsgi(wsgi_environ(), start_response)
        assert next(iter(body)) == b"first"
        assert SEEN.get() == "unset"
        body.close()  # type: ignore[attr-defined]
        assert resets == ["unset"]
    finally:
        wsgi.close()


def test_a_request_sees_what_the_servers_thread_set_before_calling_it() -> None:
    # NOTE: the context a request runs in is a copy of the calling thread's (a WSGI
    # middleware's values, the TestClient's own).
    app = App()

    @app.get("/")
    def index(request: Request) -> str:
        return SEEN.get()

    wsgi = app.as_wsgi()
    token = SEEN.set("the server's")
    try:
        assert wsgi_get(wsgi, "/") == ("200 OK", b"the server's")
    finally:
        SEEN.reset(token)
        wsgi.close()


class _Tagging:
    """A plugin whose ``apply()`` wraps each handler to set ``SEEN``, and whose flow reads it
    on the way out into a header."""

    name = "tagging"

    def setup(self, app: App) -> None:
        app.middleware(self.flow)

    @staticmethod
    def flow(request: Request) -> Generator[None, Response, Response]:
        response = yield
        response.headers["x-seen"] = SEEN.get()
        return response

    @staticmethod
    def apply(handler: Callable[..., Any], route: Any) -> Callable[..., Any]:
        def tagged(request: Request, **params: Any) -> Any:
            SEEN.set("a plugin's")
            return handler(request, **params)

        return tagged


def test_a_plugin_sees_what_it_set_in_its_request_and_the_next_request_does_not(
    make_client: MakeClient,
) -> None:
    app = App()
    app.install(_Tagging())

    @app.get("/")
    def index(request: Request) -> str:
        return SEEN.get()

    @app.get("/get", skip=["tagging"])
    def get(request: Request) -> str:
        return SEEN.get()

    client = make_client(app)
    response = client.get("/")
    assert (response.text, response.headers["x-seen"]) == ("a plugin's", "a plugin's")
    assert client.get("/get").text == "unset"
