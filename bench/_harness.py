"""Drive WSGI and ASGI callables in-process and time them.

No sockets and no servers: a prebuilt environ (or scope) is handed to the callable directly, the
response body is consumed, and the loop is timed with ``time.perf_counter``. Each measurement is
calibrated to last about ``seconds`` per repeat and the best repeat is reported, as ``timeit``
does. Several measurements are taken in interleaved rounds, so that background load on the machine
spreads over all of them. The garbage collector is paused inside a repeat (and run between
repeats, with the apps frozen out of it) to cut noise.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import sys
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from pathlib import Path
from time import perf_counter
from typing import Any, TypeVar

# NOTE: bench the checkout these scripts live in, even when microweb is not installed.
_REPO = str(Path(__file__).resolve().parent.parent)
if _REPO not in sys.path:
    sys.path.insert(1, _REPO)

K = TypeVar("K", bound=Hashable)

Timer = Callable[[int], float]
"""A function that runs ``n`` requests and returns the elapsed seconds."""

_EMPTY_INPUT = io.BytesIO(b"")


# -- WSGI -------------------------------------------------------------------------------------


def make_environ(path: str, method: str = "GET", query: str = "") -> dict[str, Any]:
    """Return a minimal but complete WSGI environ for a request without a body."""
    return {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "50000",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_ACCEPT": "*/*",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": _EMPTY_INPUT,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }


def _write(data: bytes) -> None:
    pass


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    return _write


def wsgi_call(app: Any, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Run one request and return ``(status, headers, body)``, to check an app before timing it."""
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen["status"] = int(status.split(" ", 1)[0])
        seen["headers"] = {name.lower(): value for name, value in headers}
        return _write

    result = app(dict(environ), start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return seen["status"], seen["headers"], body


def wsgi_timer(app: Any, environ: dict[str, Any]) -> Timer:
    """Return a timer running ``app`` on a fresh copy of ``environ`` per request."""
    copy = environ.copy
    start_response = _start_response

    def run(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            result = app(copy(), start_response)
            for _chunk in result:
                pass
            if hasattr(result, "close"):
                result.close()
        return perf_counter() - started

    return run


# -- ASGI -------------------------------------------------------------------------------------

_REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT_MESSAGE = {"type": "http.disconnect"}


def make_scope(path: str, method: str = "GET", query: bytes = b"") -> dict[str, Any]:
    """Return an ASGI 3 HTTP scope for a request without a body."""
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": query,
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8000"), (b"accept", b"*/*")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _send_nothing(message: dict[str, Any]) -> None:
    pass


def _make_receive() -> Callable[[], Awaitable[dict[str, Any]]]:
    # NOTE: the body arrives first, then a disconnect, so an app that listens for a disconnect
    # after the body does not block forever.
    messages = iter((_REQUEST_MESSAGE,))

    async def receive() -> dict[str, Any]:
        return next(messages, _DISCONNECT_MESSAGE)

    return receive


async def asgi_call(app: Any, scope: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    """Run one request and return ``(status, headers, body)``, to check an app before timing it."""
    seen: dict[str, Any] = {"body": b""}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
            seen["headers"] = {
                name.decode("latin-1").lower(): value.decode("latin-1")
                for name, value in message.get("headers", [])
            }
        elif message["type"] == "http.response.body":
            seen["body"] += message.get("body", b"")

    await app(dict(scope), _make_receive(), send)
    return seen["status"], seen["headers"], seen["body"]


def asgi_timer(app: Any, scope: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Timer:
    """Return a timer awaiting ``app`` ``n`` times inside ``loop`` (one loop for the whole run)."""
    copy = scope.copy
    send = _send_nothing
    make_receive = _make_receive

    async def many(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            await app(copy(), make_receive(), send)
        return perf_counter() - started

    def run(n: int) -> float:
        return loop.run_until_complete(many(n))

    return run


class Lifespan:
    """Run the ASGI lifespan protocol for an app, as a server would around its requests."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        try:
            await self._app(scope, self._inbox.get, self._outbox.put)
        except Exception:  # an app without lifespan support may raise; servers ignore that
            await self._outbox.put({"type": "lifespan.unsupported"})

    async def startup(self) -> None:
        """Send ``lifespan.startup`` and wait for the answer."""
        self._task = asyncio.ensure_future(self._run())
        await self._inbox.put({"type": "lifespan.startup"})
        answer = await self._outbox.get()
        if answer["type"] == "lifespan.startup.failed":
            raise RuntimeError(f"lifespan startup failed: {answer.get('message', '')}")

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app to finish."""
        if self._task is None or self._task.done():
            return
        await self._inbox.put({"type": "lifespan.shutdown"})
        await self._outbox.get()
        await self._task


# -- Timing -----------------------------------------------------------------------------------


def _timed(timer: Timer, n: int) -> float:
    gc.disable()
    try:
        return timer(n)
    finally:
        gc.enable()


def calibrate(timer: Timer, seconds: float) -> int:
    """Return how many requests fill about ``seconds`` (at least 1), after a warm-up."""
    n = 1
    while True:
        elapsed = _timed(timer, n)
        if elapsed >= min(0.02, seconds / 4) or n >= 1 << 22:
            break
        n *= 4
    per_call = elapsed / n
    return max(1, int(seconds / per_call))


def measure(timer: Timer, repeats: int, seconds: float) -> float:
    """Return the best seconds per request over ``repeats`` runs of about ``seconds`` each."""
    return measure_many({"only": timer}, repeats, seconds)["only"]


def measure_many(timers: Mapping[K, Timer], repeats: int, seconds: float) -> dict[K, float]:
    """Time several things in interleaved rounds; return the best seconds per request of each.

    Every round runs every timer once (in a rotated order), so a noisy moment on the machine
    hurts all of them alike instead of one, and ratios between them stay fair.
    """
    # NOTE: freezing the apps (built by now) keeps collections between rounds cheap, even
    # with 10,000 routes alive.
    gc.collect()
    gc.freeze()
    try:
        counts = {key: calibrate(timer, seconds) for key, timer in timers.items()}
        best = dict.fromkeys(timers, float("inf"))
        keys = list(timers)
        for round_index in range(repeats):
            shift = round_index % len(keys)
            for key in keys[shift:] + keys[:shift]:
                gc.collect()
                best[key] = min(best[key], _timed(timers[key], counts[key]) / counts[key])
    finally:
        gc.unfreeze()
    return best


def decode_body(body: bytes, expected: Any) -> Any:
    """Decode ``body`` the way ``expected`` is written (text if a ``str``, else JSON)."""
    text = body.decode("utf-8")
    return text if isinstance(expected, str) else json.loads(text)


def format_table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    """Return rows as a plain-text table: first column left-aligned, the others right-aligned."""
    all_rows = [list(header), *(list(row) for row in rows)]
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(all_rows[0]))]
    lines = []
    for index, row in enumerate(all_rows):
        cells = [row[0].ljust(widths[0])] + [
            cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
        ]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)
