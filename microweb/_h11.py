"""Uvicorn's h11 protocol, with the stalled-request timer that ``microweb serve`` gives httptools.

Without httptools (``pip install "microweb[uvicorn]"`` does not install it), Uvicorn runs h11,
which bounds a request head itself but, like httptools, waits for a request that never comes
for ever: a ``def`` handler reading a body that stopped held its pool thread as long as the
client kept the connection open, and a connection that sent nothing, or part of a head, stayed
open. ``microweb serve`` runs this protocol then, so that such a connection is closed after
``StallTimer.stall_timeout``, as under httptools and Waitress (``_stall.py``).

Uvicorn hands the WebSocket protocol a handshake alone; this protocol hands it the bytes read
after the handshake too, as ``_httptools.py`` does: the frames a client sent with it were lost.

What h11 reads is checked, as Waitress and httptools check it, by ``FramedConnection``
(``_h11_connection.py``) and the readers of ``_h11_framing.py``.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from ._conn_end import AnswersAfterEnd, IdleOnceSent, read_whole_unanswered
from ._framing import UNSUPPORTED_CODING
from ._h11_connection import FramedConnection, decoded_path
from ._stall import StallTimer
from ._unix import NoUnixAddress
from ._uvicorn_shared import (
    Transport,
    UpgradeWarnedOnce,
    body_begun,
    hand_over,
    with_default_fields,
)

# NOTE: Waitress's default max_request_header_size, as _httptools_refusals' MAX_HEAD_SIZE
# (which this module can't import: it needs httptools), and its LINGER (tests/test_httptools.py
# checks both are the same).
MAX_HEAD_SIZE = 256 * 1024
LINGER = 2.0


class _MadeCycle:
    """The ``cycle`` attribute of ``BoundedH11``: Uvicorn sets it to each request's cycle as
    it makes it, then makes the app's task; the protocol sets the cycle up in between
    (``cycle_made()``).

    NOTE: Uvicorn's h11 protocol makes the cycle and the task in one method, with no call of
    the protocol's between them. Set up after it, the cycle was missed under an eager task
    factory (Python 3.12's, from a loop factory given to ``--loop``), where the app's first
    steps run inside ``create_task()`` (review351). Only setting goes through here: with no
    ``__get__``, a read finds the instance's own value.
    """

    def __set__(self, protocol: BoundedH11, cycle: RequestResponseCycle | None) -> None:
        protocol.__dict__["cycle"] = cycle
        if cycle is not None:
            protocol.cycle_made(cycle)


# NOTE: Uvicorn types eof_received() as returning None; AnswersAfterEnd's may return True.
class BoundedH11(  # type: ignore[misc]
    NoUnixAddress, UpgradeWarnedOnce, AnswersAfterEnd, IdleOnceSent, StallTimer, H11Protocol
):
    """``H11Protocol`` that closes a connection whose request stopped coming, refuses a
    request framed both by ``Transfer-Encoding`` and ``Content-Length``, or by two
    ``Content-Length`` values, or a head with a bare LF, and answers a head of
    ``MAX_HEAD_SIZE`` or more with 431, as Waitress and ``BoundedHttpTools`` do."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # NOTE: h11 refuses a head (or chunk line, or trailer) still incomplete past this many
        # bytes; by default 16 KiB, so that a head of 20 KiB was served when it came in one
        # read and refused with 400 when it came in two, where Waitress and httptools serve
        # up to 256 KiB. Uvicorn's --h11-max-incomplete-event-size still sets it.
        size = self.config.h11_max_incomplete_event_size
        self.conn = FramedConnection(h11.SERVER, MAX_HEAD_SIZE if size is None else size)

    conn: FramedConnection
    # NOTE: a head refused as too large: what still comes is dropped until the close.
    refused = False

    # NOTE: from the WebSocket handshake on, the connection is the WebSocket protocol's;
    # answered: whether a response has ended on it.
    upgraded = answered = False
    seen: RequestResponseCycle | None = None
    if not TYPE_CHECKING:
        # NOTE: hidden from mypy, which reads self.cycle as Uvicorn types it.
        cycle = _MadeCycle()

    # NOTE: the context the connection was made in, which each request's task starts from
    # (a copy of it), as the first one does.
    start_context: contextvars.Context

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        """Start the connection as Uvicorn does, and the timer for its first head."""
        self.start_context = contextvars.copy_context()
        super().connection_made(transport)
        self.request_moved()

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to h11 as Uvicorn does; watch the request, if one is due."""
        if self.refused or self.conn.their_state is h11.MUST_CLOSE:
            # NOTE: after a request that closes the connection (Connection: close, HTTP/1.0)
            # h11 expects nothing more: bytes that came while the app ran were answered with
            # 400 and a close, and the app's answer was lost. Waitress and httptools answer
            # the request and drop them; the connection closes after the answer.
            return
        super().data_received(data)
        if not self._see_cycle() and data:
            self.continue_expected = False
        elif self.seen is not None and self.seen.more_body and body_begun(data):
            # NOTE: the head's read went on into its body, perhaps only a chunk's size line,
            # which h11 hands on as no Data.
            self.continue_expected = False
        self._watch()

    def handle_events(self) -> None:
        """Handle what h11 has read as Uvicorn does, in a fresh copy of the connection's
        context: a request's task copies the context this runs in.

        NOTE: Uvicorn starts a pipelined request's task inside the send() that ends the answer
        before it (on_response_complete()), in that request's task: a ContextVar one request's
        handler set was seen by the next one's (CPython issue 140947). Here whatever calls it,
        the task starts as the first request's did. A copy and run cost 0.15 us a read
        (timeit, 2026-12-07).
        """
        self.start_context.copy().run(H11Protocol.handle_events, self)

    def on_response_complete(self) -> None:
        """End the response as Uvicorn does; watch the body of a request pipelined after it.

        NOTE: in a fresh copy of the connection's context, so that neither the next request
        nor the reads and keep-alive timer armed here see the answered request's ContextVars.
        """
        self.start_context.copy().run(self._complete_response)

    def _complete_response(self) -> None:
        super().on_response_complete()
        self.answer_ended()
        self.answered = True
        # NOTE: the next request's head may have come in an earlier read, with no read to come.
        self._see_cycle()
        self._watch()
        self.close_if_done()

    def answers_owed(self) -> bool:
        """Whether the request answered now waits for its answer (one pipelined after it
        is still unparsed in h11's buffer: it is parsed as this one's answer ends)."""
        return read_whole_unanswered(self.cycle)

    def _see_cycle(self) -> bool:
        """Note whether a request Uvicorn has just made still expects 100-continue, once the
        events read with its head are handled; return whether there was one."""
        cycle = self.cycle
        if cycle is self.seen:
            return False
        self.seen = cycle
        if cycle is not None and cycle.body:
            # NOTE: its body came with its head: the client waits for no 100 Continue.
            self.continue_expected = False
        return True

    def cycle_made(self, cycle: RequestResponseCycle) -> None:
        """Complete ``cycle`` as Uvicorn makes it, before its app's task: its scope's path
        (read with a stand-in), and the wrappers of its ``receive`` and ``send``."""
        # NOTE: Uvicorn decodes the path with urllib.parse.unquote(), a Python loop that raises
        # and catches a KeyError for each "%" that starts no escape, in the event loop: 250 KB
        # of "%" took 75 ms of CPU, of "%41" 20 ms, while every connection waited (review325).
        # It read a stand-in target (FramedConnection); the scope gets this one's path.
        conn, scope = self.conn, cycle.scope
        target, conn.escaped_target = conn.escaped_target, None
        if target is not None:
            raw_path = target.partition(b"?")[0]
            scope["path"] = self.root_path + decoded_path(raw_path)
            scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        bare, conn.bare_target = conn.bare_target, None
        if bare is not None and self.root_path:
            # NOTE: Uvicorn put the root path before any target: a CONNECT's "x:443" became
            # the path "/rootx:443", a 404 for the app (a path outside its mount), where
            # Waitress hands the app the target itself (a 400: no path); "*" too (review338).
            scope["path"] = decoded_path(bare)
            scope["raw_path"] = bare
        self.tell_sends_dropped(cycle)
        self.watch_for_cut(cycle)
        self.continue_expected = False
        if cycle.waiting_for_100_continue:
            # NOTE: _see_cycle() says, after the events read with it, whether its body came.
            self.expect_continue(cycle)

    def send_400_response(self, msg: str) -> None:
        """Answer input h11 refused with 400, as Uvicorn does; with 431 if it was too long,
        with 501 for a transfer coding before ``chunked``."""
        if self.conn.too_large:
            self._refuse(
                431, b"Request Header Fields Too Large", b"request header fields too large"
            )
        elif self.conn.not_implemented:
            # SPEC: RFC 9112 6.1, a server SHOULD answer 501 to a transfer coding it does not
            # understand. NOTE: Uvicorn answered 400, where Waitress and the app (under
            # httptools) answer 501; the connection closes, as under Waitress.
            self._refuse(501, b"Not Implemented", UNSUPPORTED_CODING.encode())
        elif self.conn.switch_refused is not None:
            # NOTE: refused at its head, its body maybe still coming: answered as httptools
            # answers it, and closed after a pause (review317).
            self._refuse(400, b"Bad Request", self.conn.switch_refused.encode())
        elif self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            # NOTE: Uvicorn sent its 400 without a Content-Length: chunked once the head was
            # read (a bad chunk, a refused head), ended by the close before, where Waitress
            # and httptools send one (review317). Closed at once, as Uvicorn closes.
            self._answer(400, b"Bad Request", msg.encode("ascii"))
            self.transport.close()
        else:
            # NOTE: the app's answer has begun (or ended): no second head can follow it, and
            # Uvicorn's own 400 made h11 raise, which asyncio logged with its traceback (a bad
            # chunk after a 405 sent before the body was read). Closed, as Uvicorn closes.
            self.transport.close()

    def _refuse(self, status: int, reason: bytes, body: bytes) -> None:
        """Answer with ``status`` and close, dropping what still comes."""
        self.refused = True
        self.stop_stall_timer()
        self._answer(status, reason, body)
        # NOTE: closed at once, with the client still sending, the socket answered with a
        # reset, which can reach the client before the answer: end the writing side, drop
        # what still comes, and close after a pause (as BoundedHttpTools does).
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)

    def _answer(self, status: int, reason: bytes, body: bytes) -> None:
        """Write a plain-text answer with ``status`` that closes the connection."""
        # NOTE: Uvicorn's own 400 under h11 carried no Date and no Server, where its httptools
        # protocol and Waitress send both.
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        conn = self.conn
        head = conn.send(h11.Response(status_code=status, headers=headers, reason=reason))
        self.transport.write(with_default_fields(self.server_state, head or b""))
        for event in (h11.Data(data=body), h11.EndOfMessage()):
            self.transport.write(conn.send(event) or b"")

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and its timers with it."""
        self.stop_timers()
        self.lost = True
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Upgrade as Uvicorn does, and hand the WebSocket protocol what came after the
        handshake; no HTTP body is due from here on."""
        self.upgraded = True
        self.conn.bare_target = None
        target, self.conn.escaped_target = self.conn.escaped_target, None
        if target is not None:
            # NOTE: the handshake is rebuilt from the target: the request's own, not a stand-in.
            event = h11.Request(
                method=event.method,
                target=target,
                headers=event.headers,
                http_version=event.http_version,
            )
        self.stop_stall_timer()
        super().handle_websocket_upgrade(event)
        # NOTE: Uvicorn handed over the handshake alone: frames read with it (a client that
        # sends before the 101, as RFC 6455 4.1 asks it not to) were lost, and the connection
        # waited for them.
        rest = self.conn.trailing_data[0]
        if rest:
            hand_over(self.transport, rest)

    def request_due(self) -> bool:
        """Return whether the client owes a head or a body now (``_stall.py``)."""
        if self.upgraded:
            return False
        conn = self.conn
        if conn.their_state is h11.SEND_BODY:
            return True
        if conn.their_state is not h11.IDLE or conn.our_state is not h11.IDLE:
            return False
        # NOTE: a new connection owes its first head; after an answer, a head whose first bytes
        # came (an idle connection is left to Uvicorn's keep-alive timer).
        return not self.answered or bool(conn.trailing_data[0])

    def waiting_cycle(self) -> RequestResponseCycle | None:
        """Return the request being read, whose body is the one due (``_stall.py``)."""
        return self.cycle

    def _watch(self) -> None:
        if self.transport.is_closing():
            return
        if self.request_due():
            self.request_moved()
        else:
            self.stop_stall_timer()
