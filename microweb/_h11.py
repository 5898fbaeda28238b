"""Uvicorn's h11 protocol, with the stalled-body timer that ``microweb serve`` gives httptools.

Without httptools (``pip install "microweb[uvicorn]"`` does not install it), Uvicorn runs h11,
which bounds a request head itself but, like httptools, waits for a request body that never
comes for ever: a ``def`` handler reading it held its pool thread as long as the client kept
the connection open. ``microweb serve`` runs this protocol then, so that such a connection is
closed after ``BodyStallTimer.body_timeout``, as under httptools and Waitress (``_stall.py``).
"""

from __future__ import annotations

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from ._stall import BodyStallTimer


class BoundedH11(H11Protocol, BodyStallTimer):
    """``H11Protocol`` that closes a connection whose request body stopped coming."""

    # NOTE: from the WebSocket handshake on, the connection is the WebSocket protocol's.
    upgraded = False

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to h11 as Uvicorn does; watch the body, if one is due."""
        super().data_received(data)
        self._watch_body()

    def on_response_complete(self) -> None:
        """End the response as Uvicorn does; watch the body of a request pipelined after it."""
        super().on_response_complete()
        # NOTE: the next request's head may have come in an earlier read, with no read to come.
        self._watch_body()

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and its timer with it."""
        self.stop_stall_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Upgrade as Uvicorn does; no HTTP body is due from here on."""
        self.upgraded = True
        self.stop_stall_timer()
        super().handle_websocket_upgrade(event)

    def body_due(self) -> bool:
        """Return whether h11 waits for more of the client's request body (``_stall.py``)."""
        return not self.upgraded and self.conn.their_state is h11.SEND_BODY

    def waiting_cycle(self) -> RequestResponseCycle | None:
        """Return the request being read, whose body is the one due (``_stall.py``)."""
        return self.cycle

    def _watch_body(self) -> None:
        if self.transport.is_closing():
            return
        if self.body_due():
            self.body_moved()
        else:
            self.stop_stall_timer()
