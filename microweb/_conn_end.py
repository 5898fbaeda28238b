"""How microweb serve's Uvicorn protocols end a connection, under httptools and h11: a
keep-alive counted from when the answer has gone out (``IdleOnceSent``), and a client's end of
sending that leaves the connection open for the answers owed to it (``AnswersAfterEnd``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from ._asgi_body_terms import BODY_AWAITED
from ._framing import has_body
from ._sockets import reset_after_end


def read_whole_unanswered(cycle: Any) -> bool:
    """Whether ``cycle`` (Uvicorn's request-response cycle, or ``None``) is a request read
    whole whose answer has not ended, nor its client gone."""
    if cycle is None:
        return False
    return not (cycle.more_body or cycle.response_complete or cycle.disconnected)


# NOTE: how often (seconds) a connection whose client has ended its sending is asked whether
# a reset has come since (_sockets.reset_after_end()).
RESET_PROBE = 0.5


# NOTE: how often, at least and at most, a kept-alive connection whose answer is still going
# out looks again: a quarter of the keep-alive between the two, as Waitress's check_every (a
# client that reads slowly costs a few calls a second, not 20).
SENDING_TICK = 0.05
SENDING_TICK_MOST = 1.0


def _sending_tick(keep_alive: float) -> float:
    return min(SENDING_TICK_MOST, max(SENDING_TICK, keep_alive / 4))


class IdleOnceSent:
    """Uvicorn's keep-alive timeout, counted from when the answer has gone out of the
    transport's buffer, not from when it was handed to it (either parser).

    NOTE: Uvicorn closed the connection once the keep-alive had passed since the answer was
    written to the transport: with ``--keep-alive 0`` (or a large answer to a slow client),
    while the answer was still going out. The transport then reads no more, and a request the
    client pipelined meanwhile stayed unread in the socket, so the close was a reset: the
    client lost that request and the end of the answer (a 4 MB answer, every try). Waitress's
    idle connections are counted as ``_waitress._kept_alive()`` says, the same way.
    """

    def timeout_keep_alive_handler(self) -> None:
        """Close the idle connection, or, while its answer is still going out, look again
        every ``_sending_tick()`` and wait the keep-alive from the end of the sending."""
        protocol: Any = self
        transport = protocol.transport
        if not transport.is_closing() and transport.get_write_buffer_size():
            protocol.timeout_keep_alive_task = protocol.loop.call_later(
                _sending_tick(protocol.timeout_keep_alive), self._sending_ended
            )
            return
        super().timeout_keep_alive_handler()  # type: ignore[misc]

    def _sending_ended(self) -> None:
        protocol: Any = self
        protocol.timeout_keep_alive_task = None
        if protocol.transport.is_closing():
            return  # NOTE: closed meanwhile (its client gone, or --client-timeout): no more ticks.
        if protocol.transport.get_write_buffer_size():
            delay, then = _sending_tick(protocol.timeout_keep_alive), self._sending_ended
        else:
            delay, then = protocol.timeout_keep_alive, super().timeout_keep_alive_handler  # type: ignore[misc]
        protocol.timeout_keep_alive_task = protocol.loop.call_later(delay, then)

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as the protocol does, and its keep-alive timer with it.

        NOTE: Uvicorn cancels that timer only on a clean close (``exc`` None): after a reset,
        a timer looking every tick for the answer to go out stayed armed on the dead transport.
        """
        protocol: Any = self
        task = protocol.timeout_keep_alive_task
        if task is not None:
            task.cancel()
            protocol.timeout_keep_alive_task = None
        super().connection_lost(exc)  # type: ignore[misc]


class AnswersAfterEnd:
    """A client's end of sending (its FIN: ``shutdown(SHUT_WR)``, ``nc -N``, or a close) with
    answers owed to it: the connection stays open for them, then closes, under either parser.

    NOTE: Uvicorn's ``eof_received()`` returned ``None``, and asyncio then closed the
    connection: the app's answer was dropped (its cycle disconnected), so a client that
    half-closes once it has sent its request got nothing unless the app had answered before
    the end came (a race an async def handler mostly won, a def handler lost). SPEC: RFC 9112
    9.6 (its half-close paragraph, from HTTPWG http-core issue 22), a client's half-close is
    no sign that it has lost interest in the answers; Uvicorn issue 1264 says the same.
    Nothing is read after the end; a request it cut off is answered only by an app that
    answers without reading the body (``watch_for_cut()``): one that reads it finds its client
    gone. A client that closed outright is noticed at the first write that fails (a stream
    stops there).
    """

    transport: Any
    loop: asyncio.AbstractEventLoop
    # NOTE: whether the client has ended its sending, with answers still owed to it; and the
    # timer that asks, meanwhile, whether it has reset the connection since (_probe_reset()).
    half_closed = False
    reset_probe: asyncio.TimerHandle | None = None
    # NOTE: the last request given to watch_for_cut(); the one whose body the end cut off,
    # its app left to answer without the body.
    watched: Any = None
    cut: Any = None

    def watch_for_cut(self, cycle: Any) -> None:
        """Have ``cycle``'s app (its task not yet started) find its client gone when it reads
        a body that the client's end cut off (``eof_received()``), if a body is still to come:
        its head frames one (``Content-Length`` over 0, or chunked) and it has not all come.

        NOTE: an app that answers without the body (a 413 for its Content-Length, a 404) is
        answered: its connection was closed at the end, and the def handler's 413 dropped,
        where Waitress answers 413 to a body over its cap at the head (an async def one's
        went out when it came before the end was read).
        """
        # NOTE: httptools has more_body for every request after its head (its end not parsed
        # yet), h11 for one whose body is still coming; a request without one is not wrapped
        # (a closure, and an await more a read: review338, review344).
        if not (cycle.more_body and has_body(cycle.scope["headers"])):
            return
        self.watched = cycle
        receive = cycle.receive
        # NOTE: whether a reader of the body has waited for it (the app's body source says so
        # through BODY_AWAITED), not a watcher of the client nor a check (is_disconnected()).
        # An ASGI app that does not say it (no microweb body source) waits as a watcher does,
        # until the stall timer closes the connection (the body due stopped coming).
        read = False

        def body_awaited() -> None:
            nonlocal read
            read = True
            if self.cut is cycle:
                cycle.message_event.set()  # NOTE: a watcher's receive() it shares ends.

        async def receive_unless_cut() -> Any:
            if self.cut is not cycle:
                message = await receive()
                if self.cut is not cycle:
                    return message
            # NOTE: a watcher or a check waits, as Uvicorn's receive() does once the body is
            # read whole, for the answer's end or the client's going: told the client had
            # gone, a stream stopped (a 200 with a chunked head and no chunks), and
            # is_disconnected() said True of a client that had only half-closed (review338).
            while not (read or cycle.response_complete or cycle.disconnected):
                cycle.message_event.clear()
                await cycle.message_event.wait()
            if not (cycle.response_complete or cycle.disconnected):
                # NOTE: marked gone before the close: Uvicorn's 500 for an app that ended
                # without an answer goes to a client still connected only.
                cycle.disconnected = True
                self.transport.close()
            return {"type": "http.disconnect"}

        cycle.receive = receive_unless_cut
        cycle.scope.setdefault("extensions", {})[BODY_AWAITED] = body_awaited

    def eof_received(self) -> bool | None:
        """Keep the connection open for writing while answers are owed, or the app of a
        request whose body the end cut off may answer without it; else close it, as Uvicorn
        does."""
        cycle = self.watched
        if (
            cycle is not None
            and cycle is self.waiting_cycle()
            and cycle.more_body
            and not (cycle.response_complete or cycle.disconnected)
        ):
            # NOTE: its answer started too (a stream that does not read the body): the
            # connection was closed at the end, the stream cut after its head (review338).
            self.cut = cycle
            cycle.message_event.set()  # NOTE: a read waiting for the body ends.
        if not self.answers_owed() and not self._cut_owed():
            return None
        self.half_closed = True
        if self.reset_probe is None:
            self.reset_probe = self.loop.call_later(RESET_PROBE, self._probe_reset)
        return True

    def _probe_reset(self) -> None:
        """End the connection once a reset has come after the client's end of sending.

        NOTE: the reading had stopped at the end, so a client that reset its connection after
        it (a half-close, then an abort) was never seen gone: a long poll that writes nothing
        waited out its own timeout, or for ever without one.
        """
        self.reset_probe = None
        if self.transport.is_closing():
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None and reset_after_end(sock):
            self.transport.abort()  # NOTE: connection_lost() tells the app its client has gone.
            return
        self.reset_probe = self.loop.call_later(RESET_PROBE, self._probe_reset)

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and the reset probe with it."""
        if self.reset_probe is not None:
            self.reset_probe.cancel()
            self.reset_probe = None
        super().connection_lost(exc)  # type: ignore[misc]

    def answers_owed(self) -> bool:
        """Whether a request read whole waits for its answer, or its end (each parser says)."""
        raise NotImplementedError

    def waiting_cycle(self) -> Any:
        """Return the request being read, whose body is the one due (each parser says)."""
        raise NotImplementedError

    def _cut_owed(self) -> bool:
        cut = self.cut
        return cut is not None and not (cut.response_complete or cut.disconnected)

    def close_if_done(self) -> None:
        """Close once the client's sending has ended and nothing more is owed to it (called
        as each response ends)."""
        if not self.half_closed or self.transport.is_closing():
            return
        if not (self.answers_owed() or self._cut_owed()):
            self.transport.close()
