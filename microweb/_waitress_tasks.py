"""Waitress's tasks under ``microweb serve``: a request answered (``OrderlyTask``), with the
work left for after it run once it is sent and the connection's end said as it should be, and
a refusal (``RefusalTask``), both with an ``HTTP/1.1`` status line."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Any

from waitress.task import ErrorTask, WSGITask

from ._parsing import names_option
from ._wsgi_end import AFTER_SENT
from ._wsgi_request import HEADER_LINES


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
        would keep it: for ``close`` among the ``Connection`` options, and after any HTTP/1.0
        answer."""
        if self.version == "1.1" and names_option(self.request.headers.get("CONNECTION"), "close"):
            # SPEC: RFC 9112 9.6, a server that receives the "close" option closes after its
            # answer, and SHOULD NOT process further requests. NOTE: Waitress closed only for
            # a value of "close" alone ("keep-alive, close", two lines: kept), and answered the
            # request pipelined after it, where Uvicorn closes.
            self.set_close_on_finish()
        if self.version == "1.0":
            # SPEC: RFC 9112 9.3, a server MAY close a connection; RFC 9112 C.2.2, HTTP/1.0's
            # keep-alive is a leftover that proxies mishandle. NOTE: Waitress kept an HTTP/1.0
            # connection that asked for "keep-alive", and answered the requests pipelined
            # after it, where Uvicorn (h11 or httptools) closes after each HTTP/1.0 answer
            # (hostile8).
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
            # once the connection is to close (every HTTP/1.0 answer's close above, or the
            # stop's): the head said both.
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
        environ[HEADER_LINES] = getattr(self.request, "header_count", 0)
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
