"""Uvicorn's WebSocket protocol, which keeps one pong for a client that does not read its answers.

Uvicorn's protocol for the ``websockets`` library (its pick when it is installed, as the
``microweb[uvicorn]`` extra does) answers each ping with a pong as it reads it, whatever its
write buffer holds: a client that sent pings and never read the pongs made the server buffer
them all (120 MB in 15 s, growing with what the client sent). ``microweb serve`` runs this
protocol, which, while the write buffer is over its high-water mark, keeps only the pong to the
last ping read and writes it once the buffer drains (RFC 6455 5.5.3 allows answering only the
most recent ping); the app's own sends wait for the buffer already.

It refuses a handshake with 503 once the server's connections, its own included, reach
Uvicorn's ``limit_concurrency`` (``microweb serve --connection-limit``): Uvicorn checks the
limit only for HTTP requests, after it has upgraded a WebSocket's, so WebSockets went past it.

It reads on meanwhile, as Uvicorn does: a protocol that stopped reading instead deadlocked a
client that sends a message whole before it reads (an app that sent a large message, then
waited for the client's, waited for ever, and so did the client).
"""

from __future__ import annotations

from http import HTTPStatus

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.http11 import Request

# NOTE: the first byte of a server's pong frame (FIN, opcode 0xA); websockets writes each frame
# as one item of data_to_send(), and no extension changes a control frame's first byte.
_PONG = b"\x8a"


class FlowControlledWebSockets(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that queues no pongs while its answers cannot be written."""

    # NOTE: whether the transport's write buffer is over its high-water mark, and the pong
    # owed to the last ping read meanwhile (written once the buffer drains).
    write_paused = False
    pong_due = b""

    def handle_connect(self, event: Request) -> None:
        """Answer a handshake as Uvicorn does, unless the connections are at the limit: 503."""
        limit = self.config.limit_concurrency
        if limit is None or (len(self.connections) < limit and len(self.tasks) < limit):
            super().handle_connect(event)
            return
        # NOTE: the checks and the warning of Uvicorn's HTTP protocols, for their 503.
        self.logger.warning("Exceeded concurrency limit.")
        self.request = event
        self.handshake_initiated = self.handshake_complete = self.close_sent = True
        self.conn.send_response(
            self.conn.reject(HTTPStatus.SERVICE_UNAVAILABLE, "Service Unavailable")
        )
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.transport.close()

    def handle_ping(self) -> None:
        """Answer a ping as Uvicorn does, unless writes wait: then keep the last pong only."""
        output = self.conn.data_to_send()
        if self.write_paused:
            kept = []
            for frame in output:
                if frame[:1] == _PONG:
                    self.pong_due = frame
                else:
                    kept.append(frame)
            output = kept
        if output:
            self.transport.write(b"".join(output))

    def pause_writing(self) -> None:
        """Hold the app's sends as Uvicorn does, and the pongs."""
        super().pause_writing()
        self.write_paused = True

    def resume_writing(self) -> None:
        """Write the pong owed, if any, then let the app send as Uvicorn does."""
        self.write_paused = False
        pong, self.pong_due = self.pong_due, b""
        if pong and not self.transport.is_closing():
            self.transport.write(pong)
        super().resume_writing()
