"""Uvicorn's WebSocket protocol, which stops reading a client that does not read its answers.

Uvicorn's protocol for the ``websockets`` library (its pick when it is installed, as the
``microweb[uvicorn]`` extra does) answers each ping with a pong as it reads it, and reads on
whatever its write buffer holds: a client that sent pings and never read the pongs made the
server buffer them all (120 MB in 15 s, growing with what the client sent). ``microweb serve``
runs this protocol, which stops reading while the write buffer is over its high-water mark, as
Uvicorn's HTTP protocols do while a response waits; the app's own sends wait for it already.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class FlowControlledWebSockets(WebSocketsSansIOProtocol):
    """``WebSocketsSansIOProtocol`` that reads nothing while its answers cannot be written."""

    # NOTE: whether the transport's write buffer is over its high-water mark; read_paused,
    # Uvicorn's, is whether a message waits for the app.
    write_paused = False

    def data_received(self, data: bytes) -> None:
        """Read as Uvicorn does; stop reading if what it wrote (pongs) is not being read."""
        super().data_received(data)
        # NOTE: the app's receive() resumes reading when it takes a message, whatever the
        # write buffer holds; one read later, reading stops again.
        if self.write_paused and not self.transport.is_closing():
            self.transport.pause_reading()

    def pause_writing(self) -> None:
        """Hold the app's sends as Uvicorn does, and stop reading the client."""
        super().pause_writing()
        self.write_paused = True
        if not self.transport.is_closing():
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        """Let the app send as Uvicorn does; read again unless a message waits for the app."""
        super().resume_writing()
        self.write_paused = False
        if not self.read_paused and not self.transport.is_closing():
            self.transport.resume_reading()
