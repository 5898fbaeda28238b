"""The ASGI 3 driver: ``http`` and ``lifespan`` scopes."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable
from functools import partial
from types import CoroutineType
from typing import TYPE_CHECKING, cast

from ._asgi_body import ASGIBody
from ._asgi_body_terms import default_limit
from ._asgi_lifespan import run_lifespan, start_once
from ._asgi_request import request_of
from ._asgi_streams import body_of, send_rest
from ._asgi_websocket import run_session
from ._concurrency import (
    cancelled_here,
    drive_async,
    error_of_request,
    make_pool,
)
from ._default_answers import client_left, handlers_failed, to_send
from ._effects import (
    ENDED,
    Colored,
    Effects,
    run_after,
)
from ._emission import (
    LengthHeaders,
    encoded_headers,
    plain_answer,
)
from ._error_logs import cut_off
from ._errors import (
    ClientDisconnect,
    own_cancellation,
)
from ._file_threads import close_in_file_thread
from ._media import JSON, TEXT
from ._pipeline import NOT_AWAITED, fail, respond, settle
from ._pool import WorkerPool
from ._request import Request, logged_request
from ._response import Response, StreamBody
from ._types import Message, Receive, Scope, Send

if TYPE_CHECKING:
    from ._plan import Plan

logger = logging.getLogger("microweb")


class ASGIDriver:
    """The app as an ASGI 3 callable.

    Startup hooks run on ``lifespan.startup``, or before the first request when the server
    sends no lifespan; ``def`` handlers run in a bounded thread pool.
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        # NOTE: read once here, not through the plan in every request.
        self.app, self._limits = plan.app, plan.limits
        self.made_pool: WorkerPool | None = None
        self.started = False
        # NOTE: the startup under way or done (a request's task of its own, or the lifespan's
        # future), or None before it and after it failed.
        self.starting: asyncio.Future[None] | None = None
        # NOTE: the exits of the lifespans this callable entered, for its lifespan shutdown.
        self.exits: list[Colored] = []
        # NOTE: the context that as_asgi() was called in, for a startup without lifespan: not
        # the first request's, where an outer ASGI middleware may have set a request id or a
        # trace span, which the hooks (and the tasks they start, for good) would have seen.
        self.app_context = contextvars.copy_context()
        # NOTE: a shutdown step's SystemExit or KeyboardInterrupt, which Uvicorn takes.
        self.shutdown_ended: BaseException | None = None

    @property
    def pool(self) -> WorkerPool:
        """The thread pool for ``def`` handlers, made on first use."""
        if self.made_pool is None:
            self.made_pool = make_pool(self.app.max_threads)
        return self.made_pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # PERF: the HTTP path is this coroutine itself, and its plain answer is sent here: one
        # coroutine instead of three (__call__, _http, _respond): a hello 7.7 -> 6.9 us (A/B).
        if scope["type"] != "http" or not self.started:
            return await self._other(scope, receive, send)
        request = request_of(self.app, self._limits, scope, receive)
        start: Message | None = None
        try:
            outcome = respond(self.plan, request)
            plain = None
            # PERF: an async def handler's coroutine, the common outcome, told by its type
            # first: 260 instructions less than isinstance() over NOT_AWAITED (valgrind).
            if type(outcome) is CoroutineType or not isinstance(outcome, NOT_AWAITED):
                try:
                    # NOTE: an effect generator is not awaited (NOT_AWAITED), as mypy cannot see.
                    result = await outcome  # type: ignore[misc]
                except (Exception, asyncio.CancelledError) as exc:
                    outcome = fail(self.plan, request, error_of_request(exc))
                else:
                    # PERF: a str, dict or list sent as it is, with no Response, outgoing() or
                    # header encoding: an ASGI hello 42,600 -> 33,800 instructions a request,
                    # json 50,000 -> 40,500 (valgrind, PYTHONHASHSEED=0); 4.58 -> 3.65 us in one
                    # A/B of best of 5 x 20,000, though processes differ by up to 20 % here.
                    plain = plain_answer(result, request.method)
                    if plain is None:
                        outcome = settle(self.plan, request, result)
            content: bytes | StreamBody | None
            if plain is not None:
                content, media_type = plain
                start = {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [_TYPES[media_type], _LENGTHS[len(content)]],
                }
            else:
                response = (
                    outcome
                    if isinstance(outcome, Response)
                    else await drive_async(cast("Effects", outcome), self.pool)
                )
                response, headers, content = to_send(self.plan, request, response)
                start = {
                    "type": "http.response.start",
                    "status": response._status,
                    "headers": encoded_headers(headers),
                }
            if isinstance(content, bytes):
                try:
                    await send(start)
                    await send({"type": "http.response.body", "body": content})
                except OSError as exc:
                    raise ClientDisconnect("the client went away") from exc
            else:
                await send_rest(self, start, content, response, request, send)
        except (ClientDisconnect, asyncio.CancelledError) as exc:
            await self._answer_left(request, exc, send, start)
        finally:
            if request._after is not None:
                await self._after_response(request)
            else:
                request._after = ENDED  # NOTE: a callback added from now on would never run.
                if (request._source is not None or request._cleanups) and (
                    closing := _end(request)
                ) is not None:
                    await closing  # NOTE: uploads on disk, closed in a file thread.

    async def _answer_left(
        self,
        request: Request,
        exc: ClientDisconnect | asyncio.CancelledError,
        send: Send,
        started: Message | None,
    ) -> None:
        if isinstance(exc, asyncio.CancelledError):
            if started is None and not cancelled_here():
                # NOTE: sync code raised it on the loop (a def handler with offload=False, a
                # sync flow), which the core took for a cut (the flows are closed); no server
                # cancelled the request: an error of it, as when it comes from the pool.
                await self._answer_error(request, own_cancellation(exc), send)
                return
            # NOTE: the server gave up on the request. A def handler (or its stream) may go on
            # in the pool and read the body later: a source made now is ended by _end(), so
            # that read gets ClientDisconnect instead of holding the thread on receive().
            body_of(request)
            if cancelled_here():
                what = "before its answer" if started is None else "during its answer"
                cut_off(request, exc, what)
            try:
                raise exc
            finally:
                # NOTE: raised here, the cancellation's traceback holds this frame, which held
                # it: a cycle that kept the request until a full collection (a handler cut off
                # by the server, 35 objects).
                del exc
        # NOTE: once the start is made, or when the body's source saw the client leave,
        # there is nobody to answer; else app code raised it: a 400, as under WSGI.
        if started is not None or request._client_gone():
            return
        await self._answer(request, client_left(request, exc), send)

    async def _answer_error(self, request: Request, error: Exception, send: Send) -> None:
        try:
            response = await drive_async(fail(self.plan, request, error), self.pool)
        except ClientDisconnect as left:
            # NOTE: an error handler found the client gone: answered as when no error came
            # first; let out, Uvicorn answered its own 500.
            await self._answer_left(request, left, send, None)
            return
        except asyncio.CancelledError as again:
            if cancelled_here():
                cut_off(request, again, "before its answer")
                raise
            # NOTE: a sync error handler raised it (once more, called again for it): let out,
            # Uvicorn answered its own 500.
            response = handlers_failed(self.plan, request, own_cancellation(again))
        await self._answer(request, response, send)

    async def _answer(self, request: Request, response: Response, send: Send) -> None:
        """Send ``response``, made after the usual path failed; a client gone is no error."""
        response, headers, content = to_send(self.plan, request, response)
        start = {
            "type": "http.response.start",
            "status": response._status,
            "headers": encoded_headers(headers),
        }
        try:
            if isinstance(content, bytes):
                await send(start)
                await send({"type": "http.response.body", "body": content})
            else:
                await send_rest(self, start, content, response, request, send)
        except (ClientDisconnect, OSError):
            pass  # NOTE: the client has gone meanwhile.

    async def _after_response(self, request: Request) -> None:
        # NOTE: first, so no receive() waits meanwhile (_end()'s is a no-op), and made if not
        # yet, so that a callback's is_disconnected() says the request has ended, as Uvicorn's
        # receive() does, whether or not the handler read the body.
        body_of(request).close()
        try:
            # NOTE: after the final send, or the client's leaving: they are cleanup.
            assert request._after is not None
            callbacks = run_after(request._after, partial(logged_request, request))
            await drive_async(callbacks, self.pool)
        except asyncio.CancelledError as exc:
            if cancelled_here():
                cut_off(request, exc, "in its after-response work")
            raise
        finally:
            closing = _end(request)
            if closing is not None:
                await closing

    async def _other(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            # NOTE: the first request of an app served without lifespan runs the startup hooks.
            await start_once(self)
            await self(scope, receive, send)
        elif kind == "lifespan":
            await run_lifespan(self, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            raise ValueError(f"microweb cannot serve ASGI scope type {kind!r}")

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.started:
            await start_once(self)
        request = request_of(self.app, self._limits, scope, receive)
        try:
            await run_session(self, scope, request, receive, send)
        except asyncio.CancelledError as exc:
            if cancelled_here():
                cut_off(request, exc, "in its WebSocket session")
            raise
        finally:
            # NOTE: after-response callbacks of the handshake's flows run once the connection
            # has ended (or the handshake was refused): they are cleanup, as for HTTP.
            if request._after is not None:
                await self._after_response(request)
            else:
                request._after = ENDED
                # NOTE: a body source that a flow made ends as an HTTP request's does.
                if request._source is not None or request._cleanups:
                    closing = _end(request)
                    if closing is not None:
                        await closing


# NOTE: the Content-Type of each plain answer (see plain_answer), encoded once.
_TYPES = {
    media_type: (b"content-type", media_type.encode("latin-1")) for media_type in (TEXT, JSON)
}
# PERF: a plain answer's Content-Length looked up, not formatted: 720 instructions less a
# request (valgrind, hello and last route, 2026-11-30).
_LENGTHS = LengthHeaders(lambda size: (b"content-length", b"%d" % size))


def _end(request: Request) -> Awaitable[None] | None:
    """Close the request's body source and its uploads; await what this returns, if anything.

    Returns:
        ``None``, or, where an upload is on disk, the closing of the uploads in a file thread.
    """
    # PERF: the source read as it is, not through body_of() (a typing.cast() call and a
    # _body_source() call): valgrind instructions per request, ASGI echo 320,103 -> 318,399
    # (bench/icount.sh, PYTHONHASHSEED=0, 2026-12-06).
    made: ASGIBody | None = request._source  # type: ignore[assignment]  # NOTE: ASGI's own.
    if made is not None:
        made.close()
        # PERF: the limit is a method of the request, which refers to the body, and the reader
        # is the request: left in place, that cycle waits for the garbage collector, 1.1 us a
        # request.
        made.limit = default_limit
        made.reader = None
        # NOTE: a read's kept error has a traceback through frames that hold the request,
        # which holds it: a cycle that kept the request until a full collection.
        request._body_error = request._meter = None
    if request._cleanups:
        if request._files_on_disk():
            # PERF: closing a temporary file frees its pages in the kernel, and the loop would
            # serve nobody meanwhile: 0.25-0.75 ms for 10 MiB (median 0.40 ms, 3 x 30 closes of
            # a TemporaryFile, 2-CPU VM, 2026-11-30). The app's call returns once they are
            # closed. Files all in memory are closed here, with no thread hop.
            # NOTE: in the request's context, where the test client that asks for the app's
            # errors looks for a failure to release them; one there went unseen.
            return close_in_file_thread(partial(contextvars.copy_context().run, request.close))
        request.close()
    return None
