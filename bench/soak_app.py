"""The app that ``soak.py`` serves under Waitress and Uvicorn: ``microweb serve bench/soak_app.py``.

Every answer is a function of the request, so the client can tell a right answer from a wrong
one byte for byte. Handlers of both colours, both body-reading twins:

- ``GET /text`` (``def``): ``soak text`` repeated ``?n=`` times (default 1).
- ``GET /json`` (``async def``): ``{"n": n, "square": n * n}`` for ``?n=``.
- ``POST /echo/sync`` (``def``, ``request.json()``) and ``POST /echo/async`` (``async def``,
  ``await request.ajson()``): ``{"value": <the JSON sent>, "sha256": <of the raw body>}``.
- ``POST /text`` (``def``, ``request.text()``): ``{"length": chars, "sha256": <of the UTF-8>}``.
- ``POST /upload/sync`` (``def``, ``request.form()``) and ``POST /upload/async`` (``async def``,
  ``await request.aform()``): each field as text, each file as filename, size and SHA-256.
- ``POST /small``: like ``/echo/sync`` with a 64 KiB body limit (413 past it).
- ``GET /sse?count=N&every=S``: an async generator of ``N`` events ``0`` .. ``N-1``, one every
  ``S`` seconds (bounded: at most 10,000 events, 1 s apart).
- ``WS /ws``: echoes text messages (Uvicorn; Waitress answers 501).
- ``GET /stats``: how many SSE streams and WebSockets are open now, and how many ended (after the
  load stops, both open counts must fall back to 0), and the names of the live threads.

Files above ``SPOOL_THRESHOLD`` (16 KiB, far below the default 1 MiB) go to temporary files, so
the soak exercises their clean-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from typing import Any

from microweb import (
    App,
    FormData,
    HTTPError,
    Limits,
    Request,
    Response,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)

KiB = 1024
SPOOL_THRESHOLD = 16 * KiB
SMALL_LIMIT = 64 * KiB
MAX_EVENTS = 10_000

app = App(limits=Limits(spool_threshold=SPOOL_THRESHOLD, max_body_size=4 * 1024 * KiB))


class Counters:
    """Open and finished SSE streams and WebSockets, shared by every server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = {"sse_open": 0, "sse_done": 0, "ws_open": 0, "ws_done": 0}

    def enter(self, kind: str) -> None:
        """Count one more open ``kind`` (``sse`` or ``ws``)."""
        with self._lock:
            self.values[f"{kind}_open"] += 1

    def leave(self, kind: str) -> None:
        """Count one ``kind`` as ended."""
        with self._lock:
            self.values[f"{kind}_open"] -= 1
            self.values[f"{kind}_done"] += 1

    def snapshot(self) -> dict[str, int]:
        """Return a copy of the counters."""
        with self._lock:
            return dict(self.values)


counters = Counters()


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name, str(default))
    if not (text.isascii() and text.isdigit()) or int(text) > high:
        raise HTTPError(400, f"{name} must be a whole number up to {high}")
    return int(text)


@app.get("/text")
def text(request: Request) -> str:
    """Answer ``soak text`` ``n`` times, from a ``def`` handler."""
    return "soak text" * _int_param(request, "n", 1, 10_000)


@app.get("/json")
async def json_square(request: Request) -> dict[str, int]:
    """Answer ``n`` and its square, from an ``async def`` handler."""
    n = _int_param(request, "n", 0, 1_000_000)
    return {"n": n, "square": n * n}


@app.get("/stats")
def stats(request: Request) -> dict[str, Any]:
    """Report the open and finished streams and WebSockets, and the names of live threads."""
    return {**counters.snapshot(), "threads": sorted(t.name for t in threading.enumerate())}


@app.post("/echo/sync")
def echo_sync(request: Request) -> dict[str, Any]:
    """Echo the JSON body with the SHA-256 of the raw bytes (``request.json()``)."""
    value = request.json()
    return {"value": value, "sha256": hashlib.sha256(request.read()).hexdigest()}


@app.post("/echo/async")
async def echo_async(request: Request) -> dict[str, Any]:
    """Echo the JSON body with the SHA-256 of the raw bytes (``await request.ajson()``)."""
    value = await request.ajson()
    return {"value": value, "sha256": hashlib.sha256(await request.aread()).hexdigest()}


@app.post("/small", limits={"max_body_size": SMALL_LIMIT})
def small(request: Request) -> dict[str, Any]:
    """Like ``/echo/sync``, for bodies up to 64 KiB."""
    return echo_sync(request)


@app.post("/text")
def text_body(request: Request) -> dict[str, Any]:
    """Decode the body with its charset; report its length and the SHA-256 of its UTF-8."""
    body = request.text()
    return {"length": len(body), "sha256": hashlib.sha256(body.encode("utf-8")).hexdigest()}


def _describe(form: FormData, contents: dict[str, bytes]) -> dict[str, Any]:
    fields: dict[str, str] = {}
    files: dict[str, dict[str, Any]] = {}
    for name, value in form.multi_items():
        if isinstance(value, UploadFile):
            digest = hashlib.sha256(contents[name]).hexdigest()
            files[name] = {"filename": value.filename, "size": value.size, "sha256": digest}
        else:
            fields[name] = value
    return {"fields": fields, "files": files}


@app.post("/upload/sync")
def upload_sync(request: Request) -> dict[str, Any]:
    """Describe a form parsed with ``request.form()``."""
    form = request.form()
    files = form.multi_items()
    return _describe(form, {n: v.read() for n, v in files if isinstance(v, UploadFile)})


@app.post("/upload/async")
async def upload_async(request: Request) -> dict[str, Any]:
    """Describe a form parsed with ``await request.aform()``."""
    form = await request.aform()
    files = form.multi_items()
    return _describe(form, {n: await v.aread() for n, v in files if isinstance(v, UploadFile)})


@app.get("/sse")
async def sse(request: Request) -> Response:
    """Stream ``count`` numbered events, one every ``every`` seconds."""
    count = _int_param(request, "count", 3, MAX_EVENTS)
    every = _int_param(request, "every_ms", 10, 1000) / 1000

    async def events() -> AsyncIterator[str]:
        counters.enter("sse")
        try:
            for number in range(count):
                yield str(number)
                await asyncio.sleep(every)
        finally:
            counters.leave("sse")

    return Response.sse(events())


@app.websocket("/ws")
async def websocket_echo(ws: WebSocket) -> None:
    """Echo text messages until the client leaves."""
    counters.enter("ws")
    try:
        await ws.accept()
        async for message in ws.iter_text():
            await ws.send_text(message)
    except WebSocketDisconnect:
        pass
    finally:
        counters.leave("ws")
