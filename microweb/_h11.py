"""Uvicorn's h11 protocol, with the stalled-request timer that ``microweb serve`` gives httptools.

Without httptools (``pip install "microweb[uvicorn]"`` does not install it), Uvicorn runs h11,
which bounds a request head itself but, like httptools, waits for a request that never comes
for ever: a ``def`` handler reading a body that stopped held its pool thread as long as the
client kept the connection open, and a connection that sent nothing, or part of a head, stayed
open. ``microweb serve`` runs this protocol then, so that such a connection is closed after
``StallTimer.stall_timeout``, as under httptools and Waitress (``_stall.py``).

Uvicorn hands the WebSocket protocol a handshake alone; this protocol hands it the bytes read
after the handshake too, as ``_httptools.py`` does: the frames a client sent with it were lost.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import h11
from h11._readers import ChunkedReader, maybe_read_from_IDLE_client
from uvicorn.protocols.http.h11_impl import H11Protocol, RequestResponseCycle

from ._parsing import (
    CHUNK_EXTENSIONS,
    MAX_CHUNK_EXTENSIONS,
    UNSUPPORTED_CODING,
    folded_framing,
    has_body,
    switch_refusal,
    transfer_coding_refusal,
)
from ._percent import HEX_DIGITS, percent_decode
from ._stall import (
    AnswersAfterEnd,
    IdleOnceSent,
    StallTimer,
    Transport,
    UpgradeWarnedOnce,
    hand_over,
    read_whole_unanswered,
)
from ._unix import NoUnixAddress

# NOTE: Waitress's default max_request_header_size, as _httptools' MAX_HEAD_SIZE (which this
# module can't import: it needs httptools), and its LINGER.
MAX_HEAD_SIZE = 256 * 1024
LINGER = 2.0
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
    """h11's receive buffer, as its reader of a request head sees it, refusing a head whose
    ``Transfer-Encoding`` or ``Content-Length`` is folded onto the next line (obs-fold), that
    gives ``Content-Length`` more than once, that ends a line with a bare LF, or whose
    ``Transfer-Encoding`` does not end in ``chunked``; it skips empty lines (CRLF, or a bare
    LF) before the request line, as Waitress and httptools do."""

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
        folded = folded_framing(lines)
        if folded is not None:
            # NOTE: the head's 400, as httptools answers (see folded_framing).
            raise h11.RemoteProtocolError(f"folded {folded.decode()} line", 400)
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
                before, or holds a control character (400).
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


class FramedConnection(h11.Connection):
    """h11's server side, refusing a request with both ``Transfer-Encoding`` and
    ``Content-Length``, or with either folded onto the next line."""

    # NOTE: whether a request head was refused for being too long (431), or for a transfer
    # coding h11 does not read before chunked (501).
    too_large = not_implemented = False
    # NOTE: the reason a CONNECT or Upgrade request with a body was refused (switch_refusal()).
    switch_refused: str | None = None
    # NOTE: the target of the last request given with a stand-in (escaped_stand_in()), until
    # its scope has its path.
    escaped_target: bytes | None = None
    # NOTE: the target of the last request, when it is no path (authority-form, "*"), until
    # its scope has it without the root path.
    bare_target: bytes | None = None

    def _get_io_object(self, role: Any, event: Any, io_dict: Any) -> Any:
        # NOTE: h11 picks the reader for the state the client is in; the head's is wrapped.
        reader = super()._get_io_object(role, event, io_dict)
        if isinstance(reader, ChunkedReader):
            return StrictChunkedReader()
        return read_head if reader is maybe_read_from_IDLE_client else reader

    def next_event(self) -> Any:
        """Return h11's next event; a request h11 reads but microweb serve refuses is a
        protocol error (400).

        A request framed two ways (``Transfer-Encoding`` and ``Content-Length``) never gets
        here: its head is refused as it is read (``check_codings()``).
        """
        state = self.their_state
        try:
            event = super().next_event()
        except h11.RemoteProtocolError as exc:
            # NOTE: h11's 431 is for any event too long: in a body (chunk line or trailer)
            # it stays the 400 Uvicorn sends, as under httptools.
            self.too_large = exc.error_status_hint == 431 and state is h11.IDLE
            self.not_implemented = exc.error_status_hint == 501
            raise
        if isinstance(event, h11.Request):
            if event.method != event.method.upper():
                # SPEC: RFC 9110 9.1, a method is case-sensitive: "connect" is no CONNECT.
                # NOTE: h11 passed one on (and read a "connect" request's body as a body),
                # where Waitress refuses a method not in upper case and httptools knows none.
                raise h11.RemoteProtocolError("method not in upper case", 400)
            if event.http_version not in (b"1.0", b"1.1"):
                # SPEC: RFC 9112 2.3. NOTE: h11 served any HTTP/x.y as HTTP/1.1, where
                # Waitress and httptools answer 400 (microweb serve's).
                raise h11.RemoteProtocolError("HTTP version not served", 400)
            if head_size(event) >= self._max_incomplete_event_size:
                # NOTE: h11 measures only a head that is still incomplete after a read, and a
                # read is 256 KiB at most: a head of up to twice that was served if it ended
                # in the second read. Waitress refuses a head of its limit or more.
                self.too_large = True
                raise h11.RemoteProtocolError("request head too large", 431)
            if b"#" in event.target:
                # SPEC: RFC 9112 3.2, a request target holds no fragment. NOTE: h11 kept it in
                # the path ("/x#f", and request.url "/x%23f", a 404), where Waitress and
                # httptools leave it out.
                event = without_fragment(event)
            if ABSOLUTE_FORM.match(event.target):
                # SPEC: RFC 9112 3.2.2, a server MUST accept the absolute-form. NOTE: Uvicorn
                # took the whole target for the path ("http://h/a", a 404), where httptools
                # and Waitress take the path from it.
                event = in_origin_form(event)
            self.bare_target = event.target if event.target[:1] != b"/" else None
            if any(CONTROL_BYTE.search(value) for _, value in event.headers):
                # SPEC: RFC 9110 5.5, a field value holds no control character but HTAB.
                # NOTE: h11 let them through, where Waitress and httptools answer 400: echoed
                # into a response header, such a value was a 500 under h11 only.
                raise h11.RemoteProtocolError("control character in a header value", 400)
            switching = switch_refusal(
                event.method.decode("latin-1"),
                joined_field(event.headers, b"connection"),
                any(value for name, value in event.headers if name == b"upgrade"),
                has_body(event.headers),
            )
            if switching is not None:
                self.switch_refused = switching
                raise h11.RemoteProtocolError(switching, 400)
            stand_in = escaped_stand_in(event)
            if stand_in is not None:
                self.escaped_target, event = event.target, stand_in
        return event


# NOTE: a target in absolute-form: a scheme, then "://" (RFC 3986 3.1).
ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")


def in_origin_form(request: h11.Request) -> h11.Request:
    """Return ``request`` (its target in absolute-form) with the path and the query of its
    target only: the path starts after the authority, at its first ``/`` or ``?``; ``/`` for
    none (RFC 9110 4.2.3)."""
    after = request.target.partition(b"://")[2]
    ends = [end for end in (after.find(b"/"), after.find(b"?")) if end >= 0]
    rest = after[min(ends) :] if ends else b""
    return h11.Request(
        method=request.method,
        target=rest if rest[:1] == b"/" else b"/" + rest,
        headers=request.headers,
        http_version=request.http_version,
    )


def escaped_stand_in(request: h11.Request) -> h11.Request | None:
    """Return ``request`` with the path of its target (ASCII, with escapes) as ``/``, its
    query kept; ``None`` for a target with no escape in its path, or not ASCII."""
    path, question, query = request.target.partition(b"?")
    # NOTE: a path that is not ASCII stays: Uvicorn's decode("ascii") refuses it as it did.
    if b"%" not in path or not path.isascii():
        return None
    return h11.Request(
        method=request.method,
        target=b"/" + question + query,
        headers=request.headers,
        http_version=request.http_version,
    )


def decoded_path(path: bytes) -> str:
    """Return ``path`` as Uvicorn gives it in the scope: ``unquote(path.decode("ascii"))``,
    its escapes decoded in C.

    Raises:
        UnicodeDecodeError: For a path that is not ASCII, as Uvicorn's does.
    """
    return percent_decode(path.decode("ascii"))


def joined_field(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """Return the lines of the field ``name`` (lower case) of an h11 request joined with
    ``", "``, or ``None``."""
    values = [value.decode("latin-1") for found, value in headers if found == name]
    return ", ".join(values) if values else None


def without_fragment(request: h11.Request) -> h11.Request:
    """Return ``request`` with its target cut at the first ``#``.

    Raises:
        h11.RemoteProtocolError: For a target that is all fragment (400).
    """
    target = request.target.partition(b"#")[0]
    if not target:
        raise h11.RemoteProtocolError("request target without a path", 400)
    return h11.Request(
        method=request.method,
        target=target,
        headers=request.headers,
        http_version=request.http_version,
    )


def head_size(request: h11.Request) -> int:
    """Return the size of ``request``'s head as Waitress measures it: request line, header
    lines as ``name: value`` with their CRLF, and the blank line."""
    # NOTE: "GET / HTTP/1.1\r\n": two spaces, "HTTP/", CRLF.
    line = len(request.method) + len(request.target) + len(request.http_version) + 9
    fields = sum(len(name) + len(value) + 4 for name, value in request.headers)
    return line + fields + 2


# NOTE: Uvicorn types eof_received() as returning None; AnswersAfterEnd's may return True.
class BoundedH11(  # type: ignore[misc]
    NoUnixAddress, UpgradeWarnedOnce, AnswersAfterEnd, IdleOnceSent, StallTimer, H11Protocol
):
    """``H11Protocol`` that closes a connection whose request stopped coming, refuses a
    request framed both by ``Transfer-Encoding`` and ``Content-Length``, or by two
    ``Content-Length`` values, or a head with a bare LF, and answers a head of
    ``MAX_HEAD_SIZE`` or more with 431, as Waitress and ``BoundedHttpTools`` do."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # NOTE: h11 refuses a head (or chunk line, or trailer) still incomplete past this many
        # bytes; by default 16 KiB, so that a head of 20 KiB was served when it came in one
        # read and refused with 400 when it came in two, where Waitress and httptools serve
        # up to 256 KiB. Uvicorn's --h11-max-incomplete-event-size still sets it.
        size = self.config.h11_max_incomplete_event_size
        self.conn = FramedConnection(h11.SERVER, MAX_HEAD_SIZE if size is None else size)

    conn: FramedConnection
    # NOTE: a head refused as too large: what still comes is dropped until the close.
    refused = False

    # NOTE: from the WebSocket handshake on, the connection is the WebSocket protocol's;
    # answered: whether a response has ended on it.
    upgraded = answered = False
    seen: RequestResponseCycle | None = None

    def connection_made(self, transport: Transport) -> None:  # type: ignore[override]
        """Start the connection as Uvicorn does, and the timer for its first head."""
        super().connection_made(transport)
        self.request_moved()

    def data_received(self, data: bytes) -> None:
        """Feed ``data`` to h11 as Uvicorn does; watch the request, if one is due."""
        if self.refused or self.conn.their_state is h11.MUST_CLOSE:
            # NOTE: after a request that closes the connection (Connection: close, HTTP/1.0)
            # h11 expects nothing more: bytes that came while the app ran were answered with
            # 400 and a close, and the app's answer was lost. Waitress and httptools answer
            # the request and drop them; the connection closes after the answer.
            return
        super().data_received(data)
        if not self._see_cycle() and data:
            self.continue_expected = False
        self._watch()

    def on_response_complete(self) -> None:
        """End the response as Uvicorn does; watch the body of a request pipelined after it."""
        super().on_response_complete()
        self.answer_ended()
        self.answered = True
        # NOTE: the next request's head may have come in an earlier read, with no read to come.
        self._see_cycle()
        self._watch()
        self.close_if_done()

    def answers_owed(self) -> bool:
        """Whether the request answered now waits for its answer (one pipelined after it
        is still unparsed in h11's buffer: it is parsed as this one's answer ends)."""
        return read_whole_unanswered(self.cycle)

    def _see_cycle(self) -> bool:
        """Note whether a request Uvicorn has just made expects 100-continue; return whether
        there was one (before its app's task first runs)."""
        cycle = self.cycle
        if cycle is self.seen:
            return False
        self.seen = cycle
        self.continue_expected = False
        if cycle is not None:
            self.tell_sends_dropped(cycle)
            if cycle.more_body:
                self.watch_for_cut(cycle)
            if cycle.waiting_for_100_continue and not cycle.body:
                self.expect_continue(cycle)
        return True

    def send_400_response(self, msg: str) -> None:
        """Answer input h11 refused with 400, as Uvicorn does; with 431 if it was too long,
        with 501 for a transfer coding before ``chunked``."""
        if self.conn.too_large:
            self._refuse(
                431, b"Request Header Fields Too Large", b"request header fields too large"
            )
        elif self.conn.not_implemented:
            # SPEC: RFC 9112 6.1, a server SHOULD answer 501 to a transfer coding it does not
            # understand. NOTE: Uvicorn answered 400, where Waitress and the app (under
            # httptools) answer 501; the connection closes, as under Waitress.
            self._refuse(501, b"Not Implemented", UNSUPPORTED_CODING.encode())
        elif self.conn.switch_refused is not None:
            # NOTE: refused at its head, its body maybe still coming: answered as httptools
            # answers it, and closed after a pause (review317).
            self._refuse(400, b"Bad Request", self.conn.switch_refused.encode())
        elif self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            # NOTE: Uvicorn sent its 400 without a Content-Length: chunked once the head was
            # read (a bad chunk, a refused head), ended by the close before, where Waitress
            # and httptools send one (review317). Closed at once, as Uvicorn closes.
            self._answer(400, b"Bad Request", msg.encode("ascii"))
            self.transport.close()
        else:
            # NOTE: the app's answer has begun (or ended): no second head can follow it, and
            # Uvicorn's own 400 made h11 raise, which asyncio logged with its traceback (a bad
            # chunk after a 405 sent before the body was read). Closed, as Uvicorn closes.
            self.transport.close()

    def _refuse(self, status: int, reason: bytes, body: bytes) -> None:
        """Answer with ``status`` and close, dropping what still comes."""
        self.refused = True
        self.stop_stall_timer()
        self._answer(status, reason, body)
        # NOTE: closed at once, with the client still sending, the socket answered with a
        # reset, which can reach the client before the answer: end the writing side, drop
        # what still comes, and close after a pause (as BoundedHttpTools does).
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(LINGER, self.transport.close)

    def _answer(self, status: int, reason: bytes, body: bytes) -> None:
        """Write a plain-text answer with ``status`` that closes the connection."""
        # NOTE: Uvicorn's own 400 under h11 carried no Date and no Server, where its httptools
        # protocol and Waitress send both (RFC 9110 6.6.1: Date in every 4xx and 5xx).
        headers = [
            *self.server_state.default_headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        conn = self.conn
        for event in (
            h11.Response(status_code=status, headers=headers, reason=reason),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(conn.send(event) or b"")

    def connection_lost(self, exc: Exception | None) -> None:
        """End the connection as Uvicorn does, and its timers with it."""
        self.stop_timers()
        self.lost = True
        super().connection_lost(exc)

    def handle_events(self) -> None:
        """Read h11's events as Uvicorn does; a request read with a stand-in target (its path
        held escapes) gets its own path and ``raw_path`` in the scope."""
        # NOTE: Uvicorn decodes the path with urllib.parse.unquote(), a Python loop that raises
        # and catches a KeyError for each "%" that starts no escape, in the event loop: 250 KB
        # of "%" took 75 ms of CPU, of "%41" 20 ms, while every connection waited (review325).
        # The request's task has not run yet: its scope is this one.
        super().handle_events()
        target, self.conn.escaped_target = self.conn.escaped_target, None
        if target is not None:
            raw_path = target.partition(b"?")[0]
            self.scope["path"] = self.root_path + decoded_path(raw_path)
            self.scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        bare, self.conn.bare_target = self.conn.bare_target, None
        if bare is not None and self.root_path:
            # NOTE: Uvicorn put the root path before any target: a CONNECT's "x:443" became
            # the path "/rootx:443", a 404 for the app (a path outside its mount), where
            # Waitress hands the app the target itself (a 400: no path); "*" too (review338).
            self.scope["path"] = decoded_path(bare)
            self.scope["raw_path"] = bare

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        """Upgrade as Uvicorn does, and hand the WebSocket protocol what came after the
        handshake; no HTTP body is due from here on."""
        self.upgraded = True
        self.conn.bare_target = None
        target, self.conn.escaped_target = self.conn.escaped_target, None
        if target is not None:
            # NOTE: the handshake is rebuilt from the target: the request's own, not a stand-in.
            event = h11.Request(
                method=event.method,
                target=target,
                headers=event.headers,
                http_version=event.http_version,
            )
        self.stop_stall_timer()
        super().handle_websocket_upgrade(event)
        # NOTE: Uvicorn handed over the handshake alone: frames read with it (a client that
        # sends before the 101, as RFC 6455 4.1 asks it not to) were lost, and the connection
        # waited for them.
        rest = self.conn.trailing_data[0]
        if rest:
            hand_over(self.transport, rest)

    def request_due(self) -> bool:
        """Return whether the client owes a head or a body now (``_stall.py``)."""
        if self.upgraded:
            return False
        conn = self.conn
        if conn.their_state is h11.SEND_BODY:
            return True
        if conn.their_state is not h11.IDLE or conn.our_state is not h11.IDLE:
            return False
        # NOTE: a new connection owes its first head; after an answer, a head whose first bytes
        # came (an idle connection is left to Uvicorn's keep-alive timer).
        return not self.answered or bool(conn.trailing_data[0])

    def waiting_cycle(self) -> RequestResponseCycle | None:
        """Return the request being read, whose body is the one due (``_stall.py``)."""
        return self.cycle

    def _watch(self) -> None:
        if self.transport.is_closing():
            return
        if self.request_due():
            self.request_moved()
        else:
            self.stop_stall_timer()
