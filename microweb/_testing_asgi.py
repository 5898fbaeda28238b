"""The ASGI side of ``TestClient``: its event loop thread, the lifespan, the scope a server gives.

WebSocket sessions are in ``_testing_websocket``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote

import httpx

from ._app_loop import new_loop, run_until_stopped, stop_loop
from ._testing_http import AppExit, ASGITransport, run_served, served
from ._testing_http import written as written_path
from ._testing_sides import AsyncSide, arecord_answer, astop_if_reported
from ._testing_wsgi import reader

if TYPE_CHECKING:
    from ._app import App
    from ._asgi import ASGIDriver

T = TypeVar("T")

# NOTE: seconds the lifespan waits for the app's task to end once a step failed.
WAIT = 10


class LoopThread:
    """An event loop on a daemon thread, for driving the ASGI app from sync test code."""

    def __init__(self) -> None:
        self.loop = new_loop()
        # NOTE: set as stop() begins: a call that another thread's stop() cut off is told so.
        self.stopping = False
        # NOTE: stopped as a server's asyncio.run() ends: the tasks left are cancelled.
        self._thread = threading.Thread(target=run_until_stopped, args=(self.loop,), daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        # NOTE: not run_coroutine_threadsafe(), whose future turns the app's own
        # concurrent.futures.CancelledError into asyncio's, which WSGI does not raise.
        return run_served(self.loop, coro)

    def stop(self) -> None:
        self.stopping = True
        self.loop.call_soon_threadsafe(stop_loop, self.loop)
        self._thread.join()  # NOTE: run_until_stopped() closes the loop as it ends.


class Lifespan:
    """Runs the ASGI lifespan protocol against the app, as a server does."""

    def __init__(self, app: ASGIDriver) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: Any) -> None:
        await self._outbox.put(dict(message))

    async def _step(self, kind: str) -> None:
        await self._inbox.put({"type": f"lifespan.{kind}"})
        replied = asyncio.ensure_future(self._outbox.get())
        assert self._task is not None
        await asyncio.wait({replied, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not replied.done():
            # NOTE: the app's task ended without a reply: a hook's SystemExit (served()), raised
            # in the test as the WSGI side raises it, where the wait went on for ever.
            replied.cancel()
            self._task.result()
            raise RuntimeError(f"lifespan {kind}: the app returned without a reply")
        reply = replied.result()
        if reply["type"] != f"lifespan.{kind}.complete":
            # NOTE: a hook's SystemExit is said failed, then raised on: raised in the test, as
            # the WSGI side raises it, rather than the failure that names it. So is its
            # GeneratorExit, which the task keeps as it is (review341).
            await asyncio.wait({self._task}, timeout=WAIT)
            if self._task.done() and isinstance(self._task.exception(), (AppExit, GeneratorExit)):
                self._task.result()
            raise RuntimeError(f"lifespan {kind} failed: {reply.get('message', '')}")

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self._task = asyncio.ensure_future(served(self._app(scope, self._inbox.get, self._send)))
        await self._step("startup")

    async def shutdown(self) -> None:
        await self._step("shutdown")
        if self._task is not None:
            await self._task


def as_served(app: Any) -> Any:
    """Wrap the ASGI ``app`` so that an HTTP scope is what a server gives it.

    A scope made from an httpx request (``ASGITransport``, as httpx's own) has
    ``("testserver", None)`` as ``server`` when the URL has the
    scheme's default port, where the WSGI side (``SERVER_PORT``), Uvicorn and Hypercorn give 80
    or 443; it keeps the spaces and tabs around a header value, which every server strips; and
    it has only httpx's normalised path, where the transport knows the one the test wrote.
    """

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        server = scope.get("server")
        if server is not None and server[1] is None:
            scope["server"] = (server[0], 443 if scope.get("scheme") == "https" else 80)
        if scope["type"] == "http":
            scope["headers"] = [(name, value.strip(b" \t")) for name, value in scope["headers"]]
            written = written_path.get()
            if written is not None:
                scope["raw_path"], scope["path"] = written, unquote(written.decode("ascii"))
        await app(scope, receive, send)

    return asgi


def asgi_side(
    app: App, peer: list[tuple[str, int] | None], root_path: str
) -> tuple[LoopThread, ASGIDriver, httpx.AsyncClient]:
    """Make the ASGI side of a ``TestClient``: its event loop thread, the app's driver and the
    httpx client that sends requests to it, the peer address read from ``peer`` at each."""
    # NOTE: the app first: a loop thread started before an as_asgi() that raised (a plugin
    # that refuses a route) ran until exit, one more at each request.
    driver = app.as_asgi()
    loop = LoopThread()
    transport = ASGITransport(as_served(driver), reader(peer), root_path)
    client = AsyncSide(
        transport=transport,
        event_hooks={"request": [astop_if_reported], "response": [arecord_answer]},
    )
    return loop, driver, client
