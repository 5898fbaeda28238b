"""The ASGI side of ``TestClient``'s HTTP requests: the app's answer, read as it is sent.

``httpx.ASGITransport`` runs the app to its end and hands over the body whole, so a streamed
answer could be read only once it had ended, and an endless one never. Here the app runs in a
task of its own; the response comes back once its head is sent, and each chunk of the body as
the app sends it. Closing the response before the end is a client that goes away: the app's
``receive()`` says ``http.disconnect``, as a server's does.
"""

from __future__ import annotations

import asyncio
import contextvars
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

import httpx

from ._app_loop import run_on_loop
from ._body import MAX_LENGTH_DIGITS
from ._close_wait import close_wait
from ._testing_content import uploaded
from ._testing_sides import Answer
from ._testing_wsgi import CLIENT_CLOSED, check_scheme, refused_request_head, take_written_path

T = TypeVar("T")

# NOTE: seconds the close of a response waits for the app to end (its stream closed, its
# after-response work done) before it cancels the app's task, as WebSocket sessions do.
WAIT = 10
# NOTE: chunks the app may send ahead of the reader: a server's socket buffer takes a few
# before send() waits, and an endless stream must not fill memory meanwhile.
AHEAD = 4

# NOTE: the path the test wrote, for the request being sent in this task (see as_served()).
written: contextvars.ContextVar[bytes | None] = contextvars.ContextVar("written", default=None)


class AppExit(Exception):
    """What the task of an app's call (``served()``) ends with instead of the ``SystemExit`` or
    ``KeyboardInterrupt`` that the app let out; ``run_served()`` raises that in the test."""

    def __init__(self, ending: BaseException) -> None:
        super().__init__(repr(ending))
        self.ending = ending


async def served(call: Awaitable[None]) -> None:
    """Await an app's call as a server's task does: its ``SystemExit`` ends the call, not the loop.

    Raises:
        AppExit: For a ``SystemExit`` or ``KeyboardInterrupt`` of the app's.
    """
    try:
        await call
    except (SystemExit, KeyboardInterrupt) as exc:
        # NOTE: raised out of a task, asyncio lets them out of the loop, which stopped: the call
        # raised LoopStopped, and every later one "Event loop is closed". Uvicorn catches them in
        # its task and serves on (docs/errors.md); the WSGI side raises them from the call. An
        # Exception on the loop (a wait_for() task raises it too), the app's own in the test.
        raise AppExit(exc) from None


def run_served(loop: asyncio.AbstractEventLoop, awaitable: Awaitable[T]) -> T:
    """Run ``awaitable`` on ``loop`` from the test's thread, as ``run_on_loop()`` does; raise the
    ``SystemExit`` or ``KeyboardInterrupt`` of an app's call (``served()``) it met as it was."""
    ending = None
    try:
        return run_on_loop(loop, awaitable)
    except AppExit as ended:
        ending = ended.ending
    raise ending  # NOTE: out of the except block: no context to chain.


class ASGITransport(httpx.AsyncBaseTransport):
    """An httpx transport that calls an ASGI app as a server would, and streams its answer."""

    def __init__(
        self, app: Any, peer: Callable[[], tuple[str, int] | None], root_path: str = ""
    ) -> None:
        self.app, self.peer, self.root_path = app, peer, root_path

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        check_scheme(request.url)
        refused = refused_request_head(request)
        if refused is not None:
            return refused
        if _malformed_length(request.headers):
            # NOTE: h11 and httptools answer 400 before the app runs, as Waitress does (the
            # WSGI side's answer); handed to the app, its flows ran around the core's 400.
            return httpx.Response(400, text="invalid Content-Length")
        token = written.set(take_written_path(request))
        try:
            # NOTE: the app's task is made here, and copies this context: the written path,
            # and the list that collects unhandled errors for raise_server_exceptions.
            scope = _scope(request, self.peer(), self.root_path)
            exchange = _Exchange(self.app, scope, request)
        finally:
            written.reset(token)
        status, headers = await exchange.head()
        return Answer(status, headers=headers, stream=exchange)


def _scope(
    request: httpx.Request, client: tuple[str, int] | None, root_path: str
) -> dict[str, Any]:
    url = request.url
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": request.method,
        "headers": [(name.lower(), value) for name, value in request.headers.raw],
        "scheme": url.scheme,
        "path": url.path,
        "raw_path": url.raw_path.partition(b"?")[0],
        "query_string": url.query,
        # NOTE: raw_host, the name a server can have: url.host is an IDN host decoded ("例え.jp").
        "server": (url.raw_host.decode("ascii"), url.port),
        "client": client,
        # NOTE: the path keeps the root path, as the ASGI spec has it; the driver takes it out.
        "root_path": root_path,
    }


def _announced(headers: httpx.Headers) -> int | None:
    """Return the body length that ``headers`` announce, if a server would frame it by that.

    ``None`` for a chunked body, and for a malformed or repeated ``Content-Length``, which the
    app answers itself, as under Uvicorn's h11.
    """
    lengths = [value.strip(" \t") for value in headers.get_list("content-length")]
    if "transfer-encoding" in headers or len(lengths) != 1 or not _DIGITS.fullmatch(lengths[0]):
        return None
    # NOTE: int() of more than 4,300 digits raised ValueError into the test: leading zeros
    # dropped, as httptools reads them, and a length no body has left to the app's 413.
    digits = lengths[0].lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_LENGTH_DIGITS else None


_DIGITS = re.compile(r"[0-9]+")


def _malformed_length(headers: httpx.Headers) -> bool:
    """Whether ``headers`` frame the body by a ``Content-Length`` that is not one number.

    One beside ``Transfer-Encoding`` frames nothing (RFC 9112 6.3): ignored, as Waitress does.
    """
    if "transfer-encoding" in headers:
        return False
    lengths = {value.strip(" \t") for value in headers.get_list("content-length")}
    return len(lengths) > 1 or not all(map(_DIGITS.fullmatch, lengths))


class _End:
    """In the queue of chunks: the app sent its last one."""


class Ended(asyncio.Future[Any]):
    """What stands for an app's task that has ended, once its exchange or its WebSocket
    session has let go of it (a done task keeps its context: the ContextVar values the app
    set, and all they hold)."""


def ended_in_place_of(task: asyncio.Future[Any]) -> asyncio.Future[Any]:
    """Return an ``Ended`` future with no result, done, for ``task``, done too, to stand for."""
    ended = Ended(loop=task.get_loop())
    ended.set_result(None)
    return ended


class _Exchange(httpx.AsyncByteStream):
    """One request to the ASGI app: its task, its ``receive()`` and ``send()``, and its body."""

    def __init__(self, app: Any, scope: dict[str, Any], request: httpx.Request) -> None:
        self._request = request
        assert isinstance(request.stream, httpx.AsyncByteStream)
        self._upload = request.stream.__aiter__()
        self._body_sent = False
        # NOTE: the bytes of the body left to hand over, where a Content-Length announces them.
        self._unsent = _announced(request.headers)
        self._head: dict[str, Any] | None = None
        self._started = asyncio.Event()
        self._chunks: asyncio.Queue[bytes | _End] = asyncio.Queue(AHEAD)
        # NOTE: set once the answer is over for the client: read to its end, or left.
        self._over = asyncio.Event()
        self._left = False
        self._outcome_taken = False
        # NOTE: what the test's own request body (a content= generator) raised, if it did.
        self._upload_error: Exception | None = None
        self._task: asyncio.Future[Any] = asyncio.ensure_future(
            served(app(scope, self._receive, self._send))
        )

    async def _receive(self) -> dict[str, Any]:
        # NOTE: once the answer is over, a client that left sends no more of its body, and
        # Uvicorn says http.disconnect the same way after a complete response.
        if not self._body_sent and not self._over.is_set():
            return await self._request_body()
        await self._over.wait()
        return {"type": "http.disconnect"}

    async def _request_body(self) -> dict[str, Any]:
        if self._unsent == 0:
            self._body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        try:
            chunk = uploaded(await self._upload.__anext__())
        except StopAsyncIteration:
            self._body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        except Exception as exc:
            # NOTE: the test's own generator failed. Raised into the app, it was the app's
            # error: logged as its own, a 500 (under WSGI, the test gets it, as the body is
            # read before the app runs). A client whose body fails goes away: so it does here,
            # and the test gets its error from the request.
            self._upload_error = exc
            self._left = True
            self._over.set()
            return {"type": "http.disconnect"}
        if self._unsent is not None:
            # NOTE: as Waitress and Uvicorn's h11 frame it (and the WSGI side reads it): bytes
            # past the Content-Length would start the connection's next request. Handed over,
            # they made the app answer 400 where it answers 200 under those servers (measured:
            # "ab" of "abc" sent with Content-Length: 2; httptools answers 400 itself).
            chunk = chunk[: self._unsent]
            self._unsent -= len(chunk)
            if not self._unsent:
                self._body_sent = True
                return {"type": "http.request", "body": chunk, "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def _send(self, message: Any) -> None:
        if message["type"] == "http.response.start":
            self._head = dict(message)
            self._started.set()
            return
        if message["type"] != "http.response.body" or self._left:
            return  # NOTE: a server takes send() after the client left (TRAPS.md 10).
        chunk = bytes(message.get("body", b""))
        if chunk and self._request.method != "HEAD":
            await self._chunks.put(chunk)
        if not message.get("more_body", False):
            await self._chunks.put(_End())

    async def head(self) -> tuple[int, list[tuple[bytes, bytes]]]:
        """Wait for the app's ``http.response.start``; return its status and headers.

        Raises:
            Exception: What escaped the app before it started its answer.
            RuntimeError: If the app returned without starting one.
        """
        started = asyncio.ensure_future(self._started.wait())
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        await self._raise_upload_error()
        if self._head is None:
            self._take_outcome()
            raise RuntimeError("the ASGI app returned without sending a response")
        return self._head["status"], list(self._head.get("headers", []))

    async def _raise_upload_error(self) -> None:
        """Raise what the test's request body raised, once the app has ended (``WAIT`` s at most).

        Raises:
            Exception: The test's own error, from its ``content=``.
        """
        if self._upload_error is not None:
            await asyncio.wait({self._task}, timeout=WAIT)
            if not self._task.done():
                self._task.cancel()
                await asyncio.wait({self._task}, timeout=WAIT)
            error, self._upload_error = self._upload_error, None
            raise error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._next_chunk()
            if isinstance(chunk, _End):
                self._over.set()
                return
            yield chunk

    async def _next_chunk(self) -> bytes | _End:
        """Return the app's next chunk, or raise what ended it first.

        Raises:
            Exception: The app's error (a stream that failed), once.
            RuntimeError: If the app returned with its answer unfinished.
        """
        if self._chunks.empty() and not self._task.done():
            waiting = asyncio.ensure_future(self._chunks.get())
            await asyncio.wait({waiting, self._task}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                return waiting.result()
            waiting.cancel()
        await self._raise_upload_error()
        if not self._chunks.empty():
            return self._chunks.get_nowait()
        self._take_outcome()
        raise RuntimeError("the ASGI app returned before its response was complete")

    def _take_outcome(self) -> None:
        """Raise the app's error, if it failed and nobody raised it yet."""
        if not self._outcome_taken and self._task.done():
            self._outcome_taken = True
            self._task.result()

    async def aclose(self) -> None:
        """End the exchange: a client that leaves, if the answer is not over; wait for the app.

        Raises:
            Exception: An error that ended the app and was not raised yet.
            TimeoutError: If the client left and the app did not end within ``CLOSE_WAIT`` and
                ``WAIT`` seconds.
        """
        try:
            if self._over.is_set():
                # NOTE: read to its end: the app's after-response work takes as long as it
                # takes, as under WSGI, where the iterable's close() runs it (httpx's transport
                # waited too).
                await asyncio.wait({self._task})
            else:
                await self._leave()
            self._take_outcome()
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """Drop the app's task once it has ended and its outcome was raised or is not wanted."""
        # NOTE: a done task keeps its context: the request's ContextVar values, and all they
        # hold, lived as long as the response did, which a test keeps after its block.
        if self._task.done() and not isinstance(self._task, Ended):
            self._outcome_taken = True
            self._task = ended_in_place_of(self._task)

    async def _leave(self) -> None:
        """Be a client that goes away before the end, and give the app ``CLOSE_WAIT`` and
        ``WAIT`` seconds to end."""
        self._left = True
        self._over.set()
        while not self._chunks.empty():
            self._chunks.get_nowait()  # NOTE: frees a send() waiting for room.
        # NOTE: CLOSE_WAIT first, the app's own bound on its stream's close (a def generator
        # blocked in the pool, an async one's finally): as long as WAIT, the test's ran out
        # as the app's did, and a stream a server ends with a warning raised TimeoutError in
        # the test, its request cut off (review418).
        bound = close_wait() + WAIT
        await asyncio.wait({self._task}, timeout=bound)
        if not self._task.done():
            # NOTE: bounded, as a server's shutdown is: an app that ignores the disconnect
            # (after-response work that never returns) must not hold the test for ever.
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=WAIT)
            raise TimeoutError(f"the app did not end within {bound:g} s of the client leaving")


class SyncBody(httpx.SyncByteStream):
    """An async response body read from sync code, each chunk a hop to the client's loop
    (running in another thread); ``closed`` tells whether the client closed that loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        body: httpx.AsyncByteStream,
        closed: Callable[[], bool],
    ) -> None:
        self._loop, self._body, self._closed = loop, body, closed

    def __iter__(self) -> Iterator[bytes]:
        chunks = self._body.__aiter__()
        while True:
            if self._closed():
                raise RuntimeError(CLIENT_CLOSED)  # NOTE: "Event loop is closed" said nothing.
            try:
                chunk = run_served(self._loop, _next(chunks))
            except StopAsyncIteration:
                return
            except Exception:
                # NOTE: a close from another thread cancels the read under way (a
                # CancelledError), or stops the loop under it.
                if self._closed():
                    raise RuntimeError(CLIENT_CLOSED) from None
                raise
            yield chunk

    def close(self) -> None:
        if self._closed():
            return  # NOTE: the client's close cancelled the app's task, and waited for it.
        run_served(self._loop, self._body.aclose())


async def _next(chunks: AsyncIterator[bytes]) -> bytes:
    return await chunks.__anext__()
