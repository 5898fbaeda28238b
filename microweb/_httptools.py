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

Here is the protocol's request lifecycle: a request's cycle set up, the pipeline answered in
order, a WebSocket upgrade, the stall timer's hooks. How reads are given to httptools is in
``_httptools_reads``, the answers it writes itself in ``_httptools_refusals``, the targets it
reads where ``httptools.parse_url()`` cannot in ``_httptools_targets``.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from ._conn_end import AnswersAfterEnd, IdleOnceSent, read_whole_unanswered
from ._httptools_reads import (
    FRESH_CHUNKS,
    HttpToolsReads,
    chunks_read,
    target_end,
    target_end_after,
)
from ._httptools_targets import stand_in_target, with_path
from ._stall import StallTimer
from ._types import Message
from ._unix import NoUnixAddress
from ._uvicorn_shared import Transport, UpgradeWarnedOnce


# NOTE: Uvicorn types eof_received() as returning None; AnswersAfterEnd's may return True.
class BoundedHttpTools(  # type: ignore[misc]
    HttpToolsReads,
    NoUnixAddress,
    UpgradeWarnedOnce,
    AnswersAfterEnd,
    IdleOnceSent,
    StallTimer,
    HttpToolsProtocol,
):
    """``HttpToolsProtocol`` that answers 431, and closes, once a head reaches ``MAX_HEAD_SIZE``.

    A whole head is measured as Waitress measures it: request line, header lines and the blank
    line (each header line as ``name: value``). One that is still coming is measured by the
    reads that held nothing else (asyncio reads at most 256 KiB at a time), so that httptools
    never holds more than the limit and two reads of one header's value. Requests that came
    before a refused one, or before one that httptools cannot parse (400), are answered first.
    """

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
        self.chunk_state = FRESH_CHUNKS if self.chunks_from >= 0 else None
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
            own = stand_in_target(target, escaped, self.root_path)
            stand_in = own is not None
            if stand_in:
                # NOTE: read with a stand-in target; the scope gets this one's path and query,
                # as its cycle is set up (_set_up()).
                self.own_target, self.url = own, b"/"
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
                # NOTE: a chunked body: its chunk lines are read again (httptools has checked
                # them), from its head or from where the read before left them, so that a
                # line after it is checked too.
                self.line_from = chunks_read(self.chunk_state, self.feeding, self.chunks_from)[1]
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
