"""Uvicorn's httptools protocol with a bound on the request head, as Waitress has.

With httptools, Uvicorn takes a request head of any size: httptools gathers a header's value
whole before it hands it on, so a 20 MB ``Cookie`` header was held in memory and reached the
app. Uvicorn's h11 protocol refuses a head past its first reads, and Waitress answers 431 past
256 KiB. ``microweb serve`` runs Uvicorn with this protocol when httptools is installed, so
that a head is bounded under both servers, with Waitress's limit and status.

Uvicorn also waits for a request body that never comes, for ever: a client that sends a head
and then nothing held its ``def`` handler's pool thread for as long as it kept the connection
open, and ``App.max_threads`` such clients held every ``def`` route. Waitress closes a
connection with no byte for its ``channel_timeout`` while a request is still arriving; so does
this protocol, while a body is due.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from typing import Protocol

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

# NOTE: Waitress's default max_request_header_size, so that both servers refuse the same heads.
MAX_HEAD_SIZE = 256 * 1024
# NOTE: Waitress's default channel_timeout: seconds with no byte of a body that is due before
# the connection is closed, under both servers.
BODY_TIMEOUT = 120.0
# NOTE: seconds a refused connection is still read (what comes is dropped) before it closes.
LINGER = 2.0

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"request header fields too large"
)


class _Timer(Protocol):
    """What ``loop.call_later`` returns, as used here (no asyncio import outside the drivers)."""

    def cancel(self) -> None: ...


class BoundedHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` that answers 431, and closes, once a head reaches ``MAX_HEAD_SIZE``.

    A whole head is measured as Waitress measures it: request line, header lines and the blank
    line (each header line as ``name: value``). One that is still coming is measured by the
    reads that held nothing else (asyncio reads at most 256 KiB at a time), so that httptools
    never holds more than the limit and two reads of one header's value. Requests that came
    before a refused one, or before one that httptools cannot parse (400), are answered first.
    """

    # NOTE: class attributes, read on each use, so that a test can lower them.
    max_head_size = MAX_HEAD_SIZE
    body_timeout = BODY_TIMEOUT

    # NOTE: the state starts from these class values, instead of in an __init__ that would
    # repeat Uvicorn's signature. reading_head: from the end of a message (or the start of the
    # connection) to the end of the next head; heads: how many heads have ended.
    reading_head, refused = True, False
    read_in_head = heads = 0
    # NOTE: the request read before the last one (``self.cycle``), answered or not.
    earlier: RequestResponseCycle | None = None
    # NOTE: when a byte of a body that is due last came (loop time), and the timer that
    # looks at it; a request read whole in one read, the common case, arms no timer.
    body_read_at = 0.0
    stall_timer: _Timer | None = None
    # NOTE: whether the last request read expects 100-continue and no byte of its body came.
    continue_expected = False

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to the parser; refuse the request once its head is too large."""
        if self.refused:
            return
        in_head, heads = self.reading_head, self.heads
        super().data_received(data)
        if self.refused:
            return
        if not self.reading_head:
            self._body_due()
        # NOTE: only a read that a head went on through, with no head ending in it, is all
        # head: one that ended a head and began another holds the requests between them.
        if not (in_head and self.reading_head and heads == self.heads):
            return
        self.read_in_head += len(data)
        # NOTE: the head goes on after these bytes, so it is longer than they are.
        if self.read_in_head >= self.max_head_size:
            self._refuse()

    def on_headers_complete(self) -> None:
        """Start the request as Uvicorn does, or refuse it if its head is too large."""
        if self.refused:
            return
        self.reading_head, self.heads = False, self.heads + 1
        if self._head_size() >= self.max_head_size:
            self._refuse()
        else:
            if self.expect_100_continue and self.parser.get_http_version() == "1.0":
                # SPEC: RFC 9110 10.1.1, a server MUST ignore 100-continue from HTTP/1.0 (the
                # client knows no 1xx); Uvicorn sent one, Waitress ignores it.
                self.expect_100_continue = False
            self.continue_expected = self.expect_100_continue
            self.earlier = self.cycle
            super().on_headers_complete()
            # NOTE: the scope holds the head's header list itself, to which httptools' fields of
            # a chunked body's trailer were added: an app that read its headers after the body
            # found them there, past a proxy that filtered the head (Waitress drops them).
            # The copy costs 0.06 us for 8 headers (timeit, 2026-12-01).
            self.headers = list(self.headers)

    def _head_size(self) -> int:
        # NOTE: "GET " + target + " HTTP/1.1\r\n", ": " and CRLF per header, the blank line;
        # Waitress counts these bytes, and refuses a head of MAX_HEAD_SIZE of them.
        headers = self.headers
        # NOTE: summed in C from what Uvicorn kept: an on_header of ours would add a Python
        # call for each header line of each request.
        fields = sum(map(len, itertools.chain.from_iterable(headers)))
        return len(self.parser.get_method()) + len(self.url) + 14 + fields + 4 * len(headers)

    def on_body(self, body: bytes) -> None:
        """Pass on the body as Uvicorn does; after a refusal, the parser's rest is dropped."""
        if not self.refused:
            self.continue_expected = False
            super().on_body(body)

    def on_message_complete(self) -> None:
        """End the request as Uvicorn does, unless it was refused; a head may come next."""
        if not self.refused:
            self.reading_head, self.read_in_head = True, 0
            self._stop_stall_timer()
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and its timer with it."""
        self._stop_stall_timer()
        super().connection_lost(exc)

    def _body_due(self) -> None:
        self.body_read_at = self.loop.time()
        if self.stall_timer is None:
            self.stall_timer = self.loop.call_later(self.body_timeout, self._check_stall)

    def _stop_stall_timer(self) -> None:
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None

    def _check_stall(self) -> None:
        """Close the connection if the body due has not moved for ``body_timeout`` seconds."""
        self.stall_timer = None
        if self.reading_head or self.refused or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.cycle
        # NOTE: a wait that is the app's, not the client's: reading paused until the app takes
        # what came (or answers the requests before), or a client that waits for its 100
        # Continue, which goes once the app reads the body. A client answered before any 100
        # Continue need not send the body at all (RFC 9110 10.1.1; curl stops): its answer
        # may stream on, and Uvicorn's keep-alive timeout closes the connection after it.
        if self.flow.read_paused or (cycle is not None and self._continue_awaited(cycle)):
            self.body_read_at = now
        idle = now - self.body_read_at
        if idle < self.body_timeout:
            self.stall_timer = self.loop.call_later(self.body_timeout - idle, self._check_stall)
            return
        self.logger.warning("no byte of a request body for %g s: connection closed", idle)
        self.transport.close()

    def _continue_awaited(self, cycle: RequestResponseCycle) -> bool:
        return cycle.waiting_for_100_continue or (self.continue_expected and cycle.response_started)

    def handle_websocket_upgrade(self) -> None:
        """Upgrade as Uvicorn does, once the requests before are answered; unless refused."""
        # NOTE: httptools stops at the end of an upgrade's head whatever on_headers_complete
        # did, and Uvicorn upgraded a refused request, which has no method (KeyError).
        if self.refused:
            return
        # NOTE: the connection is the WebSocket protocol's from here: no body is due.
        self.reading_head = True
        self._stop_stall_timer()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            super().handle_websocket_upgrade()
            return
        # NOTE: pipelined behind unanswered requests, Uvicorn upgraded at once: the handshake's
        # answer went out as theirs, and theirs went into the WebSocket. It waits for them;
        # nothing more is HTTP (a client sends no frame before the handshake's answer).
        self.refused = True
        self.flow.pause_reading()
        self._after_earlier(cycle, super().handle_websocket_upgrade)

    def send_400_response(self, msg: str) -> None:
        """Answer a request httptools could not parse with 400, after the requests before it."""
        if self.refused:
            # NOTE: httptools parses on after a head refused with 431 (sent, or due after the
            # answers before it): what it cannot parse there is dropped with the rest. A 400
            # after the 431 was written past the end of the writing side (asyncio's "Fatal
            # error: protocol.data_received() call failed"), or in its place.
            return
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            super().send_400_response(msg)
            return
        if not self.reading_head:
            # NOTE: a bad chunk in the body of the last request read. If its handler runs,
            # this is its 400, now: the handler waits for the rest of the body, which never
            # comes, and the requests before it are answered. If it still waits for those
            # answers, it never runs, and its 400 comes after them.
            queued = [entry for entry in self.pipeline if entry[0] is cycle]
            if not queued or self.earlier is None:
                self._answer_400_now(cycle, msg)
                return
            self.pipeline.remove(queued[0])
            cycle = self.earlier
        # NOTE: Uvicorn closed the connection at once, under the answers still due to requests
        # pipelined before the bad one, which their clients lost; Waitress sends them first.
        self.refused = True
        self._after_earlier(cycle, functools.partial(super().send_400_response, msg))

    def _answer_400_now(self, cycle: RequestResponseCycle, msg: str) -> None:
        if cycle.response_started:
            # NOTE: the handler's answer is on its way: Uvicorn wrote the 400 inside it, where
            # the client read a status line as body. The cut connection is the error.
            self.transport.close()
            return
        super().send_400_response(msg)

    def _refuse(self) -> None:
        self.refused = True
        size = self.max_head_size
        self.logger.warning("request head of %d bytes or more: refused with 431", size)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._after_earlier(cycle, self._answer_431)
            return
        self._answer_431()

    def _after_earlier(self, cycle: RequestResponseCycle, answer: Callable[[], None]) -> None:
        """Send ``answer()`` once ``cycle``, the last request read, is answered: requests
        before a refused one are answered first, as under Waitress (the last read is the last
        to answer)."""
        cycle.on_response = functools.partial(self._answer_after, cycle.on_response, answer)

    def _answer_after(self, on_response: Callable[[], None], answer: Callable[[], None]) -> None:
        on_response()
        if not self.transport.is_closing():
            self._unset_keepalive_if_required()
            answer()

    def _answer_431(self) -> None:
        self.transport.write(_REFUSAL)
        # NOTE: closed at once, with the client still sending, the socket would answer with a
        # reset that can reach the client before the 431: end the writing side, drop what
        # still comes, and close after a pause.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)
