"""Waitress's reader of chunked request bodies, at a cost per byte instead of per byte squared.

Waitress's ``ChunkedReceiver`` copies what is left of a read after each chunk, its size line
and its end, and appends each chunk's data to the body buffer on its own: a body of 1-byte
chunks cost 3 to 7 us a chunk, some 12 s of CPU for one 10 MiB request (hostile round 6).
It also joins what it holds of a size line or a trailer to each read and searches it all
again. ``ChunkedBody`` reads the same grammar, with the same results (bytes consumed, body,
trailer, errors), by walking an offset through each read and appending its data once per
read; it holds a size line or a trailer in one buffer and searches only what is new.

One difference: Waitress checks a size with ``^[0-9a-fA-F]+$``, whose ``$`` also matches
before a final LF, so it reads ``1\n\r\n`` as a size of 1; ``ChunkedBody`` answers 400, as
a bare LF ends no line in HTTP/1.1 (RFC 9112, section 7.1) and a proxy may read it otherwise.
Through ``ChunkedParser``, a chunk whose size takes the body to Waitress's body cap gets its
413 at its size line, not once that many bytes have come. And a body whose chunk extensions
(``;name=value`` after a size) come to more than ``MAX_CHUNK_EXTENSIONS`` bytes, or with a size
line longer than that, is refused with 400, where Waitress reads them up to its body cap.
And a trailer that is not field lines ended by CRLF (a bare LF, a folded line, a request
line) is refused with 400, as under httptools: Waitress read anything up to the first
CRLF CRLF as the trailer, and so swallowed a request pipelined after a body that lacked its
last CRLF, or after a trailer line that a proxy taking a bare LF as a line end had ended.
``microweb serve --server waitress`` gives it to every connection (``_waitress.py``).
"""

from __future__ import annotations

import re
from typing import Any

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.receiver import ChunkedReceiver
from waitress.utilities import BadRequest, RequestEntityTooLarge

from ._framing import CHUNK_EXTENSIONS, MAX_CHUNK_EXTENSIONS, frames_in_trailer
from ._percent import HEX_DIGITS

# NOTE: a field line (RFC 9112 5) as Waitress's HEADER_FIELD_RE matches one, in linear time:
# that one takes time in the square of a line's length to fail (see _waitress.py).
FIELD_LINE = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e\x80-\xff]*")

# NOTE: a size line's chunk extensions, from their first ";", as Waitress's CHUNK_EXT_RE takes
# them (with "$": a bare LF at their end too), in _framing's pattern that h11's reader uses.
# PERF: Waitress's repeats a group for each extension and each byte of a quoted value, and re
# kept a backtracking point for each: 16 KiB (MAX_CHUNK_EXTENSIONS) took 2.4 MB to check; now
# no more than the line (Python 3.11+; on 3.10, a point for each extension and quoted pair).
CHUNK_EXTENSIONS_LINE = re.compile(CHUNK_EXTENSIONS.pattern + rb"$")


class ChunkedBody(ChunkedReceiver):  # type: ignore[misc]
    """``ChunkedReceiver`` that walks each read once; the same answers but one (see above)."""

    # NOTE: Waitress's state, which it leaves untyped.
    buf: Any
    error: BadRequest | None
    completed: bool
    all_chunks_received: bool
    validate_chunk_end: bool
    chunk_remainder: int
    chunk_end: bytes

    def __init__(self, buf: Any, max_body: int | None = None) -> None:
        super().__init__(buf)
        # NOTE: Waitress's max_request_body_size: a chunk that takes the body this far is
        # refused from its size line. Waitress waited for its data, until the client's timeout, to
        # refuse it once as many bytes had come (10,000 hex digits, then nothing: review51).
        self.max_body = max_body
        # NOTE: a size line that goes on past a read (Waitress's control_line), and the
        # trailer as far as it has come: one buffer each, whatever the size of the reads.
        self.line = bytearray()
        self.held_trailer = bytearray()
        self.extensions = 0

    @property
    def trailer(self) -> bytes:
        """The trailer as far as it has come (once ``completed``, as Waitress keeps it)."""
        return bytes(self.held_trailer)

    def received(self, s: bytes) -> int:
        """Take what ``s`` holds of the body; return how many of its bytes were consumed."""
        if self.completed:
            return 0
        size = len(s)
        start, end = 0, size
        data: list[bytes] = []
        try:
            while start < end:
                if self.chunk_remainder > 0:
                    stop = min(start + self.chunk_remainder, end)
                    data.append(s[start:stop])
                    self.chunk_remainder -= stop - start
                    start = stop
                    self.validate_chunk_end = self.chunk_remainder == 0
                elif self.validate_chunk_end:
                    s, start, end = self._chunk_end(s, start, end)
                elif not self.all_chunks_received:
                    if not self.line:
                        start = _whole_chunks(s, start, end, data)
                        if start == end:
                            break
                    start = self._size_line(s, start, end)
                    if self.error is not None:
                        break
                else:
                    return size - self._trailer(s[start:end])
        finally:
            if data:
                self.buf.append(b"".join(data))
        return size

    def _chunk_end(self, s: bytes, start: int, end: int) -> tuple[bytes, int, int]:
        """Check the CRLF after a chunk's data at ``start``; return ``s``, where to go on in
        it, and its end (``s`` starts with a byte held from the last read, if there was one)."""
        if self.chunk_end:
            s, start, end = self.chunk_end + s[start:], 0, end - start + 1
            self.chunk_end = b""
        if end - start < 2:
            self.chunk_end = s[start:]
            return s, end, end
        if s.startswith(b"\r\n", start):
            start += 2
        else:
            # NOTE: as Waitress does, what follows is then read as the trailer.
            self.error = BadRequest("Chunk not properly terminated")
            self.all_chunks_received = True
        self.validate_chunk_end = False
        return s, start, end

    def _size_line(self, s: bytes, start: int, end: int) -> int:
        """Read a chunk's size line from ``start``; return where the next part begins."""
        held = self.line
        if held.endswith(b"\r") and s.startswith(b"\n", start):
            line, start = bytes(held[:-1]), start + 1
        else:
            pos = s.find(b"\r\n", start, end)
            if pos < 0:
                # NOTE: searched once, a read at a time: Waitress joined what it had to each
                # read and searched it all again, a cost in the square of the line's length.
                held += s[start:end]
                if len(held) > MAX_CHUNK_EXTENSIONS:
                    self._refuse("Chunk size line too long")
                return end
            line = bytes(held) + s[start:pos] if held else s[start:pos]
            start = pos + 2
        held.clear()
        if not line:
            return start  # NOTE: Waitress skips an empty line where a size is due.
        if len(line) > MAX_CHUNK_EXTENSIONS:
            self._refuse("Chunk size line too long")
            return start
        semi = line.find(b";")
        if semi >= 0:
            self.extensions += len(line) - semi
            if self.extensions > MAX_CHUNK_EXTENSIONS:
                self._refuse("Chunk extensions too long")
                return start
            if not CHUNK_EXTENSIONS_LINE.match(line, semi):
                self._refuse("Invalid chunk extension")
                return start
            line = line[:semi]
        if not line or line.translate(None, HEX_DIGITS):
            self._refuse("Invalid chunk size")
            return start
        chunk = int(line, 16)
        # NOTE: with the data of the reads before (this read's is appended at its end): any
        # body refused here, Waitress refuses once its data has come, counting the framing.
        if self.max_body is not None and len(self.buf) + chunk >= self.max_body:
            self.error = RequestEntityTooLarge(f"exceeds max_body of {self.max_body}")
            self.all_chunks_received = True
        elif chunk > 0:
            self.chunk_remainder = chunk
        else:
            self.all_chunks_received = True
        return start

    def _refuse(self, reason: str) -> None:
        self.error = BadRequest(reason)
        self.all_chunks_received = True

    def _trailer(self, rest: bytes) -> int:
        """Read the trailer from ``rest``; return how many bytes of ``rest`` are not its."""
        trailer = self.held_trailer
        held = len(trailer)
        trailer += rest
        if trailer.startswith(b"\r\n"):
            self.completed = True
            del trailer[held:]  # NOTE: as Waitress, which keeps what it held before.
            return held + len(rest) - 2
        # NOTE: only where the end can be: Waitress joined what it held to each read and
        # searched it all again, a cost in the square of the trailer's length.
        pos = trailer.find(b"\r\n\r\n", max(held - 3, 0))
        if pos < 0:
            return 0
        self.completed = True
        del trailer[pos + 4 :]
        if self.error is None and not trailer_is_valid(trailer):
            # NOTE: Waitress reads any bytes up to the first CRLF CRLF as the trailer: a
            # request pipelined after a body whose last CRLF was missing, or after a trailer
            # line that ends in a bare LF (which nginx takes as its end), was swallowed as
            # trailer lines, where httptools and h11 answer 400. Refused, the connection closes.
            self.error = BadRequest("Invalid trailer")
        return held + len(rest) - (pos + 4)


def trailer_is_valid(trailer: bytes | bytearray) -> bool:
    """Tell whether ``trailer`` (up to its CRLF CRLF) is field lines, each ended by CRLF, of
    no field that frames a body (``frames_in_trailer()``)."""
    # SPEC: RFC 9112 7.1.2, trailer-section = *( field-line CRLF ); RFC 9112 5.2, obs-fold is
    # for a message/http container only (httptools refuses it there too).
    lines = bytes(trailer[:-4]).split(b"\r\n")
    return all(FIELD_LINE.fullmatch(line) for line in lines) and not frames_in_trailer(lines)


def _whole_chunks(s: bytes, start: int, end: int, data: list[bytes]) -> int:
    """Take the well-formed chunks (size line, data, CRLF) that ``s`` holds whole from
    ``start``, their data into ``data``; return where the first other part begins."""
    # PERF: 1-byte chunks in 8 KiB reads cost 1.1 us a chunk with this loop, 1.9 us through
    # the general one alone, 4.4 to 5.0 us through Waitress's; 10-byte chunks 1.4 to 1.6 us
    # against 4.4 to 5.4 (python bench/chunked_bodies.py, this VM, 2026-12-01 19:59 UTC).
    find = s.find
    while True:
        pos = find(b"\r\n", start, end)
        if pos <= start:
            return start
        line = s[start:pos]
        if b";" in line or pos - start > MAX_CHUNK_EXTENSIONS:
            return start  # NOTE: the general reader's, which counts and refuses.
        if not line or line.translate(None, HEX_DIGITS):
            return start
        stop = pos + 2 + int(line, 16)
        if stop == pos + 2 or stop + 2 > end or s[stop : stop + 2] != b"\r\n":
            return start
        data.append(s[pos + 2 : stop])
        start = stop + 2


class ChunkedParser(HTTPRequestParser):  # type: ignore[misc]
    """Waitress's request parser, reading a chunked body with ``ChunkedBody``, and a head that
    comes in many reads at a cost per byte."""

    body_rcv: Any
    adj: Any
    completed: bool
    # NOTE: what has come of the head, before Waitress reads it (see received()).
    head_so_far: bytearray | None = None
    # NOTE: whether whitespace other than empty lines came before the request line, which
    # Waitress strips (a subclass refuses it).
    blank_before_line = False

    def received(self, data: bytes) -> int:
        """Take ``data`` as Waitress does; a head still coming is held in one buffer, and
        Waitress reads it whole once its end (or its cap) has come."""
        # NOTE: Waitress joins what it holds of a head to each read and searches it all again
        # for the blank line: in the one thread that reads every connection, a 250 KB head
        # sent a byte a packet took 20 s of CPU, in 16-byte packets 1.2 s (review280). Only
        # the new bytes are searched now (and the 3 before them), and each is copied once.
        if self.completed or self.body_rcv is not None:
            return int(super().received(data))
        held = self.head_so_far
        if held is None:
            held = self.head_so_far = bytearray()
        start = max(len(held) - 3, 0)
        held += data
        if held.find(b"\r\n\r\n", start) < 0 and len(held) < self.adj.max_request_header_size:
            return len(data)
        # NOTE: as if the head had come in one read: Waitress consumes up to its end, or all
        # of it past the cap; of this read, what follows the bytes held before it.
        before = len(held) - len(data)
        self.head_so_far = None
        # PERF: the first byte looked at, no copy of the head but after empty lines (rare).
        first = bytes(held[:1])
        if first in _EMPTY_LINE:
            first = bytes(held.lstrip(b"\r\n")[:1])
        self.blank_before_line = first in _BLANKS
        return int(super().received(bytes(held))) - before

    def parse_header(self, header_plus: bytes) -> None:
        """Parse the head as Waitress does; a chunked body gets ``ChunkedBody``."""
        super().parse_header(header_plus)
        if type(self.body_rcv) is ChunkedReceiver:
            self.body_rcv = ChunkedBody(self.body_rcv.buf, self.adj.max_request_body_size)


# NOTE: the bytes other than CR and LF that bytes.lstrip() strips, as Waitress strips a head.
_BLANKS = frozenset(bytes([c]) for c in b" \t\x0b\x0c")
_EMPTY_LINE = frozenset([b"\r", b"\n"])


class ChunkedChannel(HTTPChannel):  # type: ignore[misc]
    """Waitress's connection, with ``ChunkedParser`` for its requests."""

    parser_class: Any = ChunkedParser
