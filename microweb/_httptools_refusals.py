"""The answers Uvicorn's httptools protocol (``BoundedHttpTools``) writes itself, and their
order: a head refused at its end (431 too large; 400 for a version not served, a request line
spaced wrong, a switch or a ``CONNECT`` with a body, or an absolute-form target whose scheme or
authority is refused; 501 for a transfer coding before ``chunked``), a 400 for what httptools
cannot parse and for a body's framing too large; each after the answers owed to the requests
before it, then the connection closes.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ._framing import (
    CONNECT_BODY,
    UNSUPPORTED_CODING,
    UPGRADE_BODY,
    has_body,
    transfer_coding_refusal,
)
from ._target import authority_refusal
from ._uvicorn_shared import with_default_fields

# NOTE: Waitress's default max_request_header_size, so that both servers refuse the same heads.
MAX_HEAD_SIZE = 256 * 1024
# NOTE: seconds a refused connection is still read (what comes is dropped) before it closes.
LINGER = 2.0


def _closing_refusal(status: bytes, text: bytes) -> bytes:
    """The bytes of a plain-text answer with ``status`` that closes the connection."""
    head = b"HTTP/1.1 %s\r\ncontent-type: text/plain; charset=utf-8\r\n" % status
    return head + b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(text), text)


_REFUSAL = _closing_refusal(
    b"431 Request Header Fields Too Large", b"request header fields too large"
)
_SPACED_REFUSAL = _closing_refusal(b"400 Bad Request", b"request line spaced wrong")
_VERSION_REFUSAL = _closing_refusal(b"400 Bad Request", b"HTTP version not served")
_UPGRADE_REFUSAL = _closing_refusal(b"400 Bad Request", UPGRADE_BODY.encode())
_CONNECT_REFUSAL = _closing_refusal(b"400 Bad Request", CONNECT_BODY.encode())
_CODING_REFUSAL = _closing_refusal(b"501 Not Implemented", UNSUPPORTED_CODING.encode())


class HttpToolsRefusals(HttpToolsProtocol):
    """The refusals of ``BoundedHttpTools``, under ``HttpToolsReads``, first among its bases:
    their methods come before those of the other mixins, as they did when they were its own."""

    # NOTE: a class attribute, read on each use, so that a test can lower it.
    max_head_size = MAX_HEAD_SIZE

    # NOTE: the state starts from these class values, instead of in an __init__ that would
    # repeat Uvicorn's signature. reading_head: from the end of a message (or the start of the
    # connection) to the end of the next head.
    reading_head, refused = True, False
    # NOTE: whether a refusal written by _answer_refusal() (which closes after it) has gone.
    refusal_sent = False
    # NOTE: whether the request line of the head being read had its whitespace doubled
    # (BoundedHttpTools.on_url() sees it; hostile8).
    spaced_line = False
    # NOTE: bytes of a chunked body's reads that held no data (chunk lines, the trailer), since
    # its data last came.
    read_in_trailer = 0
    # NOTE: the request read before the last one (``self.cycle``), answered or not.
    earlier: RequestResponseCycle | None = None

    def _head_refusal(self) -> bytes | None:
        """Return the refusal of the request whose head was just read, or ``None``: 431 for a
        head too large, 400 for a version not served, a request line spaced wrong or a switch
        with a body, 501 for a transfer coding before ``chunked``."""
        if self._head_size() >= self.max_head_size:
            return _REFUSAL
        if self.parser.get_http_version() not in ("1.0", "1.1"):
            # SPEC: RFC 9112 2.3. NOTE: httptools reads HTTP/2.0, and a request line without
            # a version (0.9), which Uvicorn served; Waitress and h11 answer 400.
            self.logger.warning("HTTP version not served: refused with 400")
            return _VERSION_REFUSAL
        if self.spaced_line:
            self.logger.warning("request line with whitespace doubled: refused with 400")
            return _SPACED_REFUSAL
        if self.parser.should_upgrade() and has_body(self.headers):
            # SPEC: RFC 9110 7.8, a server MAY ignore Upgrade, and then reads the request as
            # any other. NOTE: httptools ends the request at its head all the same (the body
            # is taken for the new protocol's), and Uvicorn parsed that body as the next
            # requests: a body was answered as a request of its own where Waitress and h11,
            # and a proxy before the app, read it as a body.
            # NOTE: httptools takes CONNECT for a switch too (RFC 9110 9.3.6: it has no
            # content): its refusal spoke of an Upgrade. A WebSocket handshake with a body is
            # refused too, as Waitress and h11 refuse it (switch_refusal()): the body was
            # handed to the WebSocket protocol as frames (review317).
            connect = self.parser.get_method() == b"CONNECT"
            kind = "CONNECT" if connect else "Upgrade"
            self.logger.warning("%s request with a body: refused with 400", kind)
            return _CONNECT_REFUSAL if connect else _UPGRADE_REFUSAL
        # PERF: an origin-form target ("/...") has no authority: no call (0.17 us).
        authority = None if self.url[:1] == b"/" else authority_refusal(self.url)
        if authority is not None:
            # NOTE: httptools served userinfo ("http://u@host/"), which Waitress and h11 refuse.
            self.logger.warning("%s: refused with 400", authority)
            return _closing_refusal(b"400 Bad Request", authority.encode())
        if self._coding_not_understood():
            # SPEC: RFC 9112 6.1, a server SHOULD answer 501 to a transfer coding it does not
            # understand. NOTE: httptools frames "gzip, chunked" by its chunks and Uvicorn
            # handed the body on still gzip-coded: the app answered 501 and the connection was
            # kept, where Waitress and h11 refuse it at the head and close. Refused so here.
            self.logger.warning("a transfer coding before chunked: refused with 501")
            return _CODING_REFUSAL
        return None

    def _coding_not_understood(self) -> bool:
        """Return whether the request's ``Transfer-Encoding`` names a coding before
        ``chunked`` (httptools refuses the other faulty ones itself)."""
        codings = [value for name, value in self.headers if name == b"transfer-encoding"]
        if not codings:
            return False
        refusal = transfer_coding_refusal(value.decode("latin-1") for value in codings)
        return refusal is not None and refusal.status == 501

    def _head_size(self) -> int:
        # NOTE: "GET " + target + " HTTP/1.1\r\n", ": " and CRLF per header, the blank line;
        # Waitress counts these bytes, and refuses a head of MAX_HEAD_SIZE of them.
        headers = self.headers
        # NOTE: summed in C from what Uvicorn kept: an on_header of ours would add a Python
        # call for each header line of each request.
        fields = sum(map(len, itertools.chain.from_iterable(headers)))
        return len(self.parser.get_method()) + len(self.url) + 14 + fields + 4 * len(headers)

    def _measure_trailer(self, size: int) -> None:
        """Count ``size`` bytes of a body's read that held no data; past ``max_head_size``
        of them, answer 400 and close, as h11 does."""
        # NOTE: httptools gathers a trailer field's value whole, and by appending each read
        # to it: one 16 MiB trailer field took 0.7 s of the event loop and 30 MiB of memory,
        # 64 MiB took seconds more (its square), while the request was served in the end.
        self.read_in_trailer += size
        if self.read_in_trailer >= self.max_head_size:
            self.logger.warning("chunk lines or trailer of %d bytes or more", self.max_head_size)
            self.send_400_response("chunked body framing or trailer too large")

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

    def _refuse(self, refusal: bytes = _REFUSAL) -> None:
        """Answer the request whose head was just read with ``refusal`` (by default, 431 for
        a head too large), after the requests before it, and close."""
        self.refused = True
        if refusal is _REFUSAL:
            size = self.max_head_size
            self.logger.warning("request head of %d bytes or more: refused with 431", size)
        answer = functools.partial(self._answer_refusal, refusal)
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._after_earlier(cycle, answer)
            return
        answer()

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

    def _answer_refusal(self, refusal: bytes) -> None:
        self.refusal_sent = True
        # NOTE: with Uvicorn's Date and Server, as its own 400 has them; the refusals are made
        # once, without.
        self.transport.write(with_default_fields(self.server_state, refusal))
        # NOTE: closed at once, with the client still sending, the socket would answer with a
        # reset that can reach the client before the 431: end the writing side, drop what
        # still comes, and close after a pause.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)
