"""Uvicorn's httptools protocol with a bound on the request head, as Waitress has.

With httptools, Uvicorn takes a request head of any size: httptools gathers a header's value
whole before it hands it on, so a 20 MB ``Cookie`` header was held in memory and reached the
app. Uvicorn's h11 protocol refuses a head past its first reads, and Waitress answers 431 past
256 KiB. ``microweb serve`` runs Uvicorn with this protocol when httptools is installed, so
that a head is bounded under both servers, with Waitress's limit and status.

A request that stops coming (a head, from the connection's start, or a body) closes the
connection after ``StallTimer.stall_timeout``, as under Waitress (``_stall.py``).

Uvicorn also queued every request pipelined in a read (14,000 in one 256 KiB read of small
GETs), and read on whenever one was answered: one client that pipelined requests without
reading the answers held a gigabyte of queued requests after 15 s. Here the queue is
bounded, as it is under Waitress and h11, which parse a request or two ahead.

A body without a length (a stream) goes to an HTTP/1.0 client as it is, ended by the close of
the connection, as Waitress and h11 send it: Uvicorn's httptools protocol chunked it, which
HTTP/1.0 has no word for, and the client read the chunk sizes as the body.

Frames that a client sent with its WebSocket handshake (before the 101 it should wait for)
were lost: Uvicorn handed the WebSocket protocol the handshake alone. Here that protocol gets
every byte read after the handshake's head.

httptools skips a run of spaces around the target: ``GET  /x`` was served, where Waitress and
h11 answer 400. Here the request line is looked for in the read that holds it (and the end of
the read before): one spaced wrong is refused (400).

A request asking for another ``Upgrade`` (``h2c``) stays HTTP, as under Waitress and h11:
httptools ends it at its head, and Uvicorn parsed its body as the next request, and dropped
a request pipelined after it. Here one with a body is refused (400), and the rest is parsed.
"""

from __future__ import annotations

import contextvars
import functools
import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ._parsing import (
    CONNECT_BODY,
    UNSUPPORTED_CODING,
    UPGRADE_BODY,
    has_body,
    transfer_coding_refusal,
)
from ._percent import percent_decode_bytes
from ._stall import (
    AnswersAfterEnd,
    IdleOnceSent,
    StallTimer,
    Transport,
    UpgradeWarnedOnce,
    body_begun,
    hand_over,
    read_whole_unanswered,
    with_default_fields,
)
from ._target import authority_refusal
from ._types import Message
from ._unix import NoUnixAddress

# NOTE: Waitress's default max_request_header_size, so that both servers refuse the same heads.
MAX_HEAD_SIZE = 256 * 1024
# NOTE: seconds a refused connection is still read (what comes is dropped) before it closes.
LINGER = 2.0
# NOTE: requests parsed ahead of the one being answered; Uvicorn answers them one at a time
# anyway. A read is parsed in slices of SLICE bytes, so that a read of small requests (one per
# 18 bytes) stops being parsed near the bound. The slices cost a 9 MiB upload about 1 ms of
# server CPU over 16 (20 uploads, three times each way, 2026-12-01).
MAX_PIPELINED = 8
SLICE = 16 * 1024
# NOTE: httptools joins the pieces of a field (the target, a header's name or value) that
# come in several reads, each to all before it: a 250 KB value sent a byte a packet took 1 s
# of CPU, in 16-byte packets 60 ms (review280). Past LONG_LINE bytes of a line, the reads
# that go on with it are held, and given to httptools once a line ends in one, or SLICE bytes
# of them have come: 1K joins of up to LONG_LINE bytes, then a join per SLICE.
LONG_LINE = 1024
# NOTE: what a held read may not hold back: a line's end, or a control byte other than a tab,
# which httptools refuses at once (review282).
_ENDS_OR_REFUSED = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# NOTE: a target in absolute-form: a scheme, then "://" (RFC 3986 3.1).
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")
# NOTE: bytes of a read kept for the next one, where a head goes on (BoundedHttpTools.tail).
TAIL = 16
# NOTE: the longest target httptools.parse_url() reads (its offsets are 16-bit).
MAX_PARSED_TARGET = 65535


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


# NOTE: Uvicorn types eof_received() as returning None; AnswersAfterEnd's may return True.
class BoundedHttpTools(  # type: ignore[misc]
    NoUnixAddress, UpgradeWarnedOnce, AnswersAfterEnd, IdleOnceSent, StallTimer, HttpToolsProtocol
):
    """``HttpToolsProtocol`` that answers 431, and closes, once a head reaches ``MAX_HEAD_SIZE``.

    A whole head is measured as Waitress measures it: request line, header lines and the blank
    line (each header line as ``name: value``). One that is still coming is measured by the
    reads that held nothing else (asyncio reads at most 256 KiB at a time), so that httptools
    never holds more than the limit and two reads of one header's value. Requests that came
    before a refused one, or before one that httptools cannot parse (400), are answered first.
    """

    # NOTE: class attributes, read on each use, so that a test can lower them.
    max_head_size = MAX_HEAD_SIZE
    max_pipelined = MAX_PIPELINED

    # NOTE: the state starts from these class values, instead of in an __init__ that would
    # repeat Uvicorn's signature. reading_head: from the end of a message (or the start of the
    # connection) to the end of the next head; heads: how many heads have ended.
    reading_head, refused = True, False
    # NOTE: whether a refusal written by _answer_refusal() (which closes after it) has gone.
    refusal_sent = False
    read_in_head = heads = 0
    # NOTE: bytes of a chunked body's reads that held no data (chunk lines, the trailer), since
    # its data last came; and whether a read being parsed held any (see _parse).
    read_in_trailer = 0
    body_read = False
    # NOTE: the request read before the last one (``self.cycle``), answered or not.
    earlier: RequestResponseCycle | None = None
    # NOTE: what was read past a full pipeline, parsed once it has room; and whether the
    # connection is the WebSocket protocol's (parsing ends there).
    held = b""
    upgraded = False
    # NOTE: what was read after a WebSocket handshake's head, for the WebSocket protocol.
    after_handshake = b""
    # NOTE: bytes of the head's last line that httptools has had (as far as reads that were
    # all head tell), and the reads of a long line held from it (see LONG_LINE).
    line_read = 0
    line_held: bytearray | None = None
    # NOTE: whether a head is due: from the connection's start, or a head's first byte, to the
    # head's end (after an answer, Uvicorn's keep-alive timer closes an idle connection).
    head_due = True
    # NOTE: the request being answered, which is not the last one read (``self.cycle``) when
    # requests are pipelined behind it.
    answering: RequestResponseCycle | None = None
    # NOTE: from a head's end until its request's cycle is set up (_set_up()): as Uvicorn
    # starts its app's task, or once on_headers_complete() has queued it behind others.
    making = False
    # NOTE: the path, raw_path and query_string of a request read with a stand-in target,
    # for its cycle's scope (_set_up()).
    own_target: tuple[str, bytes, bytes] | None = None
    # NOTE: how many on_response_complete() calls are starting the next request's app, one
    # inside another (under an eager task factory, see _start_asgi_task()).
    completing = 0
    # NOTE: the read httptools is parsing (_feed()), where on_url() looks at the request line:
    # where in it the next request line starts, after the message before (CR and LF may come
    # first), or -1 where that is not known (after a chunked body); where the request's target
    # ends in it (-1: not in it); where its body starts in it (-1: not known) and how much of
    # the body has been read from there; whether the request line had its whitespace doubled.
    feeding = b""
    line_from = url_end = body_from = -1
    body_seen = 0
    spaced_line = False
    # NOTE: how a read ended in a request line after its target's first bytes: None, it did
    # not; 0, at the end of the target's bytes (more may come); 1, in one space after them.
    line_open: int | None = None
    # NOTE: whether the head being read began in an earlier read (head_started: it has begun
    # and not ended), and that read's last bytes (TAIL of them, with those before it, where
    # it began earlier still): the method, with its space, is never longer.
    head_started = began_before = False
    tail = b""
    # NOTE: whether the body of the request read last has a Transfer-Encoding (its chunk lines
    # are not counted in body_seen), and where its chunks start in this read (-1: not in it).
    coded_body = False
    chunks_from = -1
    # NOTE: the context the connection was made in, which each request's task starts from
    # (a copy of it), as the first one does.
    start_context: contextvars.Context

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        """Start the connection as Uvicorn does, and the timer for its first head."""
        self.start_context = contextvars.copy_context()
        super().connection_made(transport)
        self.request_moved()

    def on_message_begin(self) -> None:
        """Begin a request as Uvicorn does; its head is due from here."""
        super().on_message_begin()
        self.head_due, self.spaced_line, self.url_end, self.line_open = True, False, -1, None
        self.head_started, self.began_before = True, False

    def on_url(self, url: bytes) -> None:
        """Gather the target as Uvicorn does; see whether its request line is spaced right."""
        if not self.url and self.began_before:
            # NOTE: the line began in an earlier read, whose last bytes hold its start.
            end = target_end_after(self.tail, self.feeding, self.parser.get_method(), url)
            self.spaced_line, self.url_end = end < 0, end
            self._keep_line_open(end)
        elif not self.url and self.line_from >= 0:
            # SPEC: RFC 9112 3, request-line = method SP request-target SP HTTP-version.
            # NOTE: httptools skips any run of spaces around the target: "GET  /x" was
            # served, where Waitress and h11 answer 400, and a proxy before may split the
            # line elsewhere (hostile8).
            end = target_end(self.feeding, self.line_from, self.parser.get_method(), url)
            self.spaced_line, self.url_end = end < 0, end
            self._keep_line_open(end)
        elif self.url and self.line_open == 0:
            # NOTE: the target goes on from the read before, from this one's start.
            data = self.feeding
            end = len(url) if data.startswith(url) else -1
            if end < 0 or not (
                end == len(data) or data[end : end + 2] == b" H" or data[end:] == b" "
            ):
                self.spaced_line, end = True, -1
            self.url_end = end
            self._keep_line_open(end)
        self.url += url

    def _head_end(self) -> int:
        """Return where in this read the head just read ends (after its empty line), or -1
        where that is not known."""
        data, end = self.feeding, self.url_end
        if end < 0 and not self.began_before:
            return -1
        if end < 0:
            # NOTE: its empty line may have begun in the read before.
            tail = self.tail[-3:]
            straddling = (tail + data[:3]).find(b"\r\n\r\n")
            if straddling >= 0:
                return straddling + 4 - len(tail)
        found = data.find(b"\r\n\r\n", max(end, 0))
        return found + 4 if found >= 0 else -1

    def _keep_line_open(self, end: int) -> None:
        """Note whether the read being parsed ends in its request line, ``end`` being where
        its target's bytes end in it (``-1``: nowhere, or refused)."""
        left = len(self.feeding) - end
        self.line_open = left if end >= 0 and left <= 1 else None

    def _go_on_with_line(self, data: bytes) -> None:
        """Check the start of ``data``, a read that goes on with a request line whose target
        ended the read before (``line_open``), or a space after it."""
        if self.line_open == 1:
            self.line_open = None
            self.spaced_line = self.spaced_line or data[:1] == b" "
        elif data[:1] == b" ":
            self.line_open = 1 if len(data) == 1 else None
            self.spaced_line = self.spaced_line or data[1:2] == b" "

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` in slices, until the pipeline of requests waiting is full."""
        if self.refused:
            if self.upgraded:
                # NOTE: a handshake waiting for the answers before it, while one of those
                # reads (a stream watches for its client's departure): what comes is the
                # WebSocket's, and was dropped. One read, and reading stops again.
                self._hand_over(data)
                self.flow.pause_reading()
            return
        if self.held:
            self.held += data
            # NOTE: reading was paused with the bytes held, but the request being answered
            # resumes it when it waits on receive() (a stream's disconnect watcher does, for
            # as long as it streams): each read was held, and the next one taken, with no
            # bound (54 MB in 5 s behind a stream). One read, and reading stops again.
            self.flow.pause_reading()
            return
        if len(data) <= SLICE:
            self._parse(data)
            return
        for start in range(0, len(data), SLICE):
            if self.upgraded:
                self._hand_over(data[start:])
                return
            if self.refused or self.transport.is_closing():
                return
            if len(self.pipeline) >= self.max_pipelined:
                self.held = data[start:]
                self.flow.pause_reading()
                return
            self._parse(data[start : start + SLICE])

    def on_response_complete(self) -> None:
        """Start the next request as Uvicorn does; read on only once none is waiting.

        NOTE: called in the answered request's task, whose ContextVars were those of the
        requests it starts (a queued one, a held one parsed here), of the reader armed again
        here and of the keep-alive timer: a ContextVar its handler set was seen by the next
        request's (CPython issue 140947). Run in a fresh copy of the connection's context
        (0.15 us an answer, timeit 2026-12-07).
        """
        self.start_context.copy().run(self._complete_response)

    def _complete_response(self) -> None:
        if self.pipeline:
            # NOTE: the request Uvicorn starts now (the pipeline's oldest).
            self.answering = self.pipeline[-1][0]
        self.completing += 1
        try:
            super().on_response_complete()
        finally:
            self.completing -= 1
        self.answer_ended()
        if self.transport.is_closing():
            return
        if self.held and len(self.pipeline) < self.max_pipelined:
            held, self.held = self.held, b""
            self.data_received(held)
        if self.pipeline or self.held:
            # NOTE: Uvicorn read on after each answer, with requests still waiting.
            self.flow.pause_reading()
        elif self.request_due() and not self.transport.is_closing():
            # NOTE: part of a head that came in the read of the request answered now is due
            # from here, with no read to come to arm the timer (h11's _watch() does so).
            self.request_moved()
        self.close_if_done()

    def answers_owed(self) -> bool:
        """Whether the request answered now, or one pipelined after it (parsed, or held
        back unparsed), still waits for its answer; or a refusal (its own close follows it)."""
        if self.held or (self.refused and not self.refusal_sent):
            # NOTE: a refusal due after the answers before it (a 400 for a head pipelined
            # behind them) was dropped with the connection, closed as the last of them ended.
            # One sent closes the connection itself, at the client's end or after LINGER.
            return True
        cycles = [self.answering, *(cycle for cycle, _ in self.pipeline)]
        return any(read_whole_unanswered(cycle) for cycle in cycles)

    def _parse(self, data: bytes) -> None:
        """Feed ``data`` to the parser; refuse the request once its head is too large."""
        if self.refused or self._held_back(data):
            return
        if self.line_held:
            data, self.line_held = bytes(self.line_held) + data, None
        in_head, heads = self.reading_head, self.heads
        self.body_read = False
        self._feed(data)
        if self.refused:
            return
        if not in_head and heads == self.heads and data:
            # NOTE: bytes of a body, though perhaps only its chunks' framing (no on_body).
            self.continue_expected = False
        elif heads != self.heads and not self.reading_head and body_begun(data):
            self.continue_expected = False
        if self.request_due():
            self.request_moved()
        if not (in_head or self.reading_head or self.body_read):
            self._measure_trailer(len(data))
            return
        # NOTE: only a read that a head went on through, with no head ending in it, is all
        # head: one that ended a head and began another holds the requests between them.
        if not (in_head and self.reading_head and heads == self.heads):
            return
        self.read_in_head += len(data)
        line_end = data.rfind(b"\n")
        self.line_read = self.line_read + len(data) if line_end < 0 else len(data) - line_end - 1
        # NOTE: the head goes on after these bytes, so it is longer than they are.
        if self.read_in_head >= self.max_head_size:
            self._refuse()

    def _held_back(self, data: bytes) -> bool:
        """Hold ``data`` from httptools if it only goes on with a long line of a head that is
        due; the hold ends with a read that ends a line, or at ``SLICE`` bytes, or at the
        head cap, so that a head is refused at the same byte."""
        if not (self.line_read >= LONG_LINE and self.head_due and self.reading_head):
            return False
        held = self.line_held
        size = len(data) + (len(held) if held else 0)
        if size >= SLICE or self.read_in_head + size >= self.max_head_size:
            return False
        if _ENDS_OR_REFUSED.search(data):
            return False  # NOTE: a line's end, or a control byte httptools answers with 400.
        if held is None:
            held = self.line_held = bytearray()
        held += data
        if self.request_due():
            self.request_moved()
        return True

    def _feed(self, data: bytes) -> None:
        """Give ``data`` to httptools, as Uvicorn's ``data_received`` does; keep what follows
        a WebSocket handshake's head for the WebSocket protocol."""
        self._unset_keepalive_if_required()
        # NOTE: positions are in this read: a target read before ends in none of it.
        self.url_end = self.chunks_from = -1
        self.began_before = self.reading_head and self.head_started
        tail = self.tail if self.began_before else b""
        if self.reading_head:
            self.line_from, self.body_from = 0, -1
            if self.line_open is not None:
                self._go_on_with_line(data)
        else:
            # NOTE: a body that goes on from an earlier read starts this one, but for the
            # chunks of one, whose end is not known here.
            self.line_from, self.body_from = -1, -1 if self.coded_body else 0
        self.body_seen = 0
        while data:
            self.feeding = data
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            except httptools.HttpParserUpgrade as upgrade:
                self.feeding = b""
                rest = data[upgrade.args[0] :]
                if not self._should_upgrade():
                    if not self.refused:
                        # NOTE: a refused one was logged as refused.
                        self._unsupported_upgrade_warning()
                    # NOTE: an upgrade not taken (h2c, which curl --http2 asks for) stays
                    # HTTP: Uvicorn dropped the rest of the read, and a request pipelined
                    # there was never answered. httptools parses on from there.
                    data = b"" if self.refused else rest
                    self.line_from = self.body_from = -1
                    continue
                # NOTE: httptools tells where the head ended; Uvicorn dropped what came after
                # it, and so the frames a client sent with its handshake (RFC 6455 4.1 asks it
                # to wait for the 101, but the bytes were on the connection): it waited.
                self.after_handshake = rest
                self.handle_websocket_upgrade()
            if self.reading_head and self.head_started:
                self.tail = (tail + data)[-TAIL:] if len(data) < TAIL else data[-TAIL:]
            else:
                self.tail = b""
            self.feeding = b""
            return

    def _hand_over(self, data: bytes) -> None:
        """Give ``data``, read after a WebSocket handshake, to the WebSocket protocol; or keep
        it for that protocol, while the handshake waits for the requests before it."""
        if self.transport.get_protocol() is self:
            self.after_handshake += data
        else:
            hand_over(self.transport, data)

    def on_headers_complete(self) -> None:
        """Start the request as Uvicorn does, or refuse it (``_head_refusal()``)."""
        self.head_due, self.line_read, self.line_open = False, 0, None
        # NOTE: the head ends at its first empty line (httptools takes CRLF only); its body
        # starts there, but for a chunked one's, whose chunk lines are not counted.
        head_end = self._head_end()
        self.head_started = False
        self.coded_body = any(name == b"transfer-encoding" for name, _ in self.headers)
        unknown = head_end < 0 or self.coded_body
        self.body_from, self.body_seen = -1 if unknown else head_end, 0
        self.chunks_from = head_end if self.coded_body else -1
        if self.refused:
            return
        self.reading_head, self.heads = False, self.heads + 1
        refusal = self._head_refusal()
        if refusal is not None:
            self._refuse(refusal)
        else:
            if self.expect_100_continue and self.parser.get_http_version() == "1.0":
                # SPEC: RFC 9110 10.1.1, a server MUST ignore 100-continue from HTTP/1.0 (the
                # client knows no 1xx); Uvicorn sent one, Waitress ignores it.
                self.expect_100_continue = False
            self.continue_expected = False
            earlier = self.earlier = self.cycle
            if self.url[:1] != b"/":
                self.url = with_path(self.url)
            target = self.url
            # NOTE: Uvicorn decodes a path's escapes with urllib.parse.unquote(), a Python loop
            # that raises and catches a KeyError for each "%" that starts none, in the event
            # loop: 250 KB of "%" took 0.2-0.5 s of CPU (fuzz3). A handshake's path is its
            # WebSocket protocol's to read.
            escaped = b"%" in target.partition(b"?")[0] and not self.parser.should_upgrade()
            # NOTE: a target neither in origin-form nor in absolute-form (a CONNECT's
            # authority-form, "x:443"), which httptools.parse_url() refuses: Uvicorn answered
            # 400 and closed, where Waitress and h11 hand it to the app (a 400: not a path).
            other_form = target[:1] != b"/" and not _ABSOLUTE_FORM.match(target)
            # NOTE: httptools.parse_url() also refuses authorities RFC 3986 allows, that
            # Waitress and h11 serve ("h~", "a!b", "[v1.x]"): an absolute-form target is read
            # here, its authority checked before (authority_refusal()).
            absolute = target[:1] != b"/" and not other_form
            stand_in = len(target) > MAX_PARSED_TARGET or escaped or other_form or absolute
            if stand_in:
                # NOTE: Uvicorn reads the target with httptools.parse_url(), which refuses one
                # past 64 KiB: the request was a 400, where Waitress and h11 serve it. Uvicorn
                # reads a stand-in; the scope gets this one's path and query as it would, as
                # its cycle is set up (_set_up()).
                path, query = (target, b"") if other_form else split_target(target)
                # NOTE: a target that is no path takes no root path before it (review338).
                root = "" if other_form else self.root_path
                self.own_target = (root + decoded_path(path), root.encode("ascii") + path, query)
                self.url = b"/"
            self.making = True
            try:
                super().on_headers_complete()
            except BaseException:
                # NOTE: a head Uvicorn could not read (an absolute-form target whose authority
                # httptools.parse_url() refuses): no cycle made, and httptools answers 400. It
                # was taken for a bad chunk of the body of the request read before (no head
                # due): that request's answer came after the 400, or it was dropped from the
                # queue, and neither it nor the 400 was sent.
                self.making, self.reading_head, self.own_target = False, True, None
                raise
            if self.making:
                # NOTE: no task started for it: queued behind the requests before it (or an
                # upgrade, with no cycle).
                self.making = False
                if self.cycle is not earlier:
                    self._set_up(self.cycle)
            if stand_in:
                # NOTE: the target itself, for a WebSocket handshake's protocol; and no
                # stand-in left for the next request (an upgrade makes no cycle).
                self.url, self.own_target = target, None
            if earlier is None or earlier.response_complete:
                self.answering = self.cycle
            # NOTE: the scope holds the head's header list itself, to which httptools' fields of
            # a chunked body's trailer were added: an app that read its headers after the body
            # found them there, past a proxy that filtered the head (Waitress drops them).
            # The copy costs 0.06 us for 8 headers (timeit, 2026-12-01).
            self.headers = list(self.headers)

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        """Start the app's task as Uvicorn does; a request whose head has just been read
        has its cycle set up first (``_set_up()``)."""
        if self.making:
            self.making = False
            self._set_up(cycle)
        elif self.completing > 1:
            # NOTE: Uvicorn starts a queued request's app inside the send() that ends the
            # answer before it. Under an eager task factory the app runs there, and its own
            # answer starts the next one a call deeper: the requests pipelined behind a slow
            # one (a read of small ones parses hundreds) ended in a RecursionError, and the
            # rest were never answered. Past the first, each starts on the loop's next turn,
            # as it would without an eager task factory.
            start, context = HttpToolsProtocol._start_asgi_task, self.start_context.copy()
            self.loop.call_soon(start, self, cycle, app, context=context)
            return
        # NOTE: the task copies the context this runs in, which may be another request's task
        # (on_response_complete() is guarded, but an app's receive() also resumes reading): a
        # fresh copy of the connection's, as the first request had (0.15 us a request).
        # PERF: named, not super(): no mixin here has this method (one call a request).
        self.start_context.copy().run(HttpToolsProtocol._start_asgi_task, self, cycle, app)

    def _set_up(self, cycle: RequestResponseCycle) -> None:
        """Complete ``cycle``, just made, before its app's task is: its scope's path (read
        with a stand-in), and the wrappers of its ``receive`` and ``send``.

        NOTE: done after Uvicorn's on_headers_complete() had made the task, these were missed
        under an eager task factory (Python 3.12's, from a loop factory given to ``--loop``),
        where the app's first steps run inside ``create_task()``: a path of escapes was
        routed as "/", a body cut off by the client's end waited for the stall timer, and
        the app had Uvicorn's receive and send, not these (review351).
        """
        own, self.own_target = self.own_target, None
        if own is not None:
            scope = cycle.scope
            scope["path"], scope["raw_path"], scope["query_string"] = own
        self.tell_sends_dropped(cycle)
        self.watch_for_cut(cycle)
        if cycle.scope["http_version"] == "1.0":
            end_by_closing(cycle)
        if self.expect_100_continue:
            self.expect_continue(cycle)

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

    def on_body(self, body: bytes) -> None:
        """Pass on the body as Uvicorn does; after a refusal, the parser's rest is dropped."""
        self.body_read, self.read_in_trailer = True, 0
        self.body_seen += len(body)
        if not self.refused:
            self.continue_expected = False
            super().on_body(body)

    def on_message_complete(self) -> None:
        """End the request as Uvicorn does, unless it was refused; a head may come next."""
        if not self.refused:
            self.reading_head, self.read_in_head, self.read_in_trailer = True, 0, 0
            from_ = self.body_from
            if from_ >= 0:
                self.line_from = from_ + self.body_seen
            elif self.chunks_from >= 0:
                # NOTE: a chunked body whose head came in this read: its chunk lines are read
                # again (httptools has checked them), so that a line after it is checked too.
                self.line_from = chunks_end(self.feeding, self.chunks_from)
            else:
                self.line_from = -1
            self.stop_stall_timer()
            super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and its timers with it."""
        self.stop_timers()
        self.lost = True
        answering = self.answering
        if answering is not None and not answering.response_complete:
            # NOTE: Uvicorn tells only the last request read (self.cycle) that its client has
            # gone: the one answered, with requests pipelined behind it, never heard of it,
            # and a stream there ran on for ever (its disconnect watcher waited in receive()).
            answering.disconnected = True
            answering.message_event.set()
        super().connection_lost(exc)

    def request_due(self) -> bool:
        """Return whether the client owes a head or a body now (``_stall.py``)."""
        if self.refused or self.upgraded:
            return False
        if not self.reading_head:
            return True
        # NOTE: a head pipelined behind a request still answered is due once that is done.
        cycle = self.cycle
        return self.head_due and (cycle is None or cycle.response_complete)

    def waiting_cycle(self) -> RequestResponseCycle | None:
        """Return the last request read, whose body is the one due (``_stall.py``)."""
        return self.cycle

    def app_waits(self) -> bool:
        """Return whether the wait is the app's (``_stall.py``)."""
        # NOTE: bytes held (read past a full pipeline) are the server's to parse: with them,
        # the client may have sent all it owes, and waits for answers.
        return bool(self.held) or super().app_waits()

    def handle_websocket_upgrade(self) -> None:
        """Upgrade as Uvicorn does, once the requests before are answered; unless refused."""
        # NOTE: httptools stops at the end of an upgrade's head whatever on_headers_complete
        # did, and Uvicorn upgraded a refused request, which has no method (KeyError).
        if self.refused:
            return
        # NOTE: the connection is the WebSocket protocol's from here: no body is due.
        self.reading_head, self.upgraded = True, True
        self.stop_stall_timer()
        cycle = self.cycle
        if cycle is None or cycle.response_complete:
            self._upgrade()
            return
        # NOTE: pipelined behind unanswered requests, Uvicorn upgraded at once: the handshake's
        # answer went out as theirs, and theirs went into the WebSocket. It waits for them;
        # nothing more is HTTP: what came after the handshake is kept for the WebSocket.
        self.refused = True
        self.flow.pause_reading()
        self._after_earlier(cycle, self._upgrade)

    def _upgrade(self) -> None:
        """Hand the connection to the WebSocket protocol as Uvicorn does, with what was read
        after the handshake."""
        super().handle_websocket_upgrade()
        rest, self.after_handshake = self.after_handshake, b""
        if rest:
            self._hand_over(rest)

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


def target_end(data: bytes, start: int, method: bytes, url: bytes) -> int:
    """Return where in ``data`` the first read of the target that httptools read (``url``)
    ends, its request line starting at ``start`` (after any CR and LF); ``-1`` if the line is
    not ``method``, one space, the target, then one space and "H" (or the end of ``data``).

    A line at ``data``'s start may have begun in an earlier read: ``data`` then starts with
    the rest of its method and space. Where that read ended in the space, a second space
    starting ``data`` goes by.
    """
    size = len(data)
    while start < size and data[start] in b"\r\n":
        start += 1
    lead = method + b" "
    if data.startswith(lead, start):
        at = start + len(lead)
    elif start > 0:
        return -1
    else:
        at = next(
            (
                len(lead) - cut
                for cut in range(1, len(lead))
                if lead[cut:] == data[: len(lead) - cut]
            ),
            0,
        )
    if not data.startswith(url, at):
        return -1
    end = at + len(url)
    if end == size or data[end : end + 2] == b" H" or data[end:] == b" ":
        return end
    return -1


# NOTE: a chunk line httptools has taken: a size, any extensions, CRLF.
_CHUNK_LINE = re.compile(rb"([0-9A-Fa-f]+)[^\r\n]*\r\n")


def chunks_end(data: bytes, start: int) -> int:
    """Return where in ``data`` the chunks (and trailer) of a body that starts at ``start``
    end, as httptools has read them; ``-1`` if they go on past ``data``."""
    while (line := _CHUNK_LINE.match(data, start)) is not None:
        start = line.end()
        size = int(line[1].lstrip(b"0") or b"0", 16)
        if size:
            start += size + 2
        elif data.startswith(b"\r\n", start):
            return start + 2
        else:
            end = data.find(b"\r\n\r\n", start)
            return -1 if end < 0 else end + 4
    return -1


def target_end_after(tail: bytes, data: bytes, method: bytes, url: bytes) -> int:
    """Return where in ``data`` the first read of the target (``url``) ends, for a request
    line that began in an earlier read, whose last bytes were ``tail``; ``-1`` if the line is
    not ``method``, one space, the target, then one space and "H" (or the end of ``data``)."""
    lead = method + b" "
    joined = tail + data
    found = joined.find(lead + url, max(0, len(tail) - len(lead)))
    at = found + len(lead) - len(tail)
    if found < 0 or not 0 <= at <= len(lead):
        return -1
    end = at + len(url)
    if end == len(data) or data[end : end + 2] == b" H" or data[end:] == b" ":
        return end
    return -1


def with_path(target: bytes) -> bytes:
    """Return an absolute-form target without a path (``http://x?q=1``) as ``/?q=1``.

    Any other target is returned as it is.
    """
    # SPEC: RFC 9112 3.2.2, a server MUST accept the absolute-form; RFC 9110 4.2.3, its
    # empty path is "/". httptools gave no path for it, and Uvicorn answered 400.
    try:
        parsed = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return target
    if parsed.path is not None:
        return target
    return b"/?" + parsed.query if parsed.query else b"/"


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Return the path and the query of ``target`` (origin-form or absolute-form), as
    ``httptools.parse_url()`` reads them, for a target too long for it; ``/`` for no path."""
    target = target.partition(b"#")[0]
    if target[:1] != b"/":
        # NOTE: absolute-form: the path starts after the authority, at its first "/" or "?".
        after = target.partition(b"://")[2]
        ends = [end for end in (after.find(b"/"), after.find(b"?")) if end >= 0]
        target = after[min(ends) :] if ends else b""
    path, _, query = target.partition(b"?")
    return path or b"/", query


def decoded_path(path: bytes) -> str:
    """Return ``path`` as Uvicorn gives it in the scope: ASCII, percent-decoded."""
    text = path.decode("ascii")  # NOTE: raised in httptools' callback, a 400 as in Uvicorn.
    # NOTE: urllib.parse.unquote(text), its escapes decoded in C (see on_headers_complete).
    return percent_decode_bytes(path).decode("utf-8", "replace") if "%" in text else text


def end_by_closing(cycle: RequestResponseCycle) -> None:
    """Have ``cycle`` send a body without a length as HTTP/1.0 has it: ended by the close.

    SPEC: RFC 9112 6.3: without a length and without chunked framing (which an HTTP/1.0
    recipient does not know), a response body ends when the connection closes. Uvicorn never
    keeps an HTTP/1.0 connection alive, so it closes once the body is sent.
    """
    send: Callable[[Any], Awaitable[None]] = cycle.send
    unframed = False

    async def send_unframed(message: Message) -> None:
        nonlocal unframed
        if message["type"] == "http.response.start":
            status = message["status"]
            sized = any(name.lower() == b"content-length" for name, _ in message.get("headers", ()))
            if not sized and status >= 200 and status not in (204, 304):
                unframed = True
                # NOTE: decided before Uvicorn looks: it then adds no Transfer-Encoding.
                cycle.chunked_encoding = False
        elif unframed and message["type"] == "http.response.body":
            # NOTE: Uvicorn counts a body against its Content-Length, and this one has none:
            # each piece is expected, and one byte more while more is to come.
            more = 1 if message.get("more_body", False) else 0
            cycle.expected_content_length = len(message.get("body", b"")) + more
        await send(message)

    cycle.send = send_unframed  # type: ignore[method-assign,assignment]
