"""Waitress's connection under ``microweb serve`` (``OrderlyChannel``): its heads parsed by
``OrderlyParser``, its requests answered by ``OrderlyTask``, the client's end of sending and
its leaving told, and a close after a refusal in two steps (a lingering close)."""

from __future__ import annotations

import socket
import time
from typing import Any

from ._chunked import ChunkedChannel
from ._sockets import reset_after_end
from ._waitress_parser import OrderlyParser
from ._waitress_tasks import OrderlyTask, RefusalTask

# NOTE: a connection closed after a refusal (Waitress's 413, 400...) is still read, and what
# comes dropped, until the client closes, nothing has come for LINGER_IDLE seconds, or
# LINGER_MOST have passed (nginx's lingering close, 5 s and 30 s by default).
LINGER_IDLE = 2.0
LINGER_MOST = 30.0
# NOTE: bytes a read takes while lingering (Waitress's reads are 8 KiB), in the thread that
# reads every connection: a client sent 200 MiB to be dropped in 1.3 s with 8 KiB reads, in
# 0.5 s with these (loopback, http.client, 2026-12-07).
LINGER_READ = 256 * 1024


class OrderlyChannel(ChunkedChannel):
    """Waitress's connection, its heads parsed by ``OrderlyParser`` and its requests answered
    by ``OrderlyTask``; closed after a refusal in two steps (a lingering close)."""

    task_class: Any = OrderlyTask
    parser_class: Any = OrderlyParser
    error_task_class: Any = RefusalTask
    # NOTE: whether a request was refused on it (and the connection closes after the answer),
    # and when (time.time(), Waitress's clock) its lingering close began.
    refused = False
    lingering_since: float | None = None
    # NOTE: whether the client has ended its sending, with answers still owed to it.
    half_closed = False
    # NOTE: whether it has answered a request: from then on, idle is kept alive (--keep-alive).
    answered = False
    request: Any  # NOTE: Waitress's parser of the request still coming, or None.

    def handle_close(self) -> None:
        """Close as Waitress does; after a refusal, end the writing side first and read on,
        dropping what comes, until the client closes or ``lingered_out()``."""
        # SPEC: RFC 9112 9.6, a server closes in stages, so that the client can read the last
        # response. NOTE: Waitress closed at once with a refused body still coming (a 413 for
        # its Content-Length): the socket answered with a reset, and a client that reads once
        # it has sent the body (http.client, requests) got the reset, not the 413. Uvicorn
        # reads such a body on and drops it (Werkzeug's server too, up to 10 GB).
        if self.lingering_since is not None or not (self.refused and self.connected):
            super().handle_close()
            return
        if self.half_closed:
            # NOTE: the client has ended its sending: nothing is left to drop. The lingering
            # close read nothing more (the channel reads no more) and held it for LINGER_IDLE.
            super().handle_close()
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            super().handle_close()
            return
        self.lingering_since = self.last_activity = time.time()
        self.will_close = self.close_when_flushed = False
        with self.requests_lock:
            # NOTE: a request pipelined after the refused one, part read, is never answered:
            # its head counted it in flight, and a stop waited out its grace period for it.
            if self.request is not None:
                self.request.close()  # NOTE: its body's buffer, a temporary file past 512 KiB.
                self.request = None

    def handle_read(self) -> None:
        """Read as Waitress does, but for the client's end of sending (``_end_of_sending()``);
        while lingering, drop what comes, and close at its end."""
        if self.lingering_since is None:
            self._read()
            return
        try:
            data = self.recv(LINGER_READ)  # NOTE: at the client's end, it closes.
        except OSError:
            super().handle_close()
            return
        if data:
            self.last_activity = time.time()

    def _read(self) -> None:
        try:
            # NOTE: not self.recv(), which closes the whole connection at the client's end.
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError:
            # NOTE: a reset, or any error Waitress's own read closes for: the client is gone.
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        else:
            self._end_of_sending()

    def _end_of_sending(self) -> None:
        """Take the client's end of sending (its FIN, a ``shutdown(SHUT_WR)`` or a close):
        the requests read whole are answered, then the connection closes; with nothing owed,
        it closes at once, as under Waitress.

        NOTE: with ``channel_request_lookahead`` (microweb serve sets 1, for
        ``is_disconnected()``) Waitress reads on while a request runs, and took the end as a
        client gone: it closed the connection at once, the answer unsent. A client that
        half-closes once it has sent its request (``nc -N``, scripts, some proxies) got
        nothing. SPEC: RFC 9112 9.6 (its half-close paragraph, from HTTPWG http-core issue 22),
        a client's half-close is no sign that it has lost interest in the answers; Uvicorn
        issue 1264 says the same. A client that closed outright is noticed at the first write
        that fails.
        """
        with self.requests_lock:
            if self.request is not None:
                # NOTE: a request cut off by the end (part of a head or body) is never
                # answered, as under Waitress, which drops it with the connection.
                self.request.close()
                self.request = None
            owed = bool(self.requests or self.total_outbufs_len)
            if owed:
                self.half_closed = True
        if not owed:
            self.handle_close()

    def check_client_disconnected(self) -> bool:
        """Whether the client has gone (``waitress.client_disconnected``): as Waitress says, or,
        once its sending has ended, whether it has reset the connection since.

        NOTE: the channel reads no more after the end, so a reset after it (a half-close, then
        an abort) was never seen: a long poll that wrote nothing waited out its own timeout.
        """
        if super().check_client_disconnected():
            return True
        if not self.half_closed:
            return False
        # NOTE: asked when the app asks (is_disconnected()); under Uvicorn, _stall asks the
        # same check on a timer.
        return reset_after_end(self.socket)

    def readable(self) -> bool:
        """Whether to read: as Waitress says, and never once the client's sending has ended
        (its socket stays readable, at its end, for ever)."""
        return not self.half_closed and bool(super().readable())

    def service(self) -> None:
        """Answer the first request waiting, as Waitress does, and note that one was answered
        (from then on, idle is kept alive: ``--keep-alive``); once the client's sending has
        ended and nothing is left to answer, close when the answers have gone out."""
        super().service()
        self.answered = True
        with self.requests_lock:
            if self.half_closed and not self.requests:
                self.close_when_flushed = True
        if self.connected:
            self.server.pull_trigger()

    def lingered_out(self, now: float) -> bool:
        """Return whether a lingering close has gone on long enough (``LINGER_IDLE``,
        ``LINGER_MOST``)."""
        since = self.lingering_since
        if since is None:
            return False
        return self.last_activity < now - LINGER_IDLE or since < now - LINGER_MOST

    def send_continue(self) -> None:
        """Send ``100 Continue`` for a request whose body is still to come; for one read
        whole already (no body, or all of it came) or refused (a 413 for its
        ``Content-Length``), the answer goes out instead."""
        if self.request.completed:
            # NOTE: Waitress sent the 100 Continue and marked the request as not yet complete,
            # so it waited for more bytes: a GET expecting 100-continue, or a POST with a body
            # of 0 bytes, was never answered, nor a refused one's 413 (the client, told to go
            # on, sent a body Waitress would discard), until the channel timeout.
            # SPEC: RFC 9110 10.1.1, a server may omit the 100 once it has the whole content.
            self.request.expect_continue = False
            return
        super().send_continue()
