"""The WSGI driver (PEP 3333): environ in, status, headers and a body iterable out.

Each request runs in a context of its own; its body, streamed (``_wsgi_stream``) or whole
(``_wsgi_end``), ends it when the server closes it."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import os
from collections.abc import Iterable
from contextvars import copy_context
from multiprocessing.util import Finalize
from typing import TYPE_CHECKING, Any, BinaryIO

from ._app_loop import AppClosed, AppLoop, LoopStopped
from ._close_wait import close_returned, watch_close
from ._concurrency import drive_in_thread, drive_sync
from ._cut_closing import wait_for_cut_closings
from ._default_answers import client_left, handlers_failed, unsendable
from ._effects import ENDED, ShutdownError, run_shutdown
from ._emission import LENGTHS, outgoing, plain_answer
from ._error_logs import unsent_stream_failed
from ._errors import ClientDisconnect, own_cancellation
from ._files import FILE_CHUNK, FileInfo, SizedFile, open_described, reads_the_file
from ._lifespans import run_startup
from ._media import JSON, TEXT
from ._pipeline import NOT_AWAITED, fail, respond, settle
from ._request import Request, decode_path, new_request
from ._response import Response
from ._status import status_line
from ._target import target_path
from ._types import Environ, StartResponse
from ._wsgi_closing import close_stream
from ._wsgi_end import WholeBody, after_response, cut_off
from ._wsgi_request import WSGIRequest, native_bytes
from ._wsgi_stream import StreamedBody

if TYPE_CHECKING:
    from ._effects import Colored
    from ._plan import Plan

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
                    return WholeBody([content], self.app_loop, request, context)
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
            after_response(request, self.app_loop)
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
            return cut_off(request, isinstance(exc, AppClosed), exc)
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
            return cut_off(request, isinstance(stopped, AppClosed), stopped)
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
                close_stream(response.chunks, self.app_loop, request, unsent=True)
            except Exception as exc:
                unsent_stream_failed(request, exc)
            response = cut_off(request, True)
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
                    close_stream(response.chunks, self.app_loop, request, unsent=True)
                finally:
                    # NOTE: its warning's error (a log filter's) is the close's: it failed
                    # the answer and skipped the request's end.
                    close_returned(request)
            except Exception as exc:
                unsent_stream_failed(request, exc)
            except BaseException:
                # NOTE: the server gets no body whose close() would end the request: end it
                # here (after-response callbacks, files on disk), as a GET's close() does.
                after_response(request, self.app_loop)
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
        stream = StreamedBody(body, self.app_loop, request, context)
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
            return WholeBody(body, self.app_loop, request, context)
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
