"""How Uvicorn's httptools protocol (``BoundedHttpTools``) gives httptools what it reads: in
slices, none past a full pipeline of requests; a head measured as it comes, and refused at the
cap; the reads of a long head line held and given at once; where a request line's target
ends in a read (``target_end()``, past a chunked body's end: ``chunks_end()``), so that one
spaced wrong is found; and what follows a WebSocket handshake's head kept for the WebSocket
protocol.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import httptools

from ._httptools_refusals import HttpToolsRefusals
from ._uvicorn_shared import body_begun, hand_over

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
# NOTE: bytes of a read kept for the next one, where a head goes on (HttpToolsReads.tail).
TAIL = 16


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
    # NOTE: the read httptools is parsing (_feed()), where on_url() looks at the request line:
    # where in it the next request line starts, after the message before (CR and LF may come
    # first), or -1 where that is not known (after a chunked body whose chunks were not
    # followed); where the request's target ends in it (-1: not in it); where its body starts
    # in it (-1: not known) and how much of the body has been read from there (whether the
    # line's whitespace was doubled: spaced_line, with the refusals).
    feeding = b""
    line_from = url_end = body_from = -1
    body_seen = 0
    # NOTE: how a read ended in a request line after its target's first bytes: None, it did
    # not; 0, at the end of the target's bytes (more may come); 1, in one space after them.
    line_open: int | None = None
    # NOTE: whether the head being read began in an earlier read (head_started: it has begun
    # and not ended), and that read's last bytes (TAIL of them, with those before it, where
    # it began earlier still): the method, with its space, is never longer.
    head_started = began_before = False
    tail = b""
    # NOTE: whether the body of the request read last has a Transfer-Encoding (its chunk lines
    # are not counted in body_seen), and where its chunks start in this read (-1: not in it).
    coded_body = False
    chunks_from = -1
    # NOTE: where the reading of that body's chunks stood at the end of the read before, from
    # its head (FRESH_CHUNKS) on; None where not known (the line after it is then unchecked).
    chunk_state: ChunkState | None = None

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
        # NOTE: positions are in this read: a target read before ends in none of it.
        self.url_end = self.chunks_from = -1
        self.began_before = self.reading_head and self.head_started
        tail = self.tail if self.began_before else b""
        if self.reading_head:
            self.line_from, self.body_from = 0, -1
            if self.line_open is not None:
                self._go_on_with_line(data)
        else:
            # NOTE: a body that goes on from an earlier read starts this one; for a chunked
            # one, its chunks go on from where chunk_state tells (review406).
            self.line_from, self.body_from = -1, -1 if self.coded_body else 0
            if self.coded_body:
                self.chunks_from = 0
        self.body_seen = 0
        while data:
            self.feeding = data
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            except httptools.HttpParserUpgrade as upgrade:
                self.feeding = b""
                rest = data[upgrade.args[0] :]
                if not self._should_upgrade():
                    if not self.refused:
                        # NOTE: a refused one was logged as refused.
                        self._unsupported_upgrade_warning()
                    # NOTE: an upgrade not taken (h2c, which curl --http2 asks for) stays
                    # HTTP: Uvicorn dropped the rest of the read, and a request pipelined
                    # there was never answered. httptools parses on from there: the rest
                    # starts where the request ended (one with a body was refused), and a
                    # request line there is checked as any other (review406).
                    data = b"" if self.refused else rest
                    self.line_from, self.body_from = 0, -1
                    continue
                # NOTE: httptools tells where the head ended; Uvicorn dropped what came after
                # it, and so the frames a client sent with its handshake (RFC 6455 4.1 asks it
                # to wait for the 101, but the bytes were on the connection): it waited.
                self.after_handshake = rest
                self.handle_websocket_upgrade()
            if not self.reading_head and self.coded_body and self.chunks_from >= 0:
                # NOTE: a chunked body goes on past this read: where its reading stands.
                self.chunk_state = chunks_read(self.chunk_state, data, self.chunks_from)[0]
            if self.reading_head and self.head_started:
                self.tail = (tail + data)[-TAIL:] if len(data) < TAIL else data[-TAIL:]
            else:
                self.tail = b""
            self.feeding = b""
            return

    def _go_on_with_line(self, data: bytes) -> None:
        """Check the start of ``data``, a read that goes on with a request line whose target
        ended the read before (``line_open``), or a space after it."""
        if self.line_open == 1:
            self.line_open = None
            self.spaced_line = self.spaced_line or data[:1] == b" "
        elif data[:1] == b" ":
            self.line_open = 1 if len(data) == 1 else None
            self.spaced_line = self.spaced_line or data[1:2] == b" "

    def _hand_over(self, data: bytes) -> None:
        """Give ``data``, read after a WebSocket handshake, to the WebSocket protocol; or keep
        it for that protocol, while the handshake waits for the requests before it."""
        if self.transport.get_protocol() is self:
            self.after_handshake += data
        else:
            hand_over(self.transport, data)


def target_end(data: bytes, start: int, method: bytes, url: bytes) -> int:
    """Return where in ``data`` the first read of the target that httptools read (``url``)
    ends, its request line starting at ``start`` (after any CR and LF); ``-1`` if the line is
    not ``method``, one space, the target, then one space and "H" (or the end of ``data``).

    A line at ``data``'s start may have begun in an earlier read: ``data`` then starts with
    the rest of its method and space. Where that read ended in the space, a second space
    starting ``data`` goes by.
    """
    size = len(data)
    while start < size and data[start] in b"\r\n":
        start += 1
    lead = method + b" "
    if data.startswith(lead, start):
        at = start + len(lead)
    elif start > 0:
        return -1
    else:
        at = next(
            (
                len(lead) - cut
                for cut in range(1, len(lead))
                if lead[cut:] == data[: len(lead) - cut]
            ),
            0,
        )
    if not data.startswith(url, at):
        return -1
    end = at + len(url)
    if end == size or data[end : end + 2] == b" H" or data[end:] == b" ":
        return end
    return -1


# NOTE: a chunk size, at the start of a chunk line (any extensions after it).
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")
# NOTE: where a chunked body's reading stands at the end of a read: in a chunk line (the bytes
# of it read), in a chunk's data (how many bytes of it, and of the CRLF after it, are to
# come), or in the trailer (its last bytes read, from the LF that ended the last chunk line).
# None: not known (a line longer than LONG_CHUNK_LINE, or one httptools would not take, or
# past FOLLOWED_CHUNKS chunks). Last, how many more chunks may be followed.
IN_LINE, IN_DATA, IN_TRAILER = 0, 1, 2
ChunkState = tuple[int, int, bytes, int]
LONG_CHUNK_LINE = 4096
# PERF: each chunk line costs about 1.5 us here: 64 KiB of 1-byte chunks took 16 ms, on top of
# httptools' own callback a chunk. A body's first chunks are followed, its others not (the
# request line after such a body goes unchecked): about 2 ms a request at most (review406).
FOLLOWED_CHUNKS = 1024
FRESH_CHUNKS: ChunkState = (IN_LINE, 0, b"", FOLLOWED_CHUNKS)


def chunks_read(state: ChunkState | None, data: bytes, start: int) -> tuple[ChunkState | None, int]:
    """Read on through the chunks (and trailer) of a body, as httptools has read them, from
    ``start`` in ``data``, where the reading stood at ``state``; return where it stands at the
    end of ``data``, and where the body ends in ``data`` (``-1``: past it, or not known)."""
    # PERF: each line is looked for in ``data`` itself, from where it starts: a line joined
    # with the rest of the read copied up to 64 KiB a chunk line, 1,024 times a read at most
    # (1,024 one-byte chunks and 60 KB after them: 7 ms, now 2 ms; review411). Only a line
    # begun in the read before is joined, and only that line.
    size = len(data)
    while state is not None and start <= size:
        phase, left, kept, chunks = state
        if phase == IN_DATA:
            if left > size - start:
                return (IN_DATA, left - (size - start), b"", chunks), -1
            start, state = start + left, (IN_LINE, 0, b"", chunks)
        elif phase == IN_LINE:
            after = _line_after(kept, data, start)
            if after < 0:
                if len(kept) + size - start > LONG_CHUNK_LINE:
                    return None, -1
                return (IN_LINE, 0, kept + data[start:], chunks), -1
            if after == start + 1:
                found = _CHUNK_SIZE.match(kept, 0, len(kept) - 1)  # NOTE: its CR ended it.
            elif kept:
                found = _CHUNK_SIZE.match(kept + data[start : after - 2])
            else:
                found = _CHUNK_SIZE.match(data, start, after - 2)
            chunk = -1 if found is None else int(found[0], 16)
            if chunk < 0 or (chunk and not chunks):
                return None, -1
            start = after
            state = (IN_DATA, chunk + 2, b"", chunks - 1) if chunk else (IN_TRAILER, 0, b"\n", 0)
        else:
            # NOTE: the trailer ends at its first empty line, its LF after the last one's;
            # kept holds the last bytes read (two at most), which it may end in.
            ends = (kept + data[start : start + 2]).find(b"\n\r\n")
            if ends < 0:
                found_at = data.find(b"\n\r\n", start)
                ends = -1 if found_at < 0 else found_at - start + len(kept)
            if ends < 0:
                last = data[max(start, size - 2) :]
                return (IN_TRAILER, 0, last if len(last) == 2 else (kept + last)[-2:], 0), -1
            return None, start + ends + 3 - len(kept)
    return None, -1


def _line_after(kept: bytes, data: bytes, start: int) -> int:
    """Return where in ``data`` a chunk line ends, after its CRLF, the line's first bytes
    being ``kept`` (read before, with no CRLF in them) and the rest from ``start`` on;
    ``start + 1`` where a CR that ends ``kept`` and an LF at ``start`` end it; ``-1``: not in
    ``data``."""
    if kept[-1:] == b"\r" and data[start : start + 1] == b"\n":
        return start + 1
    found = data.find(b"\r\n", start)
    return -1 if found < 0 else found + 2


def chunks_end(data: bytes, start: int) -> int:
    """Return where in ``data`` the chunks (and trailer) of a body that starts at ``start``
    end, as httptools has read them; ``-1`` if they go on past ``data``."""
    return chunks_read(FRESH_CHUNKS, data, start)[1]


def target_end_after(tail: bytes, data: bytes, method: bytes, url: bytes) -> int:
    """Return where in ``data`` the first read of the target (``url``) ends, for a request
    line that began in an earlier read, whose last bytes were ``tail``; ``-1`` if the line is
    not ``method``, one space, the target, then one space and "H" (or the end of ``data``)."""
    lead = method + b" "
    joined = tail + data
    found = joined.find(lead + url, max(0, len(tail) - len(lead)))
    at = found + len(lead) - len(tail)
    if found < 0 or not 0 <= at <= len(lead):
        return -1
    end = at + len(url)
    if end == len(data) or data[end : end + 2] == b" H" or data[end:] == b" ":
        return end
    return -1
