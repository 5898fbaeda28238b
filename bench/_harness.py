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
import platform
import sys
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping
from importlib import metadata
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


def make_environ(
    path: str, method: str = "GET", query: str = "", body: bytes = b"", content_type: str = ""
) -> dict[str, Any]:
    """Return a minimal but complete WSGI environ.

    With a ``body`` (or a ``content_type``), ``CONTENT_LENGTH`` and ``CONTENT_TYPE`` are set and
    ``wsgi.input`` holds the body; ``wsgi_call`` and ``wsgi_timer`` give each request a fresh
    ``wsgi.input`` with the same bytes.
    """
    environ: dict[str, Any] = {
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
    if body or content_type:
        environ["CONTENT_LENGTH"] = str(len(body))
        environ["CONTENT_TYPE"] = content_type
        environ["wsgi.input"] = io.BytesIO(body)
    return environ


def _fresh_input(environ: dict[str, Any]) -> bytes | None:
    """The body to renew per request, or None for a request without one."""
    stream = environ["wsgi.input"]
    return None if stream is _EMPTY_INPUT else stream.getvalue()


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

    environ = dict(environ)
    body = _fresh_input(environ)
    if body is not None:
        environ["wsgi.input"] = io.BytesIO(body)
    result = app(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        if hasattr(result, "close"):
            result.close()
    return seen["status"], seen["headers"], body


def wsgi_timer(app: Any, environ: dict[str, Any]) -> Timer:
    """Return a timer running ``app`` on a fresh copy of ``environ`` per request."""
    body = _fresh_input(environ)
    if body is not None:
        return _wsgi_body_timer(app, environ, body)
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


def _wsgi_body_timer(app: Any, environ: dict[str, Any], body: bytes) -> Timer:
    copy = environ.copy
    start_response = _start_response
    stream = io.BytesIO

    def run(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            request = copy()
            request["wsgi.input"] = stream(body)
            result = app(request, start_response)
            for _chunk in result:
                pass
            if hasattr(result, "close"):
                result.close()
        return perf_counter() - started

    return run


# -- ASGI -------------------------------------------------------------------------------------

_REQUEST_MESSAGE = {"type": "http.request", "body": b"", "more_body": False}
_DISCONNECT_MESSAGE = {"type": "http.disconnect"}
# NOTE: Uvicorn's message holds what came since the app's last receive(): asyncio reads the
# socket 256 KiB at a time, and a 10 MiB upload over loopback came in 41-42 messages, 39 of
# them of 256 KiB, with httptools and with h11 alike (uvicorn 0.55, Python 3.11, 2026-12-04).
# This harness sent 64 KiB messages before that was measured.
BODY_CHUNK = 256 * 1024


def make_scope(
    path: str, method: str = "GET", query: bytes = b"", body: bytes = b"", content_type: str = ""
) -> dict[str, Any]:
    """Return an ASGI 3 HTTP scope.

    With a ``body`` (or a ``content_type``), the ``content-length`` and ``content-type`` headers
    are set; pass the same ``body`` to ``asgi_call`` and ``asgi_timer``, which deliver it.
    """
    scope: dict[str, Any] = {
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
    if body or content_type:
        scope["headers"] = [
            *scope["headers"],
            (b"content-length", str(len(body)).encode("ascii")),
            (b"content-type", content_type.encode("latin-1")),
        ]
    return scope


async def _send_nothing(message: dict[str, Any]) -> None:
    pass


def _make_receive(body: tuple[memoryview, ...] = ()) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Return a ``receive`` giving the body (in the chunks of ``body_chunks``), then a disconnect.

    Each chunk is copied into a new ``bytes`` when it is received, as a server's socket read
    makes one: a 10 MiB body cut into chunks once and handed out again and again sits cold in
    memory, and parsing it measured 2x slower (5.5 ms against 2.7 ms for 10 MiB).
    """
    # NOTE: the body arrives first, then a disconnect, so an app that listens for a disconnect
    # after the body does not block forever.
    if not body:
        pending = iter((_REQUEST_MESSAGE,))

        async def receive() -> dict[str, Any]:
            return next(pending, _DISCONNECT_MESSAGE)

        return receive
    chunks, last = iter(body), body[-1]

    async def receive_body() -> dict[str, Any]:
        chunk = next(chunks, None)
        if chunk is None:
            return _DISCONNECT_MESSAGE
        return {"type": "http.request", "body": bytes(chunk), "more_body": chunk is not last}

    return receive_body


def body_chunks(body: bytes, chunk_size: int = BODY_CHUNK) -> tuple[memoryview, ...]:
    """Cut ``body`` into views of ``chunk_size`` bytes, one per ``http.request`` message."""
    view = memoryview(body)
    return tuple(view[start : start + chunk_size] for start in range(0, len(body), chunk_size))


async def asgi_call(
    app: Any, scope: dict[str, Any], body: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """Run one request and return ``(status, headers, body)``, to check an app before timing it.

    The request ``body`` arrives in ``http.request`` messages of ``BODY_CHUNK`` bytes.
    """
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

    await app(dict(scope), _make_receive(body_chunks(body)), send)
    return seen["status"], seen["headers"], seen["body"]


def asgi_timer(
    app: Any,
    scope: dict[str, Any],
    loop: asyncio.AbstractEventLoop,
    body: bytes = b"",
    message_size: int = BODY_CHUNK,
) -> Timer:
    """Return a timer awaiting ``app`` ``n`` times inside ``loop`` (one loop for the whole run).

    Each request gets ``body`` in ``http.request`` messages of ``message_size`` bytes, each a
    fresh ``bytes``.
    """
    copy = scope.copy
    send = _send_nothing
    make_receive = _make_receive
    chunks = body_chunks(body, message_size)

    async def many(n: int) -> float:
        started = perf_counter()
        for _ in range(n):
            await app(copy(), make_receive(chunks), send)
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


def start_app(app: Any, interface: str, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Start ``app`` as a server would (ASGI: lifespan startup); return what stops it.

    The stopper runs the lifespan shutdown (ASGI) or the callable's ``close()`` (WSGI, if any).
    """
    if interface == "asgi":
        lifespan = Lifespan(app)
        loop.run_until_complete(lifespan.startup())
        return lambda: loop.run_until_complete(lifespan.shutdown())
    close: Callable[[], None] | None = getattr(app, "close", None)
    return close if close is not None else (lambda: None)


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


def package_version(name: str) -> str | None:
    """Return the installed version of ``name``, or the module's ``__version__``, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return getattr(sys.modules.get(name), "__version__", None)


def falcon_is_compiled() -> bool:
    """Whether the installed Falcon is the Cython build (``falcon.app`` is not a ``.py`` file)."""
    try:
        import falcon.app
    except ImportError:
        return False
    return not str(falcon.app.__file__).endswith(".py")


def describe_versions(names: Iterable[str]) -> str:
    """Return one line: the Python version and machine, each package's version, Falcon's build."""
    parts = []
    for name in names:
        version = package_version(name)
        parts.append(f"{name} {version}" if version else f"{name} (not found)")
    falcon = "compiled" if falcon_is_compiled() else "pure Python"
    python = f"Python {platform.python_version()} on {platform.machine()}"
    return f"{python}; {', '.join(parts)}; falcon.App is {falcon}"
