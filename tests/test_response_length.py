"""A streamed response's declared length (``response.length``): checked when set, and held to
while the stream is sent, under both interfaces and for sync and async streams (review168)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import pytest
from conftest import MakeClient
from drive import http_scope, wsgi_environ

from microweb import App, Request, Response


@pytest.mark.parametrize("length", [-1, -100])
def test_a_negative_length_is_refused_when_set(length: int) -> None:
    response = Response.stream(iter([b"x"]))
    with pytest.raises(ValueError, match="length is 0 or more"):
        response.length = length
    assert response.length is None


@pytest.mark.parametrize("length", ["5", 5.0, True])
def test_a_length_of_another_type_is_refused_when_set(length: Any) -> None:
    response = Response.stream(iter([b"x"]))
    with pytest.raises(TypeError, match="length is an int or None"):
        response.length = length


def test_a_length_may_be_set_and_unset() -> None:
    response = Response.stream(iter([b"x"]))
    response.length = 1
    assert response.length == 1
    response.length = None
    assert response.length is None


def chunks_of(kind: str, pieces: list[bytes], closed: list[str]) -> Any:
    """A sync or async generator of ``pieces`` that records its closing in ``closed``."""
    if kind == "sync":

        def sync() -> Iterator[bytes]:
            try:
                yield from pieces
            finally:
                closed.append("closed")

        return sync()

    async def agen() -> AsyncIterator[bytes]:
        try:
            for piece in pieces:
                yield piece
        finally:
            closed.append("closed")

    return agen()


def declared_app(kind: str, pieces: list[bytes], length: int, closed: list[str]) -> App:
    app = App()

    @app.get("/")
    def declared(request: Request) -> Response:
        response = Response.stream(chunks_of(kind, pieces, closed))
        response.length = length
        return response

    return app


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize(
    ("pieces", "what"),
    [([b"a" * 50, b"b" * 100], "went on past"), ([b"a" * 50], "ended after 50 bytes of")],
)
def test_a_stream_that_does_not_match_its_length_is_an_error(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    pieces: list[bytes],
    what: str,
) -> None:
    # NOTE: Waitress cut a longer stream at its Content-Length and kept the connection: the
    # client took 100 of 150 bytes for the whole body, where Uvicorn cut the connection.
    closed: list[str] = []
    client = make_client(declared_app(kind, pieces, 100, closed))
    with caplog.at_level("ERROR", logger="microweb"), pytest.raises(RuntimeError, match=what):
        client.get("/")
    assert [record.getMessage() for record in caplog.records] == ["error while streaming GET /"]
    assert closed == ["closed"]


@pytest.mark.parametrize("holder", [list, tuple])
@pytest.mark.parametrize(("pieces", "what"), [(["ab", b"cd"], "went on past"), ([b"a"], "ended")])
def test_a_list_of_another_length_is_the_apps_500_before_anything_is_sent(
    make_client: MakeClient,
    caplog: pytest.LogCaptureFixture,
    holder: type,
    pieces: list[bytes | str],
    what: str,
) -> None:
    # NOTE: a list is counted before the headers go: its wrong length was a response cut off
    # after them, where it can still be the app's 500.
    app = App()

    @app.get("/")
    def declared(request: Request) -> Response:
        response = Response.stream(holder(pieces))
        response.length = 3
        return response

    with caplog.at_level("ERROR", logger="microweb"):
        answer = make_client(app).get("/")
    assert (answer.status_code, answer.text) == (500, "Internal Server Error")
    [record] = caplog.records
    assert record.getMessage() == "unhandled error in GET /: its response can't be sent"
    assert record.exc_info is not None
    assert what in str(record.exc_info[1])


@pytest.mark.parametrize("holder", [list, tuple])
def test_a_head_of_a_list_of_another_length_is_the_500_its_get_is(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, holder: type
) -> None:
    # NOTE: a HEAD answer is the GET's without its body (RFC 9110 9.3.2): it got a 200 under
    # the wrong length, where its GET is the app's 500.
    app = App()

    @app.get("/")
    def declared(request: Request) -> Response:
        response = Response.stream(holder([b"ab", b"cd"]))
        response.length = 3
        return response

    with caplog.at_level("ERROR", logger="microweb"):
        answer = make_client(app).head("/")
    assert (answer.status_code, answer.content) == (500, b"")
    [record] = caplog.records
    assert record.getMessage() == "unhandled error in HEAD /: its response can't be sent"


@pytest.mark.parametrize("holder", [list, tuple])
def test_a_list_of_its_length_is_sent_encoded(make_client: MakeClient, holder: type) -> None:
    app = App()

    @app.get("/")
    def declared(request: Request) -> Response:
        response = Response.stream(holder(["é", b"cd", bytearray(b"e")]))
        response.length = 5
        return response

    answer = make_client(app).get("/")
    assert (answer.status_code, answer.content) == (200, "écde".encode())
    assert answer.headers["content-length"] == "5"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_wsgi_server_gets_no_byte_past_the_length(kind: str) -> None:
    # NOTE: the chunk that goes past it is not given to the server, which would send what
    # fits (Waitress) and leave a body that looks whole.
    closed: list[str] = []
    wsgi = declared_app(kind, [b"a" * 50, b"b" * 100], 100, closed).as_wsgi()
    headers: list[tuple[str, str]] = []
    result = wsgi(wsgi_environ("GET", "/"), lambda s, h, e=None: headers.extend(h))
    pieces: list[bytes] = []
    try:
        with pytest.raises(RuntimeError, match="went on past"):
            pieces.extend(result)
    finally:
        getattr(result, "close", lambda: None)()
        wsgi.close()
    assert dict(headers)["content-length"] == "100"
    assert b"".join(pieces) == b"a" * 50
    assert closed == ["closed"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_that_matches_its_length_is_sent(make_client: MakeClient, kind: str) -> None:
    closed: list[str] = []
    answer = make_client(declared_app(kind, [b"a" * 50, b"b" * 50], 100, closed)).get("/")
    assert (answer.status_code, answer.headers["content-length"]) == (200, "100")
    assert answer.content == b"a" * 50 + b"b" * 50
    assert closed == ["closed"]


def test_a_file_read_put_in_a_stream_keeps_to_the_file_length(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "hello.txt"
    target.write_bytes(b"hello")
    app = App()

    def shout(chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk.upper()
        yield b"!!!"

    @app.get("/f")
    def file(request: Request) -> Response:
        response = Response.file(target)
        response.chunks = shout(response.chunks)  # type: ignore[arg-type]
        return response

    with caplog.at_level("ERROR", logger="microweb"), pytest.raises(RuntimeError, match="past"):
        make_client(app).get("/f")


def file_with_length(target: Path, length: int | None) -> App:
    target.write_bytes(b"0123456789")
    app = App()

    @app.route("/f", methods=["GET", "HEAD"])
    def file(request: Request) -> Response:
        response = Response.file(target)
        response.length = length
        return response

    return app


@pytest.mark.parametrize("length", [3, 100, None])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_file_read_is_sent_under_its_own_length(
    make_client: MakeClient, tmp_path: Path, length: int | None, method: str
) -> None:
    # NOTE: the read of the file sends the file, whatever length was set: a length of 3 went
    # out as Content-Length: 3 before the file's 10 bytes.
    answer = make_client(file_with_length(tmp_path / "f.txt", length)).request(method, "/f")
    assert answer.headers["content-length"] == "10"
    assert answer.content == (b"0123456789" if method == "GET" else b"")


def test_a_server_file_wrapper_gets_the_files_own_length(tmp_path: Path) -> None:
    wsgi = file_with_length(tmp_path / "f.txt", 3).as_wsgi()
    headers: list[tuple[str, str]] = []
    environ = wsgi_environ("GET", "/f", **{"wsgi.file_wrapper": FileWrapper})
    result = wsgi(environ, lambda s, h, e=None: headers.extend(h))
    try:
        body = b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()
        wsgi.close()
    assert (dict(headers)["content-length"], body) == ("10", b"0123456789")


def stopping_app(kind: str) -> App:
    """An app whose stream of a declared 100 bytes stops, short, once the client is gone."""
    app = App()

    @app.get("/")
    def sync_stream(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            for _ in range(10):
                if request.is_disconnected():
                    return
                yield b"x" * 10

        async def achunks() -> AsyncIterator[bytes]:
            for _ in range(10):
                if await request.ais_disconnected():
                    return
                yield b"x" * 10

        response = Response.stream(chunks() if kind == "sync" else achunks())
        response.length = 100
        return response

    return app


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_stopped_short_for_a_client_gone_ends_quietly_under_wsgi(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a generator that returns once is_disconnected() says so (docs/streaming.md) fell
    # short of its declared length: logged as an error, and raised to the server (review169).
    driver = stopping_app(kind).as_wsgi()
    gone = [False]
    environ = wsgi_environ("GET", "/")
    environ["waitress.client_disconnected"] = lambda: gone[0]
    got = []
    try:
        result = driver(environ, lambda status, headers, exc_info=None: None)
        try:
            for chunk in result:
                got.append(chunk)
                gone[0] = len(got) == 2
        finally:
            getattr(result, "close", lambda: None)()
    finally:
        driver.close()
    # NOTE: an async stream runs ahead on the app loop, so it may have ended whole first.
    assert len(b"".join(got)) in ((20, 30) if kind == "sync" else (20, 30, 100))
    assert "error while streaming" not in caplog.text


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_stopped_short_for_a_client_gone_ends_quietly_under_asgi(
    kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    asgi = stopping_app(kind).as_asgi()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if not sent:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(0.01)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)
        await asyncio.sleep(0.005)

    asyncio.run(asgi(http_scope("GET", "/"), receive, send))
    assert sent[0]["status"] == 200
    assert len(b"".join(m.get("body", b"") for m in sent[1:])) < 100
    assert "error while streaming" not in caplog.text


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_short_of_its_length_with_the_client_there_is_still_an_error(
    make_client: MakeClient, kind: str
) -> None:
    app = App()

    @app.get("/")
    def short(request: Request) -> Response:
        response = Response.stream(chunks_of(kind, [b"x" * 10], []))
        response.length = 100
        return response

    with pytest.raises(RuntimeError, match="ended after 10 bytes"):
        make_client(app).get("/")
