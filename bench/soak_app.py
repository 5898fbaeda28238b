"""The app that ``soak.py`` serves under Waitress and Uvicorn, through its factory:
``microweb serve "bench/soak_app.py:create_app()"``.

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
- ``WS /ws/json``: answers each JSON message ``{"echo": value}`` (``iter_json()``); a message
  that is not JSON closes the connection with 1007.
- ``POST /login?visit=N`` (a form's ``name``): keeps the name in the ``Sessions`` session,
  flashes ``welcome <name>`` and answers 303 to ``url_for("me", _query={"visit": N})``;
  ``GET /me``: the session's user, ``query.get("visit", -1, type=int)`` and the flashed
  messages, which the read removes.
- ``GET /after?mode=quick|slow|fail&colour=sync|async&stream=0|1&n=N``: ``after N``, whole or
  streamed, with an after-response callback of that colour that returns, sleeps
  ``AFTER_SLOW`` or raises (logged once by microweb).
- ``GET /stats``: how many SSE streams, WebSockets, flows, pool leases and after-response
  callbacks are open now, and how many ended (after the load stops, the open counts must fall
  back to 0), whether the lifespan's pool is open, and the names of the live threads.

Every answer goes through ``AccessLog`` (outermost), ``ProxyHeaders``, ``TrustedHosts``
(``127.0.0.1`` and ``localhost``: any other host is a 400), ``CORS`` (``*``), ``CSRF`` (a
cross-site POST or handshake is a 403), ``Sessions`` and ``GZip``; a sync and an async flow
count themselves in and out. An ``app.lifespan`` holds a pool open from startup to shutdown
(one log line when it closes); ``/text``, ``/json`` and ``/me`` lease from it.

Files above ``SPOOL_THRESHOLD`` (16 KiB, far below the default 1 MiB) go to temporary files, so
the soak exercises their clean-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from microweb import (
    App,
    FormData,
    HTTPError,
    Limits,
    Request,
    Response,
    Router,
    UploadFile,
    WebSocket,
    WebSocketDisconnect,
)
from microweb.plugins import (
    CORS,
    CSRF,
    AccessLog,
    GZip,
    ProxyHeaders,
    Sessions,
    Static,
    TrustedHosts,
    flash,
    get_flashed_messages,
)
from microweb.templating import Templates

KiB = 1024
SPOOL_THRESHOLD = 16 * KiB
SMALL_LIMIT = 64 * KiB
MAX_EVENTS = 10_000
# NOTE: the hosts the load sends (httpx adds the port), and what a request without a Host
# (HTTP/1.0) gets from microweb serve: the address it listens on.
TRUSTED_HOSTS = ["127.0.0.1", "localhost"]
SESSION_SECRET = "soak-session-secret-of-no-value"
AFTER_SLOW = 0.5

logger = logging.getLogger("soak")
# NOTE: --log-level sets the "microweb" and "waitress" loggers only; the root stays at WARNING.
logger.setLevel(logging.INFO)

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

templates = Templates(TEMPLATES_DIR)
router = Router()


KINDS = ("sse", "ws", "flow_sync", "flow_async", "lease", "after", "pool")


class Counters:
    """Open and finished SSE streams, WebSockets, flows, pool leases and after-response
    callbacks, and the lifespan's pool, shared by every server thread."""

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


class Pool:
    """Stands for the connection pool a lifespan holds open: handlers lease from it."""

    def __init__(self) -> None:
        self.closed = False

    @contextlib.contextmanager
    def lease(self) -> Iterator[Pool]:
        """Count a lease open around its block; refuse one once the lifespan has closed it."""
        if self.closed:
            raise RuntimeError("the soak pool is closed")
        counters.enter("lease")
        try:
            yield self
        finally:
            counters.leave("lease")


@contextlib.asynccontextmanager
async def hold_pool(app: App) -> AsyncIterator[dict[str, Pool]]:
    """Open the pool at startup, close it at shutdown with one log line (soak.py counts it)."""
    pool = Pool()
    counters.enter("pool")
    try:
        yield {"pool": pool}
    finally:
        pool.closed = True
        counters.leave("pool")
        logger.info("soak pool closed after %d leases", counters.snapshot()["lease_done"])


def pool_of(request: Request) -> Pool:
    """Return the pool the lifespan put on ``app.state``."""
    pool: Pool = request.app.state.pool
    return pool


def count_sync(request: Request) -> Any:
    """Count the requests a sync flow is open around."""
    counters.enter("flow_sync")
    try:
        yield
    finally:
        counters.leave("flow_sync")


async def count_async(request: Request) -> Any:
    """Count the requests an async flow is open around."""
    counters.enter("flow_async")
    try:
        yield
    finally:
        counters.leave("flow_async")


def server_error(request: Request, exc: Exception) -> dict[str, str]:
    """Answer an unexpected error with the name of its class (and status 500)."""
    return {"soak": "error", "type": type(exc).__name__}


def _int_param(request: Request, name: str, default: int, high: int) -> int:
    text = request.query.get(name, str(default))
    if not (text.isascii() and text.isdigit()) or int(text) > high:
        raise HTTPError(400, f"{name} must be a whole number up to {high}")
    return int(text)


@router.get("/text")
def text(request: Request) -> str:
    """Answer ``soak text`` ``n`` times, from a ``def`` handler, leasing from the pool."""
    with pool_of(request).lease():
        return "soak text" * _int_param(request, "n", 1, 10_000)


@router.get("/json")
async def json_square(request: Request) -> dict[str, int]:
    """Answer ``n`` and its square, from an ``async def`` handler, leasing from the pool."""
    with pool_of(request).lease():
        n = _int_param(request, "n", 0, 1_000_000)
        return {"n": n, "square": n * n}


@router.get("/stats")
def stats(request: Request) -> dict[str, Any]:
    """Report the open and finished streams, WebSockets and flows, and the live threads."""
    values = counters.snapshot()
    # NOTE: this request's own flows are open while it is answered.
    values["flow_sync_open"] -= 1
    values["flow_async_open"] -= 1
    threads = sorted(t.name for t in threading.enumerate())
    return {**values, "threads": threads, "pid": os.getpid()}


@router.post("/echo/sync")
def echo_sync(request: Request) -> dict[str, Any]:
    """Echo the JSON body with the SHA-256 of the raw bytes (``request.json()``)."""
    value = request.json()
    return {"value": value, "sha256": hashlib.sha256(request.read()).hexdigest()}


@router.post("/echo/async")
async def echo_async(request: Request) -> dict[str, Any]:
    """Echo the JSON body with the SHA-256 of the raw bytes (``await request.ajson()``)."""
    value = await request.ajson()
    return {"value": value, "sha256": hashlib.sha256(await request.aread()).hexdigest()}


@router.post("/small", limits={"max_body_size": SMALL_LIMIT})
def small(request: Request) -> dict[str, Any]:
    """Like ``/echo/sync``, for bodies up to 64 KiB."""
    return echo_sync(request)


@router.post("/text")
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


@router.post("/upload/sync")
def upload_sync(request: Request) -> dict[str, Any]:
    """Describe a form parsed with ``request.form()``."""
    form = request.form()
    files = form.multi_items()
    return _describe(form, {n: v.read() for n, v in files if isinstance(v, UploadFile)})


@router.post("/upload/async")
async def upload_async(request: Request) -> dict[str, Any]:
    """Describe a form parsed with ``await request.aform()``."""
    form = await request.aform()
    files = form.multi_items()
    return _describe(form, {n: await v.aread() for n, v in files if isinstance(v, UploadFile)})


@router.get("/sse")
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


@router.websocket("/ws")
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


@router.get("/stream/fail")
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


@router.get("/cancelled/async")
async def cancelled_async(request: Request) -> str:
    """Await a task this handler cancelled: its ``CancelledError`` is the handler's own."""
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    await task
    return "not reached"


@router.get("/cancelled/sync")
def cancelled_sync(request: Request) -> str:
    """Raise ``CancelledError`` from a ``def`` handler."""
    raise asyncio.CancelledError


@router.get("/double-type")
def double_type(request: Request) -> Response:
    """Add a second Content-Type, which ``Headers.add`` refuses (a 500)."""
    response = Response.text("two types")
    response.headers.add("content-type", "text/html")
    return response


@router.get("/reset")
def reset(request: Request) -> Response:
    """Answer 205 from a body that must not go out."""
    return Response.text("soak text " * 100, status=205)


@router.get("/whoami")
def whoami(request: Request) -> dict[str, Any]:
    """Answer the client's address and the root path, as the app sees them."""
    client = request.client
    return {"client": client.host if client else None, "root_path": request.root_path}


@router.get("/page")
def page(request: Request) -> Response:
    """Render the compiled template with ``name``."""
    return templates.render(request, "page.html", {"name": request.query.get("name", "")})


@router.websocket("/ws/json")
async def websocket_json(ws: WebSocket) -> None:
    """Answer each JSON message with ``{"echo": value}`` (``iter_json()``) until the client
    leaves or sends what is not JSON (closed with 1007)."""
    counters.enter("ws")
    try:
        await ws.accept()
        async for value in ws.iter_json():
            await ws.send_json({"echo": value})
    finally:
        counters.leave("ws")


@router.post("/login")
def login(request: Request) -> Response:
    """Keep the form's ``name`` in the session, flash a welcome, and redirect to ``/me``."""
    name = request.form().get("name", "")
    visit = _int_param(request, "visit", 0, 1_000_000)
    request.session["user"] = name
    flash(request, f"welcome {name}", "success")
    return Response.redirect(request.url_for("me", _query={"visit": visit}), status=303)


@router.get("/me")
def me(request: Request) -> dict[str, Any]:
    """Answer the session's user, ``?visit=`` as a number (-1 when it is not one), and the
    flashed messages, which this read removes."""
    with pool_of(request).lease():
        return {
            "user": request.session.get("user"),
            "visit": request.query.get("visit", -1, type=int),
            "flashes": get_flashed_messages(request, with_categories=True),
        }


class SoakAfterError(RuntimeError):
    """The error a failing after-response callback raises."""


def after_sync(mode: str) -> None:
    """A ``def`` after-response callback: quick, slow (it blocks), or failing."""
    try:
        if mode == "slow":
            time.sleep(AFTER_SLOW)
        elif mode == "fail":
            raise SoakAfterError("soak after-response failure")
    finally:
        counters.leave("after")


async def after_async(mode: str) -> None:
    """An ``async def`` after-response callback: quick, slow, or failing."""
    try:
        if mode == "slow":
            await asyncio.sleep(AFTER_SLOW)
        elif mode == "fail":
            raise SoakAfterError("soak after-response failure")
    finally:
        counters.leave("after")


AFTER_CALLBACKS: dict[str, Callable[[str], Any]] = {"sync": after_sync, "async": after_async}


@router.get("/after")
def after(request: Request) -> Response:
    """Answer ``after n``, whole or streamed, and leave a callback (``colour``, ``mode``) for
    after it."""
    mode, colour = request.query.get("mode", "quick"), request.query.get("colour", "sync")
    if mode not in ("quick", "slow", "fail") or colour not in AFTER_CALLBACKS:
        raise HTTPError(400, "mode is quick, slow or fail; colour is sync or async")
    n = request.query.get("n", 0, type=int)
    counters.enter("after")
    request.after_response(AFTER_CALLBACKS[colour], mode)
    if request.query.get("stream") == "1":
        return Response.stream(iter([b"after ", b"%d" % n]), media_type="text/plain")
    return Response.text(f"after {n}")


def create_app() -> App:
    """Build the soak app (``microweb serve "bench/soak_app.py:create_app()"``)."""
    app = App(limits=Limits(spool_threshold=SPOOL_THRESHOLD, max_body_size=4 * 1024 * KiB))
    app.install(AccessLog())
    app.install(ProxyHeaders(trusted=["127.0.0.1"]))
    app.install(TrustedHosts(TRUSTED_HOSTS))
    app.install(CORS())
    app.install(CSRF())
    app.install(Sessions(SESSION_SECRET))
    app.install(GZip())
    app.install(Static(STATIC_DIR, prefix="/static"))
    app.lifespan(hold_pool)
    app.middleware(count_sync)
    app.middleware(count_async)
    app.error_handler(500)(server_error)
    app.include(router)
    return app
