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
- ``GET /stream/fail?mode=sync|async|cancel&after=N``: ``N`` chunks, then the stream raises (a
  ``RuntimeError``, or for ``cancel`` a sync stream's own ``CancelledError``): logged once, and
  the connection is cut, so the client sees an incomplete response.
- ``GET /cancelled/async`` (a task it cancelled, then awaited), ``GET /cancelled/sync`` (a ``def``
  handler raising ``CancelledError``), ``GET /double-type`` (``Headers.add`` of a second
  Content-Type): 500, answered by the app's 500 handler (``{"soak": "error", "type": ...}``).
- ``GET /reset``: 205 from a handler that returned a body: no content goes out.
- ``GET /whoami``: the client address (``ProxyHeaders`` trusts 127.0.0.1) and the root path.
- ``GET /page?name=``: a Jinja template compiled up front, the name escaped.
- ``GET /static/...``: ``Static`` over ``SOAK_STATIC_DIR``: ``page.txt`` (compressible text,
  ranges, conditions), ``blob.bin``, and ``pipe``, a named pipe (404, as a missing file).
- ``GET /stats``: how many SSE streams, WebSockets and flows are open now, and how many ended
  (after the load stops, the open counts must fall back to 0), and the names of the live threads.

Every answer goes through ``AccessLog`` (outermost), ``ProxyHeaders``, ``CORS`` (``*``) and
``GZip``; a sync and an async flow count themselves in and out.

Files above ``SPOOL_THRESHOLD`` (16 KiB, far below the default 1 MiB) go to temporary files, so
the soak exercises their clean-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
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
from microweb.plugins import CORS, AccessLog, GZip, ProxyHeaders, Static
from microweb.templating import Templates

KiB = 1024
SPOOL_THRESHOLD = 16 * KiB
SMALL_LIMIT = 64 * KiB
MAX_EVENTS = 10_000

PAGE_LINES = 5000
TEMPLATE = "<p>Hello {{ name }}</p>\n"


def page_text() -> bytes:
    """The content of ``static/page.txt``: numbered lines, about 70 KiB."""
    return b"".join(b"soak line %05d\n" % n for n in range(PAGE_LINES))


def blob_bytes() -> bytes:
    """The content of ``static/blob.bin``: 64 KiB of SHA-256 output, which does not compress."""
    return b"".join(hashlib.sha256(b"%d" % n).digest() for n in range(2048))


def _write_once(path: Path, data: bytes) -> None:
    # NOTE: several worker processes import this module: each writes aside, then renames.
    if path.exists():
        return
    aside = path.with_name(f".{path.name}.{os.getpid()}")
    aside.write_bytes(data)
    os.replace(aside, path)


def make_files(folder: Path) -> tuple[Path, Path]:
    """Create the static files and the template under ``folder``; return both folders."""
    static, templates = folder / "static", folder / "templates"
    static.mkdir(parents=True, exist_ok=True)
    templates.mkdir(parents=True, exist_ok=True)
    _write_once(static / "page.txt", page_text())
    _write_once(static / "blob.bin", blob_bytes())
    _write_once(templates / "page.html", TEMPLATE.encode())
    with contextlib.suppress(FileExistsError):
        os.mkfifo(static / "pipe")
    return static, templates


STATIC_DIR, TEMPLATES_DIR = make_files(
    Path(os.environ.get("SOAK_STATIC_DIR") or tempfile.mkdtemp(prefix="soak-static-"))
)

app = App(limits=Limits(spool_threshold=SPOOL_THRESHOLD, max_body_size=4 * 1024 * KiB))
app.install(AccessLog())
app.install(ProxyHeaders(trusted=["127.0.0.1"]))
app.install(CORS())
app.install(GZip())
app.install(Static(STATIC_DIR, prefix="/static"))
templates = Templates(TEMPLATES_DIR)


KINDS = ("sse", "ws", "flow_sync", "flow_async")


class Counters:
    """Open and finished SSE streams and WebSockets, shared by every server thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.values = {
            **{f"{kind}_{state}": 0 for kind in KINDS for state in ("open", "done")},
        }

    def enter(self, kind: str) -> None:
        """Count one more open ``kind`` (one of ``KINDS``)."""
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


@app.middleware
def count_sync(request: Request) -> Any:
    """Count the requests a sync flow is open around."""
    counters.enter("flow_sync")
    try:
        yield
    finally:
        counters.leave("flow_sync")


@app.middleware
async def count_async(request: Request) -> Any:
    """Count the requests an async flow is open around."""
    counters.enter("flow_async")
    try:
        yield
    finally:
        counters.leave("flow_async")


@app.error_handler(500)
def server_error(request: Request, exc: Exception) -> dict[str, str]:
    """Answer an unexpected error with the name of its class (and status 500)."""
    return {"soak": "error", "type": type(exc).__name__}


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
    """Report the open and finished streams, WebSockets and flows, and the live threads."""
    values = counters.snapshot()
    # NOTE: this request's own flows are open while it is answered.
    values["flow_sync_open"] -= 1
    values["flow_async_open"] -= 1
    threads = sorted(t.name for t in threading.enumerate())
    return {**values, "threads": threads, "pid": os.getpid()}


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


class SoakStreamError(RuntimeError):
    """The error a failing stream raises midway."""


@app.get("/stream/fail")
def stream_fail(request: Request) -> Response:
    """Stream ``after`` chunks, then fail: ``mode`` says how (see the module docstring)."""
    mode = request.query.get("mode", "sync")
    after = _int_param(request, "after", 2, 100)

    def sync_chunks() -> Iterator[bytes]:
        for number in range(after):
            yield b"chunk %d\n" % number
        if mode == "cancel":
            raise asyncio.CancelledError
        raise SoakStreamError("soak stream failure")

    async def async_chunks() -> AsyncIterator[bytes]:
        for chunk in sync_chunks():
            yield chunk
            await asyncio.sleep(0)

    if mode not in ("sync", "async", "cancel"):
        raise HTTPError(400, "mode is sync, async or cancel")
    chunks = async_chunks() if mode == "async" else sync_chunks()
    return Response.stream(chunks, media_type="application/x-soak")


@app.get("/cancelled/async")
async def cancelled_async(request: Request) -> str:
    """Await a task this handler cancelled: its ``CancelledError`` is the handler's own."""
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    await task
    return "not reached"


@app.get("/cancelled/sync")
def cancelled_sync(request: Request) -> str:
    """Raise ``CancelledError`` from a ``def`` handler."""
    raise asyncio.CancelledError


@app.get("/double-type")
def double_type(request: Request) -> Response:
    """Add a second Content-Type, which ``Headers.add`` refuses (a 500)."""
    response = Response.text("two types")
    response.headers.add("content-type", "text/html")
    return response


@app.get("/reset")
def reset(request: Request) -> Response:
    """Answer 205 from a body that must not go out."""
    return Response.text("soak text " * 100, status=205)


@app.get("/whoami")
def whoami(request: Request) -> dict[str, Any]:
    """Answer the client's address and the root path, as the app sees them."""
    client = request.client
    return {"client": client.host if client else None, "root_path": request.root_path}


@app.get("/page")
def page(request: Request) -> Response:
    """Render the compiled template with ``name``."""
    return templates.render(request, "page.html", {"name": request.query.get("name", "")})
