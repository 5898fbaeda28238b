"""An app for the ``microweb serve`` tests, shaped by environment variables.

``SERVING_EVENTS``: a file where the handler and the shutdown hook append what happened.
``SERVING_ACCESS_LOG``: install the ``AccessLog`` plugin when set.
``SERVING_TICKER``: when set, an async startup hook starts a background task that never ends by
itself; it records ``ticker-cancelled`` when it is cancelled. With ``awaited``, a shutdown hook
cancels the task and awaits it, letting its ``CancelledError`` out (a failed shutdown step).
``SERVING_FAIL_STARTUP``: when set, a startup hook raises ``ConnectionError``; with ``exit``, it
calls ``sys.exit("DATABASE_URL is not set")``; with ``generator-exit``, it raises
``GeneratorExit("DATABASE_URL is not set")``.
``SERVING_SLOW_STARTUP``: when set, a startup hook takes half a second, then prints
``startup hooks ran``.
``SERVING_HANG_STARTUP``: when set, a startup hook records ``startup-hanging`` and sleeps for
60 s, ``def`` (``sync``) or ``async def`` (``async``).
``SERVING_HANG_SHUTDOWN``: when set, a second shutdown hook records ``hanging`` and sleeps
for 60 s, in a ``def`` hook (``sync``) or an ``async def`` one (``async``).
``SERVING_LIFESPAN``: when set, an async lifespan records ``lifespan-entered`` and, once it is
exited, ``lifespan-exited``; with ``fail``, it raises ``ConnectionError`` before its ``yield``.
``SERVING_WEBSOCKET``: when set, a WebSocket route ``/ws`` records ``ws-open`` once accepted,
echoes text messages, and records ``ws-closed-<code>`` when the client (or the server) ends it.
``SERVING_PLUGINS``: when set, two plugins are installed, whose ``close()`` record
``close-sync`` (a ``def``, installed first) and ``close-async`` (an ``async def``).
``SERVING_SLOW_IMPORT``: when set, importing this module records ``importing``, then takes that
many seconds.
``SERVING_NEVER_REACHED``: when set, ``/users/{user_id:int}`` comes after ``/users/{name}``,
which takes all its requests: the app does not compile (``RouteClash``).
``SERVING_EXIT_AT_COMPILE``: when set, a plugin's ``apply()`` calls
``sys.exit("TEMPLATES_DIR is not set")`` as the app compiles.
``SERVING_CLOSE_STDOUT``: when set, ``/close-stdout`` prints a line and closes ``sys.stdout``.
``SERVING_SLOW_FLOW``: when set, an async flow's cleanup takes that many seconds, then records
``flow-closed``.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

from microweb import App, Limits, Request, Response, WebSocket, WebSocketDisconnect
from microweb.plugins import AccessLog

app = App(limits=Limits(max_body_size=1024 * 1024))
if os.environ.get("SERVING_ACCESS_LOG"):
    app.install(AccessLog())
SLOW_BODY = b"x" * 300_000
_barriers: dict[int, threading.Barrier] = {}
_lock = threading.Lock()


def record(event: str) -> None:
    """Append ``event`` to the events file, if there is one."""
    events = os.environ.get("SERVING_EVENTS")
    if events:
        with Path(events).open("a") as file:
            file.write(f"{event}\n")


if os.environ.get("SERVING_SLOW_IMPORT"):
    record("importing")
    time.sleep(float(os.environ["SERVING_SLOW_IMPORT"]))


@app.on_shutdown
def shutdown() -> None:
    record("shutdown")


if os.environ.get("SERVING_EXIT_AT_SHUTDOWN"):

    @app.on_shutdown
    def flush_or_exit() -> None:
        if os.environ["SERVING_EXIT_AT_SHUTDOWN"] == "generator-exit":
            raise GeneratorExit("flush failed: the disk is full")
        if os.environ["SERVING_EXIT_AT_SHUTDOWN"] == "error":
            raise OSError("flush failed: the disk is full")
        sys.exit("flush failed: the disk is full")


if os.environ.get("SERVING_FAIL_STARTUP"):

    @app.on_startup
    def fail_to_start() -> None:
        if os.environ["SERVING_FAIL_STARTUP"] == "exit":
            sys.exit("DATABASE_URL is not set")
        if os.environ["SERVING_FAIL_STARTUP"] == "generator-exit":
            raise GeneratorExit("DATABASE_URL is not set")
        raise ConnectionError("database is down")


if os.environ.get("SERVING_NEVER_REACHED"):

    @app.get("/users/{name}")
    def user_by_name(request: Request, name: str) -> str:
        return name

    @app.get("/users/{user_id:int}")
    def user_by_id(request: Request, user_id: int) -> str:
        return str(user_id)


if os.environ.get("SERVING_EXIT_AT_COMPILE"):

    class ExitsAtCompile:
        name = "exits-at-compile"

        def apply(self, handler: object, route: object) -> object:
            sys.exit("TEMPLATES_DIR is not set")

    app.install(ExitsAtCompile())


if os.environ.get("SERVING_SLOW_FLOW"):

    @app.middleware
    async def slow_cleanup(request: Request) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.sleep(float(os.environ["SERVING_SLOW_FLOW"]))
            record("flow-closed")


if os.environ.get("SERVING_CLOSE_STDOUT"):

    @app.get("/close-stdout")
    def close_stdout(request: Request) -> str:
        print("closing stdout")
        sys.stdout.close()
        return "closed"


if os.environ.get("SERVING_SLOW_STARTUP"):

    @app.on_startup
    def slow_start() -> None:
        time.sleep(0.5)
        # NOTE: one write, line and newline together: two workers print at once, and print()
        # writes the newline apart, so their lines came out run together.
        sys.stdout.write("startup hooks ran\n")
        sys.stdout.flush()


if os.environ.get("SERVING_HANG_STARTUP") == "sync":

    @app.on_startup
    def hang_at_start() -> None:
        record("startup-hanging")
        time.sleep(60)

elif os.environ.get("SERVING_HANG_STARTUP") == "async":

    @app.on_startup
    async def ahang_at_start() -> None:
        record("startup-hanging")
        await asyncio.sleep(60)


if os.environ.get("SERVING_HANG_SHUTDOWN") == "sync":

    @app.on_shutdown
    def hang() -> None:
        record("hanging")
        time.sleep(60)

elif os.environ.get("SERVING_HANG_SHUTDOWN") == "async":

    @app.on_shutdown
    async def ahang() -> None:
        record("hanging")
        await asyncio.sleep(60)


class SyncClosing:
    name = "sync_closing"

    def close(self) -> None:
        record("close-sync")


class AsyncClosing:
    name = "async_closing"

    async def close(self) -> None:
        await asyncio.sleep(0)
        record("close-async")


if os.environ.get("SERVING_PLUGINS"):
    app.install(SyncClosing())
    app.install(AsyncClosing())


if os.environ.get("SERVING_LIFESPAN"):

    @app.lifespan
    @asynccontextmanager
    async def held_open(app: App) -> AsyncIterator[None]:
        if os.environ["SERVING_LIFESPAN"] == "fail":
            raise ConnectionError("the lifespan's database is down")
        record("lifespan-entered")
        try:
            yield
        finally:
            record("lifespan-exited")


async def tick() -> None:
    try:
        while True:
            await asyncio.sleep(3600)
    except asyncio.CancelledError:
        record("ticker-cancelled")
        raise


if os.environ.get("SERVING_TICKER"):

    @app.on_startup
    async def start_ticker() -> None:
        app.state.ticker = asyncio.get_running_loop().create_task(tick())


if os.environ.get("SERVING_TICKER") == "awaited":

    @app.on_shutdown
    async def stop_ticker() -> None:
        app.state.ticker.cancel()
        await app.state.ticker


@app.get("/slow")
def slow(request: Request) -> bytes:
    record("started")
    time.sleep(float(request.query.get("seconds", "1")))
    record("finished")
    return SLOW_BODY


@app.get("/aslow")
async def aslow(request: Request) -> str:
    record("started")
    await asyncio.sleep(float(request.query.get("seconds", "1")))
    record("finished")
    return "slow"


@app.get("/ablock")
async def ablock(request: Request) -> str:
    # NOTE: an async def handler that blocks the event loop (a time.sleep(), CPU-bound work).
    record("blocking")
    time.sleep(float(request.query.get("seconds", "1")))
    return "blocked"


@app.get("/boom")
def boom(request: Request) -> str:
    raise RuntimeError("boom")


@app.get("/after")
async def after(request: Request) -> Response | str:
    """Answer at once, then work for ``seconds`` in a callback (``colour``: ``async`` or not);
    ``body``: ``stream`` streams the answer, ``none`` answers 204."""
    seconds = float(request.query.get("seconds", "1"))

    def work() -> None:
        record("after-started")
        time.sleep(seconds)
        record("after-finished")

    async def awork() -> None:
        record("after-started")
        await asyncio.sleep(seconds)
        record("after-finished")

    request.after_response(awork if request.query.get("colour") == "async" else work)
    body = request.query.get("body")
    if body == "stream":
        return Response.stream(iter(["ans", "wered"]))
    if body == "none":
        return Response(status=204)
    return "answered"


def _exit() -> None:
    sys.exit("app code's own exit")


@app.get("/exits")
def exits(request: Request) -> Response | str:
    """``sys.exit()`` in the handler (``where=handler``), in a property of its error that
    microweb reads for the log line's port hint (``where=read``), in a stream midway
    (``where=stream`` a ``def`` generator's, ``astream`` an ``async def`` one's) or in an
    after-response callback."""
    where = request.query.get("where")
    if where == "handler":
        _exit()
    if where == "read":
        raise _ExitingHTTPException()
    if where == "stream":
        return Response.stream(_exit_midway())
    if where == "astream":
        return Response.stream(_aexit_midway())
    request.after_response(_exit)
    return "answered"


class _ExitingHTTPException(Exception):
    """Starlette's HTTPException as a port raises it, whose ``status_code`` exits."""

    __module__ = "starlette.exceptions"

    @property
    def status_code(self) -> int:
        _exit()
        return 500


def _exit_midway() -> Iterator[str]:
    yield "first\n"
    _exit()


async def _aexit_midway() -> AsyncIterator[str]:
    yield "first\n"
    _exit()


@app.get("/together/{parties:int}")
def together(request: Request, parties: int) -> str:
    # NOTE: answers only when `parties` requests run at the same time (else 500 after 5 s).
    with _lock:
        barrier = _barriers.setdefault(parties, threading.Barrier(parties, timeout=5))
    barrier.wait()
    return "together"


@app.get("/", name="home")
@app.get("/where", name="where")
def where(request: Request) -> dict[str, object]:
    return {
        "root_path": request.root_path,
        "path": request.path,
        "raw_path": request.raw_path.decode("latin-1"),
        "url": str(request.url),
        "url_for": request.url_for("where"),
        "client": request.client.host if request.client else None,
        "scheme": request.scheme,
        "max_threads": request.app.max_threads,
    }


@app.get("/cookies")
def cookies(request: Request) -> dict[str, str]:
    return dict(request.cookies)


@app.post("/upload")
def upload(request: Request) -> str:
    return str(len(request.read()))


@app.post("/headers-after-body")
def headers_after_body(request: Request) -> list[str]:
    request.read()
    return sorted(request.headers)


@app.get("/fails/{rest:path}")
def fails(request: Request, rest: str) -> Response:
    """Send one chunk, then fail: the server logs the request's path with the error."""

    def chunks() -> Iterator[str]:
        yield "first\n"
        raise RuntimeError("the stream failed")

    return Response.stream(chunks())


@app.get("/cancels")
def cancels(request: Request) -> str:
    """Raise a CancelledError of the handler's own: the request's error (no server's cut)."""
    raise asyncio.CancelledError("the handler's own")


@app.get("/ticks")
def ticks(request: Request) -> Response:
    def chunks() -> Iterator[str]:
        try:
            while True:
                yield "tick\n"
                time.sleep(0.1)
        finally:
            record("stream-closed")

    return Response.stream(chunks())


@app.get("/aticks")
async def aticks(request: Request) -> Response:
    async def chunks() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick\n"
                await asyncio.sleep(0.1)
        finally:
            record("stream-closed")

    return Response.stream(chunks())


@app.get("/arush")
async def arush(request: Request) -> Response:
    """An async stream that never waits: its chunks (64 KiB of ticks) are made ahead of the
    client that reads; records ``stream-closed``."""

    async def chunks() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick\n" * 13_000
                await asyncio.sleep(0)
        finally:
            record("stream-closed")

    return Response.stream(chunks())


@app.get("/quiet")
async def quiet(request: Request) -> Response:
    """An event stream that waits for an event that never comes; records ``stream-closed``."""

    async def events() -> AsyncIterator[str]:
        try:
            yield "ready"
            await asyncio.Event().wait()
        finally:
            record("stream-closed")

    return Response.sse(events())


@app.get("/awaits")
async def awaits(request: Request) -> str:
    """Record ``started``, then wait for an event that never comes; records ``handler-closed``."""
    try:
        record("started")
        await asyncio.Event().wait()
    finally:
        record("handler-closed")
    return "never"


if os.environ.get("SERVING_WEBSOCKET"):

    @app.websocket("/ws")
    async def listen(ws: WebSocket) -> None:
        await ws.accept()
        record("ws-open")
        try:
            while True:
                await ws.send_text(await ws.receive_text())
        except WebSocketDisconnect as exc:
            record(f"ws-closed-{exc.code}")

    @app.websocket("/ws-stubborn")
    async def stubborn(ws: WebSocket) -> None:
        # NOTE: a session that does not end when the server says it is going away.
        await ws.accept()
        record("ws-open")
        await asyncio.sleep(30)
