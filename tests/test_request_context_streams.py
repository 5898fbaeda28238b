"""What a streamed body sets of its context variables, and what the request's other steps see
of it, under both interfaces (review398).

Under WSGI a sync stream's chunks run in the request's own context, and an async stream's
values are set there once it has ended: its after-response work saw them. Under ASGI a sync
stream ran in a copy of its own in a pool thread, and an async one in the sending task's copy:
the after-response work saw neither. A stream's values are now set in the request's context
once it has ended and closed, under both interfaces, whatever the colour of the stream, of the
flows around it and of the after-response work.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from typing import Any

import pytest
from conftest import MakeClient
from drive import asgi_get

from microweb import App, Request, Response
from microweb.plugins import GZip
from microweb.testing import TestClient

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen_streams", default="unset")


def _chunks(seen: list[str]) -> Iterator[bytes]:
    SEEN.set("the stream's first")
    try:
        yield b"a"
        seen.append(f"chunk: {SEEN.get()}")
        SEEN.set("the stream's last")
        yield b"b"
    finally:
        seen.append(f"finally: {SEEN.get()}")


async def _async_chunks(seen: list[str]) -> AsyncIterator[bytes]:
    for chunk in _chunks(seen):
        yield chunk


def _after(seen: list[str], colour: str) -> Callable[[], Any]:
    def after() -> None:
        seen.append(f"after: {SEEN.get()}")

    async def async_after() -> None:
        after()

    return after if colour == "def" else async_after


def _streaming(seen: list[str], body: Callable[[], Any]) -> App:
    """An app whose GET of "/" streams ``body()``, its after-response work (a ``def``) saying
    in ``seen`` what it sees."""
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(_after(seen, "def"))
        return Response.stream(body())

    return app


def _stream_app(seen: list[str], stream: str, after: str) -> App:
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(_after(seen, after))
        chunks = _chunks(seen) if stream == "sync" else _async_chunks(seen)
        return Response.stream(chunks)

    @app.get("/get")
    def get(request: Request) -> str:
        return SEEN.get()

    return app


@pytest.mark.parametrize("after", ["def", "async def"])
@pytest.mark.parametrize("stream", ["sync", "async"])
def test_after_response_work_sees_what_the_stream_set(
    make_client: MakeClient, stream: str, after: str
) -> None:
    seen: list[str] = []
    client = make_client(_stream_app(seen, stream, after))
    assert client.get("/").text == "ab"
    assert seen == [
        "chunk: the stream's first",
        "finally: the stream's last",
        "after: the stream's last",
    ]
    assert client.get("/get").text == "unset"
    assert SEEN.get() == "unset"


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_after_response_work_sees_what_a_stream_closed_early_set(
    make_client: MakeClient, stream: str
) -> None:
    seen: list[str] = []
    client = make_client(_stream_app(seen, stream, "def"))
    with client.stream("GET", "/") as response:
        assert next(response.iter_bytes()) == b"a"
    assert seen[-1] == "after: " + seen[-2].removeprefix("finally: ")
    assert seen[-1] in ("after: the stream's first", "after: the stream's last")
    assert client.get("/get").text == "unset"


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_stream_that_fails_is_seen_by_its_after_response_work(
    make_client: MakeClient, stream: str
) -> None:
    seen: list[str] = []

    def failing() -> Iterator[bytes]:
        SEEN.set("the failing stream's")
        yield b"a"
        raise ValueError("the stream's own")

    async def async_failing() -> AsyncIterator[bytes]:
        for chunk in failing():
            yield chunk

    app = _streaming(seen, lambda: failing() if stream == "sync" else async_failing())

    client = make_client(app)
    with pytest.raises(ValueError, match="the stream's own"):
        client.get("/")
    assert seen == ["after: the failing stream's"]


@pytest.mark.parametrize("wrapper", ["gzip", "sse"])
@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_stream_that_gzip_or_an_event_stream_wraps(
    make_client: MakeClient, stream: str, wrapper: str
) -> None:
    seen: list[str] = []
    app = App()
    app.install(GZip(minimum_size=1))

    def events() -> Iterator[str]:
        SEEN.set("the wrapped stream's")
        yield "x" * 100

    async def async_events() -> AsyncIterator[str]:
        for event in events():
            yield event

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(_after(seen, "def"))
        chunks = events() if stream == "sync" else async_events()
        if wrapper == "sse":
            return Response.sse(chunks)
        return Response.stream(chunks, media_type="text/plain")

    response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert "x" * 100 in response.text
    assert response.headers.get("content-encoding") == ("gzip" if wrapper == "gzip" else None)
    assert seen == ["after: the wrapped stream's"]


def _bound(
    var: contextvars.ContextVar[str], value: str, stream: str
) -> Iterator[bytes] | AsyncIterator[bytes]:
    """A stream of one chunk, sync or (``stream`` "async") async, that sets ``var`` to
    ``value`` for its life and resets it by its token as it ends."""

    def chunks() -> Iterator[bytes]:
        token = var.set(value)
        try:
            yield b"a"
        finally:
            var.reset(token)

    async def async_chunks() -> AsyncIterator[bytes]:
        token = var.set(value)
        try:
            yield b"a"
        finally:
            var.reset(token)

    return chunks() if stream == "sync" else async_chunks()


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_stream_that_resets_its_token_leaves_nothing_for_its_after_response_work(
    make_client: MakeClient, stream: str
) -> None:
    # NOTE: a logging context bound for the stream's life (structlog's bound_contextvars).
    seen: list[str] = []
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        SEEN.set("the handler's")
        request.after_response(_after(seen, "async def"))
        return Response.stream(_bound(SEEN, "bound by the stream", stream))

    assert make_client(app).get("/").text == "a"
    assert seen == ["after: the handler's"]


def _flow(request: Request) -> Generator[None, Response, Response]:
    token = SEEN.set("the flow's before")
    try:
        response = yield
    finally:
        SEEN.reset(token)
    SEEN.set(SEEN.get() + ", the flow's after")
    return response


async def _async_flow(request: Request) -> AsyncIterator[None]:
    # NOTE: no token here: on 3.10 an async flow's steps under WSGI run in copies.
    SEEN.set("the async flow's before")
    yield
    SEEN.set(SEEN.get() + ", the async flow's after")


@pytest.mark.parametrize("flow", ["def", "async def"])
@pytest.mark.parametrize("stream", ["sync", "async"])
def test_flows_that_set_before_and_after_yield_around_a_stream(
    make_client: MakeClient, flow: str, stream: str
) -> None:
    seen: list[str] = []
    app = App()
    app.middleware(_flow if flow == "def" else _async_flow)

    def chunks() -> Iterator[bytes]:
        seen.append(f"stream: {SEEN.get()}")
        SEEN.set(SEEN.get() + ", the stream's")
        yield b"a"

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    @app.get("/")
    def index(request: Request) -> Response:
        seen.append(f"handler: {SEEN.get()}")
        request.after_response(_after(seen, "async def"))
        return Response.stream(chunks() if stream == "sync" else async_chunks())

    client = make_client(app)
    assert client.get("/").text == "a"
    outside = "unset" if flow == "def" else "the async flow's before"
    done = f"{outside}, the {'' if flow == 'def' else 'async '}flow's after"
    assert seen == [
        f"handler: the {'' if flow == 'def' else 'async '}flow's before",
        f"stream: {done}",
        f"after: {done}, the stream's",
    ]
    assert SEEN.get() == "unset"


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_both_interfaces_agree_and_keep_nothing_for_the_next_request(stream: str) -> None:
    seen: list[str] = []
    with TestClient(_stream_app(seen, stream, "def"), interface="both") as client:
        assert client.get("/").text == "ab"
        assert client.get("/get").text == "unset"
    assert seen == 2 * [
        "chunk: the stream's first",
        "finally: the stream's last",
        "after: the stream's last",
    ]
    assert SEEN.get() == "unset"


# --- a WSGI middleware around the app, called as a server's thread calls it


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
    }


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
    return None


class _SetsBetweenChunks:
    """A WSGI middleware that sets ``SEEN`` before it calls the app, then again before it takes
    each chunk and before it closes the body."""

    def __init__(self, wsgi: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi = wsgi

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        token = SEEN.set("before the call")
        try:
            body = self.wsgi(environ, start_response)
            chunks = iter(body)
            try:
                for number in range(1, 10):
                    SEEN.set(f"before chunk {number}")
                    chunk = next(chunks, None)
                    if chunk is None:
                        return
                    yield chunk
            finally:
                SEEN.set("before the close")
                getattr(body, "close", lambda: None)()
        finally:
            SEEN.reset(token)


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_stream_sees_what_a_wsgi_middleware_set_before_the_call_alone(stream: str) -> None:
    # NOTE: the rule of docs/sync-and-async.md: the request's context is a copy of the calling
    # thread's, made as the app is called; what the caller sets after that (between chunks, or
    # before the close) is not seen by the stream, its close or its after-response work.
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        try:
            for _ in range(2):
                seen.append(f"chunk: {SEEN.get()}")
                yield b"."
        finally:
            seen.append(f"finally: {SEEN.get()}")

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    app = _streaming(seen, lambda: chunks() if stream == "sync" else async_chunks())

    wsgi = app.as_wsgi()
    try:
        assert b"".join(_SetsBetweenChunks(wsgi)(_environ("/"), _start)) == b".."
    finally:
        wsgi.close()
    assert seen == [
        "chunk: before the call",
        "chunk: before the call",
        "finally: before the call",
        "after: before the call",
    ]
    assert SEEN.get() == "unset"


# --- an ASGI middleware around the app, in the server's task for the request


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_an_asgi_middleware_sees_what_the_stream_set_once_the_app_returns(stream: str) -> None:
    # NOTE: under ASGI the request runs in the task the server made for it, microweb copies none:
    # a middleware that awaits the app sees what its handler set (as before), its stream's
    # values included once it has closed.
    app = App()

    def chunks() -> Iterator[bytes]:
        SEEN.set("the stream's")
        yield b"a"

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    @app.get("/")
    def index(request: Request) -> Response:
        return Response.stream(chunks() if stream == "sync" else async_chunks())

    asgi = app.as_asgi()

    async def middleware() -> str:
        token = SEEN.set("the middleware's")
        try:
            assert await asgi_get(asgi, "/") == (200, b"a")
            return SEEN.get()
        finally:
            SEEN.reset(token)

    assert asyncio.run(middleware()) == "the stream's"
    assert SEEN.get() == "unset"


# --- attacks on the copy of a stream's values into the request's context (review403)


class _ClosingStream:
    """A sync stream object whose close() sets ``SEEN``; never iterated where it is not sent."""

    def __init__(self, chunk: bytes | str = b"a") -> None:
        self.closed, self.chunk = False, chunk

    def __iter__(self) -> Iterator[bytes | str]:
        yield self.chunk

    def close(self) -> None:
        self.closed = True
        SEEN.set("the stream's close")


class _AsyncClosingStream:
    """An async stream object whose aclose() sets ``SEEN``."""

    def __init__(self, chunk: bytes | str = b"a") -> None:
        self.closed, self.chunk = False, chunk

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes | str]:
        yield self.chunk

    async def aclose(self) -> None:
        self.closed = True
        SEEN.set("the stream's close")


@pytest.mark.parametrize("stream", ["sync", "async"])
@pytest.mark.parametrize("answer", ["HEAD", "204", "304"])
def test_the_close_of_a_stream_not_sent_is_seen_by_the_after_response_work(
    make_client: MakeClient, stream: str, answer: str
) -> None:
    seen: list[str] = []
    streams: list[Any] = []
    app = App()

    @app.route("/", methods=["GET", "HEAD"])
    def index(request: Request) -> Response:
        request.after_response(_after(seen, "def"))
        body = _ClosingStream() if stream == "sync" else _AsyncClosingStream()
        streams.append(body)
        status = 200 if answer == "HEAD" else int(answer)
        return Response.stream(body, status=status)

    client = make_client(app)
    response = client.request("HEAD" if answer == "HEAD" else "GET", "/")
    assert response.content == b""
    assert streams[0].closed
    assert seen == ["after: the stream's close"]
    assert client.get("/get").status_code == 404
    assert SEEN.get() == "unset"


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_stream_whose_close_raises_is_seen_by_the_after_response_work(
    make_client: MakeClient, stream: str
) -> None:
    seen: list[str] = []

    def chunks() -> Iterator[bytes]:
        try:
            while True:
                yield b"a"
        finally:
            SEEN.set("the failing close's")
            raise ValueError("the close's own")

    async def async_chunks() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"a"
        finally:
            SEEN.set("the failing close's")
            raise ValueError("the close's own")

    app = _streaming(seen, lambda: chunks() if stream == "sync" else async_chunks())

    client = make_client(app)
    with pytest.raises(ValueError, match="the close's own"), client.stream("GET", "/") as response:
        assert next(response.iter_bytes()) == b"a"
    assert seen == ["after: the failing close's"]
    assert SEEN.get() == "unset"


NO_DEFAULT: contextvars.ContextVar[str] = contextvars.ContextVar("no_default_streams")


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_variable_the_stream_set_and_reset_to_no_value_has_none_after_it(
    make_client: MakeClient, stream: str
) -> None:
    seen: list[str] = []
    app = App()

    def after() -> None:
        seen.append(NO_DEFAULT.get("no value"))

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(after)
        return Response.stream(_bound(NO_DEFAULT, "the stream's", stream))

    assert make_client(app).get("/").text == "a"
    assert seen == ["no value"]


class _Unequal:
    """A value whose comparison raises: the copy compares by identity alone."""

    def __eq__(self, other: object) -> bool:
        raise AssertionError("compared")

    def __ne__(self, other: object) -> bool:
        raise AssertionError("compared")

    __hash__ = object.__hash__


ODD: contextvars.ContextVar[Any] = contextvars.ContextVar("odd_streams", default=None)


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_values_are_told_apart_by_identity_alone(make_client: MakeClient, stream: str) -> None:
    # NOTE: the handler's value, the stream's equal one (another object), and one that raises
    # as it is compared.
    seen: list[Any] = []
    app = App()
    handler_s, streams = "x" * 50, [_Unequal(), "".join(["x"] * 50)]

    def chunks() -> Iterator[bytes]:
        ODD.set(streams[0])
        SEEN.set(streams[1])
        yield b"a"

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    def after() -> None:
        seen.extend([ODD.get(), SEEN.get()])

    @app.get("/")
    def index(request: Request) -> Response:
        ODD.set(_Unequal())
        SEEN.set(handler_s)
        request.after_response(after)
        return Response.stream(chunks() if stream == "sync" else async_chunks())

    assert make_client(app).get("/").text == "a"
    assert seen[0] is streams[0]
    assert seen[1] is streams[1]


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_the_driver_s_own_variables_are_not_set_for_the_after_response_work(
    make_client: MakeClient, stream: str
) -> None:
    from microweb._stream_ahead import CLOSING_FOR

    seen: list[Any] = []
    app = App()

    def chunks() -> Iterator[bytes]:
        yield b"a"

    async def async_chunks() -> AsyncIterator[bytes]:
        yield b"a"

    def after() -> None:
        seen.append(CLOSING_FOR.get())

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(after)
        return Response.stream(chunks() if stream == "sync" else async_chunks())

    client = make_client(app)
    assert client.get("/").text == "a"
    with client.stream("GET", "/") as response:
        assert next(response.iter_bytes()) == b"a"
    assert seen == [None, None]


MANY = [contextvars.ContextVar(f"many_{number}", default=0) for number in range(2000)]


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_stream_that_sets_many_variables(make_client: MakeClient, stream: str) -> None:
    seen: list[int] = []
    app = App()

    def chunks() -> Iterator[bytes]:
        for number, var in enumerate(MANY):
            var.set(number)
        yield b"a"

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    def after() -> None:
        seen.append(sum(var.get() for var in MANY))

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(after)
        return Response.stream(chunks() if stream == "sync" else async_chunks())

    client = make_client(app)
    assert client.get("/").text == "a"
    assert seen == [sum(range(2000))]
    assert all(var.get() == 0 for var in MANY)


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_close_given_up_on_sets_nothing_of_its_own_here_or_in_the_next_request(
    make_client: MakeClient, interface: str, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: under ASGI, and for an async stream under WSGI, the response ends without the close
    # (CLOSE_WAIT): what the stream set before its close is set in the request's context, what
    # the close sets is not, nor in the next request's; a sync one's close under WSGI runs in
    # the server's thread, in the request's own context, to its end. Under ASGI the request's
    # after-response work saw nothing of such a stream (review403).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    seen: list[str] = []
    closed = __import__("threading").Event()

    class Chunks:
        def __iter__(self) -> Iterator[bytes]:
            SEEN.set("the stream's")
            yield b"a"

        def close(self) -> None:
            __import__("time").sleep(0.5)
            SEEN.set("the late close's")
            closed.set()

    class AsyncChunks:
        async def __aiter__(self) -> AsyncIterator[bytes]:
            SEEN.set("the stream's")
            yield b"a"

        async def aclose(self) -> None:
            await asyncio.sleep(0.5)
            SEEN.set("the late close's")
            closed.set()

    app = _streaming(seen, lambda: Chunks() if stream == "sync" else AsyncChunks())

    @app.get("/get")
    def get(request: Request) -> str:
        return SEEN.get()

    client = make_client(app)
    assert client.get("/").text == "a"
    assert closed.wait(5)
    in_thread = interface == "wsgi" and stream == "sync"
    assert seen == ["after: the late close's" if in_thread else "after: the stream's"]
    assert client.get("/get").text == "unset"
    assert SEEN.get() == "unset"


class _Big:
    """A value a stream sets, to be let go of once its request has ended."""

    payload = b"x" * 1_000_000


@pytest.mark.parametrize("early", [False, True])
@pytest.mark.parametrize("stream", ["sync", "async"])
def test_nothing_keeps_what_a_stream_set_once_its_request_has_ended(
    make_client: MakeClient, stream: str, early: bool
) -> None:
    import gc
    import weakref

    refs: list[weakref.ref[_Big]] = []
    seen: list[bool] = []
    big: contextvars.ContextVar[_Big | None] = contextvars.ContextVar("big", default=None)
    app = App()

    def chunks() -> Iterator[bytes]:
        value = _Big()
        refs.append(weakref.ref(value))
        big.set(value)
        del value
        yield b"a"
        yield b"b"

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in chunks():
            yield chunk

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(lambda: seen.append(big.get() is not None))
        return Response.stream(chunks() if stream == "sync" else async_chunks())

    client = make_client(app)
    if early:
        with client.stream("GET", "/") as response:
            assert next(response.iter_bytes()) == b"a"
        # NOTE: the TestClient's answer holds its request's task under ASGI, and so the values
        # of the request's context, the handler's as the stream's: let go of it first.
        del response
    else:
        assert client.get("/").text == "ab"
    assert seen == [True]
    gc.collect()
    assert refs[0]() is None


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("wrapper", ["gzip", "sse", "length"])
@pytest.mark.parametrize("stream", ["sync", "async"])
def test_the_close_of_a_wrapped_stream_object_is_seen_by_the_after_response_work(
    make_client: MakeClient, stream: str, wrapper: str, method: str
) -> None:
    seen: list[str] = []
    app = App()
    app.install(GZip(minimum_size=1))

    @app.route("/", methods=["GET", "HEAD"])
    def index(request: Request) -> Response:
        request.after_response(_after(seen, "def"))
        chunk = "a" if wrapper == "sse" else b"a"
        body = _ClosingStream(chunk) if stream == "sync" else _AsyncClosingStream(chunk)
        if wrapper == "sse":
            return Response.sse(body)
        if wrapper == "length":
            return Response.stream(body, headers={"content-length": "1"})
        return Response.stream(body, media_type="text/plain")

    response = make_client(app).request(method, "/", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert seen == ["after: the stream's close"]


class _AsyncStreamSyncClose:
    """An async stream object whose close() is sync, and sets ``SEEN``."""

    def __init__(self, chunk: bytes | str) -> None:
        self.chunk = chunk

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes | str]:
        yield self.chunk

    def close(self) -> None:
        SEEN.set("the stream's close")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("wrapper", ["none", "gzip", "sse", "length"])
def test_the_sync_close_of_an_async_stream_is_seen_by_the_after_response_work(
    make_client: MakeClient, wrapper: str, method: str
) -> None:
    seen: list[str] = []
    app = App()
    app.install(GZip(minimum_size=1))

    @app.route("/", methods=["GET", "HEAD"])
    def index(request: Request) -> Response:
        request.after_response(_after(seen, "def"))
        body = _AsyncStreamSyncClose("a" if wrapper == "sse" else b"a")
        if wrapper == "sse":
            return Response.sse(body)
        if wrapper == "length":
            return Response.stream(body, headers={"content-length": "1"})
        media_type = "text/plain" if wrapper == "gzip" else "application/octet-stream"
        return Response.stream(body, media_type=media_type)

    response = make_client(app).request(method, "/", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert seen == ["after: the stream's close"]


def _endless(colour: str) -> Any:
    def chunks() -> Iterator[bytes]:
        SEEN.set("chunk")
        try:
            while True:
                yield b"a"
        finally:
            SEEN.set(SEEN.get() + ", finally")

    async def async_chunks() -> AsyncIterator[bytes]:
        SEEN.set("chunk")
        try:
            while True:
                yield b"a"
                await asyncio.sleep(0)
        finally:
            SEEN.set(SEEN.get() + ", finally")

    return chunks() if colour == "sync" else async_chunks()


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_an_endless_stream_its_client_left_is_seen_by_the_after_response_work(
    make_client: MakeClient, stream: str
) -> None:
    # NOTE: under WSGI an async stream closed as its client left (its task cancelled) set
    # nothing in the request's context: the after-response work saw "unset" (review403). The
    # short streams above ran to their end ahead of the server's thread, which never saw it.
    seen: list[str] = []
    app = _streaming(seen, lambda: _endless(stream))

    client = make_client(app)
    with client.stream("GET", "/") as response:
        assert next(response.iter_bytes()) == b"a"
    assert seen == ["after: chunk, finally"]
    assert client.get("/get").status_code == 404
    assert SEEN.get() == "unset"


@pytest.mark.parametrize("stream", ["sync", "async"])
def test_a_generator_whose_finally_is_given_up_on(
    make_client: MakeClient, interface: str, stream: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: what it set before its close began is seen, what its finally sets is not, but for
    # a sync one under WSGI, whose close the server's thread runs to its end. Under WSGI an
    # async one's was not seen, under ASGI neither colour's (review403).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    seen: list[str] = []
    closed = __import__("threading").Event()

    def chunks() -> Iterator[bytes]:
        SEEN.set("chunk")
        try:
            while True:
                yield b"a"
        finally:
            __import__("time").sleep(0.5)
            SEEN.set("the late finally's")
            closed.set()

    async def async_chunks() -> AsyncIterator[bytes]:
        # NOTE: no await between its yields: it is closed at one, in its close (cancelled at
        # an await, its finally runs in its step, which the driver waits for).
        SEEN.set("chunk")
        try:
            while True:
                yield b"a"
        finally:
            await asyncio.sleep(0.5)
            SEEN.set("the late finally's")
            closed.set()

    app = _streaming(seen, lambda: chunks() if stream == "sync" else async_chunks())

    client = make_client(app)
    with client.stream("GET", "/") as response:
        assert next(response.iter_bytes()) == b"a"
    assert closed.wait(5)
    in_thread = interface == "wsgi" and stream == "sync"
    assert seen == ["after: the late finally's" if in_thread else "after: chunk"]
    assert client.get("/get").status_code == 404
    assert SEEN.get() == "unset"


def test_a_wsgi_server_thread_keeps_nothing_of_an_async_stream_it_closed_early() -> None:
    # NOTE: what the stream set is set in the request's context as the server closes the body
    # (review403), never in the server thread's own.
    seen: list[str] = []
    app = _streaming(seen, lambda: _endless("async"))

    wsgi = app.as_wsgi()
    try:
        body = wsgi(_environ("/"), _start)
        chunks = iter(body)
        assert next(chunks) == b"a"
        getattr(body, "close", lambda: None)()
    finally:
        wsgi.close()
    assert seen == ["after: chunk, finally"]
    assert SEEN.get() == "unset"
