"""The GZip plugin under both interfaces: what is compressed, streams, files and HEAD."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import threading
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import http_scope, raw_pieces, wsgi_environ

from microweb import App, Request, Response
from microweb._parsing import MAX_ACCEPT_SIZE
from microweb.plugins import GZip, Static
from microweb.plugins.gzip import accepts_gzip
from microweb.testing import TestClient

TEXT = "microweb compresses this line. " * 100


def gzip_app(plugin: GZip | None = None) -> App:
    app = App()
    app.install(plugin or GZip())

    @app.get("/text")
    def text(request: Request) -> str:
        return TEXT

    @app.get("/small")
    def small(request: Request) -> str:
        return "tiny"

    @app.get("/json")
    async def as_json(request: Request) -> list[str]:
        return [TEXT]

    @app.get("/png")
    def png(request: Request) -> Response:
        return Response(TEXT.encode(), media_type="image/png")

    @app.get("/svg")
    def svg(request: Request) -> Response:
        return Response(TEXT.encode(), media_type="image/svg+xml")

    @app.get("/encoded")
    def encoded(request: Request) -> Response:
        return Response(TEXT.encode(), headers={"content-encoding": "br"}, media_type="text/plain")

    @app.get("/no-transform")
    def no_transform(request: Request) -> Response:
        return Response.text(TEXT, headers={"cache-control": "public, no-transform"})

    @app.get("/etag")
    def etag(request: Request) -> Response:
        return Response.text(TEXT, headers={"etag": '"v1"'})

    @app.get("/empty")
    def empty(request: Request) -> None:
        return None

    return app


def test_gzip_compresses_large_bodies(make_client: MakeClient) -> None:
    client = make_client(gzip_app())
    for path, expected in (("/text", TEXT), ("/json", json.dumps([TEXT]).replace(" ", ""))):
        response = client.get(path)
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding"
        assert int(response.headers["content-length"]) < len(TEXT) // 10
        assert response.text.replace(" ", "") == expected.replace(" ", "")


def test_gzip_body_is_real_gzip(interface: str) -> None:
    status, headers, pieces = raw_pieces(
        gzip_app(), interface, "/text", {"accept-encoding": "gzip"}
    )
    assert (status, headers["content-encoding"]) == (200, "gzip")
    body = b"".join(pieces)
    assert int(headers["content-length"]) == len(body)
    assert gzip.decompress(body) == TEXT.encode()


def test_gzip_compresses_a_large_whole_body_as_a_stream_off_the_event_loop(
    interface: str, colour: str
) -> None:
    # NOTE: compressed whole where the flow runs, 12.7 MB of text held the event loop for 0.4 s
    # under ASGI (review153): every other connection waited.
    import microweb.plugins.gzip as gzip_module

    big = "".join(f"row {n}: delivered\n" for n in range(20_000))  # NOTE: about 400 KB.
    assert len(big) > gzip_module.INLINE_BODY
    threads: set[int] = set()
    app = App()
    app.install(GZip())

    def big_text(request: Request) -> str:
        return big

    app.get("/big")(in_colour(colour, big_text))

    @app.get("/loop")
    async def loop_thread(request: Request) -> str:
        return str(threading.get_ident())  # NOTE: under ASGI, the event loop's thread.

    made = gzip_module._compressor

    def watched(level: int) -> Any:
        threads.add(threading.get_ident())
        return made(level)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "_compressor", watched)
        with TestClient(app, interface=interface) as client:
            answer = client.get("/big")
            loop = int(client.get("/loop").text)
    assert answer.headers["content-encoding"] == "gzip"
    assert "content-length" not in answer.headers
    assert answer.text == big
    assert len(threads) == 1
    if interface == "asgi":
        assert loop not in threads


def test_gzip_compresses_the_large_chunks_of_an_async_stream_off_the_event_loop(
    interface: str,
) -> None:
    # NOTE: each chunk was compressed on the loop, whatever its size: 12.6 ms for 1 MiB, where
    # no other connection was served (review181); small ones stay there, cheaper than a hop.
    import microweb.plugins.gzip as gzip_module

    big = "".join(f"row {n}: delivered\n" for n in range(20_000)).encode()
    assert len(big) > gzip_module.INLINE_BODY
    threads: dict[int, set[int]] = {}
    app = App()
    app.install(GZip())

    @app.get("/rows")
    async def rows(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"small first\n"
            yield big

        return Response.stream(chunks(), media_type="text/plain")

    @app.get("/loop")
    async def loop_thread(request: Request) -> str:
        return str(threading.get_ident())  # NOTE: the event loop's thread, under both.

    compress = gzip_module._compress_chunk

    def watched(compressor: Any, chunk: bytes | str) -> bytes:
        threads.setdefault(len(chunk), set()).add(threading.get_ident())
        return compress(compressor, chunk)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(gzip_module, "_compress_chunk", watched)
        with TestClient(app, interface=interface) as client:
            answer = client.get("/rows")
            loop = int(client.get("/loop").text)
    assert answer.headers["content-encoding"] == "gzip"
    assert answer.content == b"small first\n" + big
    assert threads[len(b"small first\n")] == {loop}
    assert loop not in threads[len(big)]


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/small", "below minimum_size"),
        ("/png", "image"),
        ("/encoded", "already encoded"),
        ("/no-transform", "no-transform"),
    ],
)
def test_gzip_leaves_some_responses_alone(make_client: MakeClient, path: str, reason: str) -> None:
    response = make_client(gzip_app()).get(path)
    assert response.headers.get("content-encoding") in (None, "br"), reason
    if path == "/encoded":
        assert response.headers["content-encoding"] == "br"
        assert response.content == TEXT.encode()  # NOTE: httpx does not decode br here


@pytest.mark.parametrize(
    "lines",
    [
        ["public, max-age=60", "no-transform"],
        ["public", "max-age=60, No-Transform"],
        ['private="set-cookie"', "max-age=0 , NO-TRANSFORM"],
    ],
)
def test_gzip_reads_no_transform_on_every_cache_control_line(
    make_client: MakeClient, colour: str, lines: list[str]
) -> None:
    app = App()
    app.install(GZip())

    def page(request: Request) -> Response:
        response = Response.text(TEXT)
        for line in lines:
            response.headers.add("cache-control", line)
        return response

    app.get("/page")(in_colour(colour, page))
    response = make_client(app).get("/page", headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in response.headers
    assert response.text == TEXT
    assert response.headers.get_list("cache-control") == lines


def test_gzip_matches_no_transform_by_name_only(make_client: MakeClient) -> None:
    app = App()
    app.install(GZip())

    @app.get("/page")
    def page(request: Request) -> Response:
        # NOTE: an extension directive whose name holds "no-transform" is another directive.
        return Response.text(TEXT, headers={"cache-control": "x-no-transform-hint, public"})

    response = make_client(app).get("/page", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == TEXT


def test_gzip_skips_bodiless_answers(make_client: MakeClient) -> None:
    client = make_client(gzip_app())
    empty = client.get("/empty")
    assert empty.status_code == 204
    assert "content-encoding" not in empty.headers


def test_gzip_leaves_a_205_alone(make_client: MakeClient) -> None:
    # NOTE: a 205 goes out with no content whatever the handler gave; compressed, it said
    # Content-Encoding: gzip over nothing.
    app = App()
    app.install(GZip(minimum_size=10))

    @app.post("/reset")
    def reset(request: Request) -> Response:
        return Response(TEXT, status=205)

    response = make_client(app).post("/reset", headers={"accept-encoding": "gzip"})
    assert response.status_code == 205
    assert (response.content, response.headers["content-length"]) == (b"", "0")
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers


def test_gzip_svg_is_compressed(make_client: MakeClient) -> None:
    assert make_client(gzip_app()).get("/svg").headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    ("accept", "compressed"),
    [
        ("gzip", True),
        ("deflate, gzip;q=0.5", True),
        ("GZIP", True),
        ("x-gzip", True),
        ("*", True),
        ("identity", False),
        ("gzip;q=0", False),
        ("gzip;q=0.000", False),
        ("*;q=0", False),
        ("br, *;q=0.1", True),
        ("gzip;q=0, *", False),
        ("gzip;q=nope", False),
        ("gzip;q=2", False),
        ("", False),
    ],
)
def test_accept_encoding_parsing(accept: str, compressed: bool) -> None:
    assert accepts_gzip(accept) is compressed


def test_an_accept_encoding_value_over_the_cap_is_not_read(make_client: MakeClient) -> None:
    # NOTE: each item costs Python work (256 KiB of commas took 68 ms); a longer value is read
    # as one that does not accept gzip, and the body goes plain.
    longest = "gzip" + "," * (MAX_ACCEPT_SIZE - len("gzip"))
    assert accepts_gzip(longest) and not accepts_gzip(longest + " ")
    client = make_client(gzip_app())
    assert (
        client.get("/text", headers={"accept-encoding": longest}).headers.get("content-encoding")
        == "gzip"
    )
    response = client.get("/text", headers={"accept-encoding": longest + ","})
    assert "content-encoding" not in response.headers
    assert response.headers["vary"] == "Accept-Encoding"


def test_gzip_only_for_clients_that_accept_it(make_client: MakeClient) -> None:
    client = make_client(gzip_app())
    for accept in ("identity", "gzip;q=0"):
        response = client.get("/text", headers={"accept-encoding": accept})
        assert "content-encoding" not in response.headers
        assert response.headers["vary"] == "Accept-Encoding"
        assert response.text == TEXT


def test_gzip_media_types_restrict_what_is_compressed(make_client: MakeClient) -> None:
    client = make_client(gzip_app(GZip(media_types=["text/*"])))
    assert client.get("/text").headers["content-encoding"] == "gzip"
    assert "content-encoding" not in client.get("/json").headers
    assert "vary" not in client.get("/json").headers


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_gzip_a_whole_type_leaves_sse_alone(make_client: MakeClient, kind: str) -> None:
    # NOTE: "text/*" covers text/event-stream only when it is listed by name, as without
    # media_types: some proxies hold a compressed stream back, and its events with it.
    def events() -> Iterator[str]:
        yield from ["first", "second"]

    async def aevents() -> AsyncIterator[str]:
        for event in ["first", "second"]:
            yield event

    def sse_app(plugin: GZip) -> App:
        app = App()
        app.install(plugin)

        @app.get("/events")
        def stream(request: Request) -> Response:
            return Response.sse(events() if kind == "sync" else aevents())

        return app

    whole_types = make_client(sse_app(GZip(media_types=["text/*", "application/json"])))
    response = whole_types.get("/events")
    assert "content-encoding" not in response.headers
    assert response.text == "data: first\n\ndata: second\n\n"
    by_name = make_client(sse_app(GZip(media_types=["text/event-stream"])))
    assert by_name.get("/events").headers["content-encoding"] == "gzip"


def test_gzip_weakens_a_strong_etag(make_client: MakeClient) -> None:
    client = make_client(gzip_app())
    assert client.get("/etag").headers["etag"] == 'W/"v1"'
    plain = client.get("/etag", headers={"accept-encoding": "identity"})
    assert plain.headers["etag"] == '"v1"'


def test_gzip_minimum_size_and_level(make_client: MakeClient) -> None:
    client = make_client(gzip_app(GZip(minimum_size=0, compresslevel=1)))
    assert client.get("/small").headers["content-encoding"] == "gzip"
    assert client.get("/small").text == "tiny"
    with pytest.raises(ValueError, match="compresslevel"):
        GZip(compresslevel=10)
    with pytest.raises(ValueError, match="minimum_size"):
        GZip(minimum_size=-1)


@pytest.mark.parametrize("level", [6.0, 6.5])
def test_gzip_refuses_a_compresslevel_that_is_not_an_int_when_made(level: float) -> None:
    # NOTE: it passed the range check, and every response that was compressed was a 500
    # ("'float' object cannot be interpreted as an integer", from zlib).
    with pytest.raises(TypeError, match="compresslevel"):
        GZip(compresslevel=level)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "media_type",
    ["text/html; charset=utf-8", "text/html ", " text/css", "text", "*/*", "*/html", "a/b/c", ""],
)
def test_gzip_refuses_media_types_that_can_never_match(media_type: str) -> None:
    with pytest.raises(ValueError, match="media_types"):
        GZip(media_types=["application/json", media_type])


def test_gzip_media_types_are_matched_in_any_case(make_client: MakeClient) -> None:
    plugin = GZip(media_types=["Text/Plain", "APPLICATION/*"])
    assert plugin.media_types == {"text/plain", "application/*"}
    client = make_client(gzip_app(plugin))
    assert client.get("/text").headers["content-encoding"] == "gzip"
    assert client.get("/json").headers["content-encoding"] == "gzip"


CHUNKS = [f"chunk {n}: " + "data " * 50 + "\n" for n in range(5)]


def streaming_app(closed: list[str]) -> App:
    app = App()
    app.install(GZip())

    @app.get("/sync")
    def sync_stream(request: Request) -> Response:
        def chunks() -> Iterator[str]:
            try:
                yield from CHUNKS
            finally:
                closed.append("sync")

        return Response.stream(chunks(), media_type="text/plain")

    @app.get("/async")
    async def async_stream(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                for chunk in CHUNKS:
                    await asyncio.sleep(0)
                    yield chunk.encode()
            finally:
                closed.append("async")

        return Response.stream(chunks(), media_type="text/plain")

    return app


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_gzip_streams_chunk_by_chunk(interface: str, kind: str) -> None:
    closed: list[str] = []
    status, headers, pieces = raw_pieces(
        streaming_app(closed), interface, f"/{kind}", {"accept-encoding": "gzip"}
    )
    assert (status, headers["content-encoding"]) == (200, "gzip")
    assert "content-length" not in headers
    # NOTE: each chunk is flushed, so each piece decodes to the chunks sent so far.
    decoder = zlib.decompressobj(31)
    decoded = [decoder.decompress(piece).decode() for piece in pieces]
    assert decoded[: len(CHUNKS)] == CHUNKS
    assert "".join(decoded) + decoder.flush().decode() == "".join(CHUNKS)
    assert decoder.eof
    assert gzip.decompress(b"".join(pieces)).decode() == "".join(CHUNKS)
    assert closed == [kind]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_gzip_stream_through_the_client(make_client: MakeClient, kind: str) -> None:
    closed: list[str] = []
    response = make_client(streaming_app(closed)).get(f"/{kind}")
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "".join(CHUNKS)
    assert closed == [kind]


def test_gzip_stream_closes_the_inner_stream_when_closed_early() -> None:
    closed: list[str] = []

    def chunks() -> Iterator[bytes]:
        try:
            yield b"a" * 1000
            yield b"b" * 1000
        finally:
            closed.append("inner")

    from microweb.plugins.gzip import gzip_chunks

    compressed = gzip_chunks(chunks(), 6)
    next(compressed)
    compressed.close()  # type: ignore[attr-defined]
    assert closed == ["inner"]


class FewRows:
    """A sync stream that holds a resource (a cursor), closed by its ``close()`` alone."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        return iter([chunk.encode() for chunk in CHUNKS])

    def close(self) -> None:
        self.closed.append("closed")


def test_a_drained_gzip_streams_source_is_closed_once_by_the_driver(
    make_client: MakeClient,
) -> None:
    # NOTE: gzip's stream closes its source in its own close() alone, not as it runs out: the
    # driver's close is what closes it, once.
    closed: list[str] = []
    app = App()
    app.install(GZip(minimum_size=1))
    app.get("/")(lambda request: Response.stream(FewRows(closed), "text/plain"))
    response = make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "".join(CHUNKS)
    assert closed == ["closed"]


class Broken:
    """A sync stream that holds a resource, whose iterator cannot be made."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        raise OSError("the cursor is gone")

    def close(self) -> None:
        self.closed.append("closed")


class AsyncBroken:
    """An async stream that holds a resource, whose iterator cannot be made."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __aiter__(self) -> AsyncIterator[bytes]:
        raise OSError("the cursor is gone")

    async def aclose(self) -> None:
        self.closed.append("closed")


class StuckRows:
    """A sync stream that is not its own iterator; the iterator's ``close()`` fails."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        return StuckIterator()

    def close(self) -> None:
        self.closed.append("closed")


class StuckIterator:
    def __iter__(self) -> StuckIterator:
        return self

    def __next__(self) -> bytes:
        raise StopIteration

    def close(self) -> None:
        raise OSError("the cursor will not close")


class AsyncStuckRows:
    """An async stream that is not its own iterator; the iterator's ``aclose()`` fails."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __aiter__(self) -> AsyncStuckIterator:
        return AsyncStuckIterator()

    async def aclose(self) -> None:
        self.closed.append("closed")


class AsyncStuckIterator:
    def __aiter__(self) -> AsyncStuckIterator:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration

    async def aclose(self) -> None:
        raise OSError("the cursor will not close")


@pytest.mark.parametrize(
    ("stream", "error"),
    [
        (Broken, "the cursor is gone"),
        (AsyncBroken, "the cursor is gone"),
        # NOTE: a stream that is not its own iterator, whose iterator's close() fails.
        (StuckRows, "will not close"),
        (AsyncStuckRows, "will not close"),
    ],
)
def test_gzip_stream_closes_a_stream_whose_iteration_fails_to_start_or_end(
    make_client: MakeClient,
    stream: type[Broken | AsyncBroken | StuckRows | AsyncStuckRows],
    error: str,
) -> None:
    closed: list[str] = []
    app = App()
    app.install(GZip(minimum_size=10))

    @app.get("/")
    def answer(request: Request) -> Response:
        return Response.stream(stream(closed), media_type="text/plain")

    with pytest.raises(OSError, match=error):
        make_client(app).get("/", headers={"accept-encoding": "gzip"})
    assert closed == ["closed"]


class Rows:
    """A sync stream that holds a resource until it is closed (a cursor, a file)."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Rows:
        return self

    def __next__(self) -> bytes:
        return b"row\n" * 200

    def close(self) -> None:
        self.closed.append("closed")


class AsyncRows:
    """An async stream that holds a resource until it is closed."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __aiter__(self) -> AsyncRows:
        return self

    async def __anext__(self) -> bytes:
        return b"row\n" * 200

    async def aclose(self) -> None:
        self.closed.append("closed")


def unsent_stream(interface: str, app: App, path: str) -> None:
    """Have ``app`` answer ``path`` with gzip, then end the response before its body is read:
    WSGI's result closed unread, ASGI's ``http.response.start`` failing (the client gone)."""
    if interface == "wsgi":
        environ = wsgi_environ("GET", path, HTTP_ACCEPT_ENCODING="gzip")
        wsgi = app.as_wsgi()
        wsgi(environ, lambda status, headers, exc_info=None: None).close()
        wsgi.close()
        return

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        raise OSError("the client is gone")

    scope = http_scope(path=path, headers=[(b"accept-encoding", b"gzip")])
    with TestClient(app, interface="asgi") as client:
        call = client.asgi_app(scope, receive, send)
        with contextlib.suppress(OSError):
            asyncio.run_coroutine_threadsafe(call, client.loop).result()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_gzip_stream_closes_the_inner_stream_when_never_read(interface: str, kind: str) -> None:
    # NOTE: a generator closed before its first next() runs no finally: the app's stream
    # stayed open when the response ended before its body was sent.
    closed: list[str] = []
    app = App()
    app.install(GZip())

    @app.get("/rows")
    def rows(request: Request) -> Response:
        stream = Rows(closed) if kind == "sync" else AsyncRows(closed)
        return Response.stream(stream, media_type="text/csv")

    unsent_stream(interface, app, "/rows")
    assert closed == ["closed"]


def static_client(make_client: MakeClient, files: Path) -> TestClient:
    """A client of an app serving ``files`` under ``/static`` with the default ``GZip``."""
    app = App()
    app.install(GZip())
    app.install(Static(files))
    return make_client(app)


def test_gzip_of_a_file_drops_its_length_and_validators(
    make_client: MakeClient, files: Path
) -> None:
    client = static_client(make_client, files)
    response = client.get("/static/site.css")
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == (files / "site.css").read_text()
    # NOTE: the file's validator becomes weak: same content, other bytes (RFC 9110 8.8.3).
    assert response.headers["etag"].startswith('W/"')
    assert "content-length" not in response.headers
    assert "accept-ranges" not in response.headers
    assert "content-encoding" not in client.get("/static/logo.png").headers


def without_date(headers: Any) -> dict[str, str]:
    return {name: value for name, value in headers.items() if name != "date"}


@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_gzip_head_has_the_headers_of_get(
    make_client: MakeClient, files: Path, accept: str
) -> None:
    app = gzip_app()
    app.install(Static(files))
    client = make_client(app)
    for path in ("/etag", "/text", "/static/site.css"):
        get = client.get(path, headers={"accept-encoding": accept})
        head = client.head(path, headers={"accept-encoding": accept})
        assert head.content == b""
        assert without_date(head.headers) == without_date(get.headers), path
        if path != "/text":
            assert head.headers["etag"].startswith('W/"') == (accept == "gzip"), path


def test_gzip_lets_files_answer_ranges_and_conditionals(
    make_client: MakeClient, files: Path
) -> None:
    client = static_client(make_client, files)
    identity = client.get("/static/site.css", headers={"accept-encoding": "identity"})
    etag = identity.headers["etag"]
    not_modified = client.get("/static/site.css", headers={"if-none-match": etag})
    assert not_modified.status_code == 304
    ranged = client.get("/static/site.css", headers={"range": "bytes=0-3"})
    assert (ranged.status_code, ranged.text) == (206, "body")
    assert "content-encoding" not in ranged.headers


def test_gzip_compresses_a_changed_file_for_a_stale_validator(
    make_client: MakeClient, files: Path
) -> None:
    client = static_client(make_client, files)
    # NOTE: the client's copy is out of date, so it gets the whole file: compressed, as ever.
    for validator in (
        {"if-none-match": 'W/"old-tag"'},
        {"if-modified-since": "Thu, 01 Jan 1970 00:00:00 GMT"},
    ):
        response = client.get("/static/site.css", headers=validator)
        assert response.status_code == 200
        assert response.headers["content-encoding"] == "gzip"
        assert response.text == (files / "site.css").read_text()


@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_gzip_304_has_the_vary_and_etag_of_the_200(
    make_client: MakeClient, files: Path, accept: str
) -> None:
    client = static_client(make_client, files)
    whole = client.get("/static/site.css", headers={"accept-encoding": accept})
    assert whole.headers["vary"] == "Accept-Encoding"
    for validator in (
        {"if-none-match": whole.headers["etag"]},
        {"if-modified-since": whole.headers["last-modified"]},
    ):
        again = client.get("/static/site.css", headers={"accept-encoding": accept, **validator})
        assert again.status_code == 304
        # SPEC: RFC 9110 15.4.5: the 304 carries the ETag and Vary the 200 would carry.
        assert again.headers["etag"] == whole.headers["etag"]
        assert again.headers["vary"] == "Accept-Encoding"
        assert ("accept-ranges" in again.headers) == ("accept-ranges" in whole.headers)
    png = client.get("/static/logo.png")
    not_modified = client.get("/static/logo.png", headers={"if-none-match": png.headers["etag"]})
    assert not_modified.status_code == 304
    assert "vary" not in not_modified.headers
    assert not_modified.headers["etag"] == png.headers["etag"]


@pytest.mark.parametrize("accept", ["gzip", "identity"])
def test_gzip_304_of_a_file_under_minimum_size_has_the_validators_of_its_plain_200(
    make_client: MakeClient, files: Path, accept: str
) -> None:
    # NOTE: the 304 lost the file's size, so GZip labelled it as a large file's: a weak ETag
    # and a Vary that the small, plain 200 did not have (review160).
    (files / "small.css").write_text("a{}")
    client = static_client(make_client, files)
    whole = client.get("/static/small.css", headers={"accept-encoding": accept})
    assert "content-encoding" not in whole.headers
    for validator in (
        {"if-none-match": whole.headers["etag"]},
        {"if-modified-since": whole.headers["last-modified"]},
    ):
        again = client.get("/static/small.css", headers={"accept-encoding": accept, **validator})
        assert (again.status_code, again.content) == (304, b"")
        # SPEC: RFC 9110 15.4.5: the 304 carries the ETag and Vary the 200 would carry.
        assert again.headers["etag"] == whole.headers["etag"]
        assert again.headers.get("vary") == whole.headers.get("vary") is None
        assert again.headers.get("accept-ranges") == whole.headers.get("accept-ranges")
        assert "content-length" not in again.headers


def test_gzip_an_apps_own_304_is_labelled_only_with_a_content_type(
    make_client: MakeClient,
) -> None:
    # NOTE: a 304 without Content-Type could stand for an image as well as for text: GZip
    # leaves it as the app made it (docs/plugins-gzip.md, "Keeping a response plain").
    app = App()
    app.install(GZip())

    @app.get("/bare")
    def bare(request: Request) -> Response:
        return Response(b"", status=304, headers={"etag": '"v1"'})

    @app.get("/typed")
    def typed(request: Request) -> Response:
        return Response(b"", 304, headers={"etag": '"v1"'}, media_type="text/plain")

    client = make_client(app)
    plain = client.get("/bare", headers={"accept-encoding": "gzip"})
    assert (plain.status_code, plain.headers["etag"], plain.headers.get("vary")) == (
        304,
        '"v1"',
        None,
    )
    labelled = client.get("/typed", headers={"accept-encoding": "gzip"})
    assert (labelled.headers["etag"], labelled.headers["vary"]) == ('W/"v1"', "Accept-Encoding")


def test_gzip_206_has_the_vary_of_the_200(make_client: MakeClient, files: Path) -> None:
    client = static_client(make_client, files)
    ranged = client.get("/static/site.css", headers={"range": "bytes=0-3"})
    assert (ranged.status_code, ranged.text) == (206, "body")
    # SPEC: RFC 9110 15.3.7: the 206 carries the Vary a 200 to the same request would carry.
    assert ranged.headers["vary"] == "Accept-Encoding"
    assert "content-encoding" not in ranged.headers
    png = client.get("/static/logo.png", headers={"range": "bytes=0-3"})
    assert png.status_code == 206
    assert "vary" not in png.headers


def test_gzip_leaves_a_compressed_file_alone(make_client: MakeClient, files: Path) -> None:
    compressed = gzip.compress(json.dumps(list(range(2000))).encode())
    (files / "data.json.gz").write_bytes(compressed)
    response = static_client(make_client, files).get("/static/data.json.gz")
    assert response.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in response.headers
    assert response.content == compressed


def test_gzip_leaves_an_svgz_alone(make_client: MakeClient, files: Path) -> None:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg">' + b"<g/>" * 500 + b"</svg>"
    (files / "icon.svgz").write_bytes(gzip.compress(svg))
    response = static_client(make_client, files).get("/static/icon.svgz")
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["content-encoding"] == "gzip"
    assert "vary" not in response.headers
    assert response.content == svg


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_stream_that_is_its_own_iterator_is_closed_once(
    make_client: MakeClient, kind: str
) -> None:
    # NOTE: the compressing generator closed its iterator and then the stream: the same
    # object when the stream is its own iterator, so its close() ran twice.
    closed: list[str] = []

    class Chunks:
        def __init__(self) -> None:
            self.left = ["x" * 2000]

        def __iter__(self) -> Chunks:
            return self

        def __next__(self) -> str:
            if not self.left:
                raise StopIteration
            return self.left.pop()

        def close(self) -> None:
            closed.append("close")

    class AsyncChunks:
        def __init__(self) -> None:
            self.left = ["x" * 2000]

        def __aiter__(self) -> AsyncChunks:
            return self

        async def __anext__(self) -> str:
            if not self.left:
                raise StopAsyncIteration
            return self.left.pop()

        async def aclose(self) -> None:
            closed.append("aclose")

    app = App()
    app.install(GZip())

    @app.get("/")
    def stream(request: Request) -> Response:
        return Response.stream(Chunks() if kind == "sync" else AsyncChunks(), "text/plain")

    with make_client(app) as client:
        response = client.get("/", headers={"accept-encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert response.text == "x" * 2000
    assert closed == (["close"] if kind == "sync" else ["aclose"])


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("item", [5, None, 1.5, {"a": 1}])
def test_gzip_a_stream_chunk_of_another_type_is_the_type_error_a_plain_stream_gets(
    make_client: MakeClient, kind: str, item: Any
) -> None:
    # NOTE: an async stream's chunk was measured before it was checked: an int or None failed
    # with "object of type 'int' has no len()", which said nothing of the stream.
    def chunks() -> Iterator[Any]:
        yield "x" * 2000
        yield item

    async def achunks() -> AsyncIterator[Any]:
        for chunk in chunks():
            yield chunk

    app = App()
    app.install(GZip())

    @app.get("/")
    def stream(request: Request) -> Response:
        return Response.stream(chunks() if kind == "sync" else achunks(), "text/plain")

    message = f"yields bytes or str chunks, not {type(item).__name__}"
    with pytest.raises(TypeError, match=message):
        make_client(app).get("/", headers={"accept-encoding": "gzip"})
