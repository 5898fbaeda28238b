"""The app that ``test_servers_parity.py`` runs under Waitress and Uvicorn: responses of each kind.

Every kind of answer a handler can give has a path here, most in both colours (``/.../sync`` is a
``def`` handler, ``/.../async`` an ``async def`` one): plain values, the ``Response`` factories,
bodiless statuses, streams, server-sent events, files, cookies, errors, and the ``Static`` and
``GZip`` plugins. The files are made at import in the folder named by ``PARITY_APP_DIR`` (a
temporary folder when it is not set), so that each server process serves the same bytes.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from microweb import App, HTTPError, Request, Response, ServerSentEvent
from microweb.plugins import GZip, Static

FOLDER = Path(os.environ.get("PARITY_APP_DIR") or tempfile.mkdtemp(prefix="parity-"))
PUBLIC = FOLDER / "public"
# NOTE: past 64 KiB (a file chunk) and Waitress's 1 MiB send buffer, so the sendfile path shows.
LARGE_SIZE = 3 * 1024 * 1024 + 7
SMALL_TEXT = "small text file, café\n" * 40
PAGE = "<!doctype html><title>parity</title><p>" + "words to compress " * 60 + "</p>\n"


def _make_files() -> None:
    (PUBLIC / "docs").mkdir(parents=True, exist_ok=True)
    (PUBLIC / "small.txt").write_text(SMALL_TEXT, "utf-8")
    (PUBLIC / "docs" / "index.html").write_text(PAGE, "utf-8")
    large = bytes(range(256)) * (LARGE_SIZE // 256) + bytes(LARGE_SIZE % 256)
    (FOLDER / "large.bin").write_bytes(large)
    (FOLDER / "empty.txt").write_bytes(b"")
    # NOTE: one fixed time, so that ETag and Last-Modified are the same in every process.
    for path in (PUBLIC / "small.txt", PUBLIC / "docs" / "index.html", FOLDER / "large.bin"):
        os.utime(path, (1_700_000_000, 1_700_000_000))
    os.utime(FOLDER / "empty.txt", (1_700_000_000, 1_700_000_000))


_make_files()
app = App()
app.install(Static(PUBLIC, prefix="/static"))
app.install(GZip(minimum_size=100))


def both(path: str, function: Callable[..., Any], methods: tuple[str, ...] = ("GET",)) -> None:
    """Register ``function`` at ``path + "/sync"`` as it is, and at ``"/async"`` as a coroutine."""

    async def coloured(request: Request, **params: Any) -> Any:
        return function(request, **params)

    app.route(path + "/sync", methods=list(methods), name=path + "/sync")(function)
    app.route(path + "/async", methods=list(methods), name=path + "/async")(coloured)


# -- plain values -----------------------------------------------------------------------------

VALUES: dict[str, Any] = {
    "str": "Hello, café",
    "dict": {"hello": "café", "n": [1, 2]},
    "list": [1, "two", None],
    "bytes": b"\x00\x01binary",
    "none": None,
    "empty-str": "",
    "tuple-status": ("created", 201),
    "tuple-headers": ({"ok": True}, 202, {"x-kind": "tuple", "cache-control": "no-store"}),
    "tuple-pairs": ("pairs", 200, [("x-many", "1"), ("x-many", "2")]),
    "tuple-none": (None, 204),
}

for _name, _value in VALUES.items():
    both(f"/value/{_name}", lambda request, value=_value: value)


# -- Response factories -------------------------------------------------------------------------

FACTORIES: dict[str, Callable[[], Response]] = {
    "text": lambda: Response.text("text body"),
    "html": lambda: Response.html("<p>html body</p>"),
    "json": lambda: Response.json({"json": "body"}, status=201),
    "redirect": lambda: Response.redirect("/value/str/sync"),
    "redirect-303": lambda: Response.redirect("/héllo?q=1", status=303),
    "no-content": lambda: Response(status=204, headers={"x-a": "1"}, media_type="text/plain"),
    "not-modified": lambda: Response(b"ignored", 304, {"etag": '"v1"'}, "text/plain"),
    "reset": lambda: Response(b"", 205),
    "created-empty": lambda: Response(b"", 201),
    "custom-status": lambda: Response(b"teapot", 418),
    "unknown-status": lambda: Response(b"odd", 299),
    "wrong-length": lambda: Response(b"12345", headers={"content-length": "2"}),
    "non-ascii-header": lambda: Response(b"x", headers={"x-name": "café ñ"}),
    "mixed-case": lambda: Response(b"x", headers={"X-Mixed-Case": "Value"}),
    "duplicates": lambda: Response(b"x", headers=[("x-dup", "a"), ("x-dup", "b"), ("x-dup", "c")]),
    # NOTE: hop-by-hop headers, which the servers own: a ValueError, so the app's own 500.
    "connection-close": lambda: Response(b"x", headers={"connection": "close"}),
    "transfer-encoding": lambda: Response(b"hello", headers={"transfer-encoding": "chunked"}),
}

for _name, _factory in FACTORIES.items():
    both(f"/factory/{_name}", lambda request, factory=_factory: factory())


def _cookies(request: Request) -> Response:
    response = Response.text("cookies")
    response.set_cookie("a", "1")
    response.set_cookie("b", "two words", max_age=60, httponly=True)
    response.set_cookie("c", "café", path="/x", secure=True, samesite="strict")
    response.delete_cookie("old")
    return response


both("/cookies", _cookies)
both("/raw-path", lambda request: request.raw_path.decode("latin-1"))


# -- streams ------------------------------------------------------------------------------------

STREAM_CHUNKS: dict[str, list[bytes | str]] = {
    "bytes": [b"one,", b"two,", b"three"],
    "str": ["un,", "deux,", "trois, café"],
    "empty-chunks": [b"", b"a", b"", b"b", b""],
    "nothing": [],
    "only-empty": [b"", ""],
}


def _sync_chunks(chunks: list[bytes | str]) -> Iterator[bytes | str]:
    yield from chunks


async def _async_chunks(chunks: list[bytes | str]) -> AsyncIterator[bytes | str]:
    for chunk in chunks:
        await asyncio.sleep(0)
        yield chunk


for _name, _chunks in STREAM_CHUNKS.items():

    def _stream_sync(request: Request, chunks: list[bytes | str] = _chunks) -> Response:
        return Response.stream(_sync_chunks(chunks), "text/plain; charset=utf-8")

    async def _stream_async(request: Request, chunks: list[bytes | str] = _chunks) -> Response:
        return Response.stream(_async_chunks(chunks), "text/plain; charset=utf-8")

    # NOTE: each generator colour from each handler colour.
    app.get(f"/stream/{_name}/sync-sync", name=f"{_name}/sync-sync")(_stream_sync)
    app.get(f"/stream/{_name}/async-async", name=f"{_name}/async-async")(_stream_async)
    app.get(f"/stream/{_name}/sync-async", name=f"{_name}/sync-async")(
        lambda request, chunks=_chunks: Response.stream(_async_chunks(chunks))
    )


def _long_text(request: Request) -> Response:
    return Response.stream((f"line {i}\n" for i in range(200)), "text/plain; charset=utf-8")


both("/stream/long-text", _long_text)


def _events() -> list[Any]:
    return [
        "first",
        ServerSentEvent(data="two\nlines", event="update", id="7"),
        ServerSentEvent(comment="ping"),
        ServerSentEvent(data="café", retry=1000),
    ]


async def _aevents() -> AsyncIterator[Any]:
    for event in _events():
        yield event


@app.get("/sse/sync")
def sse_sync(request: Request) -> Response:
    return Response.sse(iter(_events()))


@app.get("/sse/async")
async def sse_async(request: Request) -> Response:
    return Response.sse(_aevents())


# -- files --------------------------------------------------------------------------------------

FILES = {
    "small": PUBLIC / "small.txt",
    "page": PUBLIC / "docs" / "index.html",
    "large": FOLDER / "large.bin",
    "empty": FOLDER / "empty.txt",
}


def _file(request: Request, name: str) -> Response:
    if name not in FILES:
        raise HTTPError(404)
    return Response.file(FILES[name])


def _download(request: Request) -> Response:
    return Response.file(FILES["small"], filename="résumé 1.txt")


both("/file/{name}", _file)
both("/download", _download)

# NOTE: a file the client shrinks while it is sent (POST /file-shrink), made sparse: a length
# past what the socket buffers hold, without writing it.
SHRINKING = FOLDER / "shrinking.bin"
SHRINKING_SIZE = 64 * 1024 * 1024


def _shrinking(request: Request) -> Response:
    with SHRINKING.open("wb") as file:
        file.truncate(SHRINKING_SIZE)
    return Response.file(SHRINKING)


def _shrink(request: Request) -> str:
    with SHRINKING.open("r+b") as file:
        file.truncate(1000)
    return "shrunk"


both("/file-shrinking", _shrinking)
both("/file-shrink", _shrink, methods=("POST",))


# -- request headers ----------------------------------------------------------------------------


def _headers_read(request: Request) -> dict[str, Any]:
    # NOTE: a header sent on several lines, which a WSGI server joins and an ASGI one does not.
    read = {name: request.headers.get(name) for name in ("x-hops", "x-a", "x-page")}
    return {**read, "page": request.headers.get("x-page", -1, type=int)}


both("/headers-read", _headers_read)


# -- errors -------------------------------------------------------------------------------------


def _boom(request: Request) -> str:
    raise RuntimeError("boom")


def _teapot(request: Request) -> str:
    raise HTTPError(418, "short and stout", headers={"x-why": "tea"})


both("/error/boom", _boom)
both("/error/http", _teapot)
both("/only-post", lambda request: "posted", methods=("POST",))


def _failing(after: int) -> Iterator[bytes]:
    yield from (b"chunk,",) * after
    raise RuntimeError("the stream broke")


async def _afailing(after: int) -> AsyncIterator[bytes]:
    for _ in range(after):
        yield b"chunk,"
    raise RuntimeError("the stream broke")


@app.get("/broken/{after:int}/sync")
def broken_sync(request: Request, after: int) -> Response:
    return Response.stream(_failing(after), "text/plain")


@app.get("/broken/{after:int}/async")
async def broken_async(request: Request, after: int) -> Response:
    return Response.stream(_afailing(after), "text/plain")


SLOW_START = 1.5  # seconds before the first chunk of /slow-start


def _slow_start() -> Iterator[bytes]:
    time.sleep(SLOW_START)
    yield b"late"


async def _aslow_start() -> AsyncIterator[bytes]:
    await asyncio.sleep(SLOW_START)
    yield b"late"


@app.get("/slow-start/sync")
def slow_start_sync(request: Request) -> Response:
    return Response.stream(_slow_start(), "text/plain")


@app.get("/slow-start/async")
async def slow_start_async(request: Request) -> Response:
    return Response.stream(_aslow_start(), "text/plain")
