"""Streamed responses, Server-Sent Events, streamed request bodies and client disconnects.

Behaviour tests go through the TestClient under both interfaces; the disconnect tests drive
``app.as_asgi()`` and ``app.as_wsgi()`` by hand, so they control every message and call.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import sys
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator
from concurrent import futures
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import Message, chunked, http_scope, start_response, wsgi_environ, wsgi_post

from microweb import App, ClientDisconnect, Request, Response, ServerSentEvent
from microweb._error_logs import REPORTED_TRACEBACKS
from microweb._stream_ahead import AHEAD

SSE_HEADERS = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
    "x-accel-buffering": "no",
}


# -- helpers -----------------------------------------------------------------------------------


def make_chunks(kind: str, items: list[Any], closed: list[str] | None = None) -> Any:
    """Return ``items`` as a sync or async generator that records in ``closed`` when it ends."""
    if kind == "sync":

        def sync_gen() -> Iterator[Any]:
            try:
                yield from items
            finally:
                if closed is not None:
                    closed.append("sync")

        return sync_gen()

    async def async_gen() -> AsyncIterator[Any]:
        try:
            for item in items:
                await asyncio.sleep(0)
                yield item
        finally:
            if closed is not None:
                closed.append("async")

    return async_gen()


def add_get(app: App, colour: str, make: Callable[[Request], Response], path: str = "/") -> None:
    """Register ``GET path`` as a ``def`` or ``async def`` handler returning ``make(request)``."""
    if colour == "sync":

        def sync_handler(request: Request) -> Response:
            return make(request)

        app.get(path, name=path)(sync_handler)
    else:

        async def async_handler(request: Request) -> Response:
            return make(request)

        app.get(path, name=path)(async_handler)


def failing_after_first_chunk(kind: str) -> Any:
    """Return a sync or async generator that yields ``b"first"``, then raises RuntimeError."""
    if kind == "sync":

        def sync_gen() -> Iterator[bytes]:
            yield b"first"
            raise RuntimeError("boom in stream")

        return sync_gen()

    async def async_gen() -> AsyncIterator[bytes]:
        yield b"first"
        raise RuntimeError("boom in stream")

    return async_gen()


async def call_asgi(
    app: App,
    scope: Message,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
    timeout: float = 5.0,
) -> None:
    """Call the app's ASGI callable once, inside a lifespan so that its pool is shut down."""
    asgi = app.as_asgi()
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()

    async def life_send(message: Message) -> None:
        await outbox.put(message)

    lifespan = asyncio.ensure_future(asgi({"type": "lifespan"}, inbox.get, life_send))
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        await asyncio.wait_for(asgi(scope, receive, send), timeout)
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await lifespan


def parse_sse(stream: bytes) -> list[dict[str, Any]]:
    """Interpret an event stream as a browser does (WHATWG HTML, "event stream interpretation")."""
    text = stream.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    events: list[dict[str, Any]] = []
    data: list[str] = []
    event: dict[str, Any] = {}
    for line in text.split("\n"):
        if not line:
            if data:
                events.append({**event, "data": "\n".join(data)})
            data, event = [], {}
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name in ("event", "id"):
            event[name] = value
        elif name == "retry" and value.isdigit():
            event["retry"] = int(value)
    return events


# -- Response.stream through the TestClient ----------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream_generator(make_client: MakeClient, colour: str, kind: str) -> None:
    closed: list[str] = []
    app = App()
    items = [b"one ", "two ", b"", "", b"three"]
    add_get(app, colour, lambda r: Response.stream(make_chunks(kind, items, closed)))
    response = make_client(app).get("/")
    assert response.status_code == 200
    assert response.content == b"one two three"
    assert response.headers["content-type"] == "application/octet-stream"
    assert "content-length" not in response.headers
    assert closed == [kind]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_stream_status_headers_and_media_type(
    make_client: MakeClient, colour: str, kind: str
) -> None:
    app = App()

    def make(request: Request) -> Response:
        chunks = make_chunks(kind, ["a,b\n", "1,2\n"])
        return Response.stream(chunks, media_type="text/csv", status=201, headers={"x-a": "1"})

    add_get(app, colour, make)
    response = make_client(app).get("/")
    assert response.status_code == 201
    assert response.headers["content-type"] == "text/csv"
    assert response.headers["x-a"] == "1"
    assert response.text == "a,b\n1,2\n"


def test_stream_of_a_list(make_client: MakeClient, colour: str) -> None:
    app = App()
    add_get(app, colour, lambda r: Response.stream([b"a", b"b", "c"]))
    assert make_client(app).get("/").content == b"abc"


def test_stream_of_many_chunks(make_client: MakeClient, colour: str) -> None:
    app = App()
    chunks = [bytes([i % 256]) * 1000 for i in range(300)]
    add_get(app, colour, lambda r: Response.stream(make_chunks("sync", chunks)))
    assert make_client(app).get("/").content == b"".join(chunks)


@pytest.mark.parametrize("kind", ["binary", "text"])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_stream_of_an_open_file_goes_in_blocks_and_closes_it(
    make_client: MakeClient, colour: str, kind: str, method: str, tmp_path: Any
) -> None:
    # NOTE: a file iterates by lines: 50 MiB with no line break went out as one chunk of
    # 50 MiB (100 MiB at the peak), and a stream made ahead held 16 such.
    from microweb._files import FILE_CHUNK

    content = "é" * (FILE_CHUNK * 2 + 7)
    path = tmp_path / "data.txt"
    path.write_text(content, encoding="utf-8")
    opened: list[Any] = []

    def open_it(request: Request) -> Response:
        file = open(path, "rb") if kind == "binary" else open(path, encoding="utf-8")  # noqa: SIM115
        opened.append(file)
        return Response.stream(file)

    app = App()
    app.get("/")(in_colour(colour, open_it))
    with make_client(app).stream(method, "/") as response:
        sizes = [len(chunk) for chunk in response.iter_raw()]
    assert response.status_code == 200
    if method == "GET":
        assert sum(sizes) == len(content.encode())
        assert len(sizes) > 1 and max(sizes) <= 2 * FILE_CHUNK  # NOTE: text: 2-byte "é".
    else:
        assert sizes == []
    [file] = opened
    assert file.closed


@pytest.mark.parametrize("make", ["named", "spooled"])
def test_a_stream_of_a_temporary_file_goes_in_blocks_and_closes_it(
    make_client: MakeClient, make: str
) -> None:
    # NOTE: NamedTemporaryFile's wrapper (and, before Python 3.11, SpooledTemporaryFile) is
    # no io.IOBase: an export written to one went out by lines, 1 MiB with no line break as
    # one chunk of 1 MiB.
    import tempfile

    from microweb._files import FILE_CHUNK

    content = b"x" * (FILE_CHUNK * 16 + 7)
    opened: list[Any] = []

    def export(request: Request) -> Response:
        file: Any = (
            tempfile.NamedTemporaryFile()  # noqa: SIM115
            if make == "named"
            else tempfile.SpooledTemporaryFile(max_size=FILE_CHUNK)  # noqa: SIM115
        )
        file.write(content)
        file.seek(0)
        opened.append(file)
        return Response.stream(file)

    app = App()
    app.get("/")(export)
    with make_client(app).stream("GET", "/") as response:
        sizes = [len(chunk) for chunk in response.iter_raw()]
    assert sum(sizes) == len(content)
    assert max(sizes) <= 2 * FILE_CHUNK
    [file] = opened
    assert file.closed


def test_stream_sends_bytearray_and_memoryview_chunks_as_bytes(make_client: MakeClient) -> None:
    # NOTE: wsgiref.validate refused them under WSGI, where ASGI sent them.
    app = App()
    chunks = [bytearray(b"ab"), memoryview(b"cd"), b"ef"]
    add_get(app, "sync", lambda r: Response.stream(make_chunks("async", chunks)))
    assert make_client(app).get("/").content == b"abcdef"


@pytest.mark.parametrize("kind", ["sync", "async"])
# NOTE: the falsy ones (None, 0, {}) were skipped with no word: a bare `yield` lost nothing.
@pytest.mark.parametrize("item", [5, {"a": 1}, 1.5, None, 0, {}, False])
def test_a_stream_chunk_of_another_type_is_a_logged_type_error_under_both_interfaces(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, kind: str, item: Any
) -> None:
    # NOTE: under ASGI an int went out as that many NUL bytes (bytes(5)) and a dict failed
    # with "'str' object cannot be interpreted as an integer"; WSGI's server failed on them.
    closed: list[str] = []
    app = App()
    add_get(app, "sync", lambda r: Response.stream(make_chunks(kind, [b"first", item], closed)))
    message = f"yields bytes or str chunks, not {type(item).__name__}"
    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(TypeError, match=message):
        make_client(app).get("/")
    logged = [r for r in caplog.records if r.name == "microweb" and r.exc_info]
    assert [r.getMessage() for r in logged] == ["error while streaming GET /"]
    assert closed == [kind]


@pytest.mark.parametrize(
    "body", [b"bytes", "text", bytearray(b"bytes"), memoryview(b"bytes")], ids=type
)
def test_stream_refuses_a_whole_body(body: Any) -> None:
    # NOTE: a bytearray or memoryview was iterated as ints: a 200 went out, then the stream was
    # cut with "yields bytes or str chunks, not int" (review158).
    with pytest.raises(TypeError, match=f"not {type(body).__name__}: give a whole body"):
        Response.stream(body)


@pytest.mark.parametrize("value", [None, 42, object()])
def test_stream_refuses_what_is_not_iterable(value: Any) -> None:
    # NOTE: None went out as an empty 200; 42 failed after the headers under ASGI.
    with pytest.raises(TypeError, match=f"iterable of chunks, not {type(value).__name__}"):
        Response.stream(value)


# -- Server-Sent Events ------------------------------------------------------------------------

EVENTS: list[Any] = [
    "hello",
    ServerSentEvent(data="line one\nline two", event="update", id="42", retry=3000),
    ServerSentEvent(comment="keep-alive"),
    ServerSentEvent(data="with comment", comment="note"),
    ServerSentEvent(data=""),
    ServerSentEvent(data="crlf\r\nand\rcr"),
    ServerSentEvent(event="ping", data="x"),
]
EVENT_BYTES = (
    b"data: hello\n\n"
    b"event: update\nid: 42\nretry: 3000\ndata: line one\ndata: line two\n\n"
    b": keep-alive\n\n"
    b": note\ndata: with comment\n\n"
    b"data: \n\n"
    b"data: crlf\ndata: and\ndata: cr\n\n"
    b"event: ping\ndata: x\n\n"
)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_framing_and_headers(make_client: MakeClient, colour: str, kind: str) -> None:
    closed: list[str] = []
    app = App()
    add_get(app, colour, lambda r: Response.sse(make_chunks(kind, EVENTS, closed)))
    response = make_client(app).get("/")
    assert response.status_code == 200
    assert response.content == EVENT_BYTES
    for name, value in SSE_HEADERS.items():
        assert response.headers[name] == value
    assert "content-length" not in response.headers
    assert closed == [kind]


def test_sse_from_a_list_of_strings(make_client: MakeClient, colour: str) -> None:
    app = App()
    add_get(app, colour, lambda r: Response.sse(["a", "b"]))
    assert make_client(app).get("/").content == b"data: a\n\ndata: b\n\n"


def test_sse_status_and_headers(make_client: MakeClient, colour: str) -> None:
    app = App()
    headers = {"cache-control": "no-store", "x-stream": "yes"}
    add_get(app, colour, lambda r: Response.sse(["a"], status=202, headers=headers))
    response = make_client(app).get("/")
    assert response.status_code == 202
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-stream"] == "yes"
    assert response.headers["content-type"] == "text/event-stream"


def test_sse_stream_as_a_browser_reads_it() -> None:
    stream = b"".join(ServerSentEvent(data="x").encode() for _ in range(2))
    assert parse_sse(stream) == [{"data": "x"}, {"data": "x"}]
    assert parse_sse(EVENT_BYTES) == [
        {"data": "hello"},
        {"event": "update", "id": "42", "retry": 3000, "data": "line one\nline two"},
        {"data": "with comment"},
        {"data": ""},
        {"data": "crlf\nand\ncr"},
        {"event": "ping", "data": "x"},
    ]


@pytest.mark.parametrize(
    "data",
    [
        "plain",
        "two\nlines",
        " leading space",
        "",
        "a\n\nb",
        "ends with newline\n",
        "line\u2028separator",
        "form\x0cfeed",
    ],
)
def test_sse_data_round_trips(data: str) -> None:
    # NOTE: a browser splits the stream on CR, LF and CRLF only, and joins data lines with LF.
    events = parse_sse(ServerSentEvent(data=data, id="1").encode())
    assert events == [{"id": "1", "data": data}]


def test_sse_data_of_many_lines_is_framed_in_memory_near_its_size(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: an event's data was split into a list of lines, each a str of its own (about 60
    # bytes): data of 1 MB of "\n" from a request held 79 MB and took 2.4 s of CPU to frame.
    data = "\n" * 100_000
    framed = ServerSentEvent(data=data).encode()
    assert framed == b"data: \n" * 100_001 + b"\n"
    tracemalloc.start()
    try:
        ServerSentEvent(data=data).encode()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(framed), (peak, len(framed))  # NOTE: the text, its copies, the bytes.
    app = App()
    add_get(app, colour, lambda r: Response.sse([data]))
    assert make_client(app).get("/").content == framed


@pytest.mark.parametrize("field", ["event", "id", "comment"])
@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\r\nb", "trailing\n"])
def test_sse_refuses_line_breaks(field: str, value: str) -> None:
    with pytest.raises(ValueError):
        ServerSentEvent(data="x", **{field: value})


def test_sse_refuses_nul_in_id() -> None:
    with pytest.raises(ValueError):
        ServerSentEvent(data="x", id="a\0b")


MAPPED_EVENTS: list[Any] = [
    {"data": "hello"},
    {"data": "line one\nline two", "event": "update", "id": "42", "retry": 3000},
    {"comment": "keep-alive"},
    {"data": "x", "event": None},
    "plain",
    ServerSentEvent(data="object"),
]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_takes_mappings(make_client: MakeClient, colour: str, kind: str) -> None:
    app = App()
    add_get(app, colour, lambda r: Response.sse(make_chunks(kind, MAPPED_EVENTS)))
    response = make_client(app).get("/")
    assert response.status_code == 200
    assert response.content == (
        b"data: hello\n\n"
        b"event: update\nid: 42\nretry: 3000\ndata: line one\ndata: line two\n\n"
        b": keep-alive\n\n"
        b"data: x\n\n"
        b"data: plain\n\n"
        b"data: object\n\n"
    )


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ("hello", "not one str: wrap it in a list"),
        ({"data": "hi", "event": "x"}, "not one dict: wrap it in a list"),
        (ServerSentEvent(data="hi"), "not one ServerSentEvent: wrap it in a list"),
        (b"hello", "iterable of events .*, not bytes"),
        (None, "iterable of events .*, not NoneType"),
    ],
)
def test_sse_refuses_one_event_or_what_is_not_iterable_before_the_headers(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, events: Any, message: str
) -> None:
    # NOTE: a str went out as one event per character and a dict as one per key, with a 200;
    # the others cut the stream after its headers.
    with pytest.raises(TypeError, match=message):
        Response.sse(events)
    app = App()
    add_get(app, "sync", lambda r: Response.sse(events))
    with caplog.at_level(logging.CRITICAL, logger="microweb"):
        assert make_client(app).get("/").status_code == 500


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("item", "error", "message"),
    [
        (42, TypeError, "str, ServerSentEvent or a mapping with keys data, event, id, retry"),
        (b"bytes", TypeError, "str, ServerSentEvent or a mapping"),
        ({"data": "x", "name": "y"}, ValueError, "'name'.*use data, event, id, retry, comment"),
        ({"data": {"a": 1}}, TypeError, r"data must be str, not dict: .*json.dumps"),
        ({"data": "x", "retry": "soon"}, TypeError, "retry must be an int"),
    ],
)
def test_sse_wrong_items_fail_with_a_logged_error_naming_what_fits(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    item: Any,
    error: type[Exception],
    message: str,
) -> None:
    closed: list[str] = []
    app = App()
    add_get(app, "sync", lambda r: Response.sse(make_chunks(kind, ["first", item], closed)))
    # NOTE: the headers are gone when the item comes: the stream is cut, and the error logged.
    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(error, match=message):
        make_client(app).get("/")
    logged = [r for r in caplog.records if r.name == "microweb" and r.exc_info]
    assert logged and isinstance(logged[0].exc_info[1], error)  # type: ignore[index]
    assert closed == [kind]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_stream_closes_the_events_when_it_is_closed(kind: str) -> None:
    # NOTE: a driver closes the response's chunks when the client leaves.
    closed: list[str] = []
    response = Response.sse(make_chunks(kind, ["a", "b", "c"], closed))
    chunks: Any = response.chunks
    if kind == "sync":
        assert next(chunks) == b"data: a\n\n"
        chunks.close()
    else:

        async def first_then_close() -> None:
            assert await chunks.__anext__() == b"data: a\n\n"
            await chunks.aclose()

        asyncio.run(first_then_close())
    assert closed == [kind]


class Subscription:
    """Events of the app's own, an object holding a resource: ``close()``/``aclose()`` record."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Subscription:
        return self

    def __next__(self) -> str:
        raise StopIteration

    def close(self) -> None:
        self.closed.append("sync")


class AsyncSubscription(Subscription):
    def __aiter__(self) -> AsyncSubscription:
        return self

    async def __anext__(self) -> str:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        self.closed.append("async")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_events_of_a_head_request_are_closed_unsent(make_client: MakeClient, kind: str) -> None:
    # NOTE: the stream never starts; the subscription is closed all the same.
    closed: list[str] = []
    app = App()
    make = Subscription if kind == "sync" else AsyncSubscription
    add_get(app, "sync", lambda r: Response.sse(make(closed)))
    response = make_client(app).head("/")
    assert (response.status_code, response.content, closed) == (200, b"", [kind])


class FailingSubscription(Subscription):
    def close(self) -> None:
        super().close()
        raise OSError("unsubscribe failed")


class AsyncFailingSubscription(AsyncSubscription):
    async def aclose(self) -> None:
        await super().aclose()
        raise OSError("unsubscribe failed")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_events_of_a_head_request_that_fail_to_close_end_the_request(
    make_client: MakeClient, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the answer is whole: the error is logged, and the request ends as usual. Raised to
    # the server, it was a 500 under WSGI, a response cut after its headers under ASGI.
    closed: list[str] = []
    app = App()
    make = FailingSubscription if kind == "sync" else AsyncFailingSubscription

    @app.get("/")
    def events(request: Request) -> Response:
        request.after_response(closed.append, "after")
        return Response.sse(make(closed))

    with caplog.at_level(logging.ERROR, logger="microweb"):
        response = make_client(app).head("/")
    assert (response.status_code, response.headers["content-type"]) == (200, "text/event-stream")
    assert closed == [kind, "after"]
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == ["error while closing the unsent stream of HEAD /"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_events_whose_start_cannot_be_sent_are_closed(kind: str) -> None:
    closed: list[str] = []
    app = App()
    make = Subscription if kind == "sync" else AsyncSubscription
    add_get(app, "async", lambda r: Response.sse(make(closed)))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        raise ConnectionResetError("gone")

    asyncio.run(app.as_asgi()(http_scope("GET", "/"), receive, send))
    assert closed == [kind]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wsgi_stream_starts_with_an_empty_write_and_is_closed_when_it_fails(kind: str) -> None:
    # NOTE: the empty write sends the headers before the first chunk (PEP 3333 holds them);
    # a server whose write fails (the client has gone) gets no body to close: the app closes it.
    closed: list[str] = []
    ran: list[str] = []
    app = App()

    def handler(request: Request) -> Response:
        request.after_response(ran.append, "after")
        return Response.sse(Subscription(closed) if kind == "sync" else AsyncSubscription(closed))

    add_get(app, "sync", handler)
    written: list[bytes] = []

    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        return written.append

    wsgi = app.as_wsgi()
    result = wsgi(wsgi_environ(), start)
    assert written == [b""]
    getattr(result, "close", lambda: None)()

    def failing(data: bytes) -> None:
        raise ConnectionResetError("gone")

    with pytest.raises(ConnectionResetError):
        wsgi(wsgi_environ(), lambda status, headers, exc_info=None: failing)
    wsgi.close()
    assert closed == [kind, kind]
    assert ran == ["after", "after"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sse_events_are_closed_once_when_they_end(make_client: MakeClient, kind: str) -> None:
    closed: list[str] = []
    app = App()
    add_get(app, "sync", lambda r: Response.sse(make_chunks(kind, ["a"], closed)))
    assert make_client(app).get("/").content == b"data: a\n\n"
    assert closed == [kind]


class Feed:
    """Events of the app's own that are iterable, not an iterator: ``__iter__`` is a generator
    (one per stream) and ``close()``/``aclose()`` frees what the object holds."""

    def __init__(self, items: list[Any], closed: list[str]) -> None:
        self.items = items
        self.closed = closed

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self.items
        finally:
            self.closed.append("generator")

    def close(self) -> None:
        self.closed.append("feed")


class AsyncFeed(Feed):
    async def _events(self) -> AsyncIterator[Any]:
        try:
            for item in self.items:
                yield item
        finally:
            self.closed.append("generator")

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def aclose(self) -> None:
        self.closed.append("feed")


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("items", [["a"], ["a", 5]], ids=["whole", "bad item"])
def test_sse_events_iterable_but_not_iterators_are_closed_when_sent(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, kind: str, items: list[Any]
) -> None:
    # NOTE: as when the stream never starts (HEAD): the object is closed, not only the
    # generator its __iter__ made (first, so its finally blocks still see the object open).
    closed: list[str] = []
    app = App()
    make = Feed if kind == "sync" else AsyncFeed
    add_get(app, "sync", lambda r: Response.sse(make(items, closed)))
    client = make_client(app)
    with caplog.at_level(logging.CRITICAL, logger="microweb"):
        if len(items) == 1:
            assert client.get("/").content == b"data: a\n\n"
        else:
            with pytest.raises(TypeError, match="got int"):
                client.get("/")
    assert closed == ["generator", "feed"]


class AsyncFeedClosedSync(Feed):
    """Async events of the app's own whose only closing is a sync ``close()``."""

    def __iter__(self) -> Iterator[Any]:
        raise AssertionError("never iterated: it is async")

    def __aiter__(self) -> AsyncIterator[Any]:
        return AsyncFeed._events(self)  # type: ignore[arg-type]


class AsyncFeedClosedByCoroutine(AsyncFeedClosedSync):
    """Async events of the app's own whose only closing is an ``async def close()``."""

    async def close(self) -> None:  # type: ignore[override]
        self.closed.append("feed")


@pytest.mark.parametrize("feed", [AsyncFeedClosedSync, AsyncFeedClosedByCoroutine])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_async_events_with_a_close_alone_are_closed(
    make_client: MakeClient, colour: str, method: str, feed: type[AsyncFeedClosedSync]
) -> None:
    # NOTE: they were never closed, sent or not, under both interfaces: the events were closed
    # only by an aclose(), where Response.stream() closes such an object by its close().
    closed: list[str] = []
    app = App()
    app.route("/", methods=["GET", "HEAD"])(
        in_colour(colour, lambda r: Response.sse(feed(["a"], closed)))
    )
    response = make_client(app).request(method, "/")
    assert response.content == (b"data: a\n\n" if method == "GET" else b"")
    assert closed == (["generator", "feed"] if method == "GET" else ["feed"])


class Cursor:
    """A body of the app's own whose ``__iter__`` is a generator: both are closed, in order."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield b"row 1\n"
            yield b"row 2\n"
        finally:
            self.closed.append("iterator")

    def close(self) -> None:
        self.closed.append("cursor")


def test_a_streamed_body_and_the_iterator_it_made_are_both_closed(
    make_client: MakeClient, colour: str
) -> None:
    closed: list[str] = []
    app = App()
    add_get(app, colour, lambda r: Response.stream(Cursor(closed)))
    assert make_client(app).get("/").content == b"row 1\nrow 2\n"
    assert closed == ["iterator", "cursor"]


class AsyncRows:
    """An async body of the app's own that is its own iterator (a cursor that releases its
    connection in ``aclose()``, which must run once)."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed
        self.rows = [b"row 1\n", b"row 2\n"]

    def __aiter__(self) -> AsyncRows:
        return self

    async def __anext__(self) -> bytes:
        if not self.rows:
            raise StopAsyncIteration
        return self.rows.pop(0)

    async def aclose(self) -> None:
        self.closed.append("cursor")


def test_an_async_body_that_is_its_own_iterator_is_closed_once(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: under WSGI, the app loop's task closed it, then the body's close() again.
    closed: list[str] = []
    app = App()
    add_get(app, colour, lambda r: Response.stream(AsyncRows(closed)))
    assert make_client(app).get("/").content == b"row 1\nrow 2\n"
    assert closed == ["cursor"]


def test_sse_event_fields_have_types() -> None:
    with pytest.raises(TypeError, match="data must be str, not int"):
        ServerSentEvent(data=5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="event must be str"):
        ServerSentEvent(data="x", event=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="retry must be an int, not bool"):
        ServerSentEvent(retry=True)
    assert ServerSentEvent(retry=0).encode() == b"retry: 0\n\n"
    with pytest.raises(ValueError, match="retry must be 0 or more milliseconds, not -1"):
        ServerSentEvent(retry=-1)


# -- request bodies in chunks ------------------------------------------------------------------


def test_iter_bytes_chunks(make_client: MakeClient, colour: str, interface: str) -> None:
    seen: list[int] = []
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> bytes:
            chunks = list(request.iter_bytes())
            seen.extend(len(chunk) for chunk in chunks)
            return b"".join(chunks)

    else:

        @app.post("/")
        async def async_handler(request: Request) -> bytes:
            chunks = [chunk async for chunk in request.aiter_bytes()]
            seen.extend(len(chunk) for chunk in chunks)
            return b"".join(chunks)

    parts = [bytes([i]) * 10_240 for i in range(20)]
    response = make_client(app).post("/", content=chunked(interface, parts))
    assert response.status_code == 200
    assert response.content == b"".join(parts)
    assert len(seen) >= 2
    assert max(seen) <= 64 * 1024
    assert sum(seen) == 20 * 10_240


# -- ASGI, driven by hand: disconnects ---------------------------------------------------------


def body_reader_app(colour: str, op: str, seen: list[str]) -> App:
    """``POST /`` reads the body (``read``, ``form`` or ``parts``), noting ``ClientDisconnect``."""
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> str:
            try:
                if op == "parts":
                    for part in request.iter_parts():
                        b"".join(part.iter_bytes())
                else:
                    request.read() if op == "read" else request.form()
            except ClientDisconnect:
                seen.append("sync")
                raise
            return "read"

    else:

        @app.post("/")
        async def async_handler(request: Request) -> str:
            try:
                if op == "parts":
                    async for part in request.aiter_parts():
                        b"".join([chunk async for chunk in part.aiter_bytes()])
                else:
                    await (request.aread() if op == "read" else request.aform())
            except ClientDisconnect:
                seen.append("async")
                raise
            return "read"

    return app


@pytest.mark.parametrize("op", ["read", "form", "parts"])
@pytest.mark.parametrize("cut", ["in-headers", "in-data"])
def test_asgi_disconnect_mid_upload(colour: str, op: str, cut: str) -> None:
    seen: list[str] = []
    sent: list[Message] = []
    app = body_reader_app(colour, op, seen)
    headers = [(b"content-type", b"multipart/form-data; boundary=xyz")]
    first = b"--xyz\r\nContent-Disposition: form-"
    if cut == "in-data":
        first += b'data; name="f"; filename="f.bin"\r\n\r\nsome of the data'
    messages: list[Message] = [
        {"type": "http.request", "body": first, "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Message:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(call_asgi(app, http_scope("POST", headers=headers), receive, send))
    assert seen == [colour]
    assert sent == []


def endless_chunks(kind: str, closed: threading.Event, produced: list[int]) -> Any:
    """A stream that would go on for about five seconds, unless closed."""
    if kind == "sync":

        def sync_gen() -> Iterator[bytes]:
            try:
                for i in range(500):
                    produced.append(i)
                    yield b"tick\n"
                    time.sleep(0.01)
            finally:
                closed.set()

        return sync_gen()

    async def async_gen() -> AsyncIterator[bytes]:
        try:
            for i in range(500):
                produced.append(i)
                yield b"tick\n"
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    return async_gen()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_asgi_disconnect_closes_streaming_generator(colour: str, kind: str) -> None:
    closed = threading.Event()
    produced: list[int] = []
    sent: list[Message] = []
    app = App()
    add_get(app, colour, lambda r: Response.stream(endless_chunks(kind, closed, produced)))

    async def run() -> None:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})

        async def send(message: Message) -> None:
            sent.append(message)
            if message["type"] == "http.response.body" and len(sent) == 3:
                inbox.put_nowait({"type": "http.disconnect"})

        await call_asgi(app, http_scope(), inbox.get, send, timeout=3.0)

    asyncio.run(run())
    assert closed.is_set(), "the generator's finally block did not run"
    # NOTE: stopped soon after the disconnect, not at the end of its 500 chunks (a count, not
    # a time: a loaded machine slows both).
    assert len(produced) < 100
    assert [m["type"] for m in sent].count("http.response.start") == 1
    assert sent[1] == {"type": "http.response.body", "body": b"tick\n", "more_body": True}


@pytest.mark.parametrize("response", ["stream", "sse"])
def test_asgi_disconnect_stops_an_async_generator_that_never_awaits(response: str) -> None:
    # NOTE: Uvicorn's send() returns at once after the client left, so an async generator with
    # no await of its own (rows from a list) never gave the event loop a turn: the watcher
    # never heard the disconnect, and an endless one held the server at 100% CPU, answering
    # no one, for ever (hunt46, under both of Uvicorn's parsers).
    produced: list[int] = []
    closed = threading.Event()
    sent = 0

    async def chunks() -> AsyncIterator[str]:
        try:
            # NOTE: bounded, so that the old code ends, after every chunk (0.5 s here).
            for i in range(300_000):
                produced.append(i)
                yield "tick"
        finally:
            closed.set()

    app = App()
    maker = Response.stream if response == "stream" else Response.sse
    add_get(app, "async", lambda r: maker(chunks()))

    async def run() -> None:
        gone = asyncio.Event()

        async def receive() -> Message:
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            # NOTE: as Uvicorn's send() does: it never waits, before or after the client left.
            nonlocal sent
            sent += 1
            if sent == 3:
                gone.set()

        await call_asgi(app, http_scope(), receive, send, timeout=30.0)

    asyncio.run(run())
    assert closed.is_set()
    # NOTE: the loop gets a turn every TURN (5 ms): a few thousand chunks at most, not all.
    assert len(produced) < 150_000


def disconnect_probe_app(colour: str) -> App:
    """``POST /`` checks for a disconnect before and after reading the body, then waits for one."""
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> dict[str, Any]:
            before = request.is_disconnected()
            body = request.read()
            connected = request.is_disconnected()
            deadline = time.monotonic() + 2
            while not request.is_disconnected() and time.monotonic() < deadline:
                time.sleep(0.01)
            after = request.is_disconnected()
            return {"before": before, "body": body.decode(), "connected": connected, "after": after}

    else:

        @app.post("/")
        async def async_handler(request: Request) -> dict[str, Any]:
            before = await request.ais_disconnected()
            body = await request.aread()
            connected = await request.ais_disconnected()
            deadline = time.monotonic() + 2
            while not await request.ais_disconnected() and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            after = await request.ais_disconnected()
            return {"before": before, "body": body.decode(), "connected": connected, "after": after}

    return app


def test_asgi_is_disconnected_keeps_body_messages(colour: str) -> None:
    sent: list[Message] = []
    calls = 0

    async def receive() -> Message:
        nonlocal calls
        calls += 1
        if calls == 1:
            return {"type": "http.request", "body": b"hello", "more_body": False}
        # NOTE: the client leaves a little after sending its body.
        await asyncio.sleep(0.2)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = http_scope("POST", headers=[(b"content-length", b"5")])
    asyncio.run(call_asgi(disconnect_probe_app(colour), scope, receive, send))
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body == b'{"before":false,"body":"hello","connected":false,"after":true}'


def test_asgi_is_disconnected_before_body_split_in_messages(colour: str) -> None:
    sent: list[Message] = []
    messages: list[Message] = [
        {"type": "http.request", "body": b"he", "more_body": True},
        {"type": "http.request", "body": b"llo", "more_body": False},
    ]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(call_asgi(disconnect_probe_app(colour), http_scope("POST"), receive, send))
    body = b"".join(m.get("body", b"") for m in sent[1:])
    assert body == b'{"before":false,"body":"hello","connected":false,"after":true}'


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_asgi_stream_error_after_first_chunk(
    colour: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[Message] = []

    app = App()
    add_get(app, colour, lambda r: Response.stream(failing_after_first_chunk(kind)))
    messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Future()  # the client stays connected
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    with (
        caplog.at_level(logging.ERROR, logger="microweb"),
        pytest.raises(RuntimeError, match="boom in stream"),
    ):
        asyncio.run(call_asgi(app, http_scope(), receive, send))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["body"] == b"first"
    logged = [r for r in caplog.records if r.name == "microweb" and r.levelno >= logging.ERROR]
    assert logged, "the stream error was not logged"
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in logged)


async def _awaits_a_task_it_cancelled() -> AsyncIterator[str]:
    yield "first"
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    await task


def _raises_its_own_cancellation() -> Iterator[str]:
    yield "first"
    raise asyncio.CancelledError("the stream's own")


@pytest.mark.parametrize("kind", ["async", "sync"])
def test_a_streams_own_cancelled_error_is_its_error_under_both_interfaces(
    make_client: MakeClient, interface: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: an async stream that awaits a task it cancelled left the app unlogged under ASGI,
    # as if the server had cut the request off. A sync stream's own left the stream unlogged
    # under WSGI, and Waitress kept the connection open after the first chunk instead of
    # cutting it: the client waited for the rest.
    if interface == "asgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (serving.md)")
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        chunks = _awaits_a_task_it_cancelled if kind == "async" else _raises_its_own_cancellation
        return Response.stream(chunks())

    with (
        caplog.at_level(logging.ERROR, logger="microweb"),
        pytest.raises(futures.CancelledError) as raised,
    ):
        make_client(app).get("/")
    assert isinstance(raised.value.__cause__, asyncio.CancelledError)
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == ["error while streaming GET /"]


class _SealedError(Exception):
    """An error that takes no new attribute, as attrs' frozen exception classes do (they let
    Python set ``__traceback__``, ``__cause__`` and ``__context__``)."""

    def __setattr__(self, name: str, value: object) -> None:
        if not name.startswith("__"):
            raise AttributeError(f"{type(self).__name__} is frozen")
        super().__setattr__(name, value)


def test_a_stream_error_that_refuses_attributes_is_raised_as_it_is(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: marking it as logged raised AttributeError in its place, which a server then
    # logged as a second error, unfiltered.
    app = App()

    def chunks() -> Iterator[str]:
        yield "first"
        raise _SealedError(7)

    @app.get("/")
    def index(request: Request) -> Response:
        return Response.stream(chunks())

    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(_SealedError):
        make_client(app).get("/")
    logged = [r for r in caplog.records if r.name == "microweb"]
    assert [r.getMessage() for r in logged] == ["error while streaming GET /"]
    assert logged[0].exc_info is not None
    server_record = logging.LogRecord(
        "waitress", logging.ERROR, __file__, 1, "Exception while serving /", (), logged[0].exc_info
    )
    assert not REPORTED_TRACEBACKS.filter(server_record)


# -- WSGI, driven by hand ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wsgi_close_closes_generator(colour: str, kind: str) -> None:
    closed = threading.Event()
    produced: list[int] = []
    app = App()
    add_get(app, colour, lambda r: Response.stream(endless_chunks(kind, closed, produced)))
    wsgi = app.as_wsgi()
    try:
        result = wsgi(wsgi_environ(), start_response)
        chunks = iter(result)
        assert next(chunks) == b"tick\n"
        assert not closed.is_set()
        result.close()  # type: ignore[attr-defined]
        assert closed.is_set()
        assert len(produced) < 5
    finally:
        wsgi.close()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wsgi_stream_error_after_first_chunk(
    colour: str, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()
    add_get(app, colour, lambda r: Response.stream(failing_after_first_chunk(kind)))
    wsgi = app.as_wsgi()
    try:
        result = wsgi(wsgi_environ(), start_response)
        chunks = iter(result)
        assert next(chunks) == b"first"
        with (
            caplog.at_level(logging.ERROR, logger="microweb"),
            pytest.raises(RuntimeError, match="boom in stream"),
        ):
            next(chunks)
        result.close()  # type: ignore[attr-defined]
    finally:
        wsgi.close()
    assert any(r.name == "microweb" and r.levelno >= logging.ERROR for r in caplog.records)


def disconnect_flag_app(colour: str) -> App:
    app = App()
    if colour == "sync":

        @app.get("/")
        def sync_handler(request: Request) -> str:
            return str(request.is_disconnected())

    else:

        @app.get("/")
        async def async_handler(request: Request) -> str:
            return str(await request.ais_disconnected())

    return app


def test_wsgi_is_disconnected_uses_waitress_flag(colour: str) -> None:
    wsgi = disconnect_flag_app(colour).as_wsgi()
    gone = [False]
    try:
        plain = wsgi(wsgi_environ(), start_response)
        assert b"".join(plain) == b"False"
        for value in (False, True):
            gone[0] = value
            environ = wsgi_environ(**{"waitress.client_disconnected": lambda: gone[0]})
            result = wsgi(environ, start_response)
            assert b"".join(result) == str(value).encode()
    finally:
        wsgi.close()


def test_wsgi_body_reads_from_input_in_chunks(colour: str) -> None:
    seen: list[int] = []
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> str:
            seen.extend(len(chunk) for chunk in request.iter_bytes())
            return "ok"

    else:

        @app.post("/")
        async def async_handler(request: Request) -> str:
            seen.extend([len(chunk) async for chunk in request.aiter_bytes()])
            return "ok"

    body = b"z" * 200_000
    assert wsgi_post(app, io.BytesIO(body), None, len(body)) == ("200 OK", b"ok")
    assert sum(seen) == len(body)
    assert max(seen) <= 64 * 1024


def test_a_send_that_fails_because_the_client_left_ends_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[bool] = []
    app = App()

    @app.get("/s")
    async def stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                while True:
                    yield b"x"
                    await asyncio.sleep(0)
            finally:
                closed.append(True)

        return Response.stream(chunks())

    async def run() -> None:
        count = 0

        async def receive() -> Message:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: Message) -> None:
            nonlocal count
            count += 1
            if count > 3:
                raise ConnectionResetError("the client went away")

        await asyncio.wait_for(app.as_asgi()(http_scope(path="/s"), receive, send), 10)

    asyncio.run(run())
    assert closed == [True]
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_a_stream_that_asks_if_the_client_left_hears_no_while_it_streams(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: the request ends only after the last chunk (is_disconnected() is True after it,
    # under ASGI): while the client reads, each chunk's question must say False.
    app = App()

    @app.post("/")
    def stream(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(3):
                yield b"%d" % request.is_disconnected()
            yield request.read()
            yield b"%d" % request.is_disconnected()

        async def achunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"%d" % await request.ais_disconnected()
                await asyncio.sleep(0)
            yield await request.aread()
            yield b"%d" % await request.ais_disconnected()

        return Response.stream(chunks() if colour == "sync" else achunks())

    assert make_client(app).post("/", content=b"body").content == b"000body0"


@pytest.mark.parametrize("leave_early", [False, True])
def test_a_def_stream_runs_in_one_thread_from_start_to_close(
    make_client: MakeClient, leave_early: bool
) -> None:
    # NOTE: under ASGI each next() went to whichever pool thread was free: a stream reading an
    # sqlite3 cursor failed mid-way there ("SQLite objects created in a thread can only be
    # used in that same thread"), and worked under WSGI.
    import sqlite3

    threads: list[int] = []
    closed: list[str] = []

    class Rows:
        """A cursor's rows, iterated and closed in the thread that opened them."""

        def __iter__(self) -> Iterator[str]:
            threads.append(threading.get_ident())
            self.db = sqlite3.connect(":memory:")
            try:
                for (n,) in self.db.execute(
                    "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL "
                    "SELECT n + 1 FROM c WHERE n < 50) SELECT n FROM c"
                ):
                    threads.append(threading.get_ident())
                    time.sleep(0.001)
                    yield f"{n}\n"
            finally:
                threads.append(threading.get_ident())
                self.db.close()
                closed.append("closed")

    app = App()

    @app.get("/rows")
    def rows(request: Request) -> Response:
        return Response.stream(Rows(), media_type="text/plain")

    client = make_client(app)
    if leave_early:
        with client.stream("GET", "/rows") as response:
            assert next(response.iter_lines()) == "1"
    else:
        assert client.get("/rows").text.split() == [str(n) for n in range(1, 51)]
    assert closed == ["closed"]
    assert len(set(threads)) == 1, f"{len(set(threads))} threads"


def _settled(produced: list[int], at_least: int) -> int:
    """Wait until ``produced`` holds ``at_least`` items (5 s at most), then a little more, and
    return how many it holds: a stream that can make more has made them by then."""
    deadline = time.monotonic() + 5
    while len(produced) < at_least and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    return len(produced)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_runs_ahead_of_a_sender_in_another_thread_by_a_bounded_count(
    interface: str, kind: str
) -> None:
    # NOTE: a stream that runs in another thread than its sender's (sync under ASGI, async
    # under WSGI) took a round trip between the two for each chunk (30 to 90 us); it now
    # makes up to AHEAD chunks while the sender sends. Where the sender pulls each chunk
    # itself (the server's thread under WSGI, the loop under ASGI), nothing is made ahead.
    produced: list[int] = []
    closed = threading.Event()
    app = App()
    add_get(app, "sync", lambda request: Response.stream(endless_chunks(kind, closed, produced)))
    across = (interface, kind) in {("asgi", "sync"), ("wsgi", "async")}
    # NOTE: the chunk taken, and AHEAD more made while the sender takes none.
    expected = AHEAD + 1 if across else 1
    if interface == "wsgi":
        wsgi = app.as_wsgi()
        response = wsgi(wsgi_environ(), start_response)
        assert next(iter(response)) == b"tick\n"
        assert _settled(produced, expected) == expected
        response.close()  # type: ignore[attr-defined]
        wsgi.close()
    else:
        taken = asyncio.run(_one_chunk_taken(app, lambda: _settled(produced, expected)))
        assert taken == expected
    assert closed.is_set()


async def _one_chunk_taken(app: App, check: Callable[[], int]) -> int:
    """Serve ``/`` to a client that takes the first chunk, then nothing until ``check()``
    (run in a thread) is done; then it leaves. Return what ``check()`` returned."""
    taken = asyncio.Event()
    left = asyncio.Event()
    checked: list[int] = []

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.body":
            taken.set()
            await left.wait()

    async def client() -> None:
        await taken.wait()
        checked.append(await asyncio.to_thread(check))
        left.set()

    await asyncio.gather(call_asgi(app, http_scope(), receive, send, timeout=10.0), client())
    return checked[0]


STREAM_USER: contextvars.ContextVar[str] = contextvars.ContextVar("STREAM_USER")
STREAM_STEP: contextvars.ContextVar[str] = contextvars.ContextVar("STREAM_STEP")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_sees_the_requests_context_variables_and_keeps_its_own(
    make_client: MakeClient, kind: str
) -> None:
    # NOTE: a stream that runs in another thread than its sender's (sync under ASGI, async
    # under WSGI) sees what the request's flows set, and what a step sets, the next step
    # sees: so it was when each chunk was a call of its own, and so it stays, run ahead.
    app = App()

    def user(request: Request) -> Generator[None, Response, None]:
        STREAM_USER.set("ada")
        STREAM_STEP.set("start")
        yield

    app.middleware(user)

    def chunks() -> Iterator[str]:
        yield f"{STREAM_USER.get('nobody')} {STREAM_STEP.get('unset')}\n"
        STREAM_STEP.set("one")
        yield f"{STREAM_USER.get('nobody')} {STREAM_STEP.get('unset')}\n"

    async def achunks() -> AsyncIterator[str]:
        for line in chunks():
            yield line

    @app.get("/")
    def index(request: Request) -> Response:
        return Response.stream(chunks() if kind == "sync" else achunks())

    assert make_client(app).get("/").text == "ada start\nada one\n"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_is_closed_before_the_after_response_work_when_a_send_fails(
    interface: str, kind: str
) -> None:
    # NOTE: a server may raise from send() once the client left (the ASGI spec asks for an
    # OSError), and the disconnect watcher then cancels the sending while it closes the
    # stream: the stream's thread, made ahead, gave the watcher no turn before that send.
    # The generator's finally ran after the request had ended, after-response work included.
    log: list[str] = []

    # NOTE: an async generator's closing was cut off where it awaited (under both kinds of
    # server: the sending is cancelled whichever way the client's leaving shows first).

    def rows() -> Iterator[bytes]:
        try:
            for _ in range(100):
                yield b"row\n"
        finally:
            time.sleep(0.05)  # NOTE: a cursor or a file being released
            log.append("stream closed")

    async def arows() -> AsyncIterator[bytes]:
        try:
            for _ in range(100):
                yield b"row\n"
                await asyncio.sleep(0)
        finally:
            await asyncio.sleep(0.05)  # NOTE: a connection being released
            log.append("stream closed")

    app = App()

    @app.get("/")
    def stream(request: Request) -> Response:
        request.after_response(log.append, "after the response")
        return Response.stream(rows() if kind == "sync" else arows())

    if interface == "wsgi":
        wsgi = app.as_wsgi()
        body = wsgi(wsgi_environ(), start_response)
        chunks = iter(body)
        assert next(chunks) == b"row\n"
        body.close()  # type: ignore[attr-defined]  # NOTE: what a server does when the client left
        log.append("returned")
        wsgi.close()  # NOTE: its app loop, which the async stream started, stopped
    else:
        asyncio.run(_served_until_a_send_fails(app))
        log.append("returned")
    assert log == ["stream closed", "after the response", "returned"], log


async def _served_until_a_send_fails(app: App) -> None:
    """Serve ``/`` to a client that leaves after the first chunk; send() raises from then on."""
    gone = asyncio.Event()

    async def receive() -> Message:
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if gone.is_set():
            raise OSError("the client went away")
        if message["type"] == "http.response.body":
            gone.set()

    await call_asgi(app, http_scope(), receive, send)


@pytest.mark.parametrize("pause", [0.0, 10.0], ids=["waiting-for-room", "inside-a-step"])
def test_an_async_stream_cut_off_then_closed_by_the_server_ends_without_an_error(
    pause: float,
) -> None:
    # NOTE: WSGI only (the app loop's cut). Waitress's stop cuts a stream off while its
    # thread writes (the drain closed the connection): the write fails and Waitress closes the
    # body. The close raised LoopStopped, which Waitress logged as "Exception while serving"
    # with a traceback, for a request its stop had named in one line already.
    closed = threading.Event()
    produced: list[int] = []

    async def endless() -> AsyncIterator[bytes]:
        try:
            while True:
                produced.append(1)
                yield b"chunk\n"
                await asyncio.sleep(pause)
        finally:
            closed.set()

    app = App()

    @app.get("/")
    def stream(request: Request) -> Response:
        return Response.stream(endless())

    wsgi = app.as_wsgi()
    try:
        body = wsgi(wsgi_environ(), start_response)
        assert next(iter(body)) == b"chunk\n"
        _settled(produced, AHEAD + 1 if pause == 0 else 1)
        wsgi.app_loop.cut_waiting()
        assert closed.wait(5)
        body.close()  # type: ignore[attr-defined]
    finally:
        wsgi.close()


STREAM_TOKEN: contextvars.ContextVar[str] = contextvars.ContextVar("STREAM_TOKEN")


def test_an_async_stream_cut_off_closes_in_the_context_it_ran_in(interface: str) -> None:
    # NOTE: under ASGI the closing of a stream the client left ran in a task of its own, in a
    # copy of the context: a finally that reset a token it had set (structlog's
    # bound_contextvars, OpenTelemetry's spans) raised ValueError ("created in a different
    # Context"), and a scope entered in the sending task was exited in another.
    resets: list[str] = []

    async def rows() -> AsyncIterator[bytes]:
        token = STREAM_TOKEN.set("streaming")
        task = asyncio.current_task()
        try:
            for _ in range(100):
                yield b"row\n"
                await asyncio.sleep(0)
        finally:
            same_task = asyncio.current_task() is task
            STREAM_TOKEN.reset(token)  # NOTE: raises in another context
            resets.append(f"reset, same task: {same_task}")

    app = App()

    @app.get("/")
    def stream(request: Request) -> Response:
        return Response.stream(rows())

    if interface == "wsgi":
        wsgi = app.as_wsgi()
        body = wsgi(wsgi_environ(), start_response)
        assert next(iter(body)) == b"row\n"
        body.close()  # type: ignore[attr-defined]  # NOTE: what a server does when the client left
        wsgi.close()
        assert resets == ["reset, same task: True"]
    else:
        asyncio.run(_served_until_a_send_fails(app))  # NOTE: the stream closing as send() failed
        asyncio.run(_one_chunk_taken(app, lambda: 0))  # NOTE: cancelled in send(): disconnect
        assert resets == ["reset, same task: True"] * 2


def test_a_quiet_async_stream_ends_when_the_server_says_its_client_left(interface: str) -> None:
    # NOTE: under Waitress, an async event stream with no news learnt nothing of its client's
    # leaving, and held a thread until its next chunk (or the server's stop). It is now closed
    # while it waits, as under ASGI, where the disconnect message closes it.
    left = threading.Event()
    closed = threading.Event()

    async def quiet() -> AsyncIterator[bytes]:
        try:
            yield b"first\n"
            await asyncio.sleep(3)  # NOTE: no news for a while
            yield b"late\n"
        finally:
            closed.set()

    app = App()

    @app.get("/")
    def stream(request: Request) -> Response:
        return Response.stream(quiet())

    if interface == "wsgi":
        wsgi = app.as_wsgi()
        environ = wsgi_environ(**{"waitress.client_disconnected": left.is_set})
        body = wsgi(environ, start_response)
        chunks = iter(body)
        assert next(chunks) == b"first\n"
        left.set()
        assert list(chunks) == []  # NOTE: not b"late\n", 3 s later
        body.close()  # type: ignore[attr-defined]
        wsgi.close()
    else:
        sent: list[Message] = []

        async def receive() -> Message:
            await asyncio.sleep(0.1)
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            sent.append(message)

        asyncio.run(call_asgi(app, http_scope(), receive, send, timeout=10.0))
        assert [m.get("body") for m in sent[1:]] == [b"first\n"]
    assert closed.is_set()


# -- a str subclass's own encode() -------------------------------------------------------------


class Latin1Text(str):
    """Text whose ``encode()`` ignores the charset asked for: latin-1 bytes, or a marker."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"OVERRIDDEN:" + str.encode(self, "latin-1")


def _assigned(text: str) -> Response:
    response = Response()
    response.body = text
    return response


def _streamed(text: str) -> Response:
    return Response.stream(iter([text]), media_type="text/plain; charset=utf-8")


async def _chunks_of(text: str) -> AsyncIterator[str]:
    yield text


def _sized(text: str) -> Response:
    response = _streamed(text)
    response.length = len("café".encode())
    return response


# NOTE: each way a handler's text goes out: the answer the handler makes of it.
_TEXT_ANSWERS: dict[str, Callable[[str], Response | str]] = {
    "returned": lambda text: text,
    "body": Response,
    "assigned body": _assigned,
    "text": Response.text,
    "html": Response.html,
    "sync stream": _streamed,
    "async stream": lambda text: Response.stream(_chunks_of(text)),
    "sized stream": _sized,
    "gzip": _streamed,
    "sse": lambda text: Response.sse(iter([text])),
}


@pytest.mark.parametrize("how", list(_TEXT_ANSWERS))
def test_a_str_subclass_is_sent_as_its_utf8_text_whatever_its_encode(
    make_client: MakeClient, how: str
) -> None:
    # NOTE: Response bodies and streamed chunks called the subclass's encode(), so bytes of
    # another charset (or anything) went out under charset=utf-8, while an event's data was
    # framed from its text: every path now sends the text's UTF-8, as it declares.
    from microweb.plugins.gzip import GZip

    text = Latin1Text("café")
    app = App()
    if how == "gzip":
        app.install(GZip(minimum_size=1))
    app.get("/")(lambda request: _TEXT_ANSWERS[how](text))

    answer = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert answer.status_code == 200
    if how == "gzip":
        assert answer.headers["content-encoding"] == "gzip"
    expected = "data: café\n\n" if how == "sse" else "café"
    assert answer.content == expected.encode("utf-8")
