"""The WSGI driver (PEP 3333): environ in, status, headers and a body iterable out."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import logging
import os
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import copy_context
from functools import partial
from inspect import CORO_CREATED, getcoroutinestate, isawaitable, iscoroutine
from multiprocessing.util import Finalize
from types import AsyncGeneratorType
from typing import TYPE_CHECKING, Any, BinaryIO, NoReturn, cast

from ._app_loop import AppClosed, AppLoop, LoopStopped
from ._body import WSGIBody
from ._calls import client_left, default_error, handlers_failed, unsendable
from ._close_wait import bounded, close_returned, close_wait, watch_close, wsgi_close_late
from ._concurrency import drive_in_thread, drive_sync
from ._cut_closing import wait_for_cut_closings
from ._effects import ENDED, ShutdownError, run_after, run_shutdown
from ._emission import LENGTHS, encode_chunk, ended_for_a_client_gone, outgoing, plain_answer
from ._error_logs import mark_reported, stream_failed, unsent_stream_failed, was_reported
from ._errors import ClientDisconnect, own_cancellation, own_stop
from ._files import FILE_CHUNK, FileInfo, SizedFile, open_described, reads_the_file
from ._lifespans import run_startup
from ._media import JSON, TEXT
from ._pipeline import NOT_AWAITED, fail, respond, settle
from ._request import (
    Request,
    decode_path,
    logged_method,
    logged_path,
    logged_request,
    new_request,
)
from ._response import Response
from ._routing import is_async_callable
from ._status import status_line
from ._stream_ahead import ClosingFor, iterate_on_loop
from ._target import target_path
from ._types import Environ, StartResponse
from ._wsgi_request import WSGIRequest, native_bytes

if TYPE_CHECKING:
    from ._effects import Colored
    from ._plan import Plan

logger = logging.getLogger("microweb")

# NOTE: an environ key a server may set (microweb serve's Waitress does): a callable that takes
# a function and calls it once the response is sent whole. Waitress sends a streamed body's last
# chunk, and the head of an answer with no body (HEAD, 204, 304), only after the body's close():
# callbacks run in close() held the client until they had run.
AFTER_SENT = "microweb.after_sent"


# PERF: how a path starts when it needs no more than its ASCII check: "/", then anything but
# another "/". One set lookup instead of two slices and compares: 460 instructions less a
# WSGI hello (valgrind, PYTHONHASHSEED=0, 2026-11-30).
_PLAIN_STARTS = frozenset(["/", *("/" + chr(code) for code in range(128) if chr(code) != "/")])


class WSGIDriver:
    """The app as a PEP 3333 callable. Startup hooks run when it is made; ``close()`` runs
    shutdown hooks (also at interpreter exit)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        # NOTE: read once here, not through the plan in every request.
        self.app, self._limits = plan.app, plan.limits
        self.app_loop = AppLoop()
        self._closed = False
        # NOTE: the startup and the shutdown run in one context of this callable's own: a sync
        # lifespan's reset at a close() from another thread raised ValueError ("created in a
        # different Context"), and what the hooks set stayed set in the caller's thread, seen
        # by the requests it ran (a WSGI TestClient's), where neither ASGI nor Waitress's
        # threads see it.
        self._context = contextvars.copy_context()
        try:
            # NOTE: the exits of the lifespans this callable entered, for its close().
            self._exits: list[Colored] = self._context.run(
                drive_in_thread, run_startup(plan.startup_steps, plan.app), self.app_loop
            )
        except BaseException:
            self.app_loop.stop()
            raise
        atexit.register(self._close_at_exit)
        # NOTE: a worker that multiprocessing forked (Granian's) ends with os._exit(), which
        # runs no atexit handler; multiprocessing runs its own finalizers just before.
        self._at_worker_exit = Finalize(None, self._close_at_exit, exitpriority=_FIRST)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        # NOTE: each request runs in a context of its own, a copy of the calling thread's:
        # what it set (a handler, a flow, the app loop's hops adopted) stayed set in the
        # server's thread, seen by the next request it served, another client's (review379).
        # Its streamed body, its body's close() and its after-response work run in it too.
        # PERF: the context costs a WSGI hello about 0.1 us (best of 20 x 50,000 calls in
        # thread time, 8 runs each against 4564100b: 1.09-1.20 -> 1.19-1.34 us, 2-CPU VM under
        # load, 2026-12-07); with contextvars.copy_context and self._answer, 0.17 us.
        context = copy_context()
        return context.run(_answer, self, environ, start_response, context)

    def _answer(
        self, environ: Environ, start_response: StartResponse, context: contextvars.Context
    ) -> Iterable[bytes]:
        """Answer the request, in ``context``, the request's own, entered by the caller."""
        # PERF: the request built here, with no method of the driver's around it: 380
        # instructions less a hello (valgrind, PYTHONHASHSEED=0, 2026-11-30).
        method = environ["REQUEST_METHOD"]
        path_info = environ.get("PATH_INFO", "")
        if path_info[:2] in _PLAIN_STARTS and path_info.isascii():
            # PERF: an ASCII path is its own UTF-8 decoding; 0.15 us saved.
            path: str | None = path_info
        else:
            path = self._path(path_info, method)
        query = environ.get("QUERY_STRING")
        request = new_request(
            WSGIRequest,
            self.app,
            self._limits,
            method,
            path,
            native_bytes(query) if query else b"",
            environ["wsgi.url_scheme"],  # SPEC: PEP 3333 requires it.
            environ,
            None,
            None,
        )
        try:
            outcome = respond(self.plan, request)
            if not isinstance(outcome, NOT_AWAITED):
                try:
                    # NOTE: an effect generator is not awaited (NOT_AWAITED), as mypy cannot see.
                    result = self.app_loop.run(outcome)  # type: ignore[arg-type]
                except LoopStopped:
                    raise
                except Exception as exc:
                    outcome = fail(self.plan, request, exc)
                else:
                    outcome = plain_answer(result, request.method) or settle(
                        self.plan, request, result
                    )
            if isinstance(outcome, tuple):
                # PERF: a plain result (plain_answer: a def handler's from respond(), an async
                # def handler's from the app loop), sent with no Response: a WSGI hello 29,500
                # -> 22,700 instructions a request (valgrind); bench/cells.py, hello 2.71 ->
                # 1.95 us, the first of 1,000 routes 3.88 -> 3.06 us (2026-11-30).
                content, media_type = outcome
                start_response("200 OK", [_TYPES[media_type], LENGTHS[len(content)]])
                if request._after is not None:
                    return _Finished([content], self.app_loop, request, context)
                # NOTE: the request has ended: a callback added from now on would never run. It
                # costs 86 instructions of 18,840 a hello (valgrind, PYTHONHASHSEED=0, 2026-12-04).
                request._after = ENDED
                # PERF: checked here: 400 instructions less for a hello. NOTE: a read's kept
                # error is in a cycle with the request until close() lets it go.
                if request._cleanups or request._body_error is not None:
                    request.close()
                return [content]
            if not isinstance(outcome, Response):
                outcome = drive_sync(outcome, self.app_loop)
        except (ClientDisconnect, LoopStopped, asyncio.CancelledError) as exc:
            outcome = self._unfinished(request, exc)
        except BaseException:
            # NOTE: app code's KeyboardInterrupt or SystemExit (a flow's finally), let out to
            # the server: the request ends all the same, as under ASGI, where it left its
            # uploads' temporary files open for the garbage collector.
            _after_response(request, self.app_loop)
            raise
        return self._send(request, outcome, start_response, context)

    def _unfinished(
        self, request: Request, exc: ClientDisconnect | LoopStopped | asyncio.CancelledError
    ) -> Response:
        """Answer a request whose client left, that the app loop's stop cut off, or sync code's
        cancellation."""
        if isinstance(exc, ClientDisconnect):
            return client_left(request, exc)
        if isinstance(exc, LoopStopped):
            return _cut_off(request, isinstance(exc, AppClosed), exc)
        # NOTE: no server cancels a WSGI request: sync code raised it (a def handler, a sync
        # flow; the core took it for a cut and closed the flows). An error of the request, as
        # under ASGI; let out, it left Waitress's connection open, unanswered.
        try:
            response: Response = drive_sync(
                fail(self.plan, request, own_cancellation(exc)), self.app_loop
            )
        except ClientDisconnect as left:
            return client_left(request, left)
        except LoopStopped as stopped:
            return _cut_off(request, isinstance(stopped, AppClosed), stopped)
        except asyncio.CancelledError as again:
            # NOTE: a sync error handler raised it (once more, called again for it): let out,
            # it left Waitress's connection open, unanswered.
            return handlers_failed(self.plan, request, own_cancellation(again))
        return response

    def _send(
        self,
        request: Request,
        response: Response,
        start_response: StartResponse,
        context: contextvars.Context,
    ) -> Iterable[bytes]:
        """Start ``response`` and return its body, whole, streamed or as the server's file; its
        iteration and its ``close()`` run in ``context``, the request's."""
        # NOTE: the driver's own flag first: the cheaper test, made for every response.
        if self._closed and hasattr(response.chunks, "__aiter__"):
            # NOTE: its chunks need the stopped loop: a 200 went out, then a traceback twice,
            # the driver's and the server's, for a body cut off (review62). Not started, the
            # iterable has nothing to run, but an object's own close() or aclose() may: run, or
            # said not run, as when the server closes it late.
            try:
                _close_stream(response.chunks, self.app_loop, request, unsent=True)
            except Exception as exc:
                unsent_stream_failed(request, exc)
            response = _cut_off(request, True)
        # PERF: inline, not through to_send(): a handler's Response went out 0.1 to 0.3 us
        # slower with that call (A/B against f9e7333, 3 runs each, 2026-12-05).
        try:
            headers, body = outgoing(response, request.method)
        except Exception as exc:
            response = unsendable(self.plan, request, exc, response)
            headers, body = outgoing(response, request.method)
        write = start_response(status_line(response._status), headers)
        if body is None:
            watch_close(response.chunks, request)
            try:
                try:
                    _close_stream(response.chunks, self.app_loop, request, unsent=True)
                finally:
                    # NOTE: its warning's error (a log filter's) is the close's: it failed
                    # the answer and skipped the request's end.
                    close_returned(request)
            except Exception as exc:
                unsent_stream_failed(request, exc)
            except BaseException:
                # NOTE: the server gets no body whose close() would end the request: end it
                # here (after-response callbacks, files on disk), as a GET's close() does.
                _after_response(request, self.app_loop)
                raise
            return self._whole(request, [], context)
        if isinstance(body, bytes):
            return self._whole(request, [body], context)
        file = response.file_info
        wrapper = request._raw.get("wsgi.file_wrapper")
        # NOTE: a server's file wrapper gives the app no close() of its own: with callbacks
        # to run after the response, the file streams as any body does.
        # NOTE: nor when a flow put a stream of its own in the file's place (a transform):
        # that is what goes out, as under ASGI.
        if (
            wrapper is not None
            and file is not None
            and request._after is None
            and reads_the_file(response.chunks)
            and (file.whole or _sends_a_span(wrapper))
        ):
            opened = _open_unchanged(file)
            if opened is not None:
                request._after = ENDED  # NOTE: no close() of the app's ends it later.
                request.close()
                # NOTE: lets the server send the file its own way (Waitress: no Python loop).
                wrapped: Iterable[bytes] = wrapper(SizedFile.span(opened, file), FILE_CHUNK)
                return wrapped
        stream = _StreamBody(body, self.app_loop, request, context)
        # NOTE: a WSGI server holds the headers until the first non-empty chunk (PEP 3333), so
        # an event stream waiting for its first event would not be open, and an error before it
        # would be the server's own 500. An empty write sends them now, as the ASGI driver does
        # (when the caller gave a write callable at all, as PEP 3333 asks).
        if callable(write):
            try:
                write(b"")
            except BaseException:
                # NOTE: the client has gone: end the request as a server would (in its context,
                # entered already).
                stream.close_in_context()
                raise
        return stream

    def _whole(
        self, request: Request, body: list[bytes], context: contextvars.Context
    ) -> Iterable[bytes]:
        """Return a whole body; the request ends now, or once its callbacks have run (in
        ``context``, the request's)."""
        if request._after is not None:
            return _Finished(body, self.app_loop, request, context)
        # NOTE: files on disk too are closed in the server's thread, which may block (ASGI
        # hands them to a file thread, as its loop may not).
        request._after = ENDED
        request.close()
        return body

    @staticmethod
    def _path(path_info: str, method: str) -> str | None:
        raw = native_bytes(path_info) or b"/"
        # NOTE: Waitress takes the path out of an absolute-form target itself; others may
        # not; and a server may decode "/%2F" into a PATH_INFO of "//".
        target = raw if raw[:1] == b"/" and raw[1:2] != b"/" else target_path(raw, method)
        return decode_path(target) if target is not None else None

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def close(self) -> None:
        """Run the shutdown hooks and the plugins' ``close()`` once, then stop the app loop.

        The async flows of requests that a server cut off close first: their cleanups get up
        to ``CLEANUP_WAIT`` seconds (2 s) from each one's start, and from this call's, to end
        before the shutdown hooks start.

        Every step runs even when an earlier one fails; each failure is logged on the
        ``"microweb"`` logger.

        Raises:
            RuntimeError: Once all steps ran, naming those that failed.
        """
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self._close_at_exit)
        self._at_worker_exit.cancel()
        try:
            # NOTE: no longer serving: startup steps may be registered again (App refuses them
            # while a callable whose startup ran serves).
            self.plan.startup_steps.stopped()
            # NOTE: the cleanups of the requests a server cut off end first (or their wait is
            # over): a hook tore down what they still used.
            wait_for_cut_closings(self.app_loop)
            steps = run_shutdown(self.plan.shutdown_sequence(self._exits))
            self._context.run(drive_in_thread, steps, self.app_loop)
        finally:
            self.app_loop.stop()

    def _close_at_exit(self) -> None:
        # NOTE: each failure is logged already; a traceback at interpreter exit adds nothing.
        with contextlib.suppress(ShutdownError):
            self.close()


# NOTE: a finalizer's exit priority: higher runs first, so the hooks run before multiprocessing
# ends its own objects (pools, managers), as atexit runs the last registered handler first.
_FIRST = 100

# PERF: the function that __call__ runs in the request's context, a module global (a cached
# lookup in 3.11), not WSGIDriver._answer, looked up on the class for every request: a WSGI
# hello 18,268 -> 18,086 instructions a request (bench/icount.sh, PYTHONHASHSEED=0, 2026-12-07).
_answer = WSGIDriver._answer

# NOTE: the Content-Type header of each plain answer (see plain_answer), made once.
_TYPES = {media_type: ("content-type", media_type) for media_type in (TEXT, JSON)}


# NOTE: the file wrappers known to send a file from its position to Content-Length (or to
# where read() gives nothing), as PEP 3333 has it: Waitress's, wsgiref's and gunicorn's.
# uWSGI's sends the whole file from byte 0, whatever its position: a range stays a stream.
SPAN_WRAPPERS = frozenset({"waitress.buffers", "wsgiref.util", "gunicorn.http.wsgi"})


def _sends_a_span(wrapper: Any) -> bool:
    # NOTE: a range streamed here held a server thread while its client took it: a few clients
    # that stopped reading a video they had seeked in held all of Waitress's (4 by default),
    # until the stall timeout. Handed over at its start, SizedFile ends it at the range's end.
    return getattr(wrapper, "__module__", None) in SPAN_WRAPPERS


def _open_unchanged(file: FileInfo) -> BinaryIO | None:
    # NOTE: a file wrapper sends to EOF; use it only while that is the announced length.
    try:
        opened = open_described(file)
    except OSError:
        return None
    if os.fstat(opened.fileno()).st_size != file.size:
        opened.close()
        return None
    return opened


def _close_stream(
    stream: Any, app_loop: AppLoop, request: Request, last: bool = True, unsent: bool = False
) -> None:
    """Close ``stream``; an async close, where it is the ``last`` of the response's closes, for
    ``CLOSE_WAIT`` seconds at most (``_run_close()``). ``unsent``: the stream of an answer with
    no body (HEAD, 204, 304), whose late close's error is logged as such."""
    if stream is None:
        return
    if getattr(stream, "aclose", None) is not None:
        if app_loop.stopped:
            # NOTE: after the app's close, the loop's stop has closed what it ran (the stream's
            # task, the async generators it began); a generator it never began has no frame to
            # end. Closed again, it raised AppClosed from the body's close(), which Waitress
            # logged as a traceback. An object's own aclose() is no generator's: said below.
            if type(stream) is not AsyncGeneratorType:
                _log_close_not_run(stream, "aclose()")
            return
        # NOTE: aclose() called on the loop: a coroutine of it made here was "never awaited"
        # where the loop closed before the hop began.
        _run_close(app_loop, _closed_for(request, stream.aclose), stream, request, last, unsent)
    elif getattr(stream, "close", None) is not None:
        if is_async_callable(stream.close):
            # NOTE: awaited on the app loop, where the stream ran. Once that loop stopped
            # (wsgi.close() came first), there is no loop to run it on, and it is not started.
            if app_loop.stopped:
                _log_close_not_run(stream, "async close()")
            else:
                closing = _closed_for(request, stream.close)
                _run_close(app_loop, closing, stream, request, last, unsent)
        else:
            _await_left(stream, stream.close(), app_loop, request, last, unsent)


async def _closed_for(request: Request, close: Callable[[], Awaitable[object]]) -> None:
    """Await ``close()``, a stream's async close, on the app loop, named for ``request`` until
    it ends (``CLOSING_FOR``), as under ASGI: an ``async def close()``, or one that a sync
    ``close()`` returned, was named for none, nor was a close it began (another stream's in a
    close thread), in its warning or its error."""
    closing = ClosingFor(request)
    try:
        await close()
    finally:
        closing.end()


def _run_close(
    app_loop: AppLoop,
    closing: Awaitable[Any],
    stream: Any,
    request: Request,
    last: bool,
    unsent: bool = False,
) -> None:
    """Run an async close on the app loop; the ``last`` of a response's closes for
    ``CLOSE_WAIT`` seconds at most: past them, the server's thread ends the response, and the
    close runs on (as under ASGI)."""
    if not last:
        # NOTE: a close that another follows (an iterator's, then its stream's): given up on,
        # the next would run beside it, where ASGI runs it after, in the close's task.
        app_loop.run(closing)
        return
    # NOTE: this thread waited for ever for a close that never returned, held (Waitress has 4).
    # A sync close still runs in this thread: moved to another, it would cost each response a
    # hop, and close a generator in another thread than the one that ran it (review287).
    bounded(request, True)
    late = partial(wsgi_close_late, stream, request, unsent=unsent)
    try:
        app_loop.run(closing, within=close_wait(), late=late)
    finally:
        bounded(request, False)


def _await_left(
    stream: Any,
    left: object,
    app_loop: AppLoop,
    request: Request,
    last: bool,
    unsent: bool = False,
) -> None:
    """Await on the app loop what a sync ``close()`` returned to await: the async close of the
    stream inside gzip's, SSE's or a declared length's (dropped, "never awaited", before)."""
    if not isawaitable(left):
        return
    if app_loop.stopped:
        if iscoroutine(left):
            left.close()  # NOTE: it will never run; said below, not by a "never awaited".
        _log_close_not_run(stream, "async close() inside its close()")
    else:
        try:
            _run_close(app_loop, _closed_for(request, lambda: left), stream, request, last, unsent)
        except RuntimeError:
            # NOTE: not run where the loop closed meanwhile: closed, no "never awaited". One
            # begun is its task's (a loop stopped under it): closed here, its finally ran in
            # this thread.
            if iscoroutine(left) and getcoroutinestate(left) == CORO_CREATED:
                left.close()
            raise


def _log_close_not_run(stream: Any, close: str) -> None:
    # NOTE: it was dropped with no word (the server closed the body after wsgi.close(), at its
    # shutdown). Not run on a loop of its own: what it closes may be bound to the app loop.
    logger.warning(
        "the %s of a streamed response's %s was not run: the app loop had stopped (this WSGI "
        "app was closed before the server closed the response)",
        close,
        f"{type(stream).__module__}.{type(stream).__qualname__}",
    )


class _StreamBody:
    """A streamed WSGI body: chunks encoded as they come; ``close()`` closes the generator. Both
    run in ``context``, the request's."""

    def __init__(
        self, stream: Any, app_loop: AppLoop, request: Request, context: contextvars.Context
    ) -> None:
        self._stream = stream
        self._app_loop = app_loop
        self._request = request
        self._context = context
        self._iterated: _Iterated | None = None
        self._chunks: Iterator[Any] | None = None
        self._closed = False
        if hasattr(stream, "__aiter__"):
            gone = request._raw.get("waitress.client_disconnected")
            self._iterated = _Iterated(stream)
            # NOTE: the close of a stream cut short (its client gone) waits for the task that
            # closes it for CLOSE_WAIT at most, as an async close() does (_run_close()), where
            # no close of the stream's follows.
            self._chunks = iterate_on_loop(
                self._iterated,
                app_loop,
                gone,
                request,
                partial(wsgi_close_late, stream, request),
                self._task_close_wait,
            )

    def _task_close_wait(self) -> float | None:
        """How long the close of this async stream waits for its task (``None``: until it ends)."""
        iterated = self._iterated
        return close_wait() if iterated is not None and iterated.closes_stream else None

    def _client_left(self) -> bool:
        request = self._request
        return request._client_gone() or request._body_source().is_disconnected()

    def __iter__(self) -> Iterator[bytes]:
        # PERF: each chunk taken in the request's context by C calls alone (no frame of
        # Python's): a generator of bytes 51 -> 75 ns a chunk (best of 15 x 20,000 chunks,
        # thread time, 2026-12-07).
        return iter(partial(self._context.run, next, self._encoded(), _DONE), _DONE)

    def _encoded(self) -> Iterator[bytes]:
        try:
            chunks = self._chunks
            if chunks is None:
                # NOTE: here, once the headers have gone, as under ASGI: called before the
                # body was handed over, an iter() that failed left the app unlogged (the
                # server's 500), and the stream unclosed, its after-response work never run.
                chunks = self._chunks = iter(self._stream)
            for chunk in chunks:
                # PERF: bytes told here, with no call: 0.10 -> 0.07 us a chunk (bench/streams.py).
                if type(chunk) is not bytes:
                    # NOTE: a falsy one too (None, 0), which was skipped with no word.
                    chunk = encode_chunk(chunk)
                if chunk:
                    yield chunk
        except Exception as exc:
            if isinstance(exc, ClientDisconnect) and self._request._client_gone():
                # NOTE: the generator read the body and wsgi.input failed: the client is gone,
                # as under ASGI, where such a stream ends with nothing logged. Told by the
                # body, as ASGI does, not by the error's __cause__, which a "from None" clears.
                return
            if ended_for_a_client_gone(exc, self._client_left()):
                # NOTE: a generator that returned, short of its declared length, once
                # is_disconnected() said the client had left: logged as an error (review169).
                return
            if isinstance(exc, LoopStopped):
                # NOTE: cut off by the server's stop, which logged it, or by the app's close:
                # no error of the app's. Raised on, so that the server cuts the connection.
                mark_reported(exc)
                raise
            if isinstance(exc, StopIteration):
                # NOTE: iter() raised it (a generator's own is a RuntimeError already): the
                # error that the ASGI driver's worker makes of it.
                _stream_stopped(self._request, exc)
            # NOTE: the status line is gone already; the server can only cut the connection,
            # which a ClientDisconnect of the app's own needs too: ended quietly, a chunked
            # response would look whole.
            stream_failed(self._request, exc)
            raise
        except asyncio.CancelledError as exc:
            # NOTE: a sync stream's own (no server cancels it), an error as under ASGI: let out
            # as it was, Waitress neither logged it as the request's nor cut the connection.
            error = own_cancellation(exc)
            try:
                stream_failed(self._request, error)
                raise error from exc
            finally:
                del error  # NOTE: no cycle through this frame and the traceback.

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._context.run(self.close_in_context)
            return
        except RuntimeError:
            if self._closed:
                raise  # NOTE: the close's own error: the context was entered.
        # NOTE: the context is entered by another thread that takes a chunk now (a middleware
        # reading ahead, closed by its server as the client left), or by this one (a chunk's
        # code closed it): the close failed to enter it, and the request never ended, its
        # after-response work lost (review391). Closed in a copy of it, which its after-response
        # work runs in too; out of the except, so that no error of the close's names the
        # failed entry as its context.
        self._context = self._context.copy()
        self._context.run(self.close_in_context)

    def close_in_context(self) -> None:
        """Close the body, in the request's context, which the caller has entered."""
        if self._closed:
            # NOTE: a second call (a middleware's and its server's): the stream was closed
            # again, and an error of its closing logged and raised twice (review184).
            return
        self._closed = True
        watch_close(self._stream, self._request)
        try:
            close = getattr(self._chunks, "close", None)
            try:
                if close is not None and self._iterated is not None:
                    # NOTE: iterate_on_loop's: it waits for its task CLOSE_WAIT at most.
                    bounded(self._request, self._iterated.closes_stream)
                    try:
                        close()
                    finally:
                        bounded(self._request, False)
                elif close is not None:
                    last = self._chunks is self._stream
                    _await_left(self._chunks, close(), self._app_loop, self._request, last)
            finally:
                # NOTE: the iterable closed too when its iterator's close() failed, as under
                # ASGI (a cursor's iterator that failed to close left the cursor open).
                iterated = self._iterated
                try:
                    if iterated is not None and iterated.left_open is not None:
                        # NOTE: the task closed it by an aclose() alone: one with a close()
                        # alone was left open, where gzip's stream closes it by that close().
                        _close_stream(iterated.left_open, self._app_loop, self._request, last=False)
                finally:
                    if self._chunks is not self._stream and not (
                        iterated and iterated.closes_stream
                    ):
                        _close_stream(self._stream, self._app_loop, self._request)
        except LoopStopped:
            raise
        except Exception as exc:
            if isinstance(exc, ClientDisconnect) and self._request._client_gone():
                # NOTE: a read of the body in its finally, wsgi.input failed: the client is
                # gone, and the stream ends quietly, as in __iter__ and under ASGI.
                return
            if isinstance(exc, StopIteration):
                _stream_stopped(self._request, exc)  # NOTE: the stream's close() raised it.
            if not was_reported(exc):
                # NOTE: the stream's finally failed as it was closed (its client gone): an
                # error of the stream after its headers, as under ASGI, which Waitress alone
                # logged, with no line of the app's naming the request.
                stream_failed(self._request, exc)
            raise
        finally:
            try:
                close_returned(self._request)
            finally:
                # NOTE: also where the warning of a late close failed (a log filter raised):
                # the request's after-response callbacks were skipped.
                _end_request(self._request, self._app_loop, self._context)


# NOTE: what next() gives for a stream's end, where the chunks are taken in a context.
_DONE = b""


def _stream_stopped(request: Request, stop: StopIteration) -> NoReturn:
    error = own_stop(stop)
    try:
        stream_failed(request, error)
        raise error from stop
    finally:
        del error  # NOTE: no cycle through this frame and the traceback.


class _Iterated:
    """An async stream as the app loop's task iterates it: tells whether that task closes it.

    The task closes the iterator it took by its ``aclose()`` (in the task, where it ran); where
    that iterator is the stream itself (an async generator, a class whose ``__aiter__`` returns
    ``self``) and has one, the stream is closed, and ``_StreamBody.close()`` must not close it
    a second time. An iterator other than the stream with no ``aclose()`` is kept in
    ``left_open``: ``_StreamBody.close()`` closes it by its ``close()``, before the stream.
    """

    __slots__ = ("closes_stream", "left_open", "stream")

    def __init__(self, stream: Any) -> None:
        self.stream, self.closes_stream = stream, False
        # NOTE: the iterator, where it is another object than the stream with no aclose().
        self.left_open: Any = None

    def __aiter__(self) -> Any:
        iterator = self.stream.__aiter__()
        # NOTE: an object whose aclose() is no generator's got it twice, the second time from
        # another task (review142). PERF: an async generator's second aclose() was a hop to
        # the app loop for nothing: a one-chunk stream 170 -> 100 us a request (direct WSGI
        # calls, best of 5 runs of 2,000, 2026-12-04).
        # NOTE: by aclose() alone: one with a close() alone (sync or async) was never closed.
        closes = getattr(iterator, "aclose", None) is not None
        self.closes_stream = iterator is self.stream and closes
        if iterator is not self.stream and not closes:
            self.left_open = iterator
        return iterator


class _Finished:
    """A whole body whose ``close()`` runs the request's after-response callbacks, in
    ``context``, the request's."""

    def __init__(
        self,
        chunks: list[bytes],
        app_loop: AppLoop,
        request: Request,
        context: contextvars.Context,
    ) -> None:
        self._chunks, self._app_loop, self._request = chunks, app_loop, request
        self._context = context

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        self._context.run(_end_request, self._request, self._app_loop, self._context)


def _end_request(request: Request, app_loop: AppLoop, context: contextvars.Context) -> None:
    """End ``request`` from its body's ``close()`` (run in ``context``, the request's): at
    once, or once the server has sent all, in that context again."""
    after_sent = request._raw.get(AFTER_SENT) if request._after is not None else None
    if after_sent is None:
        _after_response(request, app_loop)
    else:
        after_sent(partial(context.run, _after_response, request, app_loop))


def _cut_off(request: Request, app_closed: bool, stopped: LoopStopped | None = None) -> Response:
    """Answer a request cut off by the app's close: a 500, where it can still go out.

    ``app_closed``: the app was closed before the call began (``AppClosed``); ``stopped``:
    the loop's stop that cut the call off, if it did.
    """
    # NOTE: as Uvicorn's cancellation gives, with no traceback and no error handler: a
    # server's stop after its grace period, which logged it, or a call on a closed app.
    if app_closed:
        _log_closed(request, "answered 500")
    elif stopped is not None:
        _left_running(request, stopped)
    return default_error(request, 500, None, {})


def _left_running(request: Request, stopped: LoopStopped) -> None:
    """Name ``request`` in one warning if its call on the app loop ignored its cancellation
    past the loop's stop (``stopped.pending``), and let asyncio say nothing of its task.

    NOTE: asyncio's "Task was destroyed but it is pending!" named the task of the app loop's
    (``_run_hop()``), not the request, whenever the task was collected, maybe much later; a
    flow's step is named by its flow (``_cut_closing.named_by_its_flow``) (review380).
    """
    task, stopped.pending = stopped.pending, None
    if task is None or task.done():
        return
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    logger.warning(
        "%s %s was left to its collection as the app loop stopped: its async code ignored "
        "its cancellation and still runs; its finally blocks run when it is collected",
        logged_method(request),
        logged_path(request),
    )


def _log_closed(request: Request, outcome: str) -> None:
    # NOTE: no server's log says why this request failed.
    logger.warning(
        "%s %s reached async code after the app was closed: %s",
        logged_method(request),
        logged_path(request),
        outcome,
    )


def _after_response(request: Request, app_loop: AppLoop) -> None:
    # SPEC: PEP 3333, the server calls close() once the body is sent, or the client has gone.
    try:
        if request._after is not None:
            # NOTE: made if not yet, so that a callback's is_disconnected() says the request has
            # ended, as under ASGI, whether or not the handler read the body.
            cast("WSGIBody", request._body_source()).ended = True
            try:
                drive_sync(run_after(request._after, partial(logged_request, request)), app_loop)
            except LoopStopped as stopped:
                # NOTE: callbacks cut off by the app's close were counted as in flight, and
                # the server's stop logged them; the rest of them cannot run. Those of a
                # request that began after the close were dropped with no word (review62).
                if isinstance(stopped, AppClosed):
                    _log_closed(request, "after-response callbacks not run")
    finally:
        if request._after is None:
            request._after = ENDED  # NOTE: a callback added from now on would never run.
        request.close()
