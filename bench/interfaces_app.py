"""The one app that ``interfaces.py`` serves under WSGI and ASGI, with both handler colours.

Each endpoint has a ``def`` twin and an ``async def`` twin, so every server can be given the
colour it runs natively and the colour it has to bridge:

- ``GET /hello/def``, ``GET /hello/async``: a small JSON object, the plain request/response.
- ``GET /slow/def``, ``GET /slow/async``: waits ``SLOW_SECONDS`` (50 ms) and answers, as a
  handler waiting on a database or another service would: ``time.sleep`` in ``def``,
  ``asyncio.sleep`` in ``async def``.
- ``GET /sse/def``, ``GET /sse/async``: an event stream that sends one event at once, then a
  keep-alive comment every ``KEEP_ALIVE`` seconds, and ends after ``MAX_AGE`` seconds (so no
  stream outlives a run). The ``def`` one is a sync generator that sleeps between writes.
- ``GET /cpu/def``, ``GET /cpu/async``: ``CPU_ROUNDS`` rounds of SHA-256 over 32 bytes, about
  20 ms of work that holds the GIL (hashlib releases it only for inputs over 2 KiB).

Served with ``microweb serve bench/interfaces_app.py --server waitress|uvicorn``, or by Granian
through the factories ``wsgi()`` and ``asgi()`` (``granian --factory interfaces_app:wsgi``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from microweb import App, Request, Response, ServerSentEvent

SLOW_SECONDS = 0.05
KEEP_ALIVE = 10.0
MAX_AGE = 180.0
# PERF: 60,000 rounds took 20-21 ms on the 2-core VM of docs/wsgi-vs-asgi.md (Python 3.11).
CPU_ROUNDS = 60_000

app = App()


def burn(rounds: int = CPU_ROUNDS) -> str:
    """Chain ``rounds`` SHA-256 digests of 32 bytes; return the last one in hex."""
    digest = b"\x00" * 32
    for _ in range(rounds):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def _hello() -> dict[str, str]:
    return {"message": "Hello, World!"}


@app.get("/hello/def")
def hello_def(request: Request) -> dict[str, str]:
    """Answer a small JSON object from a ``def`` handler."""
    return _hello()


@app.get("/hello/async")
async def hello_async(request: Request) -> dict[str, str]:
    """Answer a small JSON object from an ``async def`` handler."""
    return _hello()


@app.get("/slow/def")
def slow_def(request: Request) -> dict[str, float]:
    """Wait 50 ms with ``time.sleep``, then answer."""
    time.sleep(SLOW_SECONDS)
    return {"slept": SLOW_SECONDS}


@app.get("/slow/async")
async def slow_async(request: Request) -> dict[str, float]:
    """Wait 50 ms with ``asyncio.sleep``, then answer."""
    await asyncio.sleep(SLOW_SECONDS)
    return {"slept": SLOW_SECONDS}


@app.get("/sse/def")
def sse_def(request: Request) -> Response:
    """Stream one event, then keep-alives, from a sync generator that sleeps."""

    def events() -> Iterator[str | ServerSentEvent]:
        yield "open"
        opened = time.monotonic()
        while time.monotonic() - opened < MAX_AGE:
            time.sleep(KEEP_ALIVE)
            yield ServerSentEvent(comment="keep-alive")

    return Response.sse(events())


@app.get("/sse/async")
async def sse_async(request: Request) -> Response:
    """Stream one event, then keep-alives, from an async generator."""

    async def events() -> AsyncIterator[str | ServerSentEvent]:
        yield "open"
        opened = time.monotonic()
        while time.monotonic() - opened < MAX_AGE:
            await asyncio.sleep(KEEP_ALIVE)
            yield ServerSentEvent(comment="keep-alive")

    return Response.sse(events())


@app.get("/cpu/def")
def cpu_def(request: Request) -> dict[str, str]:
    """Spend about 20 ms of CPU in a ``def`` handler."""
    return {"digest": burn()}


@app.get("/cpu/async")
async def cpu_async(request: Request) -> dict[str, str]:
    """Spend about 20 ms of CPU in an ``async def`` handler, on the event loop."""
    return {"digest": burn()}


def wsgi() -> Any:
    """Return the app's WSGI callable (Granian's ``--factory``)."""
    return app.as_wsgi()


def asgi() -> Any:
    """Return the app's ASGI callable (Granian's ``--factory``)."""
    return app.as_asgi()
