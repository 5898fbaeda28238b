"""The ASGI driver's streamed answers: a body that is not whole bytes sent chunk by chunk,
the client's leaving watched meanwhile, and the stream closed, sent or not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from inspect import GEN_CREATED, getgeneratorstate, isawaitable
from types import GeneratorType
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._app_loop import ContextRecord
from ._asgi_websocket import TURN
from ._close_wait import Carried, Sending, close_awaited, close_unsent
from ._concurrency import error_of_request
from ._emission import encode_chunk, ended_for_a_client_gone
from ._error_logs import stream_failed, unsent_stream_failed, was_reported
from ._errors import ClientDisconnect
from ._file_threads import aiter_file_read
from ._files import bound_to_no_thread
from ._in_pool import iterate_in_pool, stepped_of
from ._pool import WorkerPool
from ._pool_futures import run_in_pool
from ._routing import is_async_callable
from ._sse import SSEChunks
from ._stream_ahead import ClosingFor
from ._types import Message, Send

if TYPE_CHECKING:
    from ._asgi_body import ASGIBody
    from ._request import Request
    from ._response import Response, StreamBody

logger = logging.getLogger("microweb")


class StreamHost(Protocol):
    """What a streamed answer needs of the ASGI driver: its thread pool."""

    @property
    def pool(self) -> WorkerPool: ...

    # NOTE: the pool if made, else None: a cut-off is marked on it, none made for that.
    made_pool: WorkerPool | None


async def send_rest(
    host: StreamHost,
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
        await _close_unsent(host, response.chunks, request)
        raise
    if content is None:
        await _close_unsent(host, response.chunks, request)
        await _guarded(send)({"type": "http.response.body", "body": b""})
    else:
        await _stream_until_disconnect(host, content, request, body_of(request), send)


async def _close_unsent(host: StreamHost, stream: Any, request: Request) -> None:
    """Close a stream that is not sent, within ``CLOSE_WAIT`` (see ``close_unsent()``)."""
    if stream is not None:
        values: list[ContextRecord] = []
        try:
            # NOTE: a task only where there is a stream to close (not a file's HEAD or 304).
            await close_unsent(
                _closed_unsent(host, stream, request, values), stream, request, host.made_pool
            )
        finally:
            if values:
                # NOTE: what its close set in its task is set in the request's, as for a sent
                # stream's; a close given up on sets nothing (values come once it has run).
                # Under WSGI the after-response work of a HEAD, a 204 or a 304 saw it; under
                # ASGI it saw none (review403).
                values[0].adopt()


async def _closed_unsent(
    host: StreamHost,
    stream: Any,
    request: Request,
    values: list[ContextRecord],
) -> None:
    """Close a stream that is not sent; log what its close raises. Its task's context as it
    began and as it ended is appended to ``values``."""
    began = ContextRecord()
    closing = ClosingFor(request)
    try:
        await _close_stream(host, stream)
    except Exception as exc:
        unsent_stream_failed(request, exc)
    except (KeyboardInterrupt, SystemExit) as exc:
        # NOTE: out of the close's task, asyncio raised it again out of its loop.
        raise Carried(exc) from exc
    finally:
        closing.end()
        values.append(began.now())


async def _stream_until_disconnect(
    host: StreamHost, stream: Any, request: Request, body: ASGIBody, send: Send
) -> None:
    # NOTE: servers accept send() after the client left (TRAPS.md 10); watch receive() too.
    sending = Sending(asyncio.get_running_loop().create_future())
    sender = asyncio.ensure_future(
        _send_stream(host, stream, request, send, sending, body.sends_dropped)
    )
    watcher = asyncio.ensure_future(body.wait_disconnect())
    try:
        # NOTE: woken once the stream is closed too, whose close has CLOSE_WAIT seconds.
        # (A set kept in a local held the sender, whose error's traceback holds this frame.)
        await asyncio.wait({sender, watcher, sending.closing}, return_when=asyncio.FIRST_COMPLETED)
        if watcher.done() and not watcher.cancelled() and watcher.exception() is not None:
            # NOTE: a watcher that failed says nothing about the client; keep streaming.
            logger.error("disconnect watcher failed", exc_info=watcher.exception())
            await asyncio.wait({sender, sending.closing}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        # NOTE: the server gave up on the request: a sync stream's step goes on in its
        # thread, which the sender waits for and a second cancellation gives up on (only a
        # def handler's cancelled call was counted by _say_still_running).
        if host.made_pool is not None:
            host.made_pool.cut_off = True
        raise
    finally:
        watcher.cancel()
        if not sending.closing.done():
            # NOTE: a stream that closes already is let finish, before the request ends
            # (its after-response work included): cut, its finally stopped where it
            # awaited. Its close has CLOSE_WAIT seconds, or until this task is cancelled.
            sender.cancel()
        try:
            await close_awaited(sender, sending, stream, request, host.made_pool)
        finally:
            if (values := sending.values) is not None:
                # NOTE: what the stream set, in the sending task or in its thread, is set in
                # the request's task once it has closed, as under WSGI, where the request's
                # after-response work saw it; it saw none (review398).
                values.adopt()
                # NOTE: a close given up on (values as it began): what the stream set
                # before, a sync one's in its thread too, as under WSGI an async one's; the
                # after-response work saw none of it (review403).
                if (stepped := sending.stepped) is not None and (
                    in_thread := stepped()
                ) is not None:
                    in_thread.adopt()
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
    host: StreamHost,
    stream: Any,
    request: Request,
    send: Send,
    sending: Sending,
    dropped: Callable[[], bool] | None = None,
) -> None:
    # NOTE: the task's context as it begins, a copy of the request's: what the stream changes
    # of it is set in the request's once the stream has closed (_stream_until_disconnect()).
    began = ContextRecord()
    chunks = _async_chunks(stream, host.pool)
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
        try:
            # PERF: an async generator that ran to its end has nothing left to close: with the
            # bare send() above, 0.82 -> 0.68 us a chunk (bench/streams.py).
            if iterator is not chunks or getattr(chunks, "ag_frame", chunks) is not None:
                # NOTE: closed in this task, where it ran: in another (a task of its own), its
                # finally reset a context variable's token in another context (ValueError),
                # and left a scope entered in this task from another one.
                # NOTE: what it set so far, for a close given up on (_stream_until_disconnect()).
                sending.values = began.now()
                sending.stepped = stepped_of(chunks)
                sending.closing.set_result(None)
                await _aclose_logged(_close_sent(host, iterator, chunks), request)
                sending.closed = True
        finally:
            sending.stepped = None  # NOTE: in the values now.
            sending.values = began.now()
    await _end_body(send, sending)


async def _close_sent(host: StreamHost, iterator: Any, stream: Any) -> None:
    """Close the iterator a sent stream gave, then the stream where it is another object."""
    try:
        if iterator is not None and iterator is not stream:
            # NOTE: as the stream is: aclose(), or else its close(), a sync one in the pool
            # (a cursor's close may block).
            await _close_stream(host, iterator)
    finally:
        await _close_stream(host, stream)


async def _close_stream(host: StreamHost, stream: Any) -> None:
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
            # NOTE: what the close sets in its thread is set in this task once it has run (a
            # stream not sent, or an async one with a sync close); cancelled, it may run on.
            record = ContextRecord()
            closed = cast(
                "asyncio.Future[Any]", run_in_pool(host.pool, record.context.run, stream.close)
            )
            try:
                left = await closed
            finally:
                if closed.done() and not closed.cancelled():
                    record.adopt()
            if isawaitable(left):
                await left


def _async_chunks(stream: Any, pool: WorkerPool) -> Any:
    """Return ``stream`` as an async iterable: a sync one runs in ``pool``."""
    if hasattr(stream, "__aiter__"):
        return stream
    if bound_to_no_thread(stream):
        return aiter_file_read(stream, pool)  # NOTE: it holds no thread between its reads.
    return iterate_in_pool(stream, pool)


async def _end_body(send: Send, sending: Sending) -> None:
    """Send the end of a streamed body, unless the driver ended it (``give_up_on_close``)."""
    if not sending.given_up:
        await _guarded(send)({"type": "http.response.body", "body": b""})


def body_of(request: Request) -> ASGIBody:
    """The request's body source, made now if not yet (an ``ASGIRequest``'s is an ``ASGIBody``)."""
    return cast("ASGIBody", request._body_source())


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
