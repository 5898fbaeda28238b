"""Edges of the per-request WSGI context (review391): a streamed body's chunks taken in the
request's context end at the stream's end alone, not at an empty chunk; errors out of them
are the stream's; the context is the calling thread's copy, which a WSGI middleware around
the app sees nothing of the app's in."""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest

from microweb import App, Request, Response

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen_edges", default="unset")


def _environ(path: str) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "x",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": _Input(),
        "wsgi.errors": _Errors(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


class _Input:
    def read(self, size: int = -1) -> bytes:
        return b""

    def readline(self, size: int = -1) -> bytes:
        return b""

    def readlines(self, hint: int = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter([])


class _Errors:
    def write(self, text: str) -> None:
        pass

    def writelines(self, lines: Iterable[str]) -> None:
        pass

    def flush(self) -> None:
        pass


def _start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return lambda data: None


def _served(wsgi: Callable[..., Iterable[bytes]], path: str) -> bytes:
    body = wsgi(_environ(path), _start)
    try:
        return b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()


EMPTY_CHUNKS: list[Any] = [b"", "", bytearray(), memoryview(b"")]


def _stream_app(after: list[str]) -> App:
    app = App()

    @app.get("/empties")
    def empties(request: Request) -> Response:
        request.after_response(lambda: after.append(SEEN.get()))
        SEEN.set("the request's")

        def chunks() -> Iterator[Any]:
            yield b"a"
            for empty in EMPTY_CHUNKS:
                yield empty
                yield "b"
            yield bytearray(b"c")
            yield memoryview(b"d")

        return Response.stream(chunks())

    @app.get("/async-empties")
    async def async_empties(request: Request) -> Response:
        async def chunks() -> Any:
            yield b"a"
            for empty in EMPTY_CHUNKS:
                yield empty
                yield "b"
            yield b"c"

        return Response.stream(chunks())

    return app


@pytest.mark.parametrize("wrap", [lambda w: w, validator], ids=["bare", "wsgiref.validate"])
def test_empty_chunks_do_not_end_a_stream(wrap: Callable[[Any], Any]) -> None:
    after: list[str] = []
    wsgi = _stream_app(after).as_wsgi()
    try:
        assert _served(wrap(wsgi), "/empties") == b"abbbbcd"
        assert _served(wrap(wsgi), "/async-empties") == b"abbbbc"
        assert after == ["the request's"]
    finally:
        wsgi.close()


class _Middleware:
    """A WSGI middleware around the app: sets ``SEEN`` before the call, reads it after the
    call and after the body's close (as a tracing middleware reads what the app set)."""

    def __init__(self, wsgi: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi = wsgi
        self.read: list[str] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        token = SEEN.set("the middleware's")
        try:
            body = self.wsgi(environ, start_response)
            self.read.append(SEEN.get())
            try:
                yield from body
            finally:
                getattr(body, "close", lambda: None)()
                self.read.append(SEEN.get())
        finally:
            SEEN.reset(token)


def test_a_wsgi_middleware_sees_none_of_what_the_app_set() -> None:
    app = App()

    @app.get("/")
    def index(request: Request) -> str:
        seen = SEEN.get()
        SEEN.set("the app's")
        return seen

    @app.get("/stream")
    def stream(request: Request) -> Response:
        def chunks() -> Iterator[str]:
            yield SEEN.get()
            SEEN.set("the app's")
            yield "."

        return Response.stream(chunks())

    wsgi = app.as_wsgi()
    try:
        middleware = _Middleware(wsgi)
        assert _served(middleware, "/") == b"the middleware's"
        assert _served(middleware, "/stream") == b"the middleware's."
        assert middleware.read == ["the middleware's"] * 4
    finally:
        wsgi.close()


def test_an_app_called_from_another_apps_handler_and_stream() -> None:
    inner = App()

    @inner.get("/")
    def inner_index(request: Request) -> Response:
        seen = SEEN.get()
        SEEN.set("the inner app's")

        def chunks() -> Iterator[str]:
            yield seen
            yield "|" + SEEN.get()

        return Response.stream(chunks())

    inner_wsgi = inner.as_wsgi()
    outer = App()

    @outer.get("/handler")
    def in_handler(request: Request) -> str:
        SEEN.set("the outer handler's")
        got = _served(inner_wsgi, "/").decode()
        return f"{got}|{SEEN.get()}"

    @outer.get("/stream")
    def in_stream(request: Request) -> Response:
        SEEN.set("the outer handler's")

        def chunks() -> Iterator[bytes]:
            body = inner_wsgi(_environ("/"), _start)
            try:
                for chunk in body:
                    yield chunk
                    yield b"/" + SEEN.get().encode()
            finally:
                body.close()  # type: ignore[attr-defined]

        return Response.stream(chunks())

    outer_wsgi = outer.as_wsgi()
    try:
        assert _served(outer_wsgi, "/handler") == (
            b"the outer handler's|the inner app's|the outer handler's"
        )
        assert _served(outer_wsgi, "/stream") == (
            b"the outer handler's/the outer handler's|the inner app's/the outer handler's"
        )
    finally:
        outer_wsgi.close()
        inner_wsgi.close()


def test_a_body_iterated_in_another_thread_then_closed_in_the_servers() -> None:
    after: list[str] = []
    wsgi = _stream_app(after).as_wsgi()
    try:
        body = wsgi(_environ("/empties"), _start)
        got: list[bytes] = []
        worker = threading.Thread(target=lambda: got.extend(body))
        worker.start()
        worker.join(10)
        body.close()  # type: ignore[attr-defined]
        assert b"".join(got) == b"abbbbcd"
        assert after == ["the request's"]
    finally:
        wsgi.close()


class _Stops:
    """An iterator whose ``__next__`` raises ``StopIteration`` after one chunk, and an error
    on demand."""

    def __init__(self, error: BaseException | None) -> None:
        self.error, self.sent = error, False

    def __iter__(self) -> _Stops:
        return self

    def __next__(self) -> bytes:
        if self.sent:
            if self.error is not None:
                raise self.error
            raise StopIteration
        self.sent = True
        return b"one"


def _errors_app(after: list[str]) -> App:
    app = App()

    @app.get("/stops")
    def stops(request: Request) -> Response:
        request.after_response(lambda: after.append("stops"))
        return Response.stream(_Stops(None))

    @app.get("/generator-stops")
    def generator_stops(request: Request) -> Response:
        request.after_response(lambda: after.append("generator-stops"))

        def chunks() -> Iterator[bytes]:
            yield b"one"
            raise StopIteration  # NOTE: a RuntimeError (PEP 479), as under ASGI.

        return Response.stream(chunks())

    @app.get("/fails")
    def fails(request: Request) -> Response:
        request.after_response(lambda: after.append("fails"))
        return Response.stream(_Stops(ValueError("the stream's own")))

    @app.get("/interrupted")
    def interrupted(request: Request) -> Response:
        request.after_response(lambda: after.append("interrupted"))
        return Response.stream(_Stops(KeyboardInterrupt()))

    return app


def test_a_stream_whose_iterator_stops_ends_whole() -> None:
    after: list[str] = []
    wsgi = _errors_app(after).as_wsgi()
    try:
        assert _served(wsgi, "/stops") == b"one"
        assert after == ["stops"]
    finally:
        wsgi.close()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("/generator-stops", RuntimeError),
        ("/fails", ValueError),
        ("/interrupted", KeyboardInterrupt),
    ],
)
def test_an_error_out_of_a_stream_is_raised_to_the_server_naming_the_stream(
    path: str, error: type[BaseException], caplog: pytest.LogCaptureFixture
) -> None:
    after: list[str] = []
    wsgi = _errors_app(after).as_wsgi()
    try:
        with pytest.raises(error) as raised:
            _served(wsgi, path)
        names: list[str] = []
        failure: BaseException | None = raised.value
        while failure is not None:  # NOTE: PEP 479's RuntimeError: the stream's is its cause.
            traceback = pytest.ExceptionInfo.from_exception(failure).traceback
            names += [entry.name for entry in traceback]
            failure = failure.__cause__
        assert ("chunks" if path == "/generator-stops" else "__next__") in names
        assert after == [path.lstrip("/")]
        if error is not KeyboardInterrupt:
            assert f"GET {path}" in caplog.text
    finally:
        wsgi.close()


def test_a_body_closed_while_another_thread_takes_a_chunk_still_ends_its_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: a middleware that reads ahead in a thread, and the server's close() as its client
    # left: the close failed to enter the request's context, entered by the other thread, and
    # the request's after-response work never ran (a RuntimeError naming a Context alone).
    after: list[str] = []
    taking, go_on = threading.Event(), threading.Event()
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        SEEN.set("the request's")
        request.after_response(lambda: after.append(SEEN.get()))

        def chunks() -> Iterator[bytes]:
            yield b"a"
            taking.set()
            go_on.wait(10)
            yield b"b"

        return Response.stream(chunks())

    wsgi = app.as_wsgi()
    try:
        body = wsgi(_environ("/"), _start)
        got: list[bytes] = []
        worker = threading.Thread(target=lambda: got.extend(body))
        worker.start()
        assert taking.wait(10)
        try:
            # NOTE: the generator runs in the other thread: its close() cannot stop it.
            with pytest.raises(ValueError, match="generator already executing"):
                body.close()  # type: ignore[attr-defined]
        finally:
            go_on.set()
            worker.join(10)
        assert got == [b"a", b"b"]
        assert after == ["the request's"]
        assert "error while streaming GET /" in caplog.text
        assert "cannot enter context" not in caplog.text
    finally:
        wsgi.close()


class _Wrapped:
    """A server's file wrapper (``wsgi.file_wrapper``), as Waitress's: sent its own way."""

    def __init__(self, file: Any, block_size: int = 8192) -> None:
        self.file = file

    def __iter__(self) -> Iterator[bytes]:
        return iter(lambda: self.file.read(8192), b"")

    def close(self) -> None:
        self.file.close()


def test_a_file_still_goes_to_the_servers_file_wrapper(tmp_path: Any) -> None:
    (tmp_path / "f.txt").write_bytes(b"file")
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        return Response.file(tmp_path / "f.txt")

    wsgi = app.as_wsgi()
    try:
        body = wsgi({**_environ("/f"), "wsgi.file_wrapper": _Wrapped}, _start)
        try:
            assert isinstance(body, _Wrapped)
            assert b"".join(body) == b"file"
        finally:
            body.close()
    finally:
        wsgi.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [("HEAD", "/stream"), ("GET", "/empty"), ("GET", "/204"), ("GET", "/304"), ("HEAD", "/f")],
)
def test_a_body_with_nothing_to_send_ends_in_the_requests_context(
    method: str, path: str, tmp_path: Any
) -> None:
    (tmp_path / "f.txt").write_bytes(b"file")
    after: list[str] = []
    app = App()

    @app.get("/stream")
    def stream(request: Request) -> Response:
        return Response.stream(iter([b"a"]))

    @app.get("/empty")
    def empty(request: Request) -> Response:
        return Response(b"")

    @app.get("/204")
    def no_content(request: Request) -> Response:
        return Response(status=204)

    @app.get("/304")
    def not_modified(request: Request) -> Response:
        return Response(status=304)

    @app.get("/f")
    def file(request: Request) -> Response:
        return Response.file(tmp_path / "f.txt")

    def tag(request: Request) -> Iterator[None]:
        SEEN.set("the request's")
        request.after_response(lambda: after.append(SEEN.get()))
        yield

    app.middleware(tag)
    wsgi = app.as_wsgi()
    try:
        environ = {**_environ(path), "REQUEST_METHOD": method, "wsgi.file_wrapper": _Wrapped}
        assert _served(lambda e, s: wsgi(environ, s), path) == b""
        assert after == ["the request's"]
        assert SEEN.get() == "unset"
    finally:
        wsgi.close()


def test_a_body_closed_by_its_own_chunk_still_ends_its_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    after: list[str] = []
    bodies: list[Any] = []
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        request.after_response(lambda: after.append("ran"))

        def chunks() -> Iterator[bytes]:
            yield b"a"
            with pytest.raises(ValueError, match="generator already executing"):
                bodies[0].close()
            yield b"b"

        return Response.stream(chunks())

    wsgi = app.as_wsgi()
    try:
        bodies.append(wsgi(_environ("/"), _start))
        assert _served(lambda environ, start: bodies[0], "/") == b"ab"
        assert after == ["ran"]
        assert "cannot enter context" not in caplog.text
    finally:
        wsgi.close()
