"""The readers of a request's framing under ``microweb serve``'s h11 protocol (``_h11.py``).

h11 reads a request head, the lines of a chunked body and its trailer section more loosely
than Waitress and httptools do. These readers see h11's receive buffer through a checked view
of it (``FoldChecked`` for a head, ``ChunkLinesChecked`` for a chunked body), so that what
Waitress and httptools refuse is refused as it is read (400, or 501 for a coding before
``chunked``), and read the plain chunks that a read holds whole as one event
(``take_whole_chunks()``). ``FramedConnection`` (``_h11_connection.py``) puts them in place of
h11's own.
"""

from __future__ import annotations

import re
from typing import Any

import h11
from h11._readers import ChunkedReader, maybe_read_from_IDLE_client

from ._framing import (
    CHUNK_EXTENSIONS,
    FOLDED_LINE,
    MAX_CHUNK_EXTENSIONS,
    frames_in_trailer,
    has_folded_line,
    transfer_coding_refusal,
)
from ._percent import HEX_DIGITS

# NOTE: a control byte but HTAB (h11 has refused NUL, CR and LF already).
CONTROL_BYTE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# NOTE: the bytes of empty lines (CRLF, or a bare LF) before a request line, and a CR that
# ends them (one no LF follows).
_LINE_ENDS = re.compile(rb"[\r\n]*")
_BARE_CR = re.compile(rb"\r(?!\n)")
# NOTE: the end of a chunk line with whitespace before its CRLF, after the size or a chunk
# extension (h11 takes it, for servers in the wild).
SPACED_END = (b" \r\n", b"\t\r\n")
# NOTE: the name of a Transfer-Encoding line, lowercased.
CODING_NAME = b"transfer-encoding"


def empty_lines(data: bytes) -> int:
    """Return how many bytes of ``data`` are the empty lines (CRLF, or a bare LF) it starts
    with."""
    # PERF: "(?:\r?\n)*" kept a backtracking point for each line it repeated: a read of
    # 256 KiB of CRLFs took 17 MB (64 bytes a byte) to skip, read after read (hostile5). Here
    # the run of CRs and LFs ends at its first CR that no LF follows, with no repeated group.
    run = _LINE_ENDS.match(data)
    end = run.end() if run else 0
    bare = _BARE_CR.search(data, 0, end)
    return bare.start() if bare else end


class FoldChecked:
    """h11's receive buffer, as its reader of a request head sees it, refusing a head with a
    line folded onto the one before (obs-fold), that gives ``Content-Length`` more than
    once, that ends a line with a bare LF, or whose ``Transfer-Encoding`` does not end in
    ``chunked``; it skips empty lines (CRLF, or a bare LF) before the request line, as
    Waitress and httptools do."""

    def __init__(self, buf: Any) -> None:
        self.buf = buf

    def maybe_extract_lines(self) -> list[bytearray] | None:
        """Return the head's lines as h11's buffer does, once they pass the checks above.

        Raises:
            h11.RemoteProtocolError: For a head that fails one (400).
        """
        size = len(self.buf)
        lines: list[bytearray] | None = self.buf.maybe_extract_lines()
        if lines == [] and size - len(self.buf) in (1, 2):
            # SPEC: RFC 9112 2.2, a server SHOULD ignore an empty line (CRLF) before the
            # request line, and MAY take a bare LF as a line end. NOTE: h11 answered 400,
            # where Waitress and httptools skip it: a client that ends a POST's body with one
            # lost its next request. The others are skipped at once: one by one, a read of
            # them cost 0.1 s (256 KiB).
            self.buf.maybe_extract_at_most(empty_lines(bytes(self.buf)))
            size = len(self.buf)
            lines = self.buf.maybe_extract_lines()
        if not lines:
            return lines
        if not ends_in_crlf(size - len(self.buf), lines):
            # SPEC: RFC 9112 2.2, a recipient MAY take a bare LF as a line end. NOTE: h11
            # did, where Waitress and httptools answer 400: a proxy that doesn't reads other
            # lines, and another framing, in the same bytes.
            raise h11.RemoteProtocolError("bare LF in the request head", 400)
        if has_folded_line(lines):
            # NOTE: the head's 400, as httptools answers (see has_folded_line).
            raise h11.RemoteProtocolError(FOLDED_LINE, 400)
        check_codings(lines)
        if repeated_length(lines):
            # SPEC: RFC 9110 8.6, a recipient either refuses repeated Content-Length values
            # or keeps one. NOTE: h11 kept one ("5, 5", or two lines of 5), where Waitress
            # and httptools answer 400: the same head was served under one server only.
            raise h11.RemoteProtocolError("Content-Length given more than once", 400)
        return lines

    def is_next_line_obviously_invalid_request_line(self) -> bool:
        """Answer as h11's buffer does, but not for the CR of an empty line's CRLF cut
        between reads."""
        if len(self.buf) == 1 and bytes(self.buf) == b"\r":
            return False
        return bool(self.buf.is_next_line_obviously_invalid_request_line())


def repeated_length(lines: list[bytearray]) -> bool:
    """Return whether a request head's ``lines`` give ``Content-Length`` more than once, on
    two lines or as a list."""
    values = 0
    for line in lines:
        name, _, value = line.partition(b":")
        if name.lower() == b"content-length":
            values += value.count(b",") + 1
    return values > 1


def check_codings(lines: list[bytearray]) -> None:
    """Refuse a request head's ``Transfer-Encoding`` (its ``lines``) as Waitress does
    (``transfer_coding_refusal()``); leave one line of ``chunked`` for h11 to read.

    Raises:
        h11.RemoteProtocolError: For one refused (400, or 501 for a coding before chunked).
    """
    coded = [i for i, line in enumerate(lines) if line.partition(b":")[0].lower() == CODING_NAME]
    if not coded:
        return
    values = [lines[i].partition(b":")[2].decode("latin-1") for i in coded]
    length = any(line.partition(b":")[0].lower() == b"content-length" for line in lines)
    refusal = transfer_coding_refusal(values, length)
    if refusal is not None:
        # NOTE: h11's own 501 (a coding but chunked, or two lines) was for more than a coding
        # before chunked; its 400 came from FramedConnection after it.
        raise h11.RemoteProtocolError(refusal.reason, refusal.status)
    # SPEC: RFC 9110 5.6.1, a recipient MUST ignore empty list members. NOTE: h11 takes only a
    # line of "chunked" alone, and answered 501 for "chunked,,", where Waitress reads the body
    # as chunked.
    lines[coded[0]] = bytearray(b"Transfer-Encoding: chunked")


class ChunkLinesChecked:
    """h11's receive buffer, as its reader of a chunked body sees it, refusing a chunk line
    with whitespace before its CRLF or a chunk extension that is no name and value, and a
    trailer line that is no CRLF-ended field line, as Waitress and httptools do, and chunk
    extensions past ``MAX_CHUNK_EXTENSIONS`` bytes a body, as Waitress does (``reader``
    counts them)."""

    def __init__(self, buf: Any, reader: StrictChunkedReader) -> None:
        self.buf = buf
        self.reader = reader

    def maybe_extract_next_line(self) -> bytearray | None:
        """Return the next line as h11's buffer does (a chunk line, here), once checked.

        Raises:
            h11.RemoteProtocolError: For a chunk size and whitespace, or extensions too long
                or that are no name and value (400).
        """
        line: bytearray | None = self.buf.maybe_extract_next_line()
        if line is not None and line.endswith(SPACED_END):
            # SPEC: RFC 9112 7.1, chunk = chunk-size [ chunk-ext ] CRLF, and 7.1.1, an
            # extension ends in a token or a quoted string. NOTE: h11 takes whitespace before
            # the CRLF, where Waitress and httptools answer 400: a proxy that refuses it or
            # reads the size otherwise frames the body otherwise.
            raise h11.RemoteProtocolError("whitespace at the end of a chunk line", 400)
        semi = -1 if line is None else line.find(b";")
        if line is not None and semi >= 0:
            # NOTE: as Waitress counts them: from the ";" to the CRLF.
            self.reader.extensions += len(line) - 2 - semi
            if self.reader.extensions > MAX_CHUNK_EXTENSIONS:
                raise h11.RemoteProtocolError("chunk extensions too long", 400)
            if not CHUNK_EXTENSIONS.fullmatch(line, semi, len(line) - 2):
                # NOTE: h11 reads anything after the ";" but a LF (a bare CR, a NUL), where
                # Waitress and httptools answer 400: a proxy that ends the line at a bare CR,
                # or drops a NUL, frames the body otherwise (review337).
                raise h11.RemoteProtocolError("invalid chunk extension", 400)
        return line

    def maybe_extract_lines(self) -> list[bytearray] | None:
        """Return the trailer section's lines as h11's buffer does, once checked.

        Raises:
            h11.RemoteProtocolError: For a line that ends in a bare LF, is folded onto the one
                before, holds a control character, or names a field that frames a body
                (400).
        """
        size = len(self.buf)
        lines: list[bytearray] | None = self.buf.maybe_extract_lines()
        if lines is None:
            return None
        # SPEC: RFC 9112 7.1.2, a trailer section is field lines, each ending in CRLF (5.2:
        # no obs-fold outside message/http), RFC 9110 5.5: no control character in a value.
        # NOTE: h11 reads it as it reads a head: "X: 1\n\n" ended it, and the bytes after it
        # were the next request, a line folded onto the one before was joined, a control
        # character kept, where Waitress and httptools answer 400: a proxy that reads the
        # section otherwise frames the next request otherwise (review337).
        if not ends_in_crlf(size - len(self.buf), lines):
            raise h11.RemoteProtocolError("bare LF in the trailer section", 400)
        if any(line.startswith((b" ", b"\t")) for line in lines):
            raise h11.RemoteProtocolError("folded trailer line", 400)
        if any(CONTROL_BYTE.search(line) for line in lines):
            raise h11.RemoteProtocolError("control character in a trailer line", 400)
        if frames_in_trailer(lines):
            raise h11.RemoteProtocolError("a framing field in the trailer section", 400)
        return lines

    def __len__(self) -> int:
        return len(self.buf)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.buf, name)


def ends_in_crlf(taken: int, lines: list[bytearray]) -> bool:
    """Return whether the ``taken`` bytes that h11's buffer cut into ``lines`` (a head, or a
    trailer section) ended each line, and the blank line, in CRLF.

    h11 cuts each line at its LF and drops one CR before it, if any: the bytes taken are as
    many as the lines with a CRLF each, and the blank line's, only if every line ended so.
    """
    return taken == sum(len(line) + 2 for line in lines) + 2


class StrictChunkedReader(ChunkedReader):
    """h11's reader of a chunked body, reading through ``ChunkLinesChecked``; the plain
    chunks that a read holds whole come out as one ``Data`` event."""

    # NOTE: the bytes of the chunk extensions of the body so far (ChunkLinesChecked).
    extensions = 0

    def __call__(self, buf: Any) -> Any:
        discard = self._bytes_to_discard
        if discard and buf._data.startswith(discard):
            # NOTE: the CRLF after a chunk h11 read: taken here, or h11's reader would go on
            # to the next chunk, and to all the chunks after it, one event each.
            buf.maybe_extract_at_most(len(discard))
            self._bytes_to_discard = b""
        if not (self._bytes_in_chunk or self._bytes_to_discard or self._reading_trailer):
            data = take_whole_chunks(buf)
            if data:
                return h11.Data(data=data, chunk_start=True, chunk_end=True)
        # NOTE: h11's reader calls itself on the buffer it was given after the last chunk.
        checked = buf if isinstance(buf, ChunkLinesChecked) else ChunkLinesChecked(buf, self)
        return super().__call__(checked)  # type: ignore[arg-type]


# NOTE: the longest size line h11 reads: 20 hex digits (h11._abnf.chunk_size), and its CRLF.
SIZE_LINE = 22


def take_whole_chunks(buf: Any) -> bytes:
    """Take the plain chunks (a size line of hex digits alone, the data, CRLF) that h11's
    receive buffer ``buf`` holds whole from its start; return their data (empty for none).

    What is not such a chunk (an extension, whitespace, a bad size, the last chunk, a chunk
    cut by the read) is left to h11's reader, which reads it or refuses it as before.
    """
    # PERF: h11 makes an event of each chunk, and Uvicorn handles each on its own: 200,000
    # 1-byte chunks (1.2 MB) cost 1.3 s of CPU in the event loop, a 10 MiB body of them
    # 10.4 s (microweb serve's h11, this 2-CPU VM, 2026-12-07). Read here, one event a read.
    held = buf._data
    end, start = len(held), 0
    parts = []
    find = held.find
    while True:
        # NOTE: searched only as far as a size line h11 reads can go: a long line coming in
        # small reads is not searched again from its start at each read.
        pos = find(b"\r\n", start, min(end, start + SIZE_LINE))
        if pos <= start:
            break
        size = held[start:pos]
        if size.translate(None, HEX_DIGITS):
            break
        stop = pos + 2 + int(size, 16)
        if stop == pos + 2 or stop + 2 > end or held[stop : stop + 2] != b"\r\n":
            break
        parts.append(held[pos + 2 : stop])
        start = stop + 2
    if not parts:
        return b""
    buf.maybe_extract_at_most(start)
    return b"".join(parts)


def read_head(buf: Any) -> Any:
    """Read a request head as h11 does, from ``buf`` seen through ``FoldChecked``."""
    return maybe_read_from_IDLE_client(FoldChecked(buf))  # type: ignore[arg-type]
