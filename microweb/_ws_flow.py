"""Uvicorn's WebSocket protocol, which keeps one pong for a client that does not read its answers.

Uvicorn's protocol for the ``websockets`` library (its pick when it is installed, as the
``microweb[uvicorn]`` extra does) answers each ping with a pong as it reads it, whatever its
write buffer holds: a client that sent pings and never read the pongs made the server buffer
them all (120 MB in 15 s, growing with what the client sent). ``microweb serve`` runs this
protocol, which, while the write buffer is over its high-water mark, keeps only the pong to the
last ping read and writes it once the buffer drains (RFC 6455 5.5.3 allows answering only the
most recent ping). The app's own sends wait for the buffer to drain, as they do under Uvicorn
0.53 and later; under 0.51 and 0.52 they did not, and were buffered without a bound.

It refuses a handshake with 503 once the server's connections, its own included, reach
Uvicorn's ``limit_concurrency`` (``microweb serve --connection-limit``): Uvicorn checks the
limit only for HTTP requests, after it has upgraded a WebSocket's, so WebSockets went past it.

It reads on meanwhile, as Uvicorn does: a protocol that stopped reading instead deadlocked a
client that sends a message whole before it reads (an app that sent a large message, then
waited for the client's, waited for ever, and so did the client).

What Uvicorn's protocol left unbounded, it bounds (hunt56):

- It parses a read a slice at a time, and keeps the rest unparsed while a message waits for
  the app: Uvicorn parsed the whole read first, and with permessage-deflate 1 MiB inflates from
  1 KiB, so one 256 KiB read queued 250 MiB for an app that had not received yet.
- It parses one slice an event loop's turn, reading paused until the rest is parsed: pings
  and pongs wait for no app, and one read of 43,690 empty pings held the loop 170 ms (review339).
  It answers the last ping of a slice only, where Uvicorn wrote a pong (a send) per ping,
  and a ping read before the client's close frame before its answer to that close.
- A message may come in ``MAX_FRAGMENTS`` fragments at most (1009 past them): websockets
  counts a message's bytes, not its fragments, and empty ones went on for ever.
- A text message that is not UTF-8 closes with 1007, as under Uvicorn, with no traceback in
  the log.
- A handshake that offers more than ``MAX_OFFERS`` extensions or subprotocols (their
  parameters counted) is refused with 431 before websockets parses them, in Python: 120,000
  extensions, within the 256 KiB head, took 220 ms of CPU with the event loop held.
- A handshake websockets refuses (more than 128 header lines, say) is answered and closed:
  Uvicorn sent no answer, kept the connection, and failed on it at shutdown.
- A handshake the app refused with a response of its own (the denial-response extension) is
  complete once that response is sent: Uvicorn logged an error for every such refusal.
- A handshake the app has not answered when the server stops gets 503: Uvicorn sent 500.
- Frames sent with the handshake wait for the app's answer: parsed before it, a close frame or
  a bad one raised in Uvicorn's protocol, and a refused client got no answer. A head longer
  than a slice is parsed up to its end only, not with the frames after it (review342).
- A client that reads nothing of what the app sends is closed after ``--client-timeout``, as
  over HTTP (``_stall.StallTimer``): the app's send waited for ever, and so did the close of
  Uvicorn's keepalive ping timeout, which waits for the buffer to be sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from uvicorn.protocols.utils import (
    ClientDisconnected,
    get_client_addr,
    get_path_with_query_string,
)
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.datastructures import Headers
from websockets.exceptions import SecurityError
from websockets.frames import Frame
from websockets.http11 import Request, Response
from websockets.protocol import State

from ._asgi_request import DENIAL_SENT_WHOLE
from ._emission import no_body_status
from ._percent import percent_decode
from ._stall import StallTimer
from ._unix import NoUnixAddress
from ._uvicorn_shared import with_default_fields

if TYPE_CHECKING:
    from uvicorn.config import Config
    from uvicorn.server import ServerState

# NOTE: the first byte of a server's pong frame (FIN, opcode 0xA); websockets writes each frame
# as one item of data_to_send(), and no extension changes a control frame's first byte.
_PONG = b"\x8a"
# NOTE: bytes of a read parsed at once: with permessage-deflate, whose 4 KiB inflate to 4 MiB
# at most (a ratio of about 1000 to 1); else, a slice holds its own size of messages.
# PERF: 20 messages of 1 MiB took 24 ms of CPU to parse in 4 KiB slices, 15 ms in 64 KiB
# ones and 13 ms in 256 KiB reads; 20,000 small messages took 200 ms in any of them. A slice
# of empty pings (6 bytes each, 3 us in websockets) took 32 ms in 64 KiB, 8 ms in 16 KiB,
# while 20 messages of 1 MiB took 13 ms in either (review339).
DEFLATED_SLICE = 4 * 1024
READ_SLICE = 16 * 1024
_BAD_HANDSHAKE = (
    b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8"
    b"\r\nContent-Length: 30\r\n\r\nInvalid WebSocket handshake.\r\n"
)
_LARGE_HANDSHAKE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 23\r\n\r\n"
    b"Headers are too large.\n"
)
# NOTE: fragments of one message. Each costs 3 to 7 us of CPU: 4096 take 12 to 30 ms; a
# message under the default 1 MiB limit passes in fragments of 256 bytes.
MAX_FRAGMENTS = 4096
# NOTE: header lines, elements and parameters of a handshake's Sec-WebSocket-Extensions, and
# of its Sec-WebSocket-Protocol; browsers offer one extension with a parameter, apps a few
# subprotocols. PERF: websockets parses each in Python, 2 us an extension (120,000 took
# 220 ms of CPU) and 1 us a subprotocol (review339); 256 take 0.5 ms at most.
MAX_OFFERS = 256
_OFFERED = ("Sec-WebSocket-Extensions", "Sec-WebSocket-Protocol")


class FlowControlledWebSockets(NoUnixAddress, StallTimer, WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that queues no pongs while its answers cannot be written,
    and holds no more than a slice of a read's messages for an app that has not taken them."""

    # NOTE: whether the transport's write buffer is over its high-water mark, and the pong
    # owed to the last ping read meanwhile (written once the buffer drains).
    write_paused = False
    pong_due = b""
    # NOTE: what was read but not parsed yet, while a message waits for the app; and whether
    # the connection is lost.
    unparsed = b""
    lost = False
    # NOTE: whether reading is paused until the app answers the handshake (accept or refusal),
    # for what came with it and waits for that answer; and that such bytes are kept, for the
    # HTTP protocols that read them with the handshake (_uvicorn_shared.hand_over).
    held_for_handshake = False
    keeps_early_frames = True
    # NOTE: the last bytes of the handshake's head parsed so far, for its end (head_end()).
    head_tail = b""
    # NOTE: whether the rest of a read waits for the event loop's next turn (reading paused).
    parse_scheduled = False
    # NOTE: the raw path, with a "%", of the handshake whose app's task is made, for its scope.
    escaped_path = ""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # NOTE: Uvicorn's protocol keeps the default fields of its start (default_headers),
        # whose Date Uvicorn replaces each second in server_state: the refusals read them there.
        self.server_state = server_state

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` a slice at a time, until a message waits for the app."""
        self.unparsed += data
        if self.parse_scheduled:
            # NOTE: reading resumed meanwhile (by Uvicorn, for the app's receive): one read
            # more at most waits.
            self.transport.pause_reading()
            return
        self.parse_unparsed()

    def parse_unparsed(self) -> None:
        """Parse what was read, a slice a turn of the event loop, until a message waits for
        the app."""
        if self.parse_scheduled:
            return  # NOTE: the turn scheduled parses it.
        data, self.unparsed = self.unparsed, b""
        size = DEFLATED_SLICE if self.conn.extensions else READ_SLICE
        start = 0
        while start < len(data):
            if self.transport.is_closing():
                return
            if start:
                # NOTE: a slice a turn: control frames wait for no app, and a read of them
                # took 3 us a frame, 170 ms for 256 KiB of empty pings, with the loop held.
                self.unparsed = data[start:]
                self.parse_scheduled = True
                self.transport.pause_reading()
                self.loop.call_soon(self.parse_next_slice)
                return
            if self.read_paused:
                # NOTE: reading is paused too, so this holds one read at most.
                self.unparsed = data[start:]
                return
            if self.handshake_waits():
                self.unparsed = data[start:]
                # NOTE: read on while little waits, so that a client that leaves is seen
                # (Uvicorn then tells the app); past a slice, a read more at most.
                if len(self.unparsed) >= READ_SLICE and not self.held_for_handshake:
                    self.held_for_handshake = True
                    self.transport.pause_reading()
                return
            stop = start + size if self.handshake_initiated else self.head_end(data, size)
            super().data_received(data[start:stop])
            if not self.handshake_initiated and self.conn.handshake_exc is not None:
                if not self.close_sent:
                    # NOTE: Uvicorn 0.55's protocol answers it itself (and ends it); this
                    # answer went after its answer (review342).
                    self.refuse_handshake()
                return
            self.send_pong_due()
            start = stop

    def head_end(self, data: bytes, size: int) -> int:
        """Return where the slice of ``data`` that websockets parses next ends, while the
        handshake is not read yet: at the end of its head, if the slice holds it.

        What follows the head waits for the app's answer (``handshake_waits()``): the HTTP
        protocol hands over the frames read with it after the head, and where the head took
        more than a slice, they were joined to its last one; websockets parsed them while
        still connecting (review342).
        """
        # NOTE: the head ends at its first empty line, which may begin in the slice before.
        tail = self.head_tail
        end = (tail + data[:size]).find(b"\r\n\r\n")
        self.head_tail = (tail + data[:size])[-3:]
        return size if end < 0 else end + 4 - len(tail)

    def parse_next_slice(self) -> None:
        """Parse the next slice of what was read; read on once it is all parsed, unless
        reading waits for the app (a message it has not taken, a handshake it has not
        answered)."""
        self.parse_scheduled = False
        if self.lost:
            return
        self.parse_unparsed()
        # NOTE: what is left unparsed waits for the app (a message, or the handshake's answer,
        # which reads on while less than a slice waits, as data_received() does).
        waits = self.parse_scheduled or self.read_paused or self.held_for_handshake
        if not waits and not self.transport.is_closing():
            self.transport.resume_reading()

    def handshake_waits(self) -> bool:
        """Return whether the handshake is read and not answered yet.

        The frames a client sent with its handshake (``_httptools.py``, ``_h11.py``) wait
        for the app's answer: websockets parsed them while still connecting, and a close
        frame or a bad one failed the connection there, which Uvicorn's protocol raised on
        (``AssertionError``, twice in the log), and a refused client got no answer at all.
        """
        # NOTE: a refusal of the app's (its start sent) completes the handshake, for Uvicorn.
        accepted = self.handshake_complete and self.initial_response is None
        return self.handshake_initiated and not accepted

    def handle_handshake_exception(self) -> None:
        """Answer a head websockets could not parse as ``refuse_handshake()`` does.

        NOTE: Uvicorn 0.55 writes websockets' refusal itself here (0.54 wrote none), without
        its Server field; and handshake_initiated stayed False, so refuse_handshake() wrote a
        second refusal after it on the closing connection (review338).
        """
        self.refuse_handshake()

    def refuse_handshake(self) -> None:
        """Send the refusal of a head websockets could not parse (Uvicorn sent none), and close."""
        # NOTE: websockets 17 wrote its 431 (a line over 8 KiB, more than 128 lines) into its
        # output and ended it, or ended it with nothing (another error: a 400 is due); 15
        # writes no 431, and its error's cause says the head was too large. Uvicorn wrote
        # neither and kept the connection, and its 500 for it at shutdown raised.
        refusal = b"".join(self.conn.data_to_send())
        if not refusal:
            cause = getattr(self.conn.handshake_exc, "__cause__", None)
            refusal = _LARGE_HANDSHAKE if isinstance(cause, SecurityError) else _BAD_HANDSHAKE
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        # NOTE: with Uvicorn's Date and Server, as the HTTP protocols' own refusals (review330):
        # websockets' had its own Date alone (kept under --no-date-header), and this
        # protocol's own neither (review338).
        self.transport.write(with_default_fields(self.server_state, refusal, own_date=True))
        self.transport.close()

    def shutdown(self) -> None:
        """Close as Uvicorn does at the server's stop; a connection closed already just ends."""
        if self.close_sent:
            # NOTE: as Uvicorn does from 0.53 on: before, it sent a close frame (1012) even
            # after a refused handshake, which raised (websockets was still connecting), and
            # the server stopped with a traceback before the app's shutdown hooks ran.
            self.stop_keepalive()
            self.transport.close()
            return
        if not self.handshake_complete and self.initial_response is None:
            # NOTE: a handshake the app has not answered yet: Uvicorn answered 500, a server
            # error, where the server is stopping. SPEC: RFC 9110 15.6.4, 503.
            self.stop_keepalive()
            self.handshake_initiated = self.handshake_complete = self.close_sent = True
            refusal = self.conn.reject(HTTPStatus.SERVICE_UNAVAILABLE, "The server is stopping.\n")
            self.send_own_refusal(refusal)
            return
        super().shutdown()

    async def receive(self) -> Any:
        """Hand the app the next message; once it has taken them all, parse what waits."""
        message = await super().receive()
        if self.unparsed and not self.read_paused:
            self.parse_unparsed()
        if (
            message["type"] == "websocket.disconnect"
            and message.get("code") == 1005
            and self.conn.close_rcvd is None
        ):
            # SPEC: RFC 6455 7.1.5: a connection that ended with no close frame received ends
            # with 1006; 1005 is a close frame that held no code (7.4.1). Uvicorn's protocol
            # (0.55 still) said 1005 for a dropped one: a client lost to the network read as
            # one that closed cleanly, and its legacy protocol says 1006.
            message = {**message, "code": 1006}
        return message

    async def send(self, message: Any) -> None:
        """Send as Uvicorn does; after a close, parse what waits (the client's close, say).

        Raises:
            ClientDisconnected: If the connection is lost or closing, or the server has
                closed it (the app hears that its client left).
        """
        await self.writable.wait()
        if self.lost or self.close_sent or self.transport.is_closing():
            # NOTE: Uvicorn checks only that the connection is lost (from 0.53 on), which
            # it hears on the event loop's next turn: a loop of sends that never awaited a
            # receive() wrote on to a socket asyncio had closed already, holding the loop
            # (review57). After a close of the server's (a bad frame: 1007, 1009), it raised
            # RuntimeError into the app, which logged a traceback. The app closes only once.
            raise ClientDisconnected()
        if message["type"] == "websocket.http.response.body" and self.initial_response:
            self.send_refusal(message)
            return
        if (
            message["type"] == "websocket.close"
            and not self.handshake_complete
            and self.initial_response is None
        ):
            self.refuse_for_close()
            return
        await super().send(message)
        if self.held_for_handshake and not self.handshake_waits():
            # NOTE: accepted: what came with the handshake is parsed, and reading goes on
            # unless a message of it waits for the app. A refusal closes the connection.
            self.held_for_handshake = False
            self.transport.resume_reading()
        if self.unparsed and not self.read_paused:
            self.parse_unparsed()

    def send_refusal(self, message: Any) -> None:
        """Add to the app's answer to a handshake it refused; send it once it is whole."""
        assert self.initial_response is not None  # NOTE: set by the answer's start.
        status, headers, body = self.initial_response
        body += message["body"]
        self.initial_response = (status, headers, body)
        if message.get("more_body"):
            return
        # NOTE: the app's headers, and Uvicorn's defaults where it gave none: Uvicorn 0.51
        # sent both, two Content-Length lines among them, which the websockets client refused
        # as no valid response.
        fields = Headers(headers)
        fields.setdefault("Connection", "close")
        if not no_body_status(status):
            # SPEC: RFC 9110 8.6: no Content-Length on a 204, and on a 304 only the length
            # of a representation the refusal does not have (Uvicorn added "0" to both).
            fields.setdefault("Content-Length", str(len(body)))
            fields.setdefault("Content-Type", "text/plain; charset=utf-8")
        # NOTE: typed Any, as below: Uvicorn 0.55's queue takes its own event TypedDicts.
        gone: Any = {"type": "websocket.disconnect", "code": 1006}
        self.queue.put_nowait(gone)
        self.conn.send_response(Response(status, HTTPStatus(status).phrase, fields, body))
        # NOTE: complete: Uvicorn (0.54 still) logged an error for every such refusal once
        # the app returned ("ASGI callable returned without completing handshake").
        self.handshake_complete = self.close_sent = True
        # NOTE: Uvicorn's Date and Server too, those the app gave not, as its HTTP answers have
        # them: the app's 404 to a handshake no route takes had no Server, its 404 to any other
        # request one (review338).
        answer = b"".join(self.conn.data_to_send())
        self.transport.write(with_default_fields(self.server_state, answer))
        self.transport.close()

    def refuse_for_close(self) -> None:
        """Answer the app's close before accept with 403, as Uvicorn does, and close.

        NOTE: Uvicorn wrote websockets' 403 as it was: websockets' Date (kept under
        ``--no-date-header``), no Server, none of ``--header``'s fields (review351). microweb
        sends such a close for a refusal the server cannot send (``sends_refusal()``).
        """
        # NOTE: typed Any, as in send_refusal(): Uvicorn 0.55's queue takes its own TypedDicts.
        gone: Any = {"type": "websocket.disconnect", "code": 1006}
        self.queue.put_nowait(gone)
        client, target = get_client_addr(self.scope), get_path_with_query_string(self.scope)
        self.logger.info('%s - "WebSocket %s" 403', client, target)
        self.handshake_complete = self.close_sent = True
        self.send_own_refusal(self.conn.reject(HTTPStatus.FORBIDDEN, ""))

    def handle_cont(self, event: Frame) -> None:
        """Add a fragment as Uvicorn does, up to ``MAX_FRAGMENTS``: past them, close with 1009."""
        if len(self.frames) >= MAX_FRAGMENTS:
            self.frames = []
            self.fail_connection(1009, f"message in more than {MAX_FRAGMENTS} fragments")
            return
        super().handle_cont(event)

    def send_receive_event_to_app(self) -> None:
        """Queue the message for the app as Uvicorn does; text that is not UTF-8 closes the
        connection with 1007, as Uvicorn's does, but logs no traceback."""
        frames, self.frames = self.frames, []
        if self.close_sent:
            return  # NOTE: the app has closed: Uvicorn drops what comes until the client's close.
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        # NOTE: typed Any: from Uvicorn 0.55 on, the queue takes its private event TypedDicts
        # (uvicorn._types), which microweb does not import.
        message: Any
        if self.curr_msg_data_type == "bytes":
            message = {"type": "websocket.receive", "bytes": data}
        else:
            try:
                text = data.decode()
            except UnicodeDecodeError:
                # SPEC: RFC 6455 8.1: a text message that is not UTF-8 fails the connection.
                self.fail_connection(1007, "invalid UTF-8")
                return
            message = {"type": "websocket.receive", "text": text}
        self.queue.put_nowait(message)
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def fail_connection(self, code: int, reason: str) -> None:
        """Close with ``code`` and read no more, as Uvicorn does on a bad frame."""
        self.conn.fail(code, reason)
        self.handle_parser_exception()

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and its timers with it."""
        self.stop_timers()
        self.unparsed, self.lost = b"", True
        super().connection_lost(exc)
        # NOTE: a send held by pause_writing() goes on, to hear that the client has gone:
        # asyncio resumes no writing on a transport lost while paused, and Uvicorn before 0.53
        # does not wake it either.
        self.writable.set()

    def writing_paused(self) -> bool:
        """Return whether the transport's buffer is past its high-water mark."""
        return self.write_paused

    def handle_connect(self, event: Request) -> None:
        """Answer a handshake as Uvicorn does, unless the connections are at the limit: 503."""
        for name in _OFFERED:
            values = event.headers.get_all(name)
            if sum(1 + value.count(",") + value.count(";") for value in values) > MAX_OFFERS:
                # SPEC: RFC 6585 5, 431: a header field too large; the client may send fewer.
                self.refuse_connect(
                    event,
                    HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                    f"{name} offers more than {MAX_OFFERS} elements and parameters.\n",
                )
                return
        limit = self.config.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            response = self.conn.accept(event)
            if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
                # NOTE: websockets refused the handshake (no Sec-WebSocket-Key, say): Uvicorn
                # wrote its refusal as it was, with websockets' Date and no Server.
                self.refuse_with(event, response)
                return
            # NOTE: Uvicorn's handle_connect() takes the handshake accepted, not accepted a
            # second time (websockets hashes the key, and reads the offers, again).
            self.conn.accept = lambda request: response  # type: ignore[method-assign]
            try:
                self.connect(event)
            finally:
                del self.conn.accept
            return
        # NOTE: the checks and the warning of Uvicorn's HTTP protocols, for their 503.
        self.logger.warning("Exceeded concurrency limit.")
        self.refuse_connect(event, HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")

    def connect(self, event: Request) -> None:
        """Answer a handshake websockets accepts as Uvicorn does (the app's task made; its
        scope completed as it starts, ``run_asgi()``)."""
        # NOTE: Uvicorn decodes the path with urllib.parse.unquote(), a Python loop that raises
        # and catches a KeyError for each "%" that starts no escape, in the event loop: 8 KB of
        # "%" (websockets' cap on a line) took 3 ms of CPU a handshake (review325). It reads a
        # stand-in; the scope gets this one's path as it would.
        raw_path, question, query = event.path.partition("?")
        if "%" not in raw_path or not raw_path.isascii():
            super().handle_connect(event)
        else:
            self.escaped_path = raw_path
            super().handle_connect(dataclasses.replace(event, path=f"/{question}{query}"))
            self.request = event

    async def run_asgi(self) -> None:
        """Run the app as Uvicorn does, once its scope has this protocol's own: the path of
        escapes (``connect()``), and that an app's refusal is sent whole (``send_refusal``).

        NOTE: completed here, as the app's task starts, not after Uvicorn's handle_connect()
        made the task: under an eager task factory (Python 3.12's, from a loop factory given
        to ``--loop``) the app ran inside it first, and routed a path of escapes as "/"
        (review351).
        """
        raw_path, self.escaped_path = self.escaped_path, ""
        if raw_path:
            self.scope["path"] = self.root_path + percent_decode(raw_path)
            self.scope["raw_path"] = (self.root_path + raw_path).encode("ascii")
        self.scope["extensions"][DENIAL_SENT_WHOLE] = {}
        await super().run_asgi()

    def refuse_connect(self, event: Request, status: HTTPStatus, text: str) -> None:
        """Answer the handshake ``event`` with ``status`` and ``text``, and close."""
        self.refuse_with(event, self.conn.reject(status, text))

    def refuse_with(self, event: Request, response: Response) -> None:
        """Answer the handshake ``event`` with websockets' refusal ``response``, and close."""
        self.request, self.response = event, response
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.send_own_refusal(response)

    def send_500_response(self) -> None:
        """Answer 500 as Uvicorn does, to an app that failed before answering the handshake,
        with Uvicorn's fields (``write_own_refusal()``); ``run_asgi()`` then closes."""
        if self.initial_response or self.handshake_complete:
            return
        reason = "Internal Server Error"
        self.write_own_refusal(self.conn.reject(HTTPStatus.INTERNAL_SERVER_ERROR, reason))

    def send_own_refusal(self, response: Response) -> None:
        """Send websockets' refusal ``response`` (``write_own_refusal()``), and close."""
        self.write_own_refusal(response)
        self.transport.close()

    def write_own_refusal(self, response: Response) -> None:
        """Write websockets' refusal ``response`` with Uvicorn's Date (not websockets') and
        Server, as Uvicorn's HTTP answers have them: websockets' had its own Date, kept under
        ``--no-date-header``, and no Server."""
        self.conn.send_response(response)
        answer = b"".join(self.conn.data_to_send())
        self.transport.write(with_default_fields(self.server_state, answer, own_date=True))

    def handle_ping(self) -> None:
        """Keep the pong to the last ping, written once the slice is parsed (or, while writes
        wait, once they can go on)."""
        # NOTE: Uvicorn writes each pong as it parses its ping: a write (a send() call) a
        # ping, and a slice of empty pings took 1.5 times as long as one of pongs (review339).
        # SPEC: RFC 6455 5.5.3: of pings not answered yet, only the last may be.
        kept = []
        for frame in self.conn.data_to_send():
            if frame[:1] == _PONG:
                self.pong_due = frame
            elif frame:
                # NOTE: websockets' answer to a close frame read after the ping, in the same
                # slice: the pong goes first (none can go after it).
                kept += [self.pong_due, frame]
                self.pong_due = b""
        if kept:
            self.transport.write(b"".join(kept))

    def handle_close(self, event: Frame) -> None:
        """End as Uvicorn does on the client's close frame, the pong owed written first."""
        # SPEC: RFC 6455 5.5.2: a ping is answered unless a close frame came before it; kept
        # while writes waited, its pong was dropped once the client's close was read.
        if self.pong_due and not self.close_sent:
            pong, self.pong_due = self.pong_due, b""
            self.transport.write(pong)
        super().handle_close(event)

    def send_pong_due(self) -> None:
        """Write the pong owed, if any, unless writes wait; none after a close frame."""
        if not self.pong_due or self.write_paused:
            return
        pong, self.pong_due = self.pong_due, b""
        if self.conn.state is State.OPEN and not self.transport.is_closing():
            self.transport.write(pong)

    def pause_writing(self) -> None:
        """Hold the app's sends, and the pongs."""
        # NOTE: Uvicorn's own protocol holds the sends only from 0.53 on: under 0.51 and 0.52
        # (microweb supports 0.51 on), a client that read nothing had the app's sends
        # buffered without a bound, and a loop of sends never yielded to the loop.
        self.writable.clear()
        super().pause_writing()
        self.write_paused = True

    def resume_writing(self) -> None:
        """Write the pong owed, if any, then let the app send."""
        self.write_paused = False
        self.send_pong_due()
        self.writable.set()
        super().resume_writing()
