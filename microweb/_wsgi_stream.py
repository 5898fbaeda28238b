"""A streamed WSGI body: its chunks encoded as they are taken, and its ``close()`` (the
stream's, then the request's end), both run in the request's own context, the one its handler
ran in; an async stream iterated by a task of the app loop's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, NoReturn

from ._app_loop import LoopStopped
from ._close_wait import bounded, close_returned, close_wait, watch_close, wsgi_close_late
from ._emission import encode_chunk, ended_for_a_client_gone
from ._error_logs import mark_reported, stream_failed, was_reported
from ._errors import ClientDisconnect, own_cancellation, own_stop
from ._stream_ahead import iterate_on_loop
from ._wsgi_closing import await_left, close_stream
from ._wsgi_end import end_request

if TYPE_CHECKING:
    import contextvars

    from ._app_loop import AppLoop
    from ._request import Request


class StreamedBody:
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
            # closes it for CLOSE_WAIT at most, as an async close() does (close_stream()), where
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
                    await_left(self._chunks, close(), self._app_loop, self._request, last)
            finally:
                # NOTE: the iterable closed too when its iterator's close() failed, as under
                # ASGI (a cursor's iterator that failed to close left the cursor open).
                iterated = self._iterated
                try:
                    if iterated is not None and iterated.left_open is not None:
                        # NOTE: the task closed it by an aclose() alone: one with a close()
                        # alone was left open, where gzip's stream closes it by that close().
                        close_stream(iterated.left_open, self._app_loop, self._request, last=False)
                finally:
                    if self._chunks is not self._stream and not (
                        iterated and iterated.closes_stream
                    ):
                        close_stream(self._stream, self._app_loop, self._request)
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
                end_request(self._request, self._app_loop, self._context)


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
    ``self``) and has one, the stream is closed, and ``StreamedBody.close()`` must not close it
    a second time. An iterator other than the stream with no ``aclose()`` is kept in
    ``left_open``: ``StreamedBody.close()`` closes it by its ``close()``, before the stream.
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
