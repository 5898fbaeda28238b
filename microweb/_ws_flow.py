"""Uvicorn's WebSocket protocol, which keeps one pong for a client that does not read its answers.

Uvicorn's protocol for the ``websockets`` library (its pick when it is installed, as the
``microweb[uvicorn]`` extra does) answers each ping with a pong as it reads it, whatever its
write buffer holds: a client that sent pings and never read the pongs made the server buffer
them all (120 MB in 15 s, growing with what the client sent). ``microweb serve`` runs this
protocol, which, while the write buffer is over its high-water mark, keeps only the pong to the
last ping read and writes it once the buffer drains (RFC 6455 5.5.3 allows answering only the
most recent ping). The app's own sends wait for the buffer to drain, as they do under Uvicorn
0.53 and later; under 0.51 and 0.52 they did not, and were buffered without a bound.

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
- Frames sent with the handshake wait for the app's answer: parsed before it, a close frame or
  a bad one raised in Uvicorn's protocol, and a refused client got no answer. A head longer
  than a slice is parsed up to its end only, not with the frames after it (review342).
- A client that reads nothing of what the app sends is closed after ``--client-timeout``, as
  over HTTP (``_stall.StallTimer``): the app's send waited for ever, and so did the close of
  Uvicorn's keepalive ping timeout, which waits for the buffer to be sent.

Its answers to a handshake (the refusals it writes itself, the app's own, a path's escapes)
are ``_ws_flow_handshake.HandshakeAnswers``'s.
"""

from __future__ import annotations

from typing import Any

from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame
from websockets.protocol import State

from ._stall import StallTimer
from ._unix import NoUnixAddress
from ._ws_flow_handshake import HandshakeAnswers

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
# NOTE: fragments of one message. Each costs 3 to 7 us of CPU: 4096 take 12 to 30 ms; a
# message under the default 1 MiB limit passes in fragments of 256 bytes.
MAX_FRAGMENTS = 4096


class FlowControlledWebSockets(
    HandshakeAnswers, NoUnixAddress, StallTimer, WebSocketsSansIOProtocol
):
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
