"""The app that ``test_servers_vanishing.py`` runs under ``microweb serve``: streams that send
as fast as the client takes them, what the server process holds open, and answers that keep a
connection quiet for a while (a slow handler, a paused stream, a body to read).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Iterator

from microweb import App, Request, Response

app = App()

CHUNK = b"x" * 1024 * 1024
# NOTE: a bound, should a client's leaving never be seen: 20 GiB.
STEPS = 20_000


def _sync_chunks() -> Iterator[bytes]:
    for _ in range(STEPS):
        yield CHUNK


async def _async_chunks() -> AsyncIterator[bytes]:
    for _ in range(STEPS):
        yield CHUNK  # NOTE: no await of its own: the server's send() gives the loop its turns.


@app.get("/fast/sync")
def fast_sync(request: Request) -> Response:
    """Stream 1 MiB chunks as fast as the client reads them."""
    return Response.stream(_sync_chunks(), media_type="application/octet-stream")


@app.get("/fast/async")
async def fast_async(request: Request) -> Response:
    """The async twin of ``/fast/sync``."""
    return Response.stream(_async_chunks(), media_type="application/octet-stream")


# NOTE: when (time.monotonic(), the same clock in every process) each /timed stream was closed.
CLOSED_AT: dict[str, float] = {}


def _timed_chunks(token: str) -> Iterator[bytes]:
    try:
        for _ in range(STEPS * 1024):
            yield CHUNK[:1024]
    finally:
        CLOSED_AT[token] = time.monotonic()


async def _atimed_chunks(token: str) -> AsyncIterator[bytes]:
    try:
        for _ in range(STEPS * 1024):
            yield CHUNK[:1024]  # NOTE: no await of its own, as above.
    finally:
        CLOSED_AT[token] = time.monotonic()


@app.get("/timed/{colour}/{token}")
def timed(request: Request, colour: str, token: str) -> Response:
    """Stream 1 KiB chunks as fast as the client reads them; note when the stream is closed."""
    chunks = _atimed_chunks(token) if colour == "async" else _timed_chunks(token)
    return Response.stream(chunks, media_type="application/octet-stream")


@app.get("/closed-at/{token}")
def closed_at(request: Request, token: str) -> dict[str, float | None]:
    """When the ``/timed`` stream of ``token`` was closed, or ``None``."""
    return {"at": CLOSED_AT.pop(token, None)}


@app.get("/held")
def held(request: Request) -> dict[str, int]:
    """What the server process holds: its open file descriptors and threads."""
    return {
        "fds": len(os.listdir(f"/proc/{os.getpid()}/fd")),
        "threads": threading.active_count(),
    }


# NOTE: what a slow client or a slow handler holds open, for the connection-limit tests.
BIG = b"y" * 12 * 1024 * 1024


@app.get("/sleep")
def sleep(request: Request) -> dict[str, float]:
    """Answer after ``s`` seconds, sending nothing until then."""
    seconds = request.query.get("s", 0.0, type=float)
    time.sleep(seconds)
    return {"slept": seconds}


@app.get("/big")
def big(request: Request) -> Response:
    """12 MiB, more than the socket buffers take: Waitress holds the rest until it is read."""
    return Response(BIG, media_type="application/octet-stream")


def _paused_chunks(seconds: float) -> Iterator[bytes]:
    yield b"first;"
    time.sleep(seconds)
    yield b"last;"


@app.get("/paused")
def paused(request: Request) -> Response:
    """Stream a chunk, send nothing for ``s`` seconds, then the last chunk."""
    chunks = _paused_chunks(request.query.get("s", 0.0, type=float))
    return Response.stream(chunks, media_type="text/plain")


@app.post("/size")
def size(request: Request) -> dict[str, int]:
    """The size of the request's body."""
    return {"size": len(request.read())}
