"""The ASGI 3 driver: ``http`` and ``lifespan`` scopes."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from inspect import GEN_CREATED, getgeneratorstate, isawaitable
from types import CoroutineType, GeneratorType
from typing import TYPE_CHECKING, Any, cast

from ._asgi_body import ASGIBody, default_limit
from ._asgi_request import request_of
from ._asgi_websocket import TURN, run_session
from ._calls import client_left, handlers_failed, to_send
from ._close_wait import Carried, Sending, close_awaited, close_unsent
from ._concurrency import (
    cancelled_here,
    drive_async,
    error_of_request,
    make_pool,
)
from ._effects import (
    ENDED,
    Colored,
    Effects,
    ShutdownError,
    closing_here,
    run_after,
    run_shutdown,
)
from ._emission import (
    LengthHeaders,
    encode_chunk,
    encoded_headers,
    ended_for_a_client_gone,
    plain_answer,
)
from ._error_logs import cut_off, stream_failed, unsent_stream_failed, was_reported
from ._errors import (
    ClientDisconnect,
    log_failure,
    own_cancellation,
)
from ._file_threads import aiter_file_read, close_in_file_thread
from ._files import bound_to_no_thread
from ._in_pool import iterate_in_pool
from ._lifespans import run_startup
from ._media import JSON, TEXT
from ._pipeline import NOT_AWAITED, fail, respond, settle
from ._pool import WorkerPool
from ._pool_futures import run_in_pool
from ._request import Request, logged_request
from ._response import Response, StreamBody
from ._routing import is_async_callable
from ._sse import SSEChunks
from ._stream_ahead import ClosingFor
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
        self._pool: WorkerPool | None = None
        self._started = False
        # NOTE: the startup under way or done (a request's task of its own, or the lifespan's
        # future), or None before it and after it failed.
        self._starting: asyncio.Future[None] | None = None
        # NOTE: the exits of the lifespans this callable entered, for its lifespan shutdown.
        self._exits: list[Colored] = []
        # NOTE: the context that as_asgi() was called in, for a startup without lifespan: not
        # the first request's, where an outer ASGI middleware may have set a request id or a
        # trace span, which the hooks (and the tasks they start, for good) would have seen.
        self._app_context = contextvars.copy_context()
        # NOTE: a shutdown step's SystemExit or KeyboardInterrupt, which Uvicorn takes.
        self.shutdown_ended: BaseException | None = None

    @property
    def pool(self) -> WorkerPool:
        """The thread pool for ``def`` handlers, made on first use."""
        if self._pool is None:
            self._pool = make_pool(self.app.max_threads)
        return self._pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # PERF: the HTTP path is this coroutine itself, and its plain answer is sent here: one
        # coroutine instead of three (__call__, _http, _respond): a hello 7.7 -> 6.9 us (A/B).
        if scope["type"] != "http" or not self._started:
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
                await self._send_rest(start, content, response, request, send)
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
            _body(request)
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
                await self._send_rest(start, content, response, request, send)
        except (ClientDisconnect, OSError):
            pass  # NOTE: the client has gone meanwhile.

    async def _after_response(self, request: Request) -> None:
        # NOTE: first, so no receive() waits meanwhile (_end()'s is a no-op), and made if not
        # yet, so that a callback's is_disconnected() says the request has ended, as Uvicorn's
        # receive() does, whether or not the handler read the body.
        _body(request).close()
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
            await self._startup()
            await self(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        else:
            raise ValueError(f"microweb cannot serve ASGI scope type {kind!r}")

    async def _startup(self) -> None:
        """Run the startup once, for a server without lifespan; the first requests wait for it.

        Raises:
            Exception: What the startup raised; the next call runs it again.
        """
        task = self._starting
        if task is None or (task.done() and not self._started):
            # NOTE: a task of its own, for a server without lifespan, where the first requests
            # start the app: one of them cancelled (its client gone, the server stopping) does
            # not cut the startup off half-way, to be run again from the start by the next
            # request (a second pool opened), and what the hooks set in context variables stays
            # out of that request, as under the lifespan protocol.
            # NOTE: run() for Python 3.10, whose create_task() takes no context.
            create = asyncio.get_running_loop().create_task
            task = self._starting = self._app_context.copy().run(create, self._start())
            task.add_done_callback(self._forget_failed)
        if not task.done():
            await asyncio.wait((task,))  # NOTE: a cancelled caller leaves the task running.
        task.result()

    def _forget_failed(self, done: asyncio.Future[None]) -> None:
        # NOTE: as soon as it ends, not when a waiter looks: a failure whose waiters were all
        # cancelled is still retrieved (no "exception was never retrieved" log) and let go of
        # (a failed one still here is run again, not raised again).
        if (done.cancelled() or done.exception() is not None) and self._starting is done:
            self._starting = None

    async def _lifespan_startup(self) -> None:
        """Run the startup on ``lifespan.startup``, in the lifespan's task; once, as requests do.

        Raises:
            Exception: What the startup raised.
        """
        if self._started:
            return  # NOTE: requests of a server that sent none before ran it.
        if self._starting is not None and not self._starting.done():
            # NOTE: a server that called a request before lifespan.startup (the protocol has
            # it the other way round) started it: a second run would open every resource twice
            # and lose the first run's exits, never shut down.
            await self._startup()
            return
        # NOTE: a request that a server calls before lifespan.startup.complete waits for it.
        done = self._starting = asyncio.get_running_loop().create_future()
        done.add_done_callback(self._forget_failed)
        try:
            await self._start()
        except BaseException as exc:
            done.set_exception(
                exc if isinstance(exc, Exception) else RuntimeError("startup cut off")
            )
            raise
        done.set_result(None)

    async def _start(self) -> None:
        # NOTE: on lifespan.startup, in the lifespan's task, where the shutdown runs too: a
        # lifespan's token made at startup resets at shutdown.
        startup = run_startup(self.plan.startup_steps, self.app)
        self._exits = await drive_async(startup, self.pool)
        self._started = True

    async def _shutdown(self) -> None:
        if not self._started:
            # NOTE: a lifespan.shutdown with no startup of this callable before it (none, or a
            # second shutdown) ran the shutdown hooks and plugins' close() of an app it never
            # started (again), and counted down the serving of another callable (an as_wsgi()
            # one), whose startup steps App then took, never to run them.
            self._release_pool()
            return
        try:
            exits, self._exits = self._exits, []
            _say_still_running(self._pool)
            self.plan.startup_steps.stopped()  # NOTE: as under WSGI (WSGIDriver.close).
            await drive_async(run_shutdown(self.plan.shutdown_sequence(exits)), self.pool)
        finally:
            self._release_pool()
            # NOTE: stopped: a later lifespan.startup (the callable served again) starts it again.
            self._started, self._starting = False, None

    def _release_pool(self) -> None:
        """End the threads of the ``def`` handlers' pool, once their calls end (a new pool is
        made if a call comes later)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._lifespan_startup()
                except Exception as exc:
                    # NOTE: uvicorn's --lifespan auto would log and serve anyway (TRAPS.md 11).
                    log_failure("startup failed", exc_info=True)
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
                    if closing_here(exc):
                        raise  # NOTE: this coroutine's closing.
                    # NOTE: a hook's sys.exit("DATABASE_URL is not set"), let out alone, was
                    # taken by Uvicorn for a lifespan protocol it did not know: it said "serving
                    # on", the first request got a 500 and the process ended (review170). Said
                    # failed first, then raised on, as out of as_wsgi(): the server exits with
                    # its startup failure, a test gets the exception itself.
                    log_failure("startup failed", exc_info=True)
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._shutdown()
                except ShutdownError as exc:
                    # NOTE: every step ran and each failure was logged; report them together.
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                except (KeyboardInterrupt, SystemExit, GeneratorExit) as exc:
                    if closing_here(exc):
                        raise  # NOTE: this coroutine's closing.
                    # NOTE: every step ran, this one logged: said failed, then raised on, as at
                    # startup. Let out alone, Uvicorn took it for a lifespan protocol it did not
                    # know ("ASGI 'lifespan' protocol appears unsupported"). Kept for microweb
                    # serve, which ends with it, as under Waitress (Uvicorn takes it here).
                    self.shutdown_ended = exc
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    raise
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._started:
            await self._startup()
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

    async def _send_rest(
        self,
        start: Message,
        content: StreamBody | None,
        response: Response,
        request: Request,
        send: Send,
    ) -> None:
        """Send the start and the body of a response that is not whole bytes; ``send`` is the
        server's own, whose OSError (the client gone) becomes ``ClientDisconnect`` here."""
        try:
            await _guarded(send)(start)
        except BaseException:
            # NOTE: the client is gone (or the task cancelled): no chunk will be sent, but the
            # stream is closed all the same, as when it is sent (a file, a cursor), within
            # CLOSE_WAIT (a close that never returned held the request's task for ever).
            await self._close_unsent(response.chunks, request)
            raise
        if content is None:
            await self._close_unsent(response.chunks, request)
            await _guarded(send)({"type": "http.response.body", "body": b""})
        else:
            await self._stream_until_disconnect(content, request, _body(request), send)

    async def _close_unsent(self, stream: Any, request: Request) -> None:
        """Close a stream that is not sent, within ``CLOSE_WAIT`` (see ``close_unsent()``)."""
        if stream is not None:
            # NOTE: a task only where there is a stream to close (not a file's HEAD or 304).
            await close_unsent(self._closed_unsent(stream, request), stream, request)

    async def _closed_unsent(self, stream: Any, request: Request) -> None:
        """Close a stream that is not sent; log what its close raises."""
        closing = ClosingFor(request)
        try:
            await self._close_stream(stream)
        except Exception as exc:
            unsent_stream_failed(request, exc)
        except (KeyboardInterrupt, SystemExit) as exc:
            # NOTE: out of the close's task, asyncio raised it again out of its loop.
            raise Carried(exc) from exc
        finally:
            closing.end()

    async def _stream_until_disconnect(
        self, stream: Any, request: Request, body: ASGIBody, send: Send
    ) -> None:
        # NOTE: servers accept send() after the client left (TRAPS.md 10); watch receive() too.
        sending = Sending(asyncio.get_running_loop().create_future())
        sender = asyncio.ensure_future(
            self._send_stream(stream, request, send, sending, body.sends_dropped)
        )
        watcher = asyncio.ensure_future(body.wait_disconnect())
        try:
            # NOTE: woken once the stream is closed too, whose close has CLOSE_WAIT seconds.
            # (A set kept in a local held the sender, whose error's traceback holds this frame.)
            await asyncio.wait(
                {sender, watcher, sending.closing}, return_when=asyncio.FIRST_COMPLETED
            )
            if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
                # NOTE: a watcher that failed says nothing about the client; keep streaming.
                logger.error("disconnect watcher failed", exc_info=watcher.exception())
                await asyncio.wait({sender, sending.closing}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            # NOTE: the server gave up on the request: a sync stream's step goes on in its
            # thread, which the sender waits for and a second cancellation gives up on (only a
            # def handler's cancelled call was counted by _say_still_running).
            if self._pool is not None:
                self._pool.cut_off = True
            raise
        finally:
            watcher.cancel()
            if not sending.closing.done():
                # NOTE: a stream that closes already is let finish, before the request ends
                # (its after-response work included): cut, its finally stopped where it
                # awaited. Its close has CLOSE_WAIT seconds, or until this task is cancelled.
                sender.cancel()
            await close_awaited(sender, sending, stream, request, self._pool)
            await asyncio.wait({watcher})
        if sending.given_up:
            if sending.ended:
                await _guarded(send)({"type": "http.response.body", "body": b""})
            return
        error = None if sender.cancelled() else sender.exception()
        if isinstance(error, Carried):
            error = error.escaped  # NOTE: in the request's own task, the server's to handle.
        # NOTE: the error's traceback will hold this frame: without the dels, the frame, the
        # task and the error make a cycle that keeps the request until a full collection.
        del sender, watcher
        if error is not None:
            try:
                raise error
            finally:
                del error

    async def _send_stream(
        self,
        stream: Any,
        request: Request,
        send: Send,
        sending: Sending,
        dropped: Callable[[], bool] | None = None,
    ) -> None:
        chunks = _async_chunks(stream, self.pool)
        iterator = None
        clock = asyncio.get_running_loop().time
        turn_at = clock() + TURN
        try:
            # NOTE: kept, to close it before the stream, in this task, as the WSGI driver
            # does: otherwise an async generator's finally waits for the garbage collector.
            iterator = aiter(chunks)
            async for chunk in iterator:
                # PERF: bytes told here, with no call, and the server's send() awaited with no
                # coroutine around it: 0.82 -> 0.68 us a chunk (bench/streams.py).
                if type(chunk) is not bytes:
                    # NOTE: a falsy one too (None, 0), which was skipped with no word.
                    chunk = encode_chunk(chunk)
                if chunk:
                    try:
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    except OSError as exc:
                        raise ClientDisconnect("the client went away") from exc
                if clock() >= turn_at:
                    # NOTE: servers' send() returns at once once the client left (and while its
                    # socket takes all), so an async generator with no await of its own never
                    # gave the loop a turn: the disconnect watcher never ran, and an endless
                    # one held the whole server for ever. A sync stream's thread, ahead of the
                    # loop, may have its next chunk ready each time too.
                    await _turn(dropped)
                    turn_at = clock() + TURN
            sending.ended = True
        except ClientDisconnect:
            raise
        except (KeyboardInterrupt, SystemExit) as exc:
            # NOTE: raised out of a task, asyncio raises them again out of its loop: a stream's
            # sys.exit() ended the whole server, where a handler's is answered as any error.
            raise Carried(exc) from exc
        except (Exception, asyncio.CancelledError) as exc:
            if ended_for_a_client_gone(exc, request._client_gone()):
                # NOTE: a generator that returned, short of its declared length, once
                # ais_disconnected() said the client had left: logged as an error, and let out
                # of the app (review169). Ended as a client gone is.
                raise ClientDisconnect("the client went away") from None
            # NOTE: the status line is gone already; end the response without a proper close.
            error = error_of_request(exc)
            try:
                stream_failed(request, error)
                if error is exc:
                    raise
                raise error from exc
            finally:
                del error  # NOTE: no cycle through this frame and the traceback.
        finally:
            # PERF: an async generator that ran to its end has nothing left to close: with the
            # bare send() above, 0.82 -> 0.68 us a chunk (bench/streams.py).
            if iterator is not chunks or getattr(chunks, "ag_frame", chunks) is not None:
                # NOTE: closed in this task, where it ran: in another (a task of its own), its
                # finally reset a context variable's token in another context (ValueError),
                # and left a scope entered in this task from another one.
                sending.closing.set_result(None)
                await _aclose_logged(self._close_sent(iterator, chunks), request)
                sending.closed = True
        await _end_body(send, sending)

    async def _close_sent(self, iterator: Any, stream: Any) -> None:
        """Close the iterator a sent stream gave, then the stream where it is another object."""
        try:
            if iterator is not None and iterator is not stream:
                # NOTE: as the stream is: aclose(), or else its close(), a sync one in the pool
                # (a cursor's close may block).
                await self._close_stream(iterator)
        finally:
            await self._close_stream(stream)

    async def _close_stream(self, stream: Any) -> None:
        if stream is None:
            return
        if getattr(stream, "aclose", None) is not None:
            await stream.aclose()
        elif (type(stream) is GeneratorType and getgeneratorstate(stream) == GEN_CREATED) or (
            type(stream) is SSEChunks and stream.untouched()
        ):
            # NOTE: never started (HEAD, 204, 304, a client gone before the start): its close
            # runs none of its code. Sent to the pool, a HEAD waited for a free thread to end
            # its answer, for as long as slow streams held them all (review181, review184).
            left = stream.close()
            if isawaitable(left):
                await left
        elif getattr(stream, "close", None) is not None:
            if is_async_callable(stream.close):
                # NOTE: its coroutine was made in the pool and dropped, "never awaited".
                await stream.close()
            else:
                # NOTE: what is left to await, the async close of the stream inside gzip's,
                # SSE's or a declared length's, is awaited here, on the loop.
                left = await run_in_pool(self.pool, stream.close)
                if isawaitable(left):
                    await left


def _async_chunks(stream: Any, pool: WorkerPool) -> Any:
    """Return ``stream`` as an async iterable: a sync one runs in ``pool``."""
    if hasattr(stream, "__aiter__"):
        return stream
    if bound_to_no_thread(stream):
        return aiter_file_read(stream, pool)  # NOTE: it holds no thread between its reads.
    return iterate_in_pool(stream, pool)


# NOTE: the Content-Type of each plain answer (see plain_answer), encoded once.
_TYPES = {
    media_type: (b"content-type", media_type.encode("latin-1")) for media_type in (TEXT, JSON)
}
# PERF: a plain answer's Content-Length looked up, not formatted: 720 instructions less a
# request (valgrind, hello and last route, 2026-11-30).
_LENGTHS = LengthHeaders(lambda size: (b"content-length", b"%d" % size))


async def _end_body(send: Send, sending: Sending) -> None:
    """Send the end of a streamed body, unless the driver ended it (``give_up_on_close``)."""
    if not sending.given_up:
        await _guarded(send)({"type": "http.response.body", "body": b""})


def _say_still_running(pool: WorkerPool | None) -> None:
    """Log, at the lifespan's shutdown, the calls of ``def`` code that ``pool`` still runs."""
    # NOTE: only after a cut-off: a thread whose call has just returned is counted until it
    # is back at the queue, and the request it answered may have ended before that.
    running = pool.running() if pool is not None and pool.cut_off else 0
    if running:
        # NOTE: Uvicorn cancels the requests left at the end of its grace period, then shuts
        # the lifespan down; a def handler (or a sync stream) of a cancelled request goes on in
        # its thread, which no one can stop: the shutdown hooks closed what it used under it,
        # and the process's exit cut it off, and no line said so.
        logger.warning(
            "shutting down with %d call%s of def code still running in the thread pool (a "
            "handler or stream of a request the server cut off): the shutdown hooks run now, "
            "and the process's exit ends %s",
            running,
            "" if running == 1 else "s",
            "it" if running == 1 else "them",
        )


def _body(request: Request) -> ASGIBody:
    """The request's body source, made now if not yet (an ``ASGIRequest``'s is an ``ASGIBody``)."""
    return cast("ASGIBody", request._body_source())


def _end(request: Request) -> Awaitable[None] | None:
    """Close the request's body source and its uploads; await what this returns, if anything.

    Returns:
        ``None``, or, where an upload is on disk, the closing of the uploads in a file thread.
    """
    # PERF: the source read as it is, not through _body() (a typing.cast() call and a
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


def _guarded(send: Send) -> Send:
    # SPEC: servers may raise an OSError subclass from send() once the client has gone.
    async def guarded(message: Message) -> None:
        try:
            await send(message)
        except OSError as exc:
            raise ClientDisconnect("the client went away") from exc

    return guarded


async def _aclose_logged(closing: Awaitable[None], request: Request) -> None:
    """Await ``closing``, that of a stream that was sent (or cut); an error of it is logged as
    the stream's."""
    closing_for = ClosingFor(request)  # NOTE: for the warning of a close given up on.
    try:
        await closing
    except ClientDisconnect:
        raise  # NOTE: a read of the body in its finally, the client gone: ends quietly.
    except (KeyboardInterrupt, SystemExit) as exc:
        # NOTE: as a step's: out of the sending task, asyncio raised it again out of its
        # loop, and the stream's sys.exit() in its finally ended the whole server (review184).
        raise Carried(exc) from exc
    except Exception as exc:
        if not was_reported(exc):
            # NOTE: an async generator whose finally failed as it was closed at its yield (its
            # client gone) left the app with no line of its own: Uvicorn alone logged it.
            stream_failed(request, exc)
        raise
    finally:
        closing_for.end()


async def _turn(dropped: Callable[[], bool] | None) -> None:
    """Give the loop a turn, in a stream that may await nothing else.

    Raises:
        ClientDisconnect: If the server says, after the turn, that what is sent is dropped
            (``SENDS_DROPPED``): the turn ran the connection's loss. The disconnect watcher
            hears of it some turns later, and the stream ran on a ``TURN`` for each (about
            20 ms in all).
    """
    await asyncio.sleep(0)
    if dropped is not None:
        # NOTE: a second turn: a write that fails in the loop's own writing (the transport's
        # buffer not empty) fails in the first, after this task's step.
        await asyncio.sleep(0)
        if dropped():
            raise ClientDisconnect("the client went away")
