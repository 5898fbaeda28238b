"""Waitress with an orderly stop: on SIGTERM or SIGINT, requests in flight finish, then shutdown.

Waitress's own ``serve()`` leaves SIGTERM to Python's default, which ends the process at once:
no shutdown hooks, no plugin ``close()``, responses cut off (TRAPS.md 21). Here the server is
built with ``waitress.create_server`` and its loop is run step by step, so that a signal turns
into an orderly stop:

1. stop accepting: the listening sockets close, so a load balancer moves on;
2. let the requests in flight finish and their responses go out, for up to the grace period,
   closing each connection once it is idle (a second signal ends the wait early); a request
   is in flight until its after-response callbacks have run;
3. close what is left, stop Waitress's threads, and run ``wsgi.close()`` (shutdown hooks, then
   the plugins' ``close()``); a signal during those ends the process at once, by that signal.

While it serves, what Waitress does otherwise is mended where it is done: a client that
stopped reading (``_close_stalled``); after-response work, an app's ``SystemExit`` and
kept-alive answers without ``Content-Length`` (``OrderlyTask``, in ``_waitress_tasks.py``);
chunked bodies, ``Cookie`` lines and ambiguous framing (``OrderlyParser``, in
``_waitress_parser.py``); a close after a refusal that leaves the answer readable
(``OrderlyChannel``, in ``_waitress_channel.py``).
"""

from __future__ import annotations

import functools
import logging
import signal
import socket
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import waitress
from waitress import wasyncore
from waitress.server import BaseWSGIServer
from waitress.task import ThreadedTaskDispatcher

from ._app_loop import CLEANUP_WAIT
from ._effects import ShutdownError
from ._errors import log_failure
from ._request import logged_bytes, logged_method_name
from ._serve_options import KEEP_ALIVE, host_port
from ._stopping import STOP_SIGNALS, end_by
from ._waitress_channel import OrderlyChannel
from ._wsgi import WSGIDriver

logger = logging.getLogger("microweb")

# NOTE: how often the drain looks at its connections when nothing wakes it.
DRAIN_TICK = 0.05
# NOTE: how often, at most, the server looks for connections that stopped reading.
STALL_CHECK = 1.0
# NOTE: seconds a connection that owes nothing may stay idle while the connection limit is
# reached: Uvicorn's keep-alive timeout (the limit is then freed as fast as under Uvicorn).
IDLE_AT_LIMIT = 5.0


# NOTE: Waitress's own default, which create_server() no longer applies once given the
# dispatcher (its threads are started here).
DEFAULT_THREADS = 4


class ThreadsNotStarted(RuntimeError):
    """The system refused a thread of Waitress's (those it started are stopped)."""


class OrderlyDispatcher(ThreadedTaskDispatcher):  # type: ignore[misc]
    """Waitress's dispatcher, whose threads all start or none is left running."""

    def start(self, count: int) -> None:
        """Start ``count`` threads.

        Raises:
            ThreadsNotStarted: If the system refused one (the process's or the machine's
                limit on threads): the ones started are stopped, so the process ends cleanly.
        """
        try:
            self.set_thread_count(count)
        except RuntimeError as exc:
            # NOTE: Waitress's own start raised from deep inside create_server(), with the
            # threads it had started left running (hostile137's --threads 100000).
            started = len(self.threads)
            self.shutdown(timeout=CLEANUP_WAIT)
            raise ThreadsNotStarted(
                f"cannot start {count} threads ({exc}; {started} started): ask for fewer "
                "with --threads"
            ) from None

    def start_new_thread(self, target: Callable[[int], None], thread_no: int) -> None:
        try:
            super().start_new_thread(target, thread_no)
        except RuntimeError:
            # NOTE: Waitress counted the thread before it started it; uncounted, the stop
            # waits only for the threads that run.
            self.threads.discard(thread_no)
            raise


class OrderlyWaitress:
    """Serve a WSGI app with Waitress until SIGTERM or SIGINT, then stop in order.

    Args:
        wsgi: The app's WSGI callable; its ``close()`` runs once the requests are done.
        grace: Seconds that requests in flight get to finish after the signal.
        keep_alive: Seconds a connection may stay idle between requests (``--keep-alive``).
        **adjustments: Waitress's settings (``host``, ``port``, ``threads``, ...).
    """

    def __init__(
        self, wsgi: WSGIDriver, grace: float, keep_alive: float = KEEP_ALIVE, **adjustments: Any
    ) -> None:
        self.wsgi = wsgi
        self.grace = grace
        self.keep_alive = keep_alive
        # NOTE: a few looks within the keep-alive, so that an idle connection is closed about
        # on time (a look each STALL_CHECK closed one of --keep-alive 1 after up to 2 s).
        self.check_every = min(STALL_CHECK, max(keep_alive / 4, DRAIN_TICK))
        self.map: dict[int, Any] = {}
        dispatcher = OrderlyDispatcher()
        dispatcher.start(adjustments.get("threads", DEFAULT_THREADS))
        try:
            self.server = waitress.create_server(
                wsgi, map=self.map, _dispatcher=dispatcher, **adjustments
            )
        except BaseException:
            dispatcher.shutdown(timeout=CLEANUP_WAIT)
            raise
        self.adjustments = self.server.adj
        if "connection_limit" in adjustments:
            # NOTE: Waitress counts its listening sockets and its wake-up pipe, the map so far,
            # against the limit; microweb serve's --connection-limit counts connections.
            self.adjustments.connection_limit += len(self.map)
        self.listeners = [d for d in self.map.values() if isinstance(d, BaseWSGIServer)]
        for listener in self.listeners:
            listener.channel_class = OrderlyChannel
            # NOTE: Waitress's own look for idle connections, which closed a kept-alive one
            # after channel_timeout: --keep-alive past --client-timeout was cut to it.
            listener.maintenance = functools.partial(self._maintenance, listener)
        self.signal: int | None = None
        self.hurry = False
        self.looping = True  # NOTE: whether a signal must wake Waitress's loop (its trigger).
        self.next_stall_check = 0.0

    def run(self, announce: Callable[[int], None]) -> int:
        """Serve until a stop signal, stop in order, and return the signal's number.

        Args:
            announce: Called with the port once a signal would stop the server in order.

        Raises:
            RuntimeError: From ``wsgi.close()``, naming the shutdown steps that failed (each
                one is logged as well).
        """
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            # NOTE: not before the handlers: a SIGTERM sent as soon as the port is announced
            # met Python's default, which ends the process with no shutdown hooks.
            announce(self.listeners[0].effective_port)
            while self.signal is None:
                self._step(min(self.adjustments.asyncore_loop_timeout, self.check_every))
                self._close_stalled()
            self._drain()
            # NOTE: a signal now (a hook that hangs) ends the process, by that signal.
            for sig in STOP_SIGNALS:
                signal.signal(sig, _end_at_once)
            self.wsgi.close()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return self.signal

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.signal is None:
            self.signal = signum
            for listener in self.listeners:
                # NOTE: read by OrderlyTask, whose answers from now on say Connection: close.
                listener.microweb_stopping = True
        else:
            self.hurry = True
        # NOTE: a byte down Waitress's wake-up pipe; no lock is taken, so this is safe here.
        # Not once close_all() has closed it: the write raised OSError here (or went into the
        # file that took its number). The handler runs on this thread, so the flag holds.
        if self.looping:
            self.listeners[0].pull_trigger()

    def _step(self, timeout: float) -> None:
        wasyncore.loop(
            timeout=timeout, map=self.map, use_poll=self.adjustments.asyncore_use_poll, count=1
        )

    def _close_stalled(self) -> None:
        """Close the connections whose response waits on a client that has stopped reading (a
        thread writing it, or its rest buffered), once nothing has moved for Waitress's
        ``channel_timeout``; those idle between requests for ``keep_alive`` seconds; and at the
        connection limit, those idle for ``IDLE_AT_LIMIT`` seconds (``_close_idle_at_limit``)."""
        # NOTE: Waitress closes only idle connections, with no request: a thread writing to
        # such a client waited for ever (``threads`` such clients held every thread).
        now = time.time()  # NOTE: Waitress's clock for last_activity.
        if now < self.next_stall_check:
            return
        self.next_stall_check = now + self.check_every
        timeout = self.adjustments.channel_timeout
        watermark = self.adjustments.outbuf_high_watermark
        for channel in self._channels():
            # NOTE: past the high watermark, the thread that writes the response waits for the
            # client to read; last_activity is the last byte sent or received. With no request
            # left, an answer still buffered (written at once, past the socket's buffer) waits
            # too: Waitress's maintenance() marks it will_close, which only a write acts on,
            # and the socket never turns writable: it was held for ever.
            waiting = channel.total_outbufs_len > (watermark if channel.requests else 0)
            if waiting and channel.last_activity < now - timeout:
                logger.warning("client stopped reading for %d s: connection closed", timeout)
                channel.handle_close()  # NOTE: also wakes the thread waiting to write.
            elif channel.lingered_out(now):
                channel.handle_close()
            elif (
                _kept_alive(channel)
                and channel.last_activity < now - self.keep_alive
                and not _unread(channel)
            ):
                # NOTE: Waitress closed it after channel_timeout (--client-timeout, 120 s),
                # where Uvicorn closes it after its keep-alive; as maintenance() closes one.
                channel.will_close = True
        if any(listener.in_connection_overflow for listener in self.listeners):
            self._close_idle_at_limit(now - IDLE_AT_LIMIT)

    def _maintenance(self, listener: Any, now: float) -> None:
        """Close, as Waitress's ``maintenance()`` does, the connections of ``listener`` with no
        request in flight and no byte moved for ``channel_timeout`` (``--client-timeout``):
        but those idle between requests, which ``keep_alive`` times (``_close_stalled()``)."""
        cutoff = now - self.adjustments.channel_timeout
        for channel in list(listener.active_channels.values()):
            if not channel.requests and channel.last_activity < cutoff and not _kept_alive(channel):
                channel.will_close = True

    def _close_idle_at_limit(self, cutoff: float) -> None:
        """Close the connections with no request in flight (kept alive between requests, or
        with no head yet, or part of one) and no byte moved since ``cutoff``.

        Past the connection limit Waitress accepts no more connections, and it closes an idle
        one only after ``channel_timeout`` (``--client-timeout``, 120 s by default): as many
        kept-alive connections as the limit (browsers', or sockets a client opened and left)
        held every new client off that long. Uvicorn closes a kept-alive one after 5 s.
        """
        for channel in self._channels():
            if not _in_flight(channel) and channel.last_activity < cutoff:
                # NOTE: as Waitress's own maintenance() closes an idle one.
                channel.will_close = True

    def _channels(self) -> Iterator[Any]:
        for listener in self.listeners:
            yield from list(listener.active_channels.values())

    def _drain(self) -> None:
        name = signal.Signals(self.signal).name if self.signal else "signal"
        for listener in self.listeners:
            wasyncore.dispatcher.close(listener)  # NOTE: the listening socket, not the trigger.
        deadline = time.monotonic() + self.grace
        busy = self._busy()
        if busy:
            logger.info(
                "%s: waiting up to %g s for %d request(s) to finish", name, self.grace, busy
            )
        while busy and not self.hurry and time.monotonic() < deadline:
            self._step(min(DRAIN_TICK, max(0.0, deadline - time.monotonic())))
            busy = self._busy()
        if busy:
            logger.warning("%d request(s) still busy after the grace period; closing them", busy)
        for channel in self._channels():
            if busy and (named := _named(channel)):
                # NOTE: each one named, as under Uvicorn, where microweb logs each one cancelled.
                logger.warning("%s cut off: still busy after the grace period", named)
            channel.handle_close()  # NOTE: also wakes a task thread waiting to write.
        # NOTE: a thread waiting on async code (a handler mid-await, a quiet event stream) was
        # released only by the app loop's stop, after the shutdown hooks: cut off now, so that
        # its finally blocks run first, as under Uvicorn. The threads are told to stop first:
        # one that the cut frees takes no queued request, whose async code no cut would reach.
        dispatcher = self.server.task_dispatcher
        dispatcher.set_thread_count(0)
        self.wsgi.app_loop.cut_waiting()
        # NOTE: a def stream cut off closes its generator in its task thread: wait for it, so
        # that its cleanup runs before the shutdown hooks (a shorter wait lost that race).
        dispatcher.shutdown(cancel_pending=True, timeout=CLEANUP_WAIT)
        self.looping = False
        wasyncore.close_all(self.map, ignore_all=True)

    def _busy(self) -> int:
        in_flight = self._close_idle()
        # NOTE: a task thread may work on once its connection is gone: the after-response
        # callbacks run in the body's close(), when the client has the whole answer and may
        # have closed the connection, which Waitress notices (with a request lookahead) and
        # drops. Uvicorn waits for them, as for any request in flight.
        running: int = self.server.task_dispatcher.active_count
        return max(in_flight, running)

    def _close_idle(self) -> int:
        busy = 0
        for channel in self._channels():
            if _in_flight(channel):
                busy += 1
            else:
                channel.handle_close()
        return busy


def _end_at_once(signum: int, frame: FrameType | None) -> None:
    end_by(signum)


def _in_flight(channel: Any) -> bool:
    # NOTE: a request whose headers have arrived is in flight (its body may still come);
    # a connection that is idle, or still sending headers, is closed at once.
    receiving = channel.request is not None and channel.request.headers_finished
    return bool(channel.requests or channel.total_outbufs_len or receiving)


def _kept_alive(channel: Any) -> bool:
    """Return whether ``channel`` is idle between requests: it has answered one, has none in
    flight, no byte of a next one, and is not lingering after a refusal."""
    # NOTE: a connection that has sent nothing yet owes its first head: --client-timeout's,
    # as under Uvicorn, whose keep-alive timer starts once an answer is sent.
    idle = channel.answered and channel.request is None and channel.lingering_since is None
    return bool(idle) and not _in_flight(channel)


def _unread(channel: Any) -> bool:
    """Return whether bytes the server has not read yet wait in ``channel``'s socket.

    NOTE: Waitress reads no more of a connection while an answer is still to go out, so a
    pipelined request may wait there once the answer has gone: closed then (--keep-alive 0),
    the connection was reset, for the unread bytes, and the client lost the request and the
    end of the answer before it. Its socket is non-blocking: this never waits.
    """
    try:
        return bool(channel.socket.recv(1, socket.MSG_PEEK))
    except OSError:
        # NOTE: nothing waits (BlockingIOError), or the connection is gone: its close is due.
        return False


def _named(channel: Any) -> str | None:
    """Name the request a connection works on (``GET /path``), as a log line spells it."""
    parser = channel.requests[0] if channel.requests else channel.request
    if parser is None or not parser.headers_finished:
        return None
    # NOTE: Waitress's path is decoded, its bytes as latin-1 text: "%0A" is a line break.
    # NOTE: its method is any token up to the head's cap (256 KiB): cut too (review337).
    method = logged_method_name(parser.command)
    return f"{method} {logged_bytes(parser.path.encode('latin-1'))}"


def serve_waitress(
    wsgi: WSGIDriver,
    grace: float,
    announce: Callable[[int], None],
    keep_alive: float = KEEP_ALIVE,
    **adjustments: Any,
) -> int | None:
    """Serve ``wsgi`` with Waitress until SIGTERM or SIGINT; return the signal's number.

    A connection idle between requests for ``keep_alive`` seconds is closed.

    ``announce`` is called with the port once the socket listens (the startup hooks ran in
    ``as_wsgi()``).

    Shutdown failures are logged (by ``wsgi.close()``) and not raised again, a step's
    ``GeneratorExit`` included. When Waitress
    cannot listen (the port is taken, the host unknown), that is logged in one line, and the
    result is ``None``: the caller still closes ``wsgi``.
    """
    try:
        server = OrderlyWaitress(wsgi, grace, keep_alive, **adjustments)
    except ThreadsNotStarted as exc:
        log_failure("%s", exc)
        return None
    except OSError as exc:
        # NOTE: one line, as Uvicorn says it: a traceback would only show Waitress's frames.
        where = host_port(str(adjustments.get("host")), adjustments.get("port"))
        log_failure("cannot listen on %s: %s", where, exc)
        return None
    try:
        return server.run(announce)
    except (ShutdownError, GeneratorExit):
        # NOTE: a shutdown step's GeneratorExit fails that step as an error does (logged once,
        # the other steps run): raised on, it was a second traceback, and the process ended
        # with status 1, not by its signal. It asks for no end, as a sys.exit() does (review345).
        return server.signal or signal.SIGTERM
