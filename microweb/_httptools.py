"""Uvicorn's httptools protocol with a bound on the request head, as Waitress has.

With httptools, Uvicorn takes a request head of any size: httptools gathers a header's value
whole before it hands it on, so a 20 MB ``Cookie`` header was held in memory and reached the
app. Uvicorn's h11 protocol refuses a head past its first reads, and Waitress answers 431 past
256 KiB. ``microweb serve`` runs Uvicorn with this protocol when httptools is installed, so
that a head is bounded under both servers, with Waitress's limit and status.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# NOTE: Waitress's default max_request_header_size, so that both servers refuse the same heads.
MAX_HEAD_SIZE = 256 * 1024
# NOTE: seconds a refused connection is still read (what comes is dropped) before it closes.
LINGER = 2.0

_REFUSAL = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: 31\r\n"
    b"connection: close\r\n"
    b"\r\n"
    b"request header fields too large"
)


class BoundedHttpTools(HttpToolsProtocol):
    """``HttpToolsProtocol`` that answers 431, and closes, once a head passes ``MAX_HEAD_SIZE``.

    A whole head is measured by its request target and header lines. One that is still
    coming is measured by the reads that did not end it (asyncio reads at most 256 KiB at a
    time), so that httptools never holds much more than the limit of one header's value.
    """

    # NOTE: a class attribute, read on each use, so that a test can lower it.
    max_head_size = MAX_HEAD_SIZE

    # NOTE: the state starts from these class values, instead of in an __init__ that would
    # repeat Uvicorn's signature. reading_head: a connection starts with a head.
    reading_head, refused = True, False
    read_in_head = head_size = 0

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to the parser; refuse the request once its head is too large."""
        if self.refused:
            return
        in_head = self.reading_head
        super().data_received(data)
        if self.refused or not (in_head and self.reading_head):
            return
        # NOTE: the head went on before and after this read: all of it is head.
        self.read_in_head += len(data)
        if self.read_in_head > self.max_head_size:
            self._refuse()

    def on_message_begin(self) -> None:
        """Begin a request as Uvicorn does, and the measure of its head."""
        if not self.refused:
            self.reading_head, self.read_in_head, self.head_size = True, 0, 0
            super().on_message_begin()

    def on_url(self, url: bytes) -> None:
        """Take the request target as Uvicorn does, and measure it."""
        if not self.refused:
            self.head_size += len(url)
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        """Take a header as Uvicorn does, and measure its line."""
        if not self.refused:
            self.head_size += len(name) + len(value) + 4  # NOTE: ": " and CRLF.
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        """Start the request as Uvicorn does, or refuse it if its head is too large."""
        if self.refused:
            return
        self.reading_head = False
        if self.head_size > self.max_head_size:
            self._refuse()
        else:
            super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        """Pass on the body as Uvicorn does; after a refusal, the parser's rest is dropped."""
        if not self.refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        """End the request as Uvicorn does, unless it was refused."""
        if not self.refused:
            super().on_message_complete()

    def _refuse(self) -> None:
        self.refused = True
        self.logger.warning("request head over %d bytes: refused with 431", self.max_head_size)
        if self.cycle is not None and not self.cycle.response_complete:
            # NOTE: a pipelined request's turn: the one before it is still being answered.
            self.transport.close()
            return
        self.transport.write(_REFUSAL)
        # NOTE: closed at once, with the client still sending, the socket would answer with a
        # reset that can reach the client before the 431: end the writing side, drop what
        # still comes, and close after a pause.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)
