"""The app that ``test_servers_half_close.py`` runs under ``microweb serve``: answers to clients
that half-close their side once the request is sent (a def and an async def handler, a body
read, a streamed answer, a slow answer).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator

from microweb import App, Request, Response

app = App()


@app.get("/sync")
def get_sync(request: Request) -> str:
    """Answer at once, from a def handler."""
    return "sync answer"


@app.get("/async")
async def get_async(request: Request) -> str:
    """Answer at once, from an async def handler."""
    return "async answer"


@app.get("/slow/sync")
def slow_sync(request: Request) -> str:
    """Answer after a moment, from a def handler."""
    time.sleep(0.3)
    return "slow sync answer"


@app.get("/slow/async")
async def slow_async(request: Request) -> str:
    """Answer after a moment, from an async def handler."""
    await asyncio.sleep(0.3)
    return "slow async answer"


@app.post("/echo/sync")
def echo_sync(request: Request) -> bytes:
    """Send the body back, from a def handler."""
    return request.read()


@app.post("/echo/async")
async def echo_async(request: Request) -> bytes:
    """Send the body back, from an async def handler."""
    return await request.aread()


@app.get("/asking/sync")
@app.post("/asking/sync")
def asking_sync(request: Request) -> str:
    """Say what ``is_disconnected()`` says over 0.3 s: ``gone`` if it said so once."""
    for _ in range(6):
        if request.is_disconnected():
            return "gone"
        time.sleep(0.05)
    return "here"


@app.get("/asking/async")
@app.post("/asking/async")
async def asking_async(request: Request) -> str:
    """The async twin of ``/asking/sync``, with ``ais_disconnected()``."""
    for _ in range(6):
        if await request.ais_disconnected():
            return "gone"
        await asyncio.sleep(0.05)
    return "here"


def _sync_chunks() -> Iterator[bytes]:
    for number in range(5):
        time.sleep(0.05)
        yield f"chunk {number};".encode()


async def _async_chunks() -> AsyncIterator[bytes]:
    for number in range(5):
        await asyncio.sleep(0.05)
        yield f"chunk {number};".encode()


@app.get("/stream/sync")
def stream_sync(request: Request) -> Response:
    """Stream five chunks, a little apart, from a sync generator."""
    return Response.stream(_sync_chunks(), media_type="text/plain")


@app.get("/stream/async")
async def stream_async(request: Request) -> Response:
    """Stream five chunks, a little apart, from an async generator."""
    return Response.stream(_async_chunks(), media_type="text/plain")


def _endless() -> Iterator[bytes]:
    for _ in range(20_000):  # NOTE: a bound (1.25 GiB), should a client's leaving never be seen.
        time.sleep(0.001)
        yield b"z" * 64 * 1024


@app.get("/endless")
def endless(request: Request) -> Response:
    """Stream 64 KiB chunks until the client is gone."""
    return Response.stream(_endless(), media_type="application/octet-stream")


# NOTE: what each /reset-poll handler found, by the key in its path.
outcomes: dict[str, str] = {}


@app.get("/reset-poll/sync/{key}")
@app.post("/reset-poll/sync/{key}")
def reset_poll_sync(request: Request, key: str) -> str:
    """Wait up to 5 s for the client to go; note whether it was seen gone."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if request.is_disconnected():
            outcomes[key] = "gone"
            return "gone"
        time.sleep(0.05)
    outcomes[key] = "timed out"
    return "timed out"


@app.get("/reset-poll/async/{key}")
@app.post("/reset-poll/async/{key}")
async def reset_poll_async(request: Request, key: str) -> str:
    """The async twin of ``/reset-poll/sync/{key}``."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if await request.ais_disconnected():
            outcomes[key] = "gone"
            return "gone"
        await asyncio.sleep(0.05)
    outcomes[key] = "timed out"
    return "timed out"


@app.get("/outcome/{key}")
def outcome(request: Request, key: str) -> str:
    """What the /reset-poll handler of ``key`` found, or ``unknown`` while it waits."""
    return outcomes.get(key, "unknown")


@app.post("/poststream/sync")
def poststream_sync(request: Request) -> Response:
    """Stream five chunks without reading the body, from a sync generator."""
    return Response.stream(_sync_chunks(), media_type="text/plain")


@app.post("/poststream/async")
async def poststream_async(request: Request) -> Response:
    """Stream five chunks without reading the body, from an async generator."""
    return Response.stream(_async_chunks(), media_type="text/plain")
