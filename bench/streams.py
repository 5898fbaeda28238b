"""What one chunk of a streamed response costs, in each colour under each interface, in one run.

Every app streams the same body: ``CHUNKS`` chunks of 64 bytes from a generator, ``def`` or
``async def``. Each is called in-process through its own WSGI or ASGI callable, and the best
microseconds per chunk are printed, with the ratio to a raw callable of the same interface that
streams the same chunks (the floor).

The rows that cross colours (an ``async def`` generator under WSGI, a ``def`` one under ASGI)
run the generator in another thread than the one that sends its chunks: microweb's run ahead
of the sender (docs/streaming.md), Starlette's sync stream takes a trip to a worker thread for
each chunk.

Usage::

    python bench/streams.py            # about 30 s
    python bench/streams.py --quick    # a few seconds, noisier
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from _harness import (
    Timer,
    describe_versions,
    format_table,
    make_environ,
    make_scope,
    measure_many,
    start_app,
    wsgi_call,
    wsgi_timer,
)

CHUNKS = 1000
CHUNK = b"x" * 63 + b"\n"
BODY = CHUNK * CHUNKS


def sync_chunks() -> Iterator[bytes]:
    for _ in range(CHUNKS):
        yield CHUNK


async def async_chunks() -> AsyncIterator[bytes]:
    for _ in range(CHUNKS):
        yield CHUNK


# -- the floors ---------------------------------------------------------------------------------


def raw_wsgi(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    """The WSGI floor: the generator handed to the server as it is."""
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return sync_chunks()


async def raw_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The ASGI floor: each chunk sent as one message."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    headers = [(b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async for chunk in async_chunks():
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


# -- the apps -----------------------------------------------------------------------------------


def microweb_app(colour: str, interface: str) -> Any:
    """Return microweb's callable streaming a generator of ``colour``."""
    from microweb import App, Request, Response

    app = App()

    @app.get("/stream")
    def stream(request: Request) -> Response:
        chunks = sync_chunks() if colour == "sync" else async_chunks()
        return Response.stream(chunks)

    return app.as_wsgi() if interface == "wsgi" else app.as_asgi()


def starlette_app(colour: str) -> Any:
    """Return a Starlette app streaming a generator of ``colour`` (``StreamingResponse``)."""
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    async def stream(request: Any) -> Any:
        chunks = sync_chunks() if colour == "sync" else async_chunks()
        return StreamingResponse(chunks, media_type="application/octet-stream")

    return Starlette(routes=[Route("/stream", stream)])


def falcon_app(interface: str) -> Any:
    """Return a Falcon app streaming a generator: ``def`` under WSGI, ``async def`` under ASGI."""
    import falcon
    import falcon.asgi

    class Stream:
        def on_get(self, req: Any, resp: Any) -> None:
            resp.content_type = "application/octet-stream"
            resp.stream = sync_chunks()

    class AsyncStream:
        async def on_get(self, req: Any, resp: Any) -> None:
            resp.content_type = "application/octet-stream"
            resp.stream = async_chunks()

    app = falcon.App() if interface == "wsgi" else falcon.asgi.App()
    app.add_route("/stream", Stream() if interface == "wsgi" else AsyncStream())
    return app


@dataclass(frozen=True)
class Row:
    """One app behind one interface, streaming in one colour."""

    label: str
    interface: str
    build: Callable[[], Any]


ROWS = [
    Row("raw WSGI, def (floor)", "wsgi", lambda: raw_wsgi),
    Row("Falcon WSGI, def", "wsgi", lambda: falcon_app("wsgi")),
    Row("microweb WSGI, def", "wsgi", lambda: microweb_app("sync", "wsgi")),
    Row("microweb WSGI, async def (across)", "wsgi", lambda: microweb_app("async", "wsgi")),
    Row("raw ASGI, async def (floor)", "asgi", lambda: raw_asgi),
    Row("Falcon ASGI, async def", "asgi", lambda: falcon_app("asgi")),
    Row("Starlette, async def", "asgi", lambda: starlette_app("async")),
    Row("Starlette, def (across)", "asgi", lambda: starlette_app("sync")),
    Row("microweb ASGI, async def", "asgi", lambda: microweb_app("async", "asgi")),
    Row("microweb ASGI, def (across)", "asgi", lambda: microweb_app("sync", "asgi")),
]


_REQUEST = {"type": "http.request", "body": b"", "more_body": False}


async def _stream(app: Any, scope: dict[str, Any], sent: list[bytes] | None = None) -> int:
    """Call ``app`` as a client that stays to the end would; return the status."""
    asked = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal asked
        if not asked:
            asked = True
            return _REQUEST
        # NOTE: a client that stays: no disconnect, ever (the app cancels this wait).
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif sent is not None:
            sent.append(message.get("body", b""))

    await app(dict(scope), receive, send)
    return status


def stream_timer(app: Any, loop: asyncio.AbstractEventLoop) -> Timer:
    """Return a timer of ``n`` streamed responses of ``app`` (ASGI), one client at a time."""
    scope = make_scope("/stream")

    async def many(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            await _stream(app, scope)
        return perf_counter() - started

    return lambda n: loop.run_until_complete(many(n))


def _check(row: Row, app: Any, loop: asyncio.AbstractEventLoop) -> None:
    if row.interface == "wsgi":
        status, _, body = wsgi_call(app, make_environ("/stream"))
    else:
        sent: list[bytes] = []
        status = loop.run_until_complete(_stream(app, make_scope("/stream"), sent))
        body = b"".join(sent)
    if status != 200 or body != BODY:
        sys.exit(f"{row.label}: wrong answer, status {status}, {len(body)} bytes")


def main(argv: list[str] | None = None) -> int:
    """Time every row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="short, noisier run (a few seconds)")
    args = parser.parse_args(argv)
    repeats, seconds = (3, 0.05) if args.quick else (15, 0.15)
    loop = asyncio.new_event_loop()
    timers: dict[str, Timer] = {}
    stops: list[Callable[[], None]] = []
    for row in ROWS:
        app = row.build()
        stops.append(start_app(app, row.interface, loop))
        _check(row, app, loop)
        if row.interface == "wsgi":
            timers[row.label] = wsgi_timer(app, make_environ("/stream"))
        else:
            timers[row.label] = stream_timer(app, loop)
    try:
        best = measure_many(timers, repeats, seconds)
    finally:
        for stop in stops:
            stop()
        loop.close()
    versions = describe_versions(["falcon", "starlette"])
    print(f"Python {platform.python_version()}, {platform.machine()}; {versions}")
    print(f"{CHUNKS} chunks of {len(CHUNK)} bytes a response; best of {repeats} rounds\n")
    floors = {"wsgi": best[ROWS[0].label], "asgi": best[ROWS[4].label]}
    lines = []
    for row in ROWS:
        per_chunk, ratio = best[row.label] / CHUNKS * 1e6, best[row.label] / floors[row.interface]
        lines.append((row.label, f"{per_chunk:.2f}", f"x{ratio:.2f}"))
    print(format_table(["app", "us a chunk", "to floor"], lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
