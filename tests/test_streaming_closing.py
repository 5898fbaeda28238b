"""A streamed response whose closing fails, when its client leaves mid-stream (review181).

The generator's ``finally`` raises (a cursor or a connection that fails to close): that is
an error of the stream after its headers, which microweb logs once on its logger and raises
to the server, under both interfaces, whatever the stream's colour and wherever it was paused.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import subprocess
import sys
import threading
import time
import types
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import (
    Message,
    get_root,
    http_scope,
    leave_after_sends,
    request_inbox,
    start_response,
    wsgi_environ,
)

from microweb import App, Request, Response
from microweb._asgi import ASGIDriver
from microweb._close_threads import _CLOSES, CLOSE_THREADS, CLOSE_THREADS_MOST
from microweb._closing import aclose_of
from microweb._concurrency import make_pool
from microweb._error_logs import REPORTED_TRACEBACKS
from microweb._file_threads import aiter_file_read
from microweb._in_pool import iterate_in_pool
from microweb._stream_ahead import CLOSING_FOR, ClosingFor
from microweb.plugins.gzip import GZip


class CloseFailed(Exception):
    """What the stream's ``finally`` raises."""


def _endless(error: BaseException | None = None) -> Iterator[bytes]:
    try:
        while True:
            yield b"chunk"
    finally:
        raise error or CloseFailed("the cursor failed to close")


async def _aendless(error: BaseException | None = None) -> AsyncIterator[bytes]:
    # NOTE: paused at its yield when it is closed: it makes chunks ahead of the client.
    try:
        while True:
            yield b"chunk"
    finally:
        raise error or CloseFailed("the cursor failed to close")


async def _awaits_news() -> AsyncIterator[bytes]:
    # NOTE: paused at an await when it is closed, as an event stream waiting for news is.
    try:
        yield b"chunk"
        await asyncio.Event().wait()
        yield b"never"
    finally:
        raise CloseFailed("the cursor failed to close")


def iter_rows() -> Iterator[bytes]:
    yield b"row"


STREAMS = {"sync": _endless, "async-yields": _aendless, "async-awaits": _awaits_news}


def _stream_error_logged(
    make_client: MakeClient,
    colour: str,
    caplog: pytest.LogCaptureFixture,
    index: Callable[[Request], Response],
    first: bytes | None,
) -> logging.LogRecord:
    """GET ``index``'s stream (in ``colour``) and take its first chunk, which starts with
    ``first`` (``None``: the whole answer); the stream's ``CloseFailed`` reaches the client,
    and microweb logs it once, as an error of the stream: return that record."""
    app = App()
    app.get("/")(in_colour(colour, index))
    client = make_client(app)
    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(CloseFailed):
        if first is None:
            client.get("/")
        else:
            with client.stream("GET", "/") as answer:
                assert next(answer.iter_raw()).startswith(first)
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == ["error while streaming GET /"]
    return logged[0]


@pytest.mark.parametrize("stream", list(STREAMS))
def test_a_stream_whose_closing_fails_after_its_client_left_is_logged_once_and_raised(
    make_client: MakeClient,
    interface: str,
    colour: str,
    stream: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: under WSGI an async stream that awaited lost the error with no word (its task
    # queued it for a thread that had stopped taking); the others went to the server with no
    # line of microweb's (under ASGI, an async one paused at its yield), where every other
    # error of a stream is logged as "error while streaming".

    def index(request: Request) -> Response:
        return Response.stream(STREAMS[stream]())

    logged = _stream_error_logged(make_client, colour, caplog, index, b"chunk")
    assert logged.exc_info is not None
    assert isinstance(logged.exc_info[1], CloseFailed)
    # NOTE: marked as logged: the server's own record of it is left out under microweb serve.
    server_record = logging.LogRecord(
        "waitress", logging.ERROR, __file__, 1, "Exception while serving /", (), logged.exc_info
    )
    assert not REPORTED_TRACEBACKS.filter(server_record)


class _RefusesIteration:
    """An iterable whose ``iter()`` fails (a cursor whose query fails as it starts)."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        raise CloseFailed("the query failed as it started")

    def close(self) -> None:
        self.closed.append("closed")


def test_a_sync_stream_whose_iter_fails_is_an_error_after_its_headers_under_both_interfaces(
    make_client: MakeClient, interface: str, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: under WSGI iter() ran before the body was handed over: the error left the app
    # unlogged, a 500 of the server's own (a cut 200 under ASGI), and as no server had a body
    # to close, the stream was left open and the after-response callbacks never ran.
    closed: list[str] = []

    def index(request: Request) -> Response:
        request.after_response(closed.append, "after")
        return Response.stream(_RefusesIteration(closed))

    _stream_error_logged(make_client, colour, caplog, index, None)
    assert closed == ["closed", "after"]


class _ResetInput:
    """A ``wsgi.input`` whose client reset the connection."""

    def read(self, size: int = -1) -> bytes:
        raise ConnectionResetError("reset by peer")


def _reads_the_body_in_its_finally(request: Request) -> Response:
    def chunks() -> Iterator[bytes]:
        try:
            while True:
                yield b"chunk"
        finally:
            request.read()

    return Response.stream(chunks())


def test_a_wsgi_stream_whose_finally_finds_the_client_gone_ends_quietly(
    colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: its ClientDisconnect went to the server from the body's close(), which Waitress
    # logs as "Exception while serving", where the same error in a step ends quietly.
    app = App()
    app.post("/")(in_colour(colour, _reads_the_body_in_its_finally))
    wsgi = app.as_wsgi()
    environ = wsgi_environ("POST", "/", CONTENT_LENGTH="10", **{"wsgi.input": _ResetInput()})
    try:
        with caplog.at_level(logging.ERROR, logger="microweb"):
            body = wsgi(environ, start_response)
            assert next(iter(body)) == b"chunk"
            body.close()  # NOTE: what Waitress does once a write has failed.
    finally:
        wsgi.close()
    assert [r for r in caplog.records if r.name == "microweb"] == []


async def _asgi_call_left_after_part_of_the_body(app: App) -> None:
    messages = [{"type": "http.request", "body": b"part", "more_body": True}]

    async def receive() -> Message:
        if messages:
            return messages.pop()
        await asyncio.sleep(0.02)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        pass

    await app.as_asgi()(http_scope("POST", "/"), receive, send)


def test_an_asgi_stream_whose_finally_finds_the_client_gone_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: an async stream closed at its yield, whose finally reads the rest of a body its
    # client never sent: no error of the app's, as when it is closed at an await.
    app = App()

    @app.post("/")
    async def index(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"chunk"
            finally:
                await request.aread()

        return Response.stream(chunks())

    with caplog.at_level(logging.ERROR, logger="microweb"):
        asyncio.run(_asgi_call_left_after_part_of_the_body(app))
    assert [r for r in caplog.records if r.name == "microweb"] == []


@pytest.mark.parametrize("kind", ["stream", "sse"])
def test_an_asgi_head_of_a_sync_stream_ends_while_the_pool_is_busy(kind: str) -> None:
    # NOTE: the stream, never started, was closed in the pool: the HEAD's answer ended only
    # once a thread was free, here once the stream that held the only one had ended (3 s);
    # an event stream's too, once a plain generator's was not (review184).
    app = App(max_threads=1)
    release = threading.Event()

    @app.get("/held")
    def held(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"first"
            release.wait(3.0)
            yield b"last"

        return Response.stream(chunks())

    @app.get("/rows")
    async def rows(request: Request) -> Response:
        if kind == "sse":
            return Response.sse(row.decode() for row in iter_rows())
        return Response.stream(iter_rows())

    asgi = app.as_asgi()

    async def call(method: str, path: str, sent: list[Message]) -> list[Message]:
        async def receive() -> Message:
            await asyncio.Event().wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        await asgi(http_scope(method, path), receive, send)
        return sent

    async def head_while_held() -> tuple[float, list[Message]]:
        held_sent: list[Message] = []
        holding = asyncio.ensure_future(call("GET", "/held", held_sent))
        while len(held_sent) < 2:  # NOTE: its first chunk is out: its stream has the thread.
            await asyncio.sleep(0.01)
        started = time.monotonic()
        try:
            sent = await asyncio.wait_for(call("HEAD", "/rows", []), 2.0)
        finally:
            release.set()
            await holding
        return time.monotonic() - started, sent

    took, sent = asyncio.run(head_while_held())
    # NOTE: a margin for a busy machine: a HEAD that waited for the thread would have run into
    # wait_for's 2 s, the held stream letting go of it only after 3 (review386).
    assert took < 1.5
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[-1].get("body", b"") == b""


class _Cursor:
    """An iterable whose iterator is another object, and fails to close (review184)."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> _Rows:
        return _Rows(self.closed)

    def close(self) -> None:
        self.closed.append("cursor")


class _Rows:
    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> _Rows:
        return self

    def __next__(self) -> bytes:
        return b"row"

    def close(self) -> None:
        self.closed.append("rows")
        raise CloseFailed("the rows failed to close")


def test_a_stream_is_closed_when_its_iterators_close_fails_under_both_interfaces(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: under WSGI the iterable was left open (ASGI closed both): the second close was
    # skipped once the first one failed.
    closed: list[str] = []

    def index(request: Request) -> Response:
        request.after_response(closed.append, "after")
        return Response.stream(_Cursor(closed))

    _stream_error_logged(make_client, colour, caplog, index, b"row")
    assert closed == ["rows", "cursor", "after"]


def _exits_in_its_finally(kind: str) -> Response:
    exit_ = SystemExit("the stream's own exit")
    return Response.stream(_endless(exit_) if kind == "sync" else _aendless(exit_))


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_an_asgi_streams_exit_in_its_closing_goes_to_the_server_not_out_of_its_loop(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: raised in a task of the driver's own, asyncio raised it again out of the event
    # loop: the stream's sys.exit(), once its client left, ended the whole server (Uvicorn),
    # where the same exit in a step goes to the server as the request's (review184).
    app = App()
    app.get("/")(lambda request: _exits_in_its_finally(kind))
    asgi = app.as_asgi()

    async def served() -> BaseException | None:
        sent: list[Message] = []

        async def receive() -> Message:
            while len(sent) < 3:
                await asyncio.sleep(0.001)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        try:
            # NOTE: as Uvicorn takes any error of the app's, a SystemExit included.
            await asgi(http_scope("GET", "/"), receive, send)
        except BaseException as exc:
            return exc
        return None

    with caplog.at_level(logging.ERROR, logger="microweb"):
        ended = asyncio.run(served())
    assert isinstance(ended, SystemExit)


class _FailsToClose:
    """A cursor whose ``close()`` fails each time it is called."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"row"] * 10)

    def close(self) -> None:
        self.closed.append("closed")
        raise CloseFailed("the cursor failed to close")


def test_a_wsgi_body_closed_twice_closes_its_stream_once(
    colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the second close() closed the stream again, and its error was logged twice.
    app = App()
    closed: list[str] = []

    def index(request: Request) -> Response:
        request.after_response(closed.append, "after")
        return Response.stream(_FailsToClose(closed))

    app.get("/")(in_colour(colour, index))
    wsgi = app.as_wsgi()
    try:
        with caplog.at_level(logging.ERROR, logger="microweb"):
            body = wsgi(wsgi_environ("GET", "/"), start_response)
            assert next(iter(body)) == b"row"
            with pytest.raises(CloseFailed):
                body.close()
            body.close()
    finally:
        wsgi.close()
    assert closed == ["closed", "after"]
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == ["error while streaming GET /"]


class _ClosesWithError:
    """A stream whose ``close()`` (or ``aclose()``) fails; it is never iterated here."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __iter__(self) -> Iterator[bytes]:
        yield b"row"

    def close(self) -> None:
        self.events.append("closed")
        raise CloseFailed("the cursor failed to close")


class _AClosesWithError:
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[bytes]:
        yield b"row"

    async def aclose(self) -> None:
        self.events.append("closed")
        raise CloseFailed("the cursor failed to close")


@pytest.mark.parametrize("stream", [_ClosesWithError, _AClosesWithError])
@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204)])
def test_an_unsent_stream_whose_closing_fails_is_logged_and_its_answer_goes_out(
    make_client: MakeClient,
    colour: str,
    stream: type[_ClosesWithError | _AClosesWithError],
    method: str,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: raised, it was a 500 for a HEAD whose GET was a 200 under WSGI, and under ASGI an
    # answer cut after its headers; neither interface logged it as microweb's.
    app = App()
    events: list[str] = []

    def index(request: Request) -> Response:
        request.after_response(lambda: events.append("after"))
        answer = Response.stream(stream(events), status=status)
        answer.headers["x-kind"] = "report"
        return answer

    app.route("/", methods=["GET", "HEAD"])(in_colour(colour, index))
    client = make_client(app)
    with caplog.at_level(logging.ERROR, logger="microweb"):
        answer = client.request(method, "/")
        again = client.request(method, "/")
    assert (answer.status_code, again.status_code) == (status, status)
    assert answer.headers["x-kind"] == "report"
    assert answer.content == b""
    assert events == ["closed", "after"] * 2
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == [
        f"error while closing the unsent stream of {method} /"
    ] * 2
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], CloseFailed)


@pytest.mark.parametrize("stream", [_ClosesWithError, _AClosesWithError])
def test_an_unsent_streams_closing_error_is_raised_to_a_test_that_asks(
    make_client: MakeClient, colour: str, stream: type[_ClosesWithError | _AClosesWithError]
) -> None:
    # NOTE: only logged, it passed a test that asked for the app's errors in silence, where a
    # GET's stream that fails as it is closed, or a failed after-response callback, is raised.
    app = App()
    events: list[str] = []

    def index(request: Request) -> Response:
        request.after_response(lambda: events.append("after"))
        return Response.stream(stream(events))

    app.route("/", methods=["GET", "HEAD"])(in_colour(colour, index))
    client = make_client(app)
    client.raise_server_exceptions = True
    with pytest.raises(CloseFailed, match="the cursor failed to close"):
        client.head("/")
    assert events == ["closed", "after"]
    client.raise_server_exceptions = False
    assert client.head("/").status_code == 200


class _ClosesWithBaseException:
    """A stream whose close raises ``GeneratorExit`` (what a close that throws it into the
    generator it wraps gets back): no ``Exception``, nor carried as a ``sys.exit()`` is."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __iter__(self) -> Iterator[bytes]:
        yield b"row"

    def close(self) -> None:
        self.events.append("closed")
        raise GeneratorExit


class _AClosesWithBaseException(_ClosesWithBaseException):
    async def aclose(self) -> None:
        self.events.append("closed")
        raise GeneratorExit


@pytest.mark.parametrize("stream", [_ClosesWithBaseException, _AClosesWithBaseException])
@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 200)])
def test_a_close_that_raises_a_base_exception_raises_it_to_the_server_sent_or_not(
    make_client: MakeClient,
    stream: type[_ClosesWithBaseException],
    method: str,
    status: int,
) -> None:
    # NOTE: under ASGI the close of an unsent stream (a HEAD's, a 204's) that raised one went
    # with no word, where WSGI, and a sent stream's close under both, raised it to the server.
    app = App()
    events: list[str] = []

    def index(request: Request) -> Response:
        request.after_response(lambda: events.append("after"))
        return Response.stream(stream(events), status=status)

    app.route("/", methods=["GET", "HEAD"])(index)
    with pytest.raises(GeneratorExit):
        make_client(app).request(method, "/")
    assert events == ["closed", "after"]


class _ClosesLateWithBaseException(_ClosesWithBaseException):
    """Its close (``close()`` in a thread once sent, ``aclose()`` unsent) raises late."""

    def close(self) -> None:
        time.sleep(0.4)
        raise GeneratorExit

    async def aclose(self) -> None:
        await asyncio.sleep(0.4)
        raise GeneratorExit


@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 200)])
def test_an_asgi_late_close_that_raises_a_base_exception_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, method: str, status: int
) -> None:
    # NOTE: past CLOSE_WAIT the request has ended, and a GeneratorExit of the close that runs
    # on went with no word, where a sys.exit() is logged, and WSGI's late close logs either.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.1)
    app = App()
    app.route("/", methods=["GET", "HEAD"])(
        lambda request: Response.stream(_ClosesLateWithBaseException([]), status=status)
    )
    asgi = app.as_asgi()

    async def run() -> None:
        async def send(message: Message) -> None:
            pass

        await asyncio.wait_for(asgi(http_scope(method, "/"), request_inbox().get, send), 2)
        await asyncio.sleep(0.6)  # NOTE: the close runs on, and ends.

    with caplog.at_level(logging.WARNING, logger="microweb"):
        asyncio.run(run())
    late = [record for record in caplog.records if "late close" in record.msg]
    assert [record.getMessage() for record in late] == [
        f"{method} /: the late close of its streamed response raised GeneratorExit, dropped: "
        "the request had ended"
    ]
    assert late[0].exc_info is not None and type(late[0].exc_info[1]) is GeneratorExit


class _NoClose:
    """A stream whose ``close`` is ``None``: it has none, as ``__hash__ = None`` says."""

    close = None

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"ro", b"ws"])


class _NoAClose(_NoClose):
    aclose = None


class _NoACloseAsync(_NoClose):
    aclose = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"rows"


@pytest.mark.parametrize("stream", [_NoClose, _NoAClose, _NoACloseAsync])
@pytest.mark.parametrize(("method", "status"), [("GET", 200), ("HEAD", 200), ("GET", 204)])
def test_a_close_of_none_is_no_close_under_both_interfaces(
    make_client: MakeClient,
    stream: type[_NoClose],
    method: str,
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: a sync stream sent under ASGI was taken to have no close, as the framework's own
    # wrappers take it; under WSGI, and unsent under ASGI, None was called: a TypeError logged
    # as the stream's error, and a GET's response cut after its headers.
    app = App()
    app.route("/", methods=["GET", "HEAD"])(
        lambda request: Response.stream(stream(), status=status)
    )
    with caplog.at_level(logging.ERROR):
        response = make_client(app).request(method, "/")
    assert response.status_code == status
    assert response.content == (b"rows" if method == "GET" and status == 200 else b"")
    assert caplog.records == []


class _Subscription:
    """An async iterable of its own: ``__aiter__`` is an async generator, and its ``close()``
    (``aclose()`` where ``coloured``) frees what it holds."""

    def __init__(self, events: list[str], endless: bool) -> None:
        self.events, self.endless = events, endless

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            yield b"news"
            while self.endless:
                yield b"more"
        finally:
            self.events.append("generator closed")

    def close(self) -> None:
        self.events.append("subscription closed")


class _ASubscription(_Subscription):
    async def aclose(self) -> None:
        self.events.append("subscription closed")


class _SubscriptionClosedByCoroutine(_Subscription):
    async def close(self) -> None:  # type: ignore[override]
        self.events.append("subscription closed")


SUBSCRIPTIONS = {
    "close": _Subscription,
    "aclose": _ASubscription,
    "async close": _SubscriptionClosedByCoroutine,
}


@pytest.mark.parametrize("closing", SUBSCRIPTIONS)
def test_an_unsent_async_iterable_of_its_own_is_closed_under_both_interfaces(
    make_client: MakeClient, closing: str
) -> None:
    # NOTE: an async def close() was called, and its coroutine dropped with a "never awaited"
    # warning: the subscription stayed open.
    events: list[str] = []
    app = App()
    app.route("/", methods=["GET", "HEAD"])(
        lambda request: Response.stream(SUBSCRIPTIONS[closing](events, endless=False))
    )
    assert make_client(app).head("/").content == b""
    assert events == ["subscription closed"]


@pytest.mark.parametrize("closing", SUBSCRIPTIONS)
def test_an_async_iterable_of_its_own_is_closed_after_its_iterator_under_both_interfaces(
    make_client: MakeClient, colour: str, closing: str
) -> None:
    # NOTE: under ASGI, a sent stream was closed only through an aclose(): one with a sync
    # close() alone was never closed (WSGI closed it, and so did an ASGI HEAD).
    events: list[str] = []

    def index(request: Request) -> Response:
        return Response.stream(SUBSCRIPTIONS[closing](events, endless=False))

    app = App()
    app.get("/")(in_colour(colour, index))
    assert make_client(app).get("/").content == b"news"
    assert events == ["generator closed", "subscription closed"]


@pytest.mark.parametrize("closing", SUBSCRIPTIONS)
def test_an_async_iterable_of_its_own_is_closed_when_its_asgi_client_leaves(closing: str) -> None:
    # NOTE: the subscription's aclose() ran before its iterator's finally, the other way round
    # from WSGI's, and a close() alone never ran.
    events: list[str] = []
    app = App()
    app.get("/")(lambda request: Response.stream(SUBSCRIPTIONS[closing](events, endless=True)))
    asgi = app.as_asgi()
    leave_after_sends(asgi)
    assert events == ["generator closed", "subscription closed"]


@pytest.mark.parametrize("closing", SUBSCRIPTIONS)
def test_an_async_iterable_of_its_own_is_closed_when_its_wsgi_client_leaves(closing: str) -> None:
    events: list[str] = []
    app = App()
    app.get("/")(lambda request: Response.stream(SUBSCRIPTIONS[closing](events, endless=True)))
    wsgi = app.as_wsgi()
    try:
        body = wsgi(wsgi_environ(), start_response)
        assert next(iter(body)) == b"news"
        body.close()  # type: ignore[attr-defined]  # NOTE: what a server does when the client left
    finally:
        wsgi.close()
    assert events == ["generator closed", "subscription closed"]


def _wrapped_app(stream_of: Callable[[], Any], wrapped: str, colour: str = "sync") -> App:
    """An app whose ``GET /`` sends what ``stream_of()`` makes, as ``wrapped`` says: as it is
    ("nothing"), compressed ("gzip", for a client that takes it), with a declared length of
    4 bytes ("declared length"), or as an event stream ("sse")."""

    def index(request: Request) -> Response:
        stream = stream_of()
        if wrapped == "sse":
            return Response.sse(stream)
        response = Response.stream(stream, "text/plain")
        if wrapped == "declared length":
            response.length = 4
        return response

    app = App()
    if wrapped == "gzip":
        app.install(GZip(minimum_size=1))
    app.get("/")(in_colour(colour, index))
    return app


@pytest.mark.parametrize("closing", ["close", "async close"])
@pytest.mark.parametrize("wrapped", ["gzip", "declared length"])
def test_an_async_iterable_with_a_close_is_closed_through_a_wrapping_stream(
    make_client: MakeClient, wrapped: str, closing: str
) -> None:
    # NOTE: the streams around it (gzip's, a declared length's) closed it only by an aclose().
    events: list[str] = []
    app = _wrapped_app(lambda: SUBSCRIPTIONS[closing](events, endless=False), wrapped)
    response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert response.content == b"news"
    assert response.headers.get("content-encoding") == ("gzip" if wrapped == "gzip" else None)
    assert events == ["generator closed", "subscription closed"]


class _Feed:
    """An async iterable that is its own iterator (``__aiter__`` returns it), with a
    ``close()`` alone that frees what it holds."""

    def __init__(self, events: list[str]) -> None:
        self.events, self.left = events, 2

    def __aiter__(self) -> _Feed:
        return self

    async def __anext__(self) -> bytes:
        if not self.left:
            raise StopAsyncIteration
        self.left -= 1
        return b"ne"

    def close(self) -> None:
        self.events.append("feed closed")


class _FeedClosedByCoroutine(_Feed):
    async def close(self) -> None:  # type: ignore[override]
        self.events.append("feed closed")


class _Ticks:
    """An async stream whose ``__aiter__`` gives another object, a ``feed``; a ``close()``
    alone for both."""

    def __init__(self, events: list[str], feed: type[_Feed]) -> None:
        self.events, self.feed = events, feed

    def __aiter__(self) -> _Feed:
        return self.feed(self.events)

    def close(self) -> None:
        self.events.append("ticks closed")


@pytest.mark.parametrize("feed", [_Feed, _FeedClosedByCoroutine])
@pytest.mark.parametrize("gives", [False, True], ids=["its-own-iterator", "gives-an-iterator"])
@pytest.mark.parametrize("wrapped", ["nothing", "gzip", "declared length"])
def test_an_async_stream_with_a_close_alone_is_closed_once_sent(
    make_client: MakeClient, colour: str, wrapped: str, gives: bool, feed: type[_Feed]
) -> None:
    # NOTE: under WSGI, the app loop's task closed the iterator it took by an aclose() alone,
    # and the body's close() left it to that task where the iterator was the stream: never
    # closed. And the drivers closed the iterator a stream gave by an aclose() alone, where
    # gzip's, a declared length's and SSE's streams close it by its close() too: the same
    # stream was closed, or left open, as the response was compressed or not.
    events: list[str] = []
    app = _wrapped_app(lambda: _Ticks(events, feed) if gives else feed(events), wrapped, colour)
    response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert response.content == b"nene"
    assert response.headers.get("content-encoding") == ("gzip" if wrapped == "gzip" else None)
    assert events == (["feed closed", "ticks closed"] if gives else ["feed closed"])


class _FeedClosedOffLoop(_Feed):
    """A ``_Feed`` whose ``close()`` notes whether an event loop runs in its thread (a blocking
    close there stalls every request of that loop); its chunks are ``str``, an event's data."""

    async def __anext__(self) -> str:  # type: ignore[override]
        return (await super().__anext__()).decode()

    def close(self) -> None:
        on_loop = asyncio._get_running_loop() is not None
        self.events.append("feed closed on the loop" if on_loop else "feed closed")


@pytest.mark.parametrize("gives", [False, True], ids=["its-own-iterator", "gives-an-iterator"])
@pytest.mark.parametrize("wrapped", ["nothing", "gzip", "declared length", "sse"])
def test_an_async_streams_sync_close_runs_on_no_event_loop(
    make_client: MakeClient, wrapped: str, gives: bool
) -> None:
    # NOTE: the ASGI driver ran a sync close() in the pool, but gzip's, a declared length's
    # and SSE's async streams ran their stream's on the event loop (the app loop under WSGI).
    events: list[str] = []
    feed = _FeedClosedOffLoop
    app = _wrapped_app(lambda: _Ticks(events, feed) if gives else feed(events), wrapped)
    response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert events == (["feed closed", "ticks closed"] if gives else ["feed closed"])


class _AsyncClosedTicks(_Ticks):
    async def close(self) -> None:  # type: ignore[override]
        self.events.append("ticks closed")


# NOTE: the stream, the one of its objects whose close needs the loop, and what the others'
# closes (run in the server's thread, or by the loop's stop) leave in the events.
LATE_STREAMS = {
    "own iterator, async close": (
        lambda events: _FeedClosedByCoroutine(events),
        "_FeedClosedByCoroutine",
        [],
    ),
    "its iterator's async close": (
        lambda events: _Ticks(events, _FeedClosedByCoroutine),
        "_FeedClosedByCoroutine",
        ["ticks closed"],
    ),
    "async close, iterator another": (
        lambda events: _AsyncClosedTicks(events, _Feed),
        "_AsyncClosedTicks",
        ["feed closed"],
    ),
    "aclose, iterator a generator": (
        lambda events: _ASubscription(events, endless=True),
        "_ASubscription",
        ["generator closed"],
    ),
}


@pytest.mark.parametrize(("make", "named", "closed"), LATE_STREAMS.values(), ids=LATE_STREAMS)
def test_an_async_close_due_after_the_wsgi_app_loop_stopped_is_logged(
    caplog: pytest.LogCaptureFixture, make: Any, named: str, closed: list[str]
) -> None:
    # NOTE: the server closed the body after the app's close (its shutdown): an async close()
    # or an aclose() of the stream's own had no loop to run on, and was dropped with no word.
    events: list[str] = []
    app = App()
    app.get("/")(lambda request: Response.stream(make(events)))
    wsgi = app.as_wsgi()
    body = wsgi(wsgi_environ(), start_response)
    assert next(iter(body)) in (b"ne", b"news")
    wsgi.close()
    with caplog.at_level(logging.WARNING, logger="microweb"):
        body.close()  # type: ignore[attr-defined]
    assert events == closed
    late = [record for record in caplog.records if "not run" in record.getMessage()]
    assert len(late) == 1
    assert late[0].levelno == logging.WARNING
    assert named in late[0].getMessage()


@pytest.mark.parametrize(
    ("make", "named", "closed"),
    [
        (lambda events: _AsyncClosedTicks(events, _Feed), "_AsyncClosedTicks", []),
        (lambda events: _Ticks(events, _Feed), "", ["ticks closed"]),
    ],
    ids=["async close", "sync close"],
)
def test_an_async_stream_answered_after_the_wsgi_apps_close_is_closed_or_logged(
    caplog: pytest.LogCaptureFixture, make: Any, named: str, closed: list[str]
) -> None:
    # NOTE: a def handler that returned its stream once the app was closed got a 500, and
    # its stream was left as it was, its close() never run and its async one never said.
    events: list[str] = []
    app = App()
    wsgi = app.as_wsgi()

    def index(request: Request) -> Response:
        wsgi.close()  # NOTE: as a server's shutdown does meanwhile, from another thread.
        return Response.stream(make(events))

    app.get("/")(index)
    with caplog.at_level(logging.WARNING, logger="microweb"):
        body = wsgi(wsgi_environ(), start_response)
        assert b"".join(body).startswith(b"Internal")
        getattr(body, "close", lambda: None)()
    assert events == closed
    late = [record.getMessage() for record in caplog.records if "not run" in record.getMessage()]
    assert late == (
        [
            f"the async close() of a streamed response's {__name__}.{named} was not run: the "
            "app loop had stopped (this WSGI app was closed before the server closed the "
            "response)"
        ]
        if named
        else []
    )


class _FeedStoppedAtClose(_FeedClosedOffLoop):
    def close(self) -> None:
        super().close()
        raise StopIteration  # NOTE: a next() past the end of something, in its close().


@pytest.mark.parametrize("wrapped", ["gzip", "sse"])
def test_a_stopiteration_of_a_wrapped_async_streams_sync_close_is_its_error(
    make_client: MakeClient, wrapped: str
) -> None:
    # NOTE: run in a thread, its StopIteration would be refused by the future that waits for
    # it (the request hung): it is the RuntimeError that PEP 479 makes of one.
    events: list[str] = []

    def index(request: Request) -> Response:
        stream = _FeedStoppedAtClose(events)
        return Response.sse(stream) if wrapped == "sse" else Response.stream(stream)

    app = App()
    if wrapped == "gzip":
        app.install(GZip(minimum_size=1))
    app.get("/")(index)
    with pytest.raises(RuntimeError, match="raised StopIteration"):
        make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert events == ["feed closed"]


class _FeedStuckAtClose(_Feed):
    """A ``_Feed`` whose sync ``close()`` waits until ``release`` is set (a lock never freed)."""

    release = threading.Event()

    def close(self) -> None:
        self.events.append("closing")
        self.release.wait(5)
        self.events.append("feed closed")


class _FeedStuckAtAsyncClose(_Feed):
    async def close(self) -> None:  # type: ignore[override]
        self.events.append("closing")
        try:
            await asyncio.Event().wait()
        finally:
            self.events.append("close cancelled")


STUCK = {
    "sync close": (_FeedStuckAtClose, "_FeedStuckAtClose"),
    "async close": (_FeedStuckAtAsyncClose, "_FeedStuckAtAsyncClose"),
}


@pytest.mark.parametrize("wrapped", ["nothing", "declared length"])
@pytest.mark.parametrize(("make", "named"), STUCK.values(), ids=STUCK)
def test_a_close_that_never_returns_ends_the_asgi_response_after_a_while(
    asgi_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    make: Any,
    named: str,
    wrapped: str,
) -> None:
    # NOTE: the response waited for the close, for ever: the client never got its end, and
    # the request's task held the server's shutdown (a second cancellation ended it).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    _FeedStuckAtClose.release.clear()
    events: list[str] = []
    app = _wrapped_app(lambda: make(events), wrapped)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="microweb"):
        response = asgi_client(app).get("/")
    _FeedStuckAtClose.release.set()
    assert time.monotonic() - started < 3
    assert (response.status_code, response.content) == (200, b"nene")
    assert events[0] == "closing"
    late = [record for record in caplog.records if "not returned" in record.getMessage()]
    assert len(late) == 1
    assert named in late[0].getMessage() or wrapped == "declared length"


def _asgi_closing_within(
    seconds: float, stream_of: Callable[[], Any], monkeypatch: pytest.MonkeyPatch
) -> ASGIDriver:
    """The ASGI side of an app whose ``GET /`` streams what ``stream_of()`` makes, a sent
    stream's close given ``seconds`` (``CLOSE_WAIT``) before the driver gives up on it."""
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", seconds)
    app = App()
    app.get("/")(lambda request: Response.stream(stream_of()))
    return app.as_asgi()


@pytest.mark.parametrize("ending", ["the client leaves", "the server cancels"])
def test_a_close_that_never_returns_holds_no_asgi_request_for_ever(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, ending: str
) -> None:
    # NOTE: a stream that closes was let finish, for ever: a client gone meanwhile, or the
    # server's one cancellation at the end of its grace period (Uvicorn's), left the request's
    # task waiting on it, and Uvicorn's shutdown with it.
    events: list[str] = []
    asgi = _asgi_closing_within(0.3, lambda: _FeedStuckAtAsyncClose(events), monkeypatch)

    async def run() -> list[Message]:
        inbox, sent = request_inbox(), []

        async def send(message: Message) -> None:
            sent.append(message)
            if len(sent) == 3 and ending == "the client leaves":
                inbox.put_nowait({"type": "http.disconnect"})

        task = asyncio.ensure_future(asgi(http_scope(), inbox.get, send))
        while "closing" not in events:
            await asyncio.sleep(0.01)
        if ending == "the server cancels":
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 2)
        return sent

    with caplog.at_level(logging.WARNING, logger="microweb"):
        sent = asyncio.run(run())
    assert [message.get("body") for message in sent[1:3]] == [b"ne", b"ne"]
    assert events[0] == "closing"
    late = [record.getMessage() for record in caplog.records if "not returned" in record.msg]
    assert len(late) == 1
    assert late[0].startswith("GET /: ") and "_FeedStuckAtAsyncClose" in late[0]


@pytest.mark.parametrize("wrapped", ["nothing", "gzip"])
@pytest.mark.parametrize(("method", "status"), [("HEAD", 200), ("GET", 204), ("GET", 304)])
@pytest.mark.parametrize(("make", "named"), STUCK.values(), ids=STUCK)
def test_a_close_that_never_returns_ends_an_unsent_asgi_answer_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make: Any,
    named: str,
    method: str,
    status: int,
    wrapped: str,
) -> None:
    # NOTE: a stream never sent (a HEAD, a 204, a 304) was closed before the end of the answer
    # with no bound: a close that never returned left the client waiting for that end for ever,
    # where a sent stream's answer ends after CLOSE_WAIT.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    _FeedStuckAtClose.release.clear()
    events: list[str] = []
    app = App()
    if wrapped == "gzip":
        app.install(GZip(minimum_size=1))
    app.get("/")(lambda request: Response.stream(make(events), "text/plain", status=status))
    asgi = app.as_asgi()

    async def run() -> list[Message]:
        sent: list[Message] = []

        async def send(message: Message) -> None:
            sent.append(message)

        scope = http_scope(method, "/", [(b"accept-encoding", b"gzip")])
        await asyncio.wait_for(asgi(scope, request_inbox().get, send), 2)
        return sent

    with caplog.at_level(logging.WARNING, logger="microweb"):
        sent = asyncio.run(run())
    _FeedStuckAtClose.release.set()
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert (sent[0]["status"], sent[1].get("body", b"")) == (status, b"")
    assert events[0] == "closing"
    late = [record.getMessage() for record in caplog.records if "not returned" in record.msg]
    assert len(late) == 1
    assert late[0].startswith(f"{method} /: ")
    assert named in late[0] or wrapped == "gzip"


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("make", "named"), STUCK.values(), ids=STUCK)
def test_a_close_that_never_returns_holds_no_asgi_request_whose_start_failed(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    make: Any,
    named: str,
    method: str,
) -> None:
    # NOTE: the client gone before the answer's start, its stream was closed with no bound: a
    # close that never returned held the request's task (and the server's shutdown) for ever.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    _FeedStuckAtClose.release.clear()
    events: list[str] = []
    app = App()
    app.get("/")(lambda request: Response.stream(make(events)))
    asgi = app.as_asgi()

    async def run() -> None:
        async def send(message: Message) -> None:
            raise OSError("the client went away")

        with contextlib.suppress(Exception):
            await asyncio.wait_for(asgi(http_scope(method, "/"), request_inbox().get, send), 2)

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="microweb"):
        asyncio.run(run())
    _FeedStuckAtClose.release.set()
    assert time.monotonic() - started < 1.5
    assert events[0] == "closing"
    late = [record.getMessage() for record in caplog.records if "not returned" in record.msg]
    assert len(late) == 1
    assert late[0].startswith(f"{method} /: ") and named in late[0]


class _FeedExitingLate(_Feed):
    async def close(self) -> None:  # type: ignore[override]
        await asyncio.sleep(0.4)
        sys.exit(3)


class _RaisingOnLate(logging.Filter):
    """A log filter that fails on the warning of a close that has not returned in time."""

    def filter(self, record: logging.LogRecord) -> bool:
        if "not returned" in record.msg:
            raise RuntimeError("the filter failed")
        return True


@pytest.mark.parametrize("warning_fails", [False, True], ids=["warned", "warning-failed"])
def test_a_late_closes_sys_exit_is_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, warning_fails: bool
) -> None:
    # NOTE: carried to the request's task, which had ended: no trace of it anywhere. And the
    # task was kept after the warning: a log filter that raised there left it held weakly by
    # the loop alone, and its sys.exit() went with no word (review288).
    asgi = _asgi_closing_within(0.1, lambda: _FeedExitingLate([]), monkeypatch)

    async def send(message: Message) -> None:
        pass

    async def run() -> None:
        with contextlib.suppress(RuntimeError):
            await get_root(asgi, send)
        await asyncio.sleep(0.6)  # NOTE: the close runs on, and ends.

    failing = _RaisingOnLate()
    logger = logging.getLogger("microweb")
    if warning_fails:
        logger.addFilter(failing)
    try:
        with caplog.at_level(logging.WARNING, logger="microweb"):
            asyncio.run(run())
    finally:
        logger.removeFilter(failing)
    late = [record.getMessage() for record in caplog.records if "late close" in record.msg]
    assert len(late) == 1
    # NOTE: named by its request, as the warning that its close had not returned is.
    assert late[0].startswith("GET /: ") and "SystemExit" in late[0], late


def test_a_slow_end_of_the_body_after_a_quick_close_is_not_given_up_on(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: CLOSE_WAIT timed the close and the end of the body after it: a client slow to take
    # the last chunk (the server's send() waits for its socket to drain) had the close said
    # not to have returned, and the end of the body sent twice (Uvicorn raises on the second).
    asgi = _asgi_closing_within(0.3, lambda: _Feed([]), monkeypatch)
    sent: list[Message] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            await asyncio.sleep(0.6)  # NOTE: as a send() waiting for a slow client.
        sent.append(message)

    with caplog.at_level(logging.WARNING, logger="microweb"):
        asyncio.run(get_root(asgi, send))
    ends = [message for message in sent[1:] if not message.get("more_body")]
    assert ends == [{"type": "http.response.body", "body": b""}]
    assert [record.getMessage() for record in caplog.records] == []


class _Records:
    """A sync stream (its own iterator) whose ``close()`` is ``async def``: a driver's handle
    on a database, say, that closes on the loop."""

    def __init__(self, events: list[str]) -> None:
        self.events, self.left = events, 2

    def __iter__(self) -> _Records:
        return self

    def __next__(self) -> str:
        if not self.left:
            raise StopIteration
        self.left -= 1
        return "ne"

    async def close(self) -> None:
        await asyncio.sleep(0)
        self.events.append("records closed")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("wrapped", ["nothing", "gzip", "declared length", "sse"])
def test_a_sync_streams_async_close_is_awaited_through_a_wrapping_stream(
    make_client: MakeClient, wrapped: str, method: str
) -> None:
    # NOTE: gzip's, SSE's and a declared length's sync streams, and the ASGI driver's thread
    # that iterates a sync stream, called it and dropped its coroutine ("never awaited"): the
    # records stayed open.
    events: list[str] = []
    app = _wrapped_app(lambda: _Records(events), wrapped)
    response = make_client(app).request(method, "/", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers.get("content-encoding") == ("gzip" if wrapped == "gzip" else None)
    assert events == ["records closed"]


class _RecordsStuckAtClose(_Records):
    """A sync stream whose sync ``close()`` waits until ``release`` is set."""

    release = threading.Event()

    def close(self) -> None:  # type: ignore[override]
        self.events.append("closing")
        self.release.wait(5)
        self.events.append("records closed")


class _RecordsStuckAtAsyncClose(_Records):
    async def close(self) -> None:
        self.events.append("closing")
        await asyncio.Event().wait()


class _StrFeedStuckAtClose(_FeedStuckAtClose):
    async def __anext__(self) -> str:  # type: ignore[override]
        return (await super().__anext__()).decode()


class _StrFeedStuckAtAsyncClose(_FeedStuckAtAsyncClose):
    async def __anext__(self) -> str:  # type: ignore[override]
        return (await super().__anext__()).decode()


WRAPPED_STUCK = {
    "sync stream, sync close": _RecordsStuckAtClose,
    "sync stream, async close": _RecordsStuckAtAsyncClose,
    "async stream, sync close": _StrFeedStuckAtClose,
    "async stream, async close": _StrFeedStuckAtAsyncClose,
}


@pytest.mark.parametrize("wrapped", ["gzip", "sse"])
@pytest.mark.parametrize("make", WRAPPED_STUCK.values(), ids=WRAPPED_STUCK)
def test_a_wrapped_streams_close_that_never_returns_ends_the_asgi_response_after_a_while(
    asgi_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    make: Any,
    wrapped: str,
) -> None:
    # NOTE: gzip's and SSE's streams closed their source as they made their last chunk, before
    # the driver's close (which CLOSE_WAIT bounds) began: the response waited for it for ever.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    _RecordsStuckAtClose.release.clear()
    _FeedStuckAtClose.release.clear()
    events: list[str] = []
    app = _wrapped_app(lambda: make(events), wrapped)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="microweb"):
        response = asgi_client(app).get("/", headers={"accept-encoding": "gzip"})
    _RecordsStuckAtClose.release.set()
    _FeedStuckAtClose.release.set()
    assert time.monotonic() - started < 3
    assert response.status_code == 200
    assert response.text == ("nene" if wrapped == "gzip" else "data: ne\n\n" * 2)
    assert events[0] == "closing"
    late = [record for record in caplog.records if "not returned" in record.getMessage()]
    assert len(late) == 1


def test_stuck_sync_closes_of_wrapped_async_streams_hold_a_few_threads_not_one_each() -> None:
    # NOTE: each sync close() of a stream inside gzip's, SSE's or a declared length's async
    # stream had a thread of its own: 10,000 closes that never returned made 10,000 threads.
    release = threading.Event()

    class Stuck:
        def close(self) -> None:
            release.wait(5)

    async def run() -> list[threading.Thread]:
        closes = [asyncio.ensure_future(aclose_of(Stuck())) for _ in range(3 * CLOSE_THREADS)]
        await asyncio.sleep(0.2)
        threads = [t for t in threading.enumerate() if t.name.startswith("microweb-close")]
        release.set()
        await asyncio.wait_for(asyncio.gather(*closes), 5)
        return threads

    threads = asyncio.run(run())
    assert 0 < len(threads) <= CLOSE_THREADS


# NOTE: a stream's sync close() from async code, with one bridge module imported and no driver.
_CLOSED_WITH_ONLY = """
import asyncio, sys, threading
import microweb.{module}
from microweb._closing import aclose_of

class Stream:
    def close(self):
        self.thread = threading.current_thread().name

async def main():
    stream = Stream()
    await aclose_of(stream)
    return stream.thread

drivers = (
    "microweb._close_wait", "microweb._asgi", "microweb._wsgi", "microweb._wsgi_closing",
    "microweb._wsgi_stream", "microweb._wsgi_end",
)
print(asyncio.run(main()), [name for name in drivers if name in sys.modules])
"""


@pytest.mark.parametrize("module", ["_concurrency", "_asgi_body", "_file_threads"])
def test_a_sync_close_runs_in_a_close_thread_before_any_driver_is_imported(module: str) -> None:
    # NOTE: the close threads' hook was set as a driver was imported (_close_wait imports
    # _close_threads): with only a bridge module imported, the close ran on the event loop.
    command = [sys.executable, "-c", _CLOSED_WITH_ONLY.format(module=module)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    thread, drivers = done.stdout.split(" ", 1)
    assert drivers.strip() == "[]"
    assert thread.startswith("microweb-close-")


def test_a_streamed_asgi_response_names_its_stream_only_to_give_up_on_its_close(
    asgi_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the driver named every stream it sent, for a warning that few ever need.
    named: list[object] = []
    monkeypatch.setattr("microweb._close_wait._named", lambda stream: named.append(stream) or "?")
    app = _wrapped_app(lambda: _Feed([]), "nothing")
    assert asgi_client(app).get("/").content == b"nene"
    assert named == []


def _close_threads_idle() -> None:
    """Wait until no close runs in the close threads."""
    # NOTE: the closes of an earlier test, released, may not be back at the queue yet: still
    # counted as running since then, past CLOSE_WAIT, they made the next closes start threads
    # past the 8.
    deadline = time.monotonic() + 5
    while _CLOSES.running():
        assert time.monotonic() < deadline, "the close threads are busy"
        time.sleep(0.01)


def _stuck_closes(count: int) -> threading.Event:
    """Hand the close threads ``count`` closes that do not return until the event is set; once
    they all run."""
    release = threading.Event()
    started = threading.Semaphore(0)

    def stuck() -> None:
        started.release()
        release.wait(5)

    for _ in range(count):
        _CLOSES.call(stuck)
    for _ in range(count):
        assert started.acquire(timeout=5)
    return release


@pytest.fixture
def close_threads_stuck(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """All the close threads held by closes that do not return until the event is set, and no
    more threads for the closes past them (as at ``CLOSE_THREADS_MOST``)."""
    monkeypatch.setattr(_CLOSES, "most_workers", CLOSE_THREADS)
    _close_threads_idle()
    release = _stuck_closes(CLOSE_THREADS)
    try:
        yield release
    finally:
        release.set()


@pytest.fixture
def closes_stuck_past_close_wait(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """``CLOSE_WAIT`` of 0.2 s, and all the close threads held for longer by closes that do not
    return until the event is set."""
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    monkeypatch.setattr("microweb._close_threads._told_stuck", False)
    _close_threads_idle()
    release = _stuck_closes(CLOSE_THREADS)
    try:
        time.sleep(0.25)
        yield release
    finally:
        release.set()
        deadline = time.monotonic() + 5
        while len(_CLOSES._threads) > CLOSE_THREADS and time.monotonic() < deadline:
            time.sleep(0.01)


def _close_thread_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_closes_stuck_past_close_wait_leave_the_close_threads_to_later_closes(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    closes_stuck_past_close_wait: threading.Event,
) -> None:
    # NOTE: with 8 closes that never returned, every later close waited in the queue for ever
    # (its stream and request held), given up on after CLOSE_WAIT: no close ever ran again.
    events: list[str] = []
    app = _wrapped_app(lambda: _Feed(events), "gzip")
    client = make_client(app)
    with caplog.at_level(logging.WARNING, logger="microweb"):
        for _ in range(2):
            response = client.get("/", headers={"accept-encoding": "gzip"})
            assert (response.status_code, response.text) == (200, "nene")
    assert events == ["feed closed", "feed closed"]  # NOTE: at once, not given up on.
    stuck = _close_thread_warnings(caplog)
    assert stuck == [
        "8 sync close() calls of streamed responses have run longer than 0.2 s in the close "
        f"threads: more threads start for the other closes, {CLOSE_THREADS_MOST} in all at most"
    ]
    deadline = time.monotonic() + 5
    while len(_CLOSES._threads) > CLOSE_THREADS:  # NOTE: the threads past 8 end once idle.
        assert time.monotonic() < deadline, len(_CLOSES._threads)
        time.sleep(0.01)


def test_a_close_queued_before_those_ahead_got_stuck_runs_once_they_are(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: the close waits behind closes that have not run CLOSE_WAIT yet (or has, on a slow
    # machine): once they have, it runs, without waiting for a later close to start a thread.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    monkeypatch.setattr("microweb._close_threads._told_stuck", False)
    _close_threads_idle()
    release = _stuck_closes(CLOSE_THREADS)
    try:
        events: list[str] = []
        app = _wrapped_app(lambda: _Feed(events), "gzip")
        with caplog.at_level(logging.WARNING, logger="microweb"):
            response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
        assert (response.status_code, response.text) == (200, "nene")
        deadline = time.monotonic() + 3
        while not events and time.monotonic() < deadline:
            time.sleep(0.01)
        assert events == ["feed closed"]  # NOTE: the closes ahead of it still run.
        # NOTE: where it waited CLOSE_WAIT, the warning said it ran "once a thread is free",
        # though the thread started for it ran it at once (review286).
        late = [m for m in _close_thread_warnings(caplog) if "for a close thread" in m]
        assert all(m.endswith("the close runs when a close thread takes it up") for m in late)
    finally:
        release.set()
    while len(_CLOSES._threads) > CLOSE_THREADS and time.monotonic() < deadline:
        time.sleep(0.01)


def test_a_close_that_cannot_wait_for_a_close_thread_is_dropped_with_an_error(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    closes_stuck_past_close_wait: threading.Event,
) -> None:
    # NOTE: past CLOSE_THREADS_MOST threads, each close waited in the queue, holding its
    # stream and request: the memory grew with the traffic.
    monkeypatch.setattr(_CLOSES, "most_workers", CLOSE_THREADS + 2)
    monkeypatch.setattr(_CLOSES, "most_queued", 1)
    more = _stuck_closes(2)
    try:
        assert len(_CLOSES._threads) == CLOSE_THREADS + 2
        ran = threading.Event()
        assert _CLOSES.call(ran.set) is False  # NOTE: the one close that may wait.
        events: list[str] = []
        app = _wrapped_app(lambda: _Feed(events), "gzip")
        with caplog.at_level(logging.WARNING, logger="microweb"):
            response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
        assert (response.status_code, response.text) == (200, "nene")
        # NOTE: not queued, then given up on after CLOSE_WAIT.
        assert not [m for m in _close_thread_warnings(caplog) if "for a close thread" in m]
        dropped = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert dropped == [
            "GET /: the close() of a streamed response's test_streaming_closing._Feed was "
            f"dropped, not run: all {CLOSE_THREADS + 2} close threads run closes that have not "
            "returned, and 1 more closes wait for them"
        ]
        assert events == []
    finally:
        more.set()
    assert ran.wait(5)
    # NOTE: nor is it called once the stream is collected (docs/streaming.md says so).
    del response, app
    gc.collect()
    assert events == []


def test_a_close_behind_stuck_closes_waits_a_while_not_for_ever(
    make_client: MakeClient,
    interface: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    close_threads_stuck: threading.Event,
) -> None:
    # NOTE: gzip's of an async stream with a sync close(), which runs in a close thread: with
    # all of them held by closes that never returned, the response's close waited in line, with
    # no bound under WSGI (7.8 s), and under ASGI the warning named gzip's stream.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    events: list[str] = []
    app = _wrapped_app(lambda: _Feed(events), "gzip")
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="microweb"):
        response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert time.monotonic() - started < 2
    assert (response.status_code, response.text) == (200, "nene")
    late = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(late) == 1, late
    assert "._Feed" in late[0] and "for a close thread" in late[0], late[0]
    assert late[0].endswith("the close runs when a close thread takes it up"), late[0]
    # NOTE: the warning named the stream, not the request, where a close thread's wait gave
    # up before the ASGI driver's did, and always under WSGI (review276).
    assert late[0].startswith("GET /: "), late[0]
    assert events == []
    close_threads_stuck.set()
    deadline = time.monotonic() + 3
    while not events and time.monotonic() < deadline:
        time.sleep(0.02)
    assert events == ["feed closed"]  # NOTE: run once a thread was free.


class _FeedFailingAtClose(_FeedClosedOffLoop):
    def close(self) -> None:
        super().close()
        raise ValueError("the feed's lock is gone")


@pytest.mark.parametrize("wrapped", ["gzip", "sse", "declared length"])
def test_the_error_of_a_close_given_up_on_names_its_request(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    close_threads_stuck: threading.Event,
    wrapped: str,
) -> None:
    # NOTE: the warning of the close given up on named the request, but the error that close
    # raised once a thread was free did not: nothing tied the two lines (review277).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    events: list[str] = []
    app = _wrapped_app(lambda: _FeedFailingAtClose(events), wrapped)
    client = make_client(app)
    with caplog.at_level(logging.WARNING, logger="microweb"):
        response = client.get("/", headers={"accept-encoding": "gzip"})
        assert response.status_code == 200
        close_threads_stuck.set()
        deadline = time.monotonic() + 3
        failed: list[str] = []
        while not failed and time.monotonic() < deadline:
            time.sleep(0.02)
            failed = [
                r.getMessage() for r in caplog.records if "after its request" in r.getMessage()
            ]
    assert events == ["feed closed"]
    assert failed == ["GET /: error while closing a streamed response after its request ended"], (
        failed
    )


def test_a_task_a_streams_close_creates_keeps_no_request(make_client: MakeClient) -> None:
    # NOTE: a task created in a close copies its context, CLOSING_FOR with it: it kept the
    # request for as long as it ran, and the warnings of its own later closes named it
    # (review286).
    seen: list[object] = []
    tasks: list[asyncio.Task[None]] = []

    async def later() -> None:
        await asyncio.sleep(0.3)
        value = CLOSING_FOR.get()
        seen.append(getattr(value, "request", value))

    app = App()

    class Rows:
        def __init__(self) -> None:
            self.left = 1

        def __aiter__(self) -> Rows:
            return self

        async def __anext__(self) -> bytes:
            if not self.left:
                raise StopAsyncIteration
            self.left -= 1
            return b"row"

        async def aclose(self) -> None:
            tasks.append(asyncio.get_running_loop().create_task(later()))

    @app.get("/close-task-probe")
    def index(request: Request) -> Response:
        return Response.stream(Rows(), "text/plain")

    assert make_client(app).get("/close-task-probe").text == "row"
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, Request) and o.path == "/close-task-probe"]
    assert kept == []  # NOTE: while the task still runs.
    del kept
    deadline = time.monotonic() + 3
    while not seen:
        assert time.monotonic() < deadline, "the task did not end"
        time.sleep(0.02)
    assert seen == [None]


@pytest.mark.parametrize("wrapped", ["nothing", "gzip"])
def test_the_request_named_for_a_close_stays_in_the_closes_task(wrapped: str) -> None:
    # NOTE: CLOSING_FOR is set in the task of the app loop that closes a WSGI stream, whose
    # context the server's thread adopts at the end of the hop: left set there, the request
    # would have been kept, and named, until that thread's next stream.
    events: list[str] = []
    served = _wrapped_app(lambda: _Feed(events), wrapped).as_wsgi()
    try:
        environ = wsgi_environ("GET", "/", HTTP_ACCEPT_ENCODING="gzip")
        result = served(environ, start_response)
        try:
            assert b"".join(result)
        finally:
            result.close()
    finally:
        served.close()
    assert events == ["feed closed"]
    assert CLOSING_FOR.get() is None


def test_an_asgi_give_up_names_the_stream_whose_close_runs_in_a_close_thread(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the warning named gzip's stream, not the one whose close had not returned.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.3)
    _FeedStuckAtClose.release.clear()
    app = _wrapped_app(lambda: _FeedStuckAtClose([]), "gzip")
    try:
        with caplog.at_level(logging.WARNING, logger="microweb"):
            asgi_client(app).get("/", headers={"accept-encoding": "gzip"})
    finally:
        _FeedStuckAtClose.release.set()
    late = [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING]
    assert len(late) == 1, late
    assert "_FeedStuckAtClose" in late[0] and "waits for a close thread" not in late[0]


def test_a_failed_close_in_a_close_thread_is_logged_after_its_caller_gave_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: shielded, the close ran on after its caller's cancellation, and its error was
    # dropped with no word.
    release = threading.Event()

    class Failing:
        def close(self) -> None:
            release.wait(5)
            raise CloseFailed("the cursor failed to close")

    async def run() -> None:
        closing = asyncio.ensure_future(aclose_of(Failing()))
        await asyncio.sleep(0.05)
        closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        release.set()
        await asyncio.sleep(0.2)

    _one_close_failure_logged(caplog, run)


def _one_close_failure_logged(
    caplog: pytest.LogCaptureFixture,
    run: Callable[[], Coroutine[Any, Any, None]],
    raised: type[BaseException] = CloseFailed,
) -> None:
    """Run ``run()`` and check that it logged one error, the ``raised`` of a close."""
    with caplog.at_level(logging.ERROR, logger="microweb"):
        asyncio.run(run())
    errors = [record for record in caplog.records if record.exc_info]
    assert [record.name for record in errors] == ["microweb"]
    assert isinstance(errors[0].exc_info[1], raised)  # type: ignore[index]


class _RowsClosedLate:
    """A sync stream whose sync close() blocks a while, then returns its async close."""

    def __init__(self, events: list[str], release: threading.Event) -> None:
        self.events, self.release = events, release

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"a", b"b", b"c"])

    def close(self) -> Any:
        self.release.wait(5)
        return self._aclose()

    async def _aclose(self) -> None:
        await asyncio.sleep(0)
        self.events.append("rows closed")


async def _noted(events: list[str]) -> None:
    """Wait up to 2 s for a close, run in a kept task, to note in ``events`` that it ran."""
    for _ in range(100):
        if events:
            return
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("cancelled", ["stop()", "twice"])
def test_a_sync_streams_async_close_runs_after_its_closer_gave_up(
    recwarn: pytest.WarningsRecorder, cancelled: str
) -> None:
    # NOTE: cancelled while the thread closed the stream, stop() dropped the async close that
    # close() returned ("never awaited"): the rows stayed open.
    events: list[str] = []
    release = threading.Event()

    async def run() -> None:
        rows = iterate_in_pool(_RowsClosedLate(events, release), make_pool(2))
        assert await anext(rows) == b"a"
        if cancelled == "stop()":
            closing = asyncio.ensure_future(rows._pinned.stop())  # type: ignore[attr-defined]
            await asyncio.sleep(0.05)
            closing.cancel()
        else:
            closing = asyncio.ensure_future(rows.aclose())
            for _ in range(2):
                await asyncio.sleep(0.05)
                closing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        release.set()
        await _noted(events)

    asyncio.run(run())
    assert events == ["rows closed"]
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


class _AnyThreadRowsClosedLate(_RowsClosedLate):
    """A ``_RowsClosedLate`` that any thread may read (as gzip's of a file says), endless:
    read a batch a call in the pool (``aiter_file_read``), not held in one thread."""

    bound_to_no_thread = True

    def __iter__(self) -> _AnyThreadRowsClosedLate:  # type: ignore[override]
        return self

    def __next__(self) -> bytes:
        return b"a"


@pytest.mark.parametrize("cancelled", ["never", "once", "twice"])
def test_an_any_thread_streams_async_close_runs_when_its_close_returns_it(
    recwarn: pytest.WarningsRecorder, cancelled: str
) -> None:
    # NOTE: the read's close ran its close() in a thread and dropped what it returned, given
    # up on or not ("never awaited"): the rows stayed open, where a stream held in one thread
    # (iterate_in_pool) and WSGI's ran it (review295).
    events: list[str] = []
    release = threading.Event()

    async def run() -> None:
        rows = aiter_file_read(_AnyThreadRowsClosedLate(events, release), make_pool(2))
        assert await anext(rows) == b"a"
        closing = asyncio.ensure_future(rows.aclose())
        for _ in range(("never", "once", "twice").index(cancelled)):
            await asyncio.sleep(0.05)
            closing.cancel()
        await asyncio.sleep(0.05)
        release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        await _noted(events)

    asyncio.run(run())
    assert events == ["rows closed"]
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


class _AnyThreadRows:
    """A sync stream that any thread may read, whose sync close() returns its async close."""

    bound_to_no_thread = True

    def __init__(self, events: list[str]) -> None:
        self.events, self.rows = events, iter([b"a", b"b"])

    def __iter__(self) -> _AnyThreadRows:
        return self

    def __next__(self) -> bytes:
        return next(self.rows)

    def close(self) -> Any:
        return self._aclose()

    async def _aclose(self) -> None:
        self.events.append("rows closed")


def test_an_any_thread_streams_close_is_awaited_as_any_sync_streams_is(
    make_client: MakeClient, recwarn: pytest.WarningsRecorder
) -> None:
    # NOTE: under ASGI the async close that its close() returned was dropped (review295).
    events: list[str] = []
    app = App()
    app.get("/")(lambda request: Response.stream(_AnyThreadRows(events)))
    assert make_client(app).get("/").content == b"ab"
    assert events == ["rows closed"]
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_an_in_pool_stream_ends_after_its_aclose() -> None:
    # NOTE: an item made ahead was handed out after aclose(), where an async generator ends.
    async def run() -> None:
        rows = iterate_in_pool(iter([b"a", b"b", b"c"]), make_pool(2))
        assert await anext(rows) == b"a"
        await asyncio.sleep(0.05)  # NOTE: the others made ahead.
        await rows.aclose()
        with pytest.raises(StopAsyncIteration):
            await anext(rows)

    asyncio.run(run())


def test_an_in_pool_stream_refuses_a_second_waiter() -> None:
    # NOTE: two waiting at once, the second waited for ever.
    release = threading.Event()

    def slow() -> Iterator[bytes]:
        release.wait(5)
        yield b"a"

    async def run() -> None:
        rows = iterate_in_pool(slow(), make_pool(2))
        first = asyncio.ensure_future(anext(rows))
        await asyncio.sleep(0.05)
        with pytest.raises(RuntimeError, match="already running"):
            await asyncio.wait_for(anext(rows), 1)
        release.set()
        assert await asyncio.wait_for(first, 2) == b"a"
        await rows.aclose()

    asyncio.run(run())


class _Awaited:
    """An awaitable that is no coroutine (as a future is), which a close() returns."""

    def __init__(self, events: list[str]) -> None:
        self.events = events

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        self.events.append("awaited")


class _FeedClosedByAwaitable(_Feed):
    async def __anext__(self) -> str:  # type: ignore[override]
        return (await super().__anext__()).decode()  # NOTE: text, for an event stream too.

    def close(self) -> Any:  # type: ignore[override]
        return _Awaited(self.events)


class _RecordsClosedByAwaitable(_Records):
    def close(self) -> Any:  # type: ignore[override]
        return _Awaited(self.events)


@pytest.mark.parametrize("wrapped", ["nothing", "gzip", "declared length", "sse"])
@pytest.mark.parametrize("make", [_FeedClosedByAwaitable, _RecordsClosedByAwaitable])
def test_an_awaitable_that_a_close_returns_is_awaited(
    make_client: MakeClient, make: Any, wrapped: str
) -> None:
    events: list[str] = []
    app = _wrapped_app(lambda: make(events), wrapped)
    response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert response.status_code == 200
    assert events == ["awaited"]


class _FeedClosedLate(_Feed):
    """An async stream whose sync close() returns its async close once ``release`` is set."""

    release = threading.Event()

    def close(self) -> Any:  # type: ignore[override]
        self.release.wait(3)
        return self._aclose()

    async def _aclose(self) -> None:
        self.events.append("feed closed")


def test_an_async_close_returned_in_a_close_thread_after_the_wsgi_app_loop_stopped_is_logged(
    caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    # NOTE: the app's close stopped the loop while the close thread ran the close(): the
    # coroutine it returned was dropped, "never awaited", with no word of microweb's.
    events: list[str] = []
    _FeedClosedLate.release.clear()
    app = _wrapped_app(lambda: _FeedClosedLate(events), "gzip")
    wsgi = app.as_wsgi()
    environ = wsgi_environ()
    environ["HTTP_ACCEPT_ENCODING"] = "gzip"
    body = wsgi(environ, start_response)
    next(iter(body))

    def shut_down() -> None:
        time.sleep(0.2)
        wsgi.close()
        _FeedClosedLate.release.set()

    stopping = threading.Thread(target=shut_down)
    stopping.start()
    with caplog.at_level(logging.WARNING, logger="microweb"):
        with contextlib.suppress(Exception):
            body.close()  # type: ignore[attr-defined]
        stopping.join()
        deadline = time.monotonic() + 3
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.02)
    assert events == []
    late = [record.getMessage() for record in caplog.records]
    assert len(late) == 1 and "not run" in late[0] and "_FeedClosedLate" in late[0], late
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


@pytest.mark.parametrize("raised", [CloseFailed, SystemExit])
@pytest.mark.parametrize("cancellations", [1, 2])
def test_a_failed_close_of_a_sync_stream_in_the_pool_is_logged_after_a_cancellation(
    caplog: pytest.LogCaptureFixture, cancellations: int, raised: type[BaseException]
) -> None:
    # NOTE: the cancellation won, and the close's error was taken with no word (once), or
    # left to asyncio's "exception was never retrieved" (twice); a sys.exit(), which the close
    # returns to be raised in its caller's task, was dropped with no word either way.
    release = threading.Event()

    class Failing:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"a", b"b"])

        def close(self) -> None:
            release.wait(5)
            raise raised("the cursor failed to close")

    async def run() -> None:
        rows = iterate_in_pool(Failing(), make_pool(2))
        assert await anext(rows) == b"a"
        closing = asyncio.ensure_future(rows.aclose())
        for _ in range(cancellations):
            await asyncio.sleep(0.05)
            closing.cancel()
        if cancellations == 1:
            await asyncio.sleep(0.05)
            release.set()
        with contextlib.suppress(asyncio.CancelledError):
            await closing
        release.set()
        await asyncio.sleep(0.2)

    _one_close_failure_logged(caplog, run, raised)


class _FeedClosedElsewhere(_Feed):
    """A ``_Feed`` whose ``aclose()`` hands the real close to another task, or a thread, which
    waits ``hold`` seconds, then fails (if ``fails``); its chunks are text."""

    hold = 0.3

    def __init__(self, events: list[str], handed_to: str, fails: bool = True) -> None:
        super().__init__(events)
        self.handed_to, self.fails = handed_to, fails

    async def __anext__(self) -> str:  # type: ignore[override]
        # NOTE: text, which an event stream takes too.
        return (await super().__anext__()).decode()

    async def _close(self) -> None:
        await asyncio.sleep(self.hold)
        if self.fails:
            raise CloseFailed("the feed's lock is gone")

    def _close_sync(self) -> None:
        time.sleep(self.hold)
        if self.fails:
            raise CloseFailed("the feed's lock is gone")

    async def aclose(self) -> None:
        self.events.append("closing")
        if self.handed_to == "task":
            await asyncio.create_task(self._close())
        elif self.handed_to == "shielded task":
            await asyncio.shield(asyncio.create_task(self._close()))
        else:
            await asyncio.get_running_loop().run_in_executor(None, self._close_sync)


@pytest.mark.parametrize("wrapped", ["nothing", "gzip", "sse"])
@pytest.mark.parametrize("handed_to", ["task", "shielded task", "executor"])
def test_a_close_handed_to_another_task_names_its_request_and_no_other(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    handed_to: str,
    wrapped: str,
) -> None:
    # NOTE: the task (or thread) that runs the real close has a copy of the closing task's
    # context, or none: its failure, past CLOSE_WAIT under ASGI, is the request's, and the
    # next request, in the same WSGI thread, is named in nothing of it (review278).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    events: list[str] = []
    app = _wrapped_app(lambda: _FeedClosedElsewhere(events, handed_to), wrapped)

    @app.get("/next")
    def after(request: Request) -> Response:
        return Response.stream(iter_rows(), "text/plain")

    client = make_client(app)
    with caplog.at_level(logging.WARNING, logger="microweb"):
        with contextlib.suppress(CloseFailed):
            client.get("/", headers={"accept-encoding": "gzip"})
        assert client.get("/next").text == "row"
        deadline = time.monotonic() + 3
        while not any("error" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.02)
        assert client.get("/next").text == "row"
    assert events == ["closing"]
    assert CLOSING_FOR.get() is None
    said = [record.getMessage() for record in caplog.records]
    assert all("/next" not in line and "different Context" not in line for line in said), said
    assert [line for line in said if "error" in line] == ["error while streaming GET /"], said


@pytest.mark.parametrize("fails", [False, True], ids=["returns", "fails"])
@pytest.mark.parametrize("wrapped", ["nothing", "gzip", "sse"])
@pytest.mark.parametrize("handed_to", ["task", "shielded task", "executor"])
def test_a_wsgi_thread_keeps_no_request_of_a_close_handed_to_another_task(
    wrapped: str, handed_to: str, fails: bool
) -> None:
    # NOTE: the server's thread adopts the context of the hop's task that closed the stream,
    # failed or not; its next request is served with nothing of the last one's close.
    events: list[str] = []
    app = _wrapped_app(lambda: _FeedClosedElsewhere(events, handed_to, fails), wrapped)
    served = app.as_wsgi()
    try:
        for _ in range(2):
            result = served(wsgi_environ("GET", "/", HTTP_ACCEPT_ENCODING="gzip"), start_response)
            # NOTE: raised as the stream ends (gzip's, closed in its task) or as it is closed.
            with contextlib.suppress(CloseFailed):
                try:
                    b"".join(result)
                finally:
                    result.close()
            assert CLOSING_FOR.get() is None
    finally:
        served.close()
    assert events == ["closing", "closing"]


# NOTE: the request a stream's close is named for, where a test needs one.
_GET_ROWS: Any = types.SimpleNamespace(method="GET", path="/rows")


async def _close_cut(stream: Any, release: threading.Event, request: Any) -> None:
    """Close ``stream``, iterated in a pool thread, from a task (named for ``request``, if not
    ``None``) cut twice, then by a cancellation of every task, as a loop's stop does; then set
    ``release``, which the stream's close waits for: the rest of its close is nobody's."""
    rows_ahead = iterate_in_pool(stream, make_pool(2))

    async def close() -> None:
        if request is not None:
            ClosingFor(request)
        await anext(rows_ahead)
        await rows_ahead.aclose()  # type: ignore[attr-defined]

    closing = asyncio.ensure_future(close())
    await asyncio.sleep(0.05)
    for _ in range(2):
        closing.cancel()
        await asyncio.sleep(0.02)
    for task in asyncio.all_tasks() - {asyncio.current_task()}:
        task.cancel()
    await asyncio.sleep(0.02)
    release.set()


def test_a_failed_close_in_a_pool_thread_nobody_awaits_names_its_request(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: a sync stream's close, handed to its pool thread, whose task was cancelled (given up
    # on, then cut by a loop-wide cancellation): its error came from the thread with no word of
    # whose it was, where the task that closed it knew (review278).
    monkeypatch.setattr("microweb._unawaited.logged_method", lambda request: request.method)
    monkeypatch.setattr("microweb._unawaited.logged_path", lambda request: request.path)
    release = threading.Event()

    def rows() -> Iterator[bytes]:
        try:
            while True:
                yield b"row"
        finally:
            release.wait(5)
            raise CloseFailed("the cursor failed to close")

    async def run() -> None:
        await _close_cut(rows(), release, _GET_ROWS)
        await asyncio.sleep(0.3)

    _one_close_failure_logged(caplog, run)
    [failed] = [record.getMessage() for record in caplog.records if record.exc_info]
    assert failed == "GET /rows: error while closing a streamed response after its request ended"


def test_a_close_started_in_the_rest_of_a_close_nobody_awaits_names_its_request(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    close_threads_stuck: threading.Event,
) -> None:
    # NOTE: a sync stream's close() returned its async close once its task had been cut: that
    # rest runs in a task of its own, whose error named the request, but a close it began
    # (another stream's, handed to a close thread) named none in its warning or its error:
    # the driver had let go of the request by then.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    monkeypatch.setattr("microweb._unawaited.logged_method", lambda request: request.method)
    monkeypatch.setattr("microweb._unawaited.logged_path", lambda request: request.path)
    release = threading.Event()

    class Cursor:
        def close(self) -> None:
            raise CloseFailed("the cursor failed to close")

    class Rows:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"a", b"b"])

        def close(self) -> Any:
            release.wait(5)
            return aclose_of(Cursor())

    async def run() -> None:
        await _close_cut(Rows(), release, _GET_ROWS)
        await asyncio.sleep(0.5)  # NOTE: the cursor's close waits past CLOSE_WAIT.
        close_threads_stuck.set()
        for _ in range(100):
            if any(record.exc_info for record in caplog.records):
                break
            await asyncio.sleep(0.02)

    with caplog.at_level(logging.WARNING, logger="microweb"):
        asyncio.run(run())
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said
    assert said[0].startswith("GET /rows: the close() of a streamed response's ")
    assert "Cursor has waited" in said[0]
    assert said[1] == "GET /rows: error while closing a streamed response after its request ended"


def test_a_sys_exit_in_the_rest_of_a_close_nobody_awaits_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: run in a task of its own, the rest's sys.exit() was raised again out of the loop
    # by asyncio, which ended the whole server, where one in the close itself is logged.
    release = threading.Event()

    async def exits() -> None:
        sys.exit(3)

    class Rows:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"a", b"b"])

        def close(self) -> Any:
            release.wait(5)
            return exits()

    async def run() -> None:
        await _close_cut(Rows(), release, None)
        await asyncio.sleep(0.3)

    _one_close_failure_logged(caplog, run, SystemExit)


class _RowsClosedByAsyncClose(_Feed):
    """An async stream with an ``async def close()`` (no ``aclose()``), or a sync ``close()``
    that returns its async close (as gzip's does), which notes whose request it is closed for."""

    def __init__(self, seen: list[object], returned: bool) -> None:
        super().__init__([])
        self.seen = seen
        if returned:
            self.close = self._close_returning  # type: ignore[method-assign]

    async def close(self) -> None:  # type: ignore[override]
        closing = CLOSING_FOR.get()
        self.seen.append(getattr(getattr(closing, "request", None), "path", None))

    def _close_returning(self) -> Any:
        return _RowsClosedByAsyncClose.close(self)


@pytest.mark.parametrize("close", ["async close()", "close() returning it"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_streams_async_close_runs_named_for_its_request_under_both_interfaces(
    make_client: MakeClient, method: str, close: str
) -> None:
    # NOTE: under WSGI, an async close() (or one a sync close() returned) ran on the app loop
    # named for no request, where ASGI's and an aclose() are: a close it began in a close
    # thread (another stream's) named none in its warning or its error.
    seen: list[object] = []
    app = App()
    app.route("/named", methods=["GET", "HEAD"])(
        lambda request: Response.stream(
            _RowsClosedByAsyncClose(seen, close == "close() returning it"), "text/plain"
        )
    )
    response = make_client(app).request(method, "/named")
    assert response.status_code == 200
    assert seen == ["/named"]


def test_an_async_close_begun_as_the_wsgi_app_loop_stopped_is_not_closed_by_the_server() -> None:
    # NOTE: the rest of a close that a sync close() returned was closed by the server's thread
    # on any RuntimeError of its wait, begun or not: where the loop stopped under a close that
    # ignored its cancellation (stop() gives up on it), its finally ran in the server's thread,
    # out of its task, and a GeneratorExit it ignored took LoopStopped's place.
    from microweb._app_loop import LoopStopped
    from microweb._wsgi_closing import await_left

    events: list[str] = []

    async def rest() -> None:
        try:
            await asyncio.sleep(0)
        finally:
            events.append("finally")

    class Stopped:
        stopped = False

        def __init__(self) -> None:
            self.pending: list[Coroutine[Any, Any, None]] = []  # NOTE: as its task keeps it.

        def run(self, closing: Coroutine[Any, Any, None], **_: Any) -> None:
            self.pending.append(closing)
            closing.send(None)  # NOTE: begun on the loop, which stops with it pending.
            raise LoopStopped("the event loop stopped before the call ended")

    left, loop = rest(), Stopped()
    with pytest.raises(LoopStopped):
        await_left(object(), left, loop, Request.__new__(Request), last=False)  # type: ignore[arg-type]
    assert events == []
    loop.pending.pop().close()
    assert events == ["finally"]
