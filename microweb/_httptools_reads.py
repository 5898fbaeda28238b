"""How Uvicorn's httptools protocol (``BoundedHttpTools``) gives httptools what it reads: in
slices, none past a full pipeline of requests; a head measured as it comes, and refused at the
cap; the reads of a long head line held and given at once; and what follows a WebSocket
handshake's head kept for the WebSocket protocol.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httptools

from ._httptools_refusals import HttpToolsRefusals
from ._stall import body_begun, hand_over

# NOTE: requests parsed ahead of the one being answered; Uvicorn answers them one at a time
# anyway. A read is parsed in slices of SLICE bytes, so that a read of small requests (one per
# 18 bytes) stops being parsed near the bound. The slices cost a 9 MiB upload about 1 ms of
# server CPU over 16 (20 uploads, three times each way, 2026-12-01).
MAX_PIPELINED = 8
SLICE = 16 * 1024
# NOTE: httptools joins the pieces of a field (the target, a header's name or value) that
# come in several reads, each to all before it: a 250 KB value sent a byte a packet took 1 s
# of CPU, in 16-byte packets 60 ms (review280). Past LONG_LINE bytes of a line, the reads
# that go on with it are held, and given to httptools once a line ends in one, or SLICE bytes
# of them have come: 1K joins of up to LONG_LINE bytes, then a join per SLICE.
LONG_LINE = 1024
# NOTE: what a held read may not hold back: a line's end, or a control byte other than a tab,
# which httptools refuses at once (review282).
_ENDS_OR_REFUSED = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HttpToolsReads(HttpToolsRefusals):
    """The reading of ``BoundedHttpTools``, first among its bases (with the refusals under
    it): its methods come before those of the other mixins, as they did when they were its
    own."""

    # NOTE: a class attribute, read on each use, so that a test can lower it.
    max_pipelined = MAX_PIPELINED

    # NOTE: the state starts from these class values, instead of in an __init__ that would
    # repeat Uvicorn's signature. heads: how many heads have ended; read_in_head: the bytes of
    # the reads that were all head, of the head still coming.
    read_in_head = heads = 0
    # NOTE: whether a read being parsed held any of a body's data (see _parse).
    body_read = False
    # NOTE: what was read past a full pipeline, parsed once it has room; and whether the
    # connection is the WebSocket protocol's (parsing ends there).
    held = b""
    upgraded = False
    # NOTE: what was read after a WebSocket handshake's head, for the WebSocket protocol.
    after_handshake = b""
    # NOTE: bytes of the head's last line that httptools has had (as far as reads that were
    # all head tell), and the reads of a long line held from it (see LONG_LINE).
    line_read = 0
    line_held: bytearray | None = None
    # NOTE: whether a head is due: from the connection's start, or a head's first byte, to the
    # head's end (after an answer, Uvicorn's keep-alive timer closes an idle connection).
    head_due = True

    if TYPE_CHECKING:
        # NOTE: what the classes after this one in BoundedHttpTools' bases give it.
        continue_expected: bool

        def request_due(self) -> bool: ...

        def request_moved(self) -> None: ...

        def _unsupported_upgrade_warning(self) -> None: ...

    def data_received(self, data: bytes) -> None:
        """Parse ``data`` in slices, until the pipeline of requests waiting is full."""
        if self.refused:
            if self.upgraded:
                # NOTE: a handshake waiting for the answers before it, while one of those
                # reads (a stream watches for its client's departure): what comes is the
                # WebSocket's, and was dropped. One read, and reading stops again.
                self._hand_over(data)
                self.flow.pause_reading()
            return
        if self.held:
            self.held += data
            # NOTE: reading was paused with the bytes held, but the request being answered
            # resumes it when it waits on receive() (a stream's disconnect watcher does, for
            # as long as it streams): each read was held, and the next one taken, with no
            # bound (54 MB in 5 s behind a stream). One read, and reading stops again.
            self.flow.pause_reading()
            return
        if len(data) <= SLICE:
            self._parse(data)
            return
        for start in range(0, len(data), SLICE):
            if self.upgraded:
                self._hand_over(data[start:])
                return
            if self.refused or self.transport.is_closing():
                return
            if len(self.pipeline) >= self.max_pipelined:
                self.held = data[start:]
                self.flow.pause_reading()
                return
            self._parse(data[start : start + SLICE])

    def _parse(self, data: bytes) -> None:
        """Feed ``data`` to the parser; refuse the request once its head is too large."""
        if self.refused or self._held_back(data):
            return
        if self.line_held:
            data, self.line_held = bytes(self.line_held) + data, None
        in_head, heads = self.reading_head, self.heads
        self.body_read = False
        self._feed(data)
        if self.refused:
            return
        if not in_head and heads == self.heads and data:
            # NOTE: bytes of a body, though perhaps only its chunks' framing (no on_body).
            self.continue_expected = False
        elif heads != self.heads and not self.reading_head and body_begun(data):
            self.continue_expected = False
        if self.request_due():
            self.request_moved()
        if not (in_head or self.reading_head or self.body_read):
            self._measure_trailer(len(data))
            return
        # NOTE: only a read that a head went on through, with no head ending in it, is all
        # head: one that ended a head and began another holds the requests between them.
        if not (in_head and self.reading_head and heads == self.heads):
            return
        self.read_in_head += len(data)
        line_end = data.rfind(b"\n")
        self.line_read = self.line_read + len(data) if line_end < 0 else len(data) - line_end - 1
        # NOTE: the head goes on after these bytes, so it is longer than they are.
        if self.read_in_head >= self.max_head_size:
            self._refuse()

    def _held_back(self, data: bytes) -> bool:
        """Hold ``data`` from httptools if it only goes on with a long line of a head that is
        due; the hold ends with a read that ends a line, or at ``SLICE`` bytes, or at the
        head cap, so that a head is refused at the same byte."""
        if not (self.line_read >= LONG_LINE and self.head_due and self.reading_head):
            return False
        held = self.line_held
        size = len(data) + (len(held) if held else 0)
        if size >= SLICE or self.read_in_head + size >= self.max_head_size:
            return False
        if _ENDS_OR_REFUSED.search(data):
            return False  # NOTE: a line's end, or a control byte httptools answers with 400.
        if held is None:
            held = self.line_held = bytearray()
        held += data
        if self.request_due():
            self.request_moved()
        return True

    def _feed(self, data: bytes) -> None:
        """Give ``data`` to httptools, as Uvicorn's ``data_received`` does; keep what follows
        a WebSocket handshake's head for the WebSocket protocol."""
        self._unset_keepalive_if_required()
        while data:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            except httptools.HttpParserUpgrade as upgrade:
                rest = data[upgrade.args[0] :]
                if not self._should_upgrade():
                    if not self.refused:
                        # NOTE: a refused one was logged as refused.
                        self._unsupported_upgrade_warning()
                    # NOTE: an upgrade not taken (h2c, which curl --http2 asks for) stays
                    # HTTP: Uvicorn dropped the rest of the read, and a request pipelined
                    # there was never answered. httptools parses on from there.
                    data = b"" if self.refused else rest
                    continue
                # NOTE: httptools tells where the head ended; Uvicorn dropped what came after
                # it, and so the frames a client sent with its handshake (RFC 6455 4.1 asks it
                # to wait for the 101, but the bytes were on the connection): it waited.
                self.after_handshake = rest
                self.handle_websocket_upgrade()
            return

    def _hand_over(self, data: bytes) -> None:
        """Give ``data``, read after a WebSocket handshake, to the WebSocket protocol; or keep
        it for that protocol, while the handshake waits for the requests before it."""
        if self.transport.get_protocol() is self:
            self.after_handshake += data
        else:
            hand_over(self.transport, data)
