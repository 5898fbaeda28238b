"""Driving an app's WSGI and ASGI callables by hand, as a server would, and bodies for TestClient.

The scope and environ builders give a minimal GET (or the given method) from ``testserver``;
``wsgi_get`` and ``asgi_get`` make one request and return its status and body, ``wsgi_post``
one whose body is read from a given ``wsgi.input`` (``ShortReads``: in pieces, or slowly);
``raw_pieces`` returns the status, the headers and the body pieces as the server iterates or
receives them.
``drive_lifespan`` plays a server's side of the lifespan protocol. ``requests_left_in_cycles``
tells whether a request outlives its call until a garbage collection; ``python_calls`` counts
the Python functions a call runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from types import FrameType
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

from microweb import App, Request
from microweb._forms import FormBuilder
from microweb.testing import TestClient

Message = dict[str, Any]


# -- ASGI --------------------------------------------------------------------------------------


def http_scope(
    method: str = "GET", path: str = "/", headers: Iterable[Any] = (), root_path: str = ""
) -> Message:
    """Return an ASGI http scope for ``path`` (``root_path`` included) from ``testserver``."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": root_path,
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }


async def drive_lifespan(asgi: Any, steps: list[str]) -> list[dict[str, Any]]:
    """Send ``lifespan.<step>`` for each step (as a server would); return the app's replies."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[dict[str, Any]] = []
    replied = asyncio.Event()

    async def send(message: dict[str, Any]) -> None:
        sent.append(dict(message))
        replied.set()

    scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
    task = asyncio.ensure_future(asgi(scope, inbox.get, send))
    for step in steps:
        replied.clear()
        await inbox.put({"type": f"lifespan.{step}"})
        await asyncio.wait_for(replied.wait(), timeout=5)
        if sent[-1]["type"].endswith(".failed"):
            break
    await asyncio.wait_for(task, timeout=5)
    return sent


def websocket_scope(path: str = "/", subprotocols: Iterable[str] = ()) -> Message:
    """Return an ASGI websocket scope for ``path``, host ``testserver``."""
    scope = http_scope(path=path)
    del scope["method"]
    scope.update(type="websocket", scheme="ws", subprotocols=list(subprotocols))
    return scope


def handshake_messages(asgi: Any, scope: Message) -> list[Message]:
    """Run a WebSocket handshake through an ASGI callable; return what it sent.

    The client sends ``websocket.connect``, and nothing after it.
    """
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(asgi(scope, receive, send), 5))
    return sent


def staying_client() -> Callable[[], Awaitable[Message]]:
    """Return a ``receive`` that gives an empty request body, then blocks as a server's does
    while its client stays connected."""
    delivered = False

    async def receive() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # a server blocks here until the client leaves
        raise AssertionError("unreachable")

    return receive


async def asgi_get(asgi: Any, path: str, root_path: str = "") -> tuple[int, bytes]:
    """Call an ASGI callable with a GET http scope, without any lifespan; return status and body.

    The request body is empty; after it, ``receive`` blocks as a server's does until the client
    leaves.
    """
    messages: list[Message] = []

    async def send(message: Message) -> None:
        messages.append(dict(message))

    await asgi(http_scope(path=path, root_path=root_path), staying_client(), send)
    assert messages[0]["type"] == "http.response.start"
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    return messages[0]["status"], body


async def asgi_call(
    app: App, scope: Message, messages: list[Message], gap: float | None = 0.0
) -> list[Message]:
    """Run ``app.as_asgi()`` once, without any lifespan; return the messages it sent.

    The request body arrives as ``messages`` (see ``body_messages``), ``gap`` seconds apart;
    with ``gap=None`` each is ready at once, as a server's queued messages are (a def handler
    then takes many in one hop to the loop; otherwise one a hop). After them, ``receive``
    blocks as a server's does until the client leaves.
    """
    queue = list(messages)
    queue.reverse()
    sent: list[Message] = []
    asgi = app.as_asgi()

    async def receive() -> Message:
        if queue:
            if gap is not None:
                await asyncio.sleep(gap)
            return queue.pop()
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(dict(message))

    await asyncio.wait_for(asgi(scope, receive, send), timeout=10)
    return sent


def body_messages(*parts: bytes) -> list[Message]:
    """Return ``http.request`` messages carrying ``parts``, the last one without ``more_body``."""
    last = len(parts) - 1
    return [
        {"type": "http.request", "body": part, "more_body": i < last}
        for i, part in enumerate(parts)
    ]


def response_body(sent: list[Message]) -> bytes:
    """Join the bodies of the ``http.response.body`` messages among ``sent``."""
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def request_inbox() -> asyncio.Queue[Message]:
    """Return a queue for ``receive``, holding a request's empty body (put an
    ``http.disconnect`` in it for a client that leaves)."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    inbox.put_nowait({"type": "http.request", "body": b"", "more_body": False})
    return inbox


async def get_root(
    asgi: Any,
    send: Callable[[Message], Awaitable[None]],
    inbox: asyncio.Queue[Message] | None = None,
) -> None:
    """Call ``asgi`` for a ``GET /`` of an empty body (from ``inbox``), within 5 seconds."""
    inbox = request_inbox() if inbox is None else inbox
    await asyncio.wait_for(asgi(http_scope(), inbox.get, send), 5)


def leave_after_sends(asgi: Any, sends: int = 3) -> list[Message]:
    """Call ``asgi`` for a ``GET /`` whose client leaves (``http.disconnect``) once ``sends``
    messages came, as a client gone mid-stream; return what was sent."""
    inbox, sent = request_inbox(), []

    async def send(message: Message) -> None:
        sent.append(message)
        if len(sent) == sends:
            inbox.put_nowait({"type": "http.disconnect"})

    asyncio.run(get_root(asgi, send, inbox))
    return sent


# -- WSGI --------------------------------------------------------------------------------------


def wsgi_environ(method: str = "GET", path: str = "/", **extra: Any) -> dict[str, Any]:
    """Return a WSGI environ (``wsgiref``'s testing defaults, an empty body) with ``extra``."""
    environ: dict[str, Any] = {"REQUEST_METHOD": method, "PATH_INFO": path}
    environ.update(extra)
    setup_testing_defaults(environ)
    return environ


def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    """A WSGI ``start_response`` that keeps nothing."""
    return lambda data: None


def wsgi_get(wsgi: Any, path: str, **extra: Any) -> tuple[str, bytes]:
    """Call a WSGI callable with a GET environ (see ``wsgi_environ``); return status line and body.

    The result is closed, as a server closes it; ``start_response`` must be called once.
    """
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    result = wsgi(wsgi_environ("GET", path, **extra), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    assert len(seen) == 1, seen
    return seen[0], body


class ShortReads(io.BytesIO):
    """A ``wsgi.input`` that gives at most ``most`` bytes a read, as a socket's file may, each
    ``wait`` seconds after it is asked (a slow client); ``tell()`` is how much it gave."""

    def __init__(self, data: bytes, most: int, wait: float = 0.0) -> None:
        super().__init__(data)
        self.most, self.wait = most, wait

    def read(self, size: int | None = -1) -> bytes:
        if self.wait:
            time.sleep(self.wait)
        return super().read(self.most if size is None or size < 0 else min(size, self.most))


def wsgi_post(
    app: App, body: Any, content_type: str | None, length: int | None, path: str = "/"
) -> tuple[str, bytes]:
    """POST through a new ``app.as_wsgi()`` under ``wsgiref.validate``, with ``body`` (a file-like
    object, such as ``ShortReads``) as ``wsgi.input`` and ``length`` as its ``CONTENT_LENGTH``
    (``None``: no length, the input is terminated), with ``content_type`` if not ``None``;
    return the status line and the body.

    The test client reads a body whole before it calls the app: this is the server's own read.
    The result is closed, and so is the app, whose loop thread would outlive the test.
    """
    extra: dict[str, Any] = {"wsgi.input": body}
    if content_type is not None:
        extra["CONTENT_TYPE"] = content_type
    if length is None:
        extra["wsgi.input_terminated"] = True
    else:
        extra["CONTENT_LENGTH"] = str(length)
    environ = wsgi_environ("POST", path, QUERY_STRING="", SCRIPT_NAME="", **extra)
    seen: list[str] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return written.append

    served = app.as_wsgi()
    try:
        result = validator(served)(environ, start_response)
        try:
            answer = b"".join(result)
        finally:
            result.close()
    finally:
        served.close()
    assert len(seen) == 1, seen
    return seen[0], b"".join(written) + answer


# -- the pieces of a response as a server gets them --------------------------------------------


def wsgi_pieces(app: App, path: str, headers: dict[str, str]) -> tuple[int, Any, list[bytes]]:
    """Call ``as_wsgi()`` with a GET; return the status, headers and body pieces as iterated."""
    wsgi = app.as_wsgi()
    extra = {"HTTP_" + k.upper().replace("-", "_"): v for k, v in headers.items()}
    seen: list[Any] = []

    def start_response(status: str, head: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.extend([int(status[:3]), dict(head)])
        return lambda data: None

    result = wsgi(
        wsgi_environ("GET", path, **{"wsgi.input": io.BytesIO(b"")}, **extra), start_response
    )
    try:
        pieces = [piece for piece in result if piece]
    finally:
        getattr(result, "close", lambda: None)()
        wsgi.close()
    return seen[0], seen[1], pieces


def asgi_pieces(app: App, path: str, headers: dict[str, str]) -> tuple[int, Any, list[bytes]]:
    """Call ``as_asgi()`` with a GET; return the status, headers and ``http.response.body`` pieces.

    The call runs on a TestClient's loop, so the app's startup hooks have run.
    """
    scope = http_scope(path=path, headers=[(k.encode(), v.encode()) for k, v in headers.items()])
    messages: list[Message] = []

    async def call(asgi: Any) -> None:
        async def send(message: Message) -> None:
            messages.append(dict(message))

        await asgi(scope, staying_client(), send)

    with TestClient(app, interface="asgi") as client:
        asyncio.run_coroutine_threadsafe(call(client.asgi_app), client.loop).result()
    start = messages[0]
    head = {k.decode(): v.decode() for k, v in start["headers"]}
    pieces = [m["body"] for m in messages[1:] if m.get("body")]
    return start["status"], head, pieces


def raw_pieces(
    app: App, interface: str, path: str, headers: dict[str, str]
) -> tuple[int, Any, list[bytes]]:
    """``wsgi_pieces`` or ``asgi_pieces``, by ``interface``."""
    get = wsgi_pieces if interface == "wsgi" else asgi_pieces
    return get(app, path, headers)


# -- request bodies for TestClient -------------------------------------------------------------


def chunked(interface: str, chunks: Iterable[bytes]) -> Iterator[bytes] | AsyncIterator[bytes]:
    """Return ``chunks`` as a body httpx sends chunked (without Content-Length).

    The WSGI side of TestClient runs a sync httpx client, so it gets an iterator; the ASGI side
    runs an async one, so it gets an async generator.
    """
    chunks = list(chunks)
    if interface == "wsgi":
        return iter(chunks)

    async def agen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return agen()


# -- what a call costs -------------------------------------------------------------------------


def python_calls(fn: Any, *args: Any) -> int:
    """Return how many Python functions ``fn(*args)`` called (``fn`` itself not counted)."""
    calls: list[str] = []

    def profiler(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        fn(*args)
    finally:
        sys.setprofile(previous)
    return len(calls) - 1


# -- what outlives a request -------------------------------------------------------------------


PROBE = b"probe-for-cycles"
# NOTE: how long requests_left_in_cycles() waits for another thread to let go of the counted
# request; generous, as it only runs out for a request kept alive on purpose.
HELD_WAIT = 5.0


def requests_left_in_cycles(
    app: App,
    interface: str,
    method: str,
    path: str,
    body: bytes = b"",
    content_type: str = "",
    cut: bool = False,
    cancel: bool = False,
) -> int:
    """Make one request by hand with the cycle collector off; count the ``Request`` objects
    that only the cycle collector could free afterwards (0: reference counting freed them),
    and the form builders (which hold what a form received).

    With ``cut``, the client leaves after ``body``, though its ``Content-Length`` promised
    more: under WSGI the input ends short, under ASGI ``http.disconnect`` follows. With
    ``cancel`` (ASGI), the server cancels the app's call once it waits (as at a stop).

    A request in a reference cycle keeps its body, form and files in memory until a collection
    of the oldest generation, which a busy server may not run for a long time. An error the
    app raises is expected (a stream that fails midway): it is swallowed here, and logging is
    off meanwhile, since a kept log record holds the error, its traceback and so the request.

    Only the counted request is counted: it alone has ``PROBE`` for its query string, so a
    request left by another test's thread meanwhile is not taken for it.
    """
    headers = {"CONTENT_TYPE": content_type} if content_type else {}
    length = len(body) + 1000 if cut else len(body)
    wsgi = app.as_wsgi() if interface == "wsgi" else None
    asgi = app.as_asgi() if interface == "asgi" else None

    def call(query: bytes = b"") -> None:
        with contextlib.suppress(Exception):
            if interface == "wsgi":
                environ = wsgi_environ(method, path, QUERY_STRING=query.decode(), **headers)
                environ["CONTENT_LENGTH"] = str(length)
                environ["wsgi.input"] = io.BytesIO(body)
                result = wsgi(environ, start_response)
                try:
                    b"".join(result)
                finally:
                    result.close()
            else:
                extra = [(b"content-type", content_type.encode())] if content_type else []
                extra.append((b"content-length", str(length).encode()))
                scope = http_scope(method, path, extra)
                scope["query_string"] = query
                asyncio.run(_call_quietly(asgi, scope, body, cut, cancel))

    logging.disable(logging.CRITICAL)
    call()  # NOTE: the first request starts the threads and fills the caches; not counted.
    gc.disable()
    # PERF: all there is now, garbage or alive, is frozen: the collection below looks only at
    # what the counted request made, and none before it collects the whole heap. In a
    # pytest-xdist worker late in the full suite, one such collection took seconds: these
    # tests took 2 to 6 s each, and still 2 to 4 s with one before the freeze. What garbage
    # is frozen is not counted, and is collected as usual once unfrozen.
    gc.freeze()
    try:
        call(PROBE)
        gc.set_debug(gc.DEBUG_SAVEALL)
        # NOTE: the thread that ran the handler (a pool worker under ASGI, the app loop under
        # WSGI) lets go of its arguments a moment after it has handed the answer back: on a
        # busy machine the request was still held then, so no collection found its cycle (0
        # where 1 was due; CI-like load, review386). Collect again until no thread holds it.
        deadline = time.monotonic() + HELD_WAIT
        while True:
            gc.collect()
            if not _probe_held() or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        return sum(
            (isinstance(found, Request) and found.query_string == PROBE)
            or isinstance(found, FormBuilder)
            for found in gc.garbage
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
        gc.enable()
        logging.disable(logging.NOTSET)
        if wsgi is not None:
            wsgi.close()  # NOTE: its app loop stops (other tests count app loop threads).


def _probe_held() -> bool:
    """Whether the counted request is still alive outside ``gc.garbage``: held by someone."""
    found = {id(each) for each in gc.garbage}
    return any(
        isinstance(each, Request) and each.query_string == PROBE and id(each) not in found
        for each in gc.get_objects()
    )


async def _call_quietly(
    asgi: Any, scope: Message, body: bytes, cut: bool = False, cancel: bool = False
) -> None:
    """Call ``asgi`` once; an error out of it is dropped here, as a server drops it. With
    ``cancel``, the call is cancelled once it has waited a while.

    Not through ``asgi_call``: an error that leaves the app through ``asyncio.wait_for`` and
    ``asyncio.run`` is held in cycles of their own frames, which a server's call never makes.
    """
    messages = body_messages(body)
    if cut:
        messages = [{"type": "http.request", "body": body, "more_body": True}]
        messages.append({"type": "http.disconnect"})

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        pass

    # NOTE: a stream that failed midway raises out of the app: a server logs it, then drops it.
    with contextlib.suppress(Exception):
        if not cancel:
            await asgi(scope, receive, send)
        else:
            call = asyncio.ensure_future(asgi(scope, receive, send))
            await asyncio.wait({call}, timeout=0.05)
            call.cancel()
            await asyncio.wait({call})
            # NOTE: taken (the server's own cancellation, or what the app raised instead), and
            # let go: the task would hold it.
            with contextlib.suppress(BaseException):
                call.result()
            del call
    # NOTE: a server's loop runs on after the call: an async generator the app left unfinished
    # (an aiter_parts() loop left by `break`) is closed by the loop's finaliser a few turns
    # later. asyncio.run() ending at once cancelled that closing (Python 3.12), which left a
    # cycle of its own, with the request in it.
    for _ in range(3):
        await asyncio.sleep(0)
