"""A request body that stops coming closes its connection, under both of Uvicorn's parsers.

Uvicorn waits for a request body that never comes, for ever, with httptools and with h11: a
client that sends a head and then nothing held its ``def`` handler's pool thread for as long
as it kept the connection open, and ``App.max_threads`` such clients held every ``def`` route.
Waitress closes a connection with no byte for its ``channel_timeout`` while a request is still
arriving; ``microweb serve`` runs Uvicorn's protocols with this timer, which does the same
while a body is due.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from uvicorn.protocols.http.flow_control import FlowControl

# NOTE: Waitress's default channel_timeout: seconds with no byte of a body that is due before
# the connection is closed, under both servers.
BODY_TIMEOUT = 120.0


class _Cycle(Protocol):
    """What is read of Uvicorn's request cycle (each parser has its own class)."""

    waiting_for_100_continue: bool


class BodyStallTimer:
    """Closes the connection once the body due has not moved for ``body_timeout`` seconds.

    Mixed into a Uvicorn HTTP protocol (after it, among the bases), which says when a body is
    due (``body_due``), calls ``body_moved`` when a read may have brought some of it, and
    ``stop_stall_timer`` when the connection ends. A request read whole in one read, the
    common case, arms no timer.
    """

    # NOTE: a class attribute, read on each use, so that a test can lower it.
    body_timeout = BODY_TIMEOUT
    # NOTE: when a byte of a body that is due last came (loop time), and the timer that looks
    # at it.
    body_read_at = 0.0
    stall_timer: asyncio.TimerHandle | None = None

    # NOTE: the protocol's own, set by Uvicorn.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: FlowControl
    logger: logging.Logger

    def body_due(self) -> bool:
        """Return whether a request body is due from the client now."""
        raise NotImplementedError

    def waiting_cycle(self) -> _Cycle | None:
        """Return the request whose body is due, if Uvicorn has made one for it."""
        raise NotImplementedError

    def body_moved(self) -> None:
        """Note that a body is due and may have moved; arm the timer if it is not armed."""
        self.body_read_at = self.loop.time()
        if self.stall_timer is None:
            self.stall_timer = self.loop.call_later(self.body_timeout, self._check_stall)

    def stop_stall_timer(self) -> None:
        """Disarm the timer: no body is due any more, or the connection has ended."""
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None

    def _check_stall(self) -> None:
        self.stall_timer = None
        if not self.body_due() or self.transport.is_closing():
            return
        now = self.loop.time()
        cycle = self.waiting_cycle()
        # NOTE: a wait that is the app's, not the client's: reading paused until the app takes
        # what came (or answers the requests before), or a client that waits for its 100
        # Continue, which goes once the app reads the body.
        if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
            self.body_read_at = now
        idle = now - self.body_read_at
        if idle < self.body_timeout:
            self.stall_timer = self.loop.call_later(self.body_timeout - idle, self._check_stall)
            return
        self.logger.warning("no byte of a request body for %g s: connection closed", idle)
        self.transport.close()
