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
kept-alive answers without ``Content-Length`` (``OrderlyTask``); chunked bodies, ``Cookie``
lines and ambiguous framing (``OrderlyParser``, in ``_waitress_parser.py``); a close after
a refusal that leaves the answer readable (``OrderlyChannel``).
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
from waitress.task import ErrorTask, ThreadedTaskDispatcher, WSGITask

from ._app_loop import CLEANUP_WAIT
from ._chunked import ChunkedChannel
from ._effects import ShutdownError
from ._errors import log_failure
from ._parsing import names_option
from ._request import logged_bytes, logged_method_name
from ._serve_options import KEEP_ALIVE, host_port
from ._sockets import reset_after_end
from ._stopping import STOP_SIGNALS, end_by
from ._waitress_parser import OrderlyParser
from ._wsgi import AFTER_SENT, WSGIDriver

logger = logging.getLogger("microweb")

# NOTE: how often the drain looks at its connections when nothing wakes it.
DRAIN_TICK = 0.05
# NOTE: how often, at most, the server looks for connections that stopped reading.
STALL_CHECK = 1.0
# NOTE: seconds a connection that owes nothing may stay idle while the connection limit is
# reached: Uvicorn's keep-alive timeout (the limit is then freed as fast as under Uvicorn).
IDLE_AT_LIMIT = 5.0
# NOTE: a connection closed after a refusal (Waitress's 413, 400...) is still read, and what
# comes dropped, until the client closes, nothing has come for LINGER_IDLE seconds, or
# LINGER_MOST have passed (nginx's lingering close, 5 s and 30 s by default).
LINGER_IDLE = 2.0
LINGER_MOST = 30.0
# NOTE: bytes a read takes while lingering (Waitress's reads are 8 KiB), in the thread that
# reads every connection: a client sent 200 MiB to be dropped in 1.3 s with 8 KiB reads, in
# 0.5 s with these (loopback, http.client, 2026-12-07).
LINGER_READ = 256 * 1024


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


class Escaped(Exception):
    """App code's ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit``, as an error of its
    request (no signal reaches a task's thread: app code raised it)."""


class OrderlyTask(WSGITask):  # type: ignore[misc]
    """Waitress's task, which runs the work the app hands to ``AFTER_SENT`` once it has sent
    the whole response (its ``finish()``), in its own thread: the stop's drain waits for it as
    for any request in flight. An exception that is no ``Exception`` leaves it as ``Escaped``.

    NOTE: Waitress sends a streamed body's last chunk, and the head of an answer with no body,
    only after the body's ``close()``, where the WSGI driver runs that work: the client
    waited for it.
    """

    def __init__(self, channel: Any, request: Any) -> None:
        super().__init__(channel, request)
        self.after_sent: list[Callable[[], None]] = []
        self._heading = False

    def build_response_header(self) -> bytes:
        """Build the head as Waitress does, keeping the connection open where Waitress would
        close it with no need (``set_close_on_finish``), and closing it where Waitress
        would keep it: for ``close`` among the ``Connection`` options."""
        if self.version == "1.1" and names_option(self.request.headers.get("CONNECTION"), "close"):
            # SPEC: RFC 9112 9.6, a server that receives the "close" option closes after its
            # answer, and SHOULD NOT process further requests. NOTE: Waitress closed only for
            # a value of "close" alone ("keep-alive, close", two lines: kept), and answered the
            # request pipelined after it, where Uvicorn closes.
            self.set_close_on_finish()
        if getattr(self.channel.server, "microweb_stopping", False):
            # SPEC: RFC 9112 9.6, a server that will close the connection after its answer
            # SHOULD say so. NOTE: the stop closes it once the answer is sent (as Uvicorn
            # does, which says so): Waitress kept quiet, and a client that sent its next
            # request on it met a closed connection (review350).
            self.set_close_on_finish()
        self._heading = True
        try:
            head: bytes = super().build_response_header()
        finally:
            self._heading = False
        if self.close_on_finish and (KEPT_ALIVE in self.response_headers):
            # NOTE: Waitress says "Keep-Alive" to an HTTP/1.0 client that asked for it, even
            # once the connection is to close (the stop's "close" above): the head said both.
            self.response_headers.remove(KEPT_ALIVE)
            head = head.replace(b"\r\n%s: %s" % tuple(v.encode() for v in KEPT_ALIVE), b"", 1)
        return as_http_1_1(head)

    def set_close_on_finish(self) -> None:
        """Close the connection once the response is sent, unless the response ends by itself.

        NOTE: Waitress closes after every HTTP/1.1 response without ``Content-Length``: a 204
        or 304, which has no body (RFC 9110 6.4.1; CORS preflights, revalidations), and a
        chunked stream, which its final chunk ends (RFC 9112 7.1). The client then opened a
        new connection for its next request.
        """
        if self._heading and self._ends_by_itself():
            return
        super().set_close_on_finish()

    def _ends_by_itself(self) -> bool:
        # NOTE: called while the head is built: HTTP/1.0 and "Connection: close" are decided
        # there before, and a response with Content-Length never comes here.
        if self.version != "1.1":
            return False
        return not names_option(self.request.headers.get("CONNECTION"), "close")

    def finish(self) -> None:
        """End the response; the answer to a HEAD request gets no final chunk.

        NOTE: Waitress sent one after the head of a streamed answer to HEAD, which has no body
        (RFC 9110 9.3.2): a client that kept the connection read it as its next answer.
        """
        if not self.wrote_header:
            self.write(b"")
        if self.request.command == "HEAD":
            self.chunked_response = False
        super().finish()

    def get_environment(self) -> dict[str, Any]:
        """Return Waitress's environ, with ``AFTER_SENT``; for the server's name, the address
        the connection came in on; on a Unix socket, with no address for the client or the
        server."""
        environ: dict[str, Any] = super().get_environment()
        environ[AFTER_SENT] = self.after_sent.append
        arrival = _arrival_address(self.channel)
        if arrival is not None:
            # NOTE: SERVER_NAME stands for a missing Host (HTTP/1.0). It was Waitress's
            # "waitress.invalid" on 0.0.0.0, and the name given for --host ("localhost"),
            # where Uvicorn gives the connection's own address: a TrustedHosts list of one
            # refused what the other let through.
            environ["SERVER_NAME"] = arrival
        if self.channel.server.family == socket.AF_UNIX:
            # NOTE: Waitress gave REMOTE_ADDR "localhost" and REMOTE_PORT "None" for a peer
            # that has no address, and the socket's path as SERVER_PORT (a 500 for a request
            # without Host); Uvicorn gives no client and no server there.
            for name in ("REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT"):
                environ.pop(name, None)
            # SPEC: PEP 3333 wants SERVER_NAME and SERVER_PORT never empty (asgiref and
            # Uvicorn's WSGIMiddleware make up "localhost" and "80"). NOTE: only microweb's
            # driver reads this environ (microweb serve takes an App, no WSGI middleware goes
            # in between; wsgiref.validate checks only that both are there): no host beats a
            # made-up one that url_for(_external=True) would write into links.
            environ["SERVER_PORT"] = ""
        return environ

    def service(self) -> None:
        """Answer the request, then run the work left for after it, even when it failed.

        Raises:
            Escaped: For app code's ``KeyboardInterrupt``, ``SystemExit`` or ``GeneratorExit``,
                with its traceback: Waitress's channel then answers 500 or, once the head
                went out, closes the connection, as Uvicorn does.
        """
        try:
            try:
                super().service()
                self._close_when_sent()
            finally:
                while self.after_sent:
                    self.after_sent.pop(0)()
        except Exception:
            raise
        except BaseException as exc:
            # NOTE: the channel handles only an Exception: the request stayed unanswered and
            # its connection open, counted in flight until the grace period ran out.
            escaped = Escaped(f"{type(exc).__name__}: {exc}").with_traceback(exc.__traceback__)
            raise escaped from None

    def _close_when_sent(self) -> None:
        """Let Waitress close a connection that ends with this response once it is sent.

        NOTE: Waitress's channel does it only once the task is over, after the callbacks: an
        HTTP/1.0 client, whose streamed body ends when the connection closes, waited for them.
        A task that failed is left to the channel, which may still answer it 500.
        """
        if not self.close_on_finish:
            return
        channel = self.channel
        with channel.requests_lock:
            channel.close_when_flushed = True
        channel.server.pull_trigger()


def _arrival_address(channel: Any) -> str | None:
    """The local address of ``channel``'s connection, as Uvicorn gives the server's; ``None``
    on a Unix socket, or once the connection is gone."""
    if channel.server.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    try:
        return str(channel.socket.getsockname()[0])
    except OSError:
        return None


class RefusalTask(ErrorTask):  # type: ignore[misc]
    """Waitress's answer to a request it refused, noted on its connection."""

    def execute(self) -> None:
        """Note the refusal, and answer as Waitress does."""
        self.channel.refused = True
        super().execute()

    def build_response_header(self) -> bytes:
        """Build the head as Waitress does, with an ``HTTP/1.1`` status line."""
        return as_http_1_1(super().build_response_header())


# NOTE: the header Waitress adds to an answer to an HTTP/1.0 client that asked for keep-alive.
KEPT_ALIVE = ("Connection", "Keep-Alive")


def as_http_1_1(head: bytes) -> bytes:
    """Return Waitress's response ``head`` with an ``HTTP/1.1`` status line.

    SPEC: RFC 9110 6.2, a server sends the highest version it conforms to whose major version
    is not above the request's. NOTE: Waitress wrote the request's version (HTTP/1.0 to an
    HTTP/1.0 client, and to one whose head it could not read), where Uvicorn writes HTTP/1.1.
    What the response does (no chunks, the connection closed) is still HTTP/1.0's.
    """
    if head.startswith(b"HTTP/1.0 "):
        return b"HTTP/1.1 " + head[9:]
    return head


class OrderlyChannel(ChunkedChannel):
    """Waitress's connection, its heads parsed by ``OrderlyParser`` and its requests answered
    by ``OrderlyTask``; closed after a refusal in two steps (a lingering close)."""

    task_class: Any = OrderlyTask
    parser_class: Any = OrderlyParser
    error_task_class: Any = RefusalTask
    # NOTE: whether a request was refused on it (and the connection closes after the answer),
    # and when (time.time(), Waitress's clock) its lingering close began.
    refused = False
    lingering_since: float | None = None
    # NOTE: whether the client has ended its sending, with answers still owed to it.
    half_closed = False
    # NOTE: whether it has answered a request: from then on, idle is kept alive (--keep-alive).
    answered = False
    request: Any  # NOTE: Waitress's parser of the request still coming, or None.

    def handle_close(self) -> None:
        """Close as Waitress does; after a refusal, end the writing side first and read on,
        dropping what comes, until the client closes or ``lingered_out()``."""
        # SPEC: RFC 9112 9.6, a server closes in stages, so that the client can read the last
        # response. NOTE: Waitress closed at once with a refused body still coming (a 413 for
        # its Content-Length): the socket answered with a reset, and a client that reads once
        # it has sent the body (http.client, requests) got the reset, not the 413. Uvicorn
        # reads such a body on and drops it (Werkzeug's server too, up to 10 GB).
        if self.lingering_since is not None or not (self.refused and self.connected):
            super().handle_close()
            return
        if self.half_closed:
            # NOTE: the client has ended its sending: nothing is left to drop. The lingering
            # close read nothing more (the channel reads no more) and held it for LINGER_IDLE.
            super().handle_close()
            return
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError:
            super().handle_close()
            return
        self.lingering_since = self.last_activity = time.time()
        self.will_close = self.close_when_flushed = False
        with self.requests_lock:
            # NOTE: a request pipelined after the refused one, part read, is never answered:
            # its head counted it in flight, and a stop waited out its grace period for it.
            if self.request is not None:
                self.request.close()  # NOTE: its body's buffer, a temporary file past 512 KiB.
                self.request = None

    def handle_read(self) -> None:
        """Read as Waitress does, but for the client's end of sending (``_end_of_sending()``);
        while lingering, drop what comes, and close at its end."""
        if self.lingering_since is None:
            self._read()
            return
        try:
            data = self.recv(LINGER_READ)  # NOTE: at the client's end, it closes.
        except OSError:
            super().handle_close()
            return
        if data:
            self.last_activity = time.time()

    def _read(self) -> None:
        try:
            # NOTE: not self.recv(), which closes the whole connection at the client's end.
            data = self.socket.recv(self.adj.recv_bytes)
        except OSError:
            # NOTE: a reset, or any error Waitress's own read closes for: the client is gone.
            self.handle_close()
            return
        if data:
            self.last_activity = time.time()
            self.received(data)
        else:
            self._end_of_sending()

    def _end_of_sending(self) -> None:
        """Take the client's end of sending (its FIN, a ``shutdown(SHUT_WR)`` or a close):
        the requests read whole are answered, then the connection closes; with nothing owed,
        it closes at once, as under Waitress.

        NOTE: with ``channel_request_lookahead`` (microweb serve sets 1, for
        ``is_disconnected()``) Waitress reads on while a request runs, and took the end as a
        client gone: it closed the connection at once, the answer unsent. A client that
        half-closes once it has sent its request (``nc -N``, scripts, some proxies) got
        nothing. SPEC: RFC 9112 9.6 (its half-close paragraph, from HTTPWG http-core issue 22),
        a client's half-close is no sign that it has lost interest in the answers; Uvicorn
        issue 1264 says the same. A client that closed outright is noticed at the first write
        that fails.
        """
        with self.requests_lock:
            if self.request is not None:
                # NOTE: a request cut off by the end (part of a head or body) is never
                # answered, as under Waitress, which drops it with the connection.
                self.request.close()
                self.request = None
            owed = bool(self.requests or self.total_outbufs_len)
            if owed:
                self.half_closed = True
        if not owed:
            self.handle_close()

    def check_client_disconnected(self) -> bool:
        """Whether the client has gone (``waitress.client_disconnected``): as Waitress says, or,
        once its sending has ended, whether it has reset the connection since.

        NOTE: the channel reads no more after the end, so a reset after it (a half-close, then
        an abort) was never seen: a long poll that wrote nothing waited out its own timeout.
        """
        if super().check_client_disconnected():
            return True
        if not self.half_closed:
            return False
        # NOTE: asked when the app asks (is_disconnected()); under Uvicorn, _stall asks the
        # same check on a timer.
        return reset_after_end(self.socket)

    def readable(self) -> bool:
        """Whether to read: as Waitress says, and never once the client's sending has ended
        (its socket stays readable, at its end, for ever)."""
        return not self.half_closed and bool(super().readable())

    def service(self) -> None:
        """Answer the first request waiting, as Waitress does, and note that one was answered
        (from then on, idle is kept alive: ``--keep-alive``); once the client's sending has
        ended and nothing is left to answer, close when the answers have gone out."""
        super().service()
        self.answered = True
        with self.requests_lock:
            if self.half_closed and not self.requests:
                self.close_when_flushed = True
        if self.connected:
            self.server.pull_trigger()

    def lingered_out(self, now: float) -> bool:
        """Return whether a lingering close has gone on long enough (``LINGER_IDLE``,
        ``LINGER_MOST``)."""
        since = self.lingering_since
        if since is None:
            return False
        return self.last_activity < now - LINGER_IDLE or since < now - LINGER_MOST

    def send_continue(self) -> None:
        """Send ``100 Continue`` for a request whose body is still to come; for one read
        whole already (no body, or all of it came) or refused (a 413 for its
        ``Content-Length``), the answer goes out instead."""
        if self.request.completed:
            # NOTE: Waitress sent the 100 Continue and marked the request as not yet complete,
            # so it waited for more bytes: a GET expecting 100-continue, or a POST with a body
            # of 0 bytes, was never answered, nor a refused one's 413 (the client, told to go
            # on, sent a body Waitress would discard), until the channel timeout.
            # SPEC: RFC 9110 10.1.1, a server may omit the 100 once it has the whole content.
            self.request.expect_continue = False
            return
        super().send_continue()


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
