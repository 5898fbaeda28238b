"""A request that stops coming closes its connection, under both of Uvicorn's parsers.

Uvicorn waits for a request that never comes, for ever, with httptools and with h11: a client
that sent a head and then nothing of its body held its ``def`` handler's pool thread for as
long as it kept the connection open (``App.max_threads`` such clients held every ``def``
route), and a connection that sent nothing, or part of a head, held its socket and memory
(hundreds of them reach the process's file limit). Waitress closes a connection with no byte
for its ``channel_timeout`` while a request is still arriving; ``microweb serve`` runs
Uvicorn's protocols with this timer, which does the same while a head or a body is due.

A client that stops reading its answer held it for ever too: the app's send waited for the
buffer to drain, and a ``def`` stream held its pool thread. Waitress closes such a connection
under ``microweb serve`` (``_waitress.py``); the timer does the same here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from uvicorn.protocols.http.flow_control import FlowControl

from ._asgi_body_terms import BODY_AWAITED, SENDS_DROPPED

# NOTE: Waitress's default channel_timeout: seconds with no byte of a request that is due
# before the connection is closed, under both servers.
STALL_TIMEOUT = 120.0


try:
    import fcntl
    import termios

    # NOTE: on Linux, the bytes a socket's kernel queue holds that the peer has not taken.
    _OUTQ: int | None = getattr(termios, "TIOCOUTQ", None)
except ImportError:  # NOTE: Windows.
    _OUTQ = None


class _Cycle(Protocol):
    """What is read of Uvicorn's request cycle (each parser has its own class)."""

    waiting_for_100_continue: bool
    response_started: bool
    # NOTE: whether the body has not all come; False for a request with none.
    more_body: bool
    scope: Any

    @property
    def receive(self) -> Callable[[], Awaitable[Any]]:
        """The request's ``receive()``, which sends the 100 Continue."""

    @property
    def send(self) -> Callable[[Any], Awaitable[None]]:
        """The request's ``send()``, which writes the answer."""


class StallTimer(asyncio.BaseProtocol):
    """Closes the connection once the request due has not moved for ``stall_timeout`` seconds.

    Mixed into a Uvicorn HTTP protocol (before it, among the bases), which says when the client
    owes bytes (``request_due``: a head, from the connection's start or its first byte, or a
    body), calls ``request_moved`` when a read may have brought some, ``stop_stall_timer`` when
    none is due, and ``stop_timers`` when the connection ends. The connection's start arms the
    timer once; a request read whole in one read, the common case, arms none.

    An answer the client stops reading closes the connection too, once writing has stayed
    paused (the transport's buffer past its high-water mark) for ``stall_timeout`` seconds
    with none of the buffer sent: the transport pauses and resumes writing through this
    class's ``pause_writing`` and ``resume_writing``, then the protocol's. So does an answer
    written whole whose end stays in the buffer, below that mark (``answer_ended``, which the
    protocol calls as each response ends).
    """

    # NOTE: a class attribute, read on each use, so that a test can lower it.
    stall_timeout = STALL_TIMEOUT
    # NOTE: when a byte of a request that is due last came (loop time), and the timer that
    # looks at it.
    read_at = 0.0
    stall_timer: asyncio.TimerHandle | None = None
    # NOTE: the timer armed while writing is paused: the client reads nothing of its answer.
    write_timer: asyncio.TimerHandle | None = None
    # NOTE: the bytes the transport still had to send when writing paused, or at the last look.
    write_left = 0
    # NOTE: whether the request being read expects 100-continue, has not been told to go on
    # and no byte of its body has come; each protocol keeps it (with expect_continue()).
    continue_expected = False
    # NOTE: whether the connection is lost: Uvicorn drops what its requests' apps send.
    lost = False

    # NOTE: the protocol's own, set by Uvicorn.
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport
    flow: FlowControl
    logger: logging.Logger

    def request_due(self) -> bool:
        """Return whether the client owes a head or a body now (not while the app answers)."""
        raise NotImplementedError

    def waiting_cycle(self) -> _Cycle | None:
        """Return the request whose body may be due, if Uvicorn has made one for it."""
        raise NotImplementedError

    def expect_continue(self, cycle: _Cycle) -> None:
        """Note that ``cycle``, the request just read, expects 100-continue; and when it goes.

        Uvicorn sends the ``100 Continue`` on the app's first ``receive()``, unless the answer
        started first; either clears ``waiting_for_100_continue``, so the request's own
        ``receive`` is wrapped to tell them apart. Call before the app's task first runs.
        """
        self.continue_expected = True
        receive = cycle.receive

        async def receive_after_continue() -> Any:
            if cycle.waiting_for_100_continue and self.waiting_cycle() is cycle:
                # NOTE: Uvicorn's receive() sends the 100 Continue now: the client owes the
                # body from here, even once the answer has started; counted from the 100, not
                # from the timer's last look at a client that waited (review380).
                waited = self.continue_expected
                self.continue_expected = False
                if waited and self.request_due() and not self.transport.is_closing():
                    self.request_moved()
            return await receive()

        extensions = cycle.scope.setdefault("extensions", {})
        # NOTE: watch_for_cut()'s, for a request whose body may be cut off, called too.
        told = extensions.get(BODY_AWAITED)

        def body_awaited() -> None:
            if told is not None:
                told()
            if self.continue_expected and cycle.response_started and self.waiting_cycle() is cycle:
                # NOTE: the app reads a body after answering first, when Uvicorn sends no
                # 100 Continue. The client need not send it, yet the app waits for it (and a
                # def stream holds its pool thread): from here the client owes it, for
                # stall_timeout, as one told 100 Continue does (review50).
                self.continue_expected = False
                if self.request_due() and not self.transport.is_closing():
                    self.request_moved()

        send = cycle.send

        def body_owed() -> bool:
            return self.continue_expected and cycle.more_body and self.waiting_cycle() is cycle

        async def send_closing_first(message: Any) -> None:
            if message["type"] == "http.response.start" and body_owed():
                # NOTE: under an eager task factory the app may answer inside the protocol's
                # create_task(), before the parser has handled the rest of the read its head
                # came in (the body, the request's end): a request read whole was answered
                # with a close, and h11 dropped the request pipelined after it. Looked at
                # again once that read is handled (one turn of the loop; a rare path).
                await asyncio.sleep(0)
            if message["type"] == "http.response.start" and body_owed():
                # SPEC: RFC 9110 10.1.1, an answer before the body SHOULD say whether the
                # server will close or read on. Said nothing, httptools kept the connection
                # and read the client's next request as the body it need not send; h11 closed
                # it. Both close now, and say so: the client sends no body to be discarded.
                headers = list(message.get("headers", ()))
                headers.append((b"connection", b"close"))
                message = {**message, "headers": headers}
            await send(message)

        # NOTE: run_asgi() hands the app self.receive and self.send, looked up when the task
        # first runs; the app's body source calls body_awaited when it first waits for the body.
        cycle.receive = receive_after_continue  # type: ignore[misc]
        cycle.send = send_closing_first  # type: ignore[misc]
        extensions[BODY_AWAITED] = body_awaited

    def app_waits(self) -> bool:
        """Return whether the client waits for the app, which then owes the next move."""
        if self.flow.read_paused:
            # NOTE: until the app takes what came, or answers the requests before.
            return True
        cycle = self.waiting_cycle()
        if cycle is None:
            return False
        # NOTE: a client that waits for its 100 Continue, which goes once the app reads the
        # body; or one answered before any 100 Continue, which need not send the body at all
        # (RFC 9110 10.1.1; curl stops): its answer may stream on, and says the connection
        # closes after it. One told 100 Continue owes the body; so does one that began it
        # unasked (continue_expected cleared), though no 100 Continue has gone: it was taken
        # for one waiting, and never cut while the app had not read (review380).
        # A request read whole (no body, Content-Length: 0) owes nothing of a 100 Continue: a
        # head after it, answered, was taken for a wait of the app's and never cut.
        if not self.continue_expected or not cycle.more_body:
            return False
        return cycle.waiting_for_100_continue or cycle.response_started

    def request_moved(self) -> None:
        """Note that a request is due and may have moved; arm the timer if it is not armed."""
        self.read_at = self.loop.time()
        if self.stall_timer is None:
            self.stall_timer = self.loop.call_later(self.stall_timeout, self._check_stall)

    def stop_stall_timer(self) -> None:
        """Disarm the timer: no request is due any more."""
        if self.stall_timer is not None:
            self.stall_timer.cancel()
            self.stall_timer = None

    def tell_sends_dropped(self, cycle: _Cycle) -> None:
        """Give ``cycle``'s app a way to ask whether what it sends is dropped
        (``SENDS_DROPPED``): whether the connection is lost or closing."""
        cycle.scope.setdefault("extensions", {})[SENDS_DROPPED] = self.sends_dropped

    def sends_dropped(self) -> bool:
        """Return whether the connection is lost, or closing: what is sent now may never
        reach the client."""
        # NOTE: closing as soon as a write failed (a reset), where connection_lost() runs a
        # turn of the loop later.
        return self.lost or self.transport.is_closing()

    def stop_timers(self) -> None:
        """Disarm both timers: the connection has ended."""
        self.stop_stall_timer()
        self.writing_moved()

    def pause_writing(self) -> None:
        """Pause writing as the protocol does; the client must read within ``stall_timeout``."""
        super().pause_writing()
        self.writing_stopped()

    def resume_writing(self) -> None:
        """Resume writing as the protocol does: the client reads."""
        super().resume_writing()
        self.writing_moved()

    def answer_ended(self) -> None:
        """Note that an answer has been written whole: the client must take what the
        transport still holds of it within ``stall_timeout``, paused or not (called as each
        response ends)."""
        # NOTE: what the kernel's queues could not take, below the high-water mark, never
        # paused writing, so no timer started: close() (Connection: close) waited for it to
        # be sent, and the keep-alive for it to be gone (IdleOnceSent), for ever, to a client
        # that read nothing (review331). PERF: one call an answer, 55 ns (CPython 3.11); it is
        # not skipped where writing never paused, for that is this case: the tests of an
        # answer below the high-water mark fail without it (review344).
        if self.write_timer is None and self.transport.get_write_buffer_size():
            self.writing_stopped()

    def writing_stopped(self) -> None:
        """Note that the client has stopped reading (the transport paused writing, or an
        answer ended with some of it still buffered)."""
        self.write_left = self._unsent()
        # NOTE: counted from now: a timer armed as an earlier answer ended (answer_ended()),
        # whose end the client may have read since, is not this pause's.
        self.writing_moved()
        self.write_timer = self.loop.call_later(self.stall_timeout, self._check_writing)

    def writing_moved(self) -> None:
        """Note that the client read what was buffered (writing resumed), or has gone."""
        if self.write_timer is not None:
            self.write_timer.cancel()
            self.write_timer = None

    def _check_writing(self) -> None:
        self.write_timer = None
        # NOTE: a closing transport is looked at too: close() (Connection: close, or Uvicorn's
        # keep-alive timeout after a whole answer) waits for the buffer to be sent, and a
        # client that read nothing held it, megabytes of its answer, for ever.
        if not self.writing_paused() and not self.transport.get_write_buffer_size():
            # NOTE: the transport's buffer is empty: what the kernel holds, the keep-alive or
            # the close sees to. Not empty, below the high-water mark: an answer the client
            # takes nothing of (answer_ended()).
            return
        if self.transport.get_protocol() is not self:
            return  # NOTE: upgraded: the WebSocket protocol's flow is another.
        left = self._unsent()
        if left < self.write_left:
            # NOTE: the client reads, slowly; writing may stay paused for minutes.
            self.write_left = left
            self.write_timer = self.loop.call_later(self.stall_timeout, self._check_writing)
            return
        self.logger.warning(
            "client stopped reading for %g s: connection closed", self.stall_timeout
        )
        # NOTE: not close(), which waits for the buffer to be sent, to a client that reads
        # nothing. The app hears that the client left, as when it leaves.
        self.transport.abort()

    def writing_paused(self) -> bool:
        """Return whether the transport's buffer is past its high-water mark."""
        return self.flow.write_paused

    def _unsent(self) -> int:
        """Return the bytes of the answers written that the client has not taken yet."""
        left = self.transport.get_write_buffer_size()
        sock = self.transport.get_extra_info("socket")
        if _OUTQ is not None and sock is not None:
            # NOTE: the kernel's queue too: the transport's buffer moves only once the kernel
            # has sent about a third of what it holds, which grows to megabytes after a fast
            # start. Without it, a client reading 40 to 320 KiB/s after such a start was
            # closed within 3 s of stall_timeout (review50); at 120 s, under 12 KiB/s.
            with contextlib.suppress(OSError, ValueError):
                queued = fcntl.ioctl(sock.fileno(), _OUTQ, b"\0\0\0\0")
                left += struct.unpack("i", queued)[0]
        return left

    def _check_stall(self) -> None:
        self.stall_timer = None
        if not self.request_due() or self.transport.is_closing():
            return
        now = self.loop.time()
        if self.app_waits():
            self.read_at = now
        idle = now - self.read_at
        if idle < self.stall_timeout:
            self.stall_timer = self.loop.call_later(self.stall_timeout - idle, self._check_stall)
            return
        self.logger.warning("no byte of a request due for %g s: connection closed", idle)
        self.transport.close()
