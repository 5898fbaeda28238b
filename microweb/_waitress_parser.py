"""Waitress's request parser, with what ``microweb serve`` mends in it: heads and framing.

``OrderlyParser`` parses a head as Waitress does, in linear time (Waitress's expressions take
the square of a line's length), and refuses what Waitress served and Uvicorn refuses, or what
a proxy before it may read otherwise: a version other than HTTP/1.0 and 1.1, a target that is
no path, ambiguous framing (``Transfer-Encoding`` with ``Content-Length``, not ending in
``chunked``), a folded header line (obs-fold), too many header lines, a ``Content-Length``
past ``int()``'s digits. It joins ``Cookie`` lines with ``"; "``. Chunked bodies are read by
``_chunked.ChunkedParser``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from waitress.parser import ParsingError, TransferEncodingNotImplemented, get_header_lines
from waitress.utilities import RequestEntityTooLarge, RequestHeaderFieldsTooLarge

from ._chunked import FIELD_LINE, ChunkedParser
from ._framing import FOLDED_LINE, CodingRefusal, switch_refusal, transfer_coding_refusal
from ._percent import percent_decode_bytes
from ._target import authority_refusal, target_path

# NOTE: the most header lines of a request head (folded ones too) Waitress parses; past them,
# 431 before any is parsed. Waitress parses each line in Python, in the thread that reads
# every connection: a 240 KB head (under its 256 KiB cap) of 60,000 lines "a:" took 226 ms of
# CPU, of 60,000 folded lines 168 ms; 2,000 lines take about 5 ms (hostile140). Twice
# Limits.max_headers, which the app checks again.
MAX_HEAD_LINES = 2000
# NOTE: the HTTP versions a request may name: no other is HTTP/1.x framing.
SERVED_VERSIONS = ("1.0", "1.1")
# NOTE: a Transfer-Encoding line of a head (Waitress refuses a space before the colon).
TRANSFER_ENCODING_LINE = re.compile(rb"\ntransfer-encoding:", re.IGNORECASE)


def header_lines(header_plus: bytes, name: bytes) -> list[str]:
    """Return the values of the ``name`` lines (lowercase) of a head Waitress has parsed."""
    values = []
    for line in get_header_lines(header_plus.partition(b"\r\n")[2]):
        # NOTE: not Waitress's HEADER_FIELD_RE, which takes time in the square of the
        # whitespace before a value; Waitress has parsed these lines, so each is name:value.
        found, _, value = line.partition(b":")
        if found.lower() == name:
            values.append(value.strip(b" \t").decode("latin-1"))
    return values


# NOTE: the request lines and header lines that Waitress's regular expressions match, as
# expressions that run in linear time. Waitress's own take time in the square of a line's
# length, or worse, to fail, in its one thread that reads every connection: "X:", 40,000
# spaces and a control byte took 10 s of CPU; a target of 4,000 "a", "://" and 4,000 digits
# before " HTTP/1.1 x" took 1.9 s (hostile141). A head of 256 KiB would take hours.
# Both accept the same lines (but for the targets below): Waitress's scheme-and-authority
# part of the target is made of bytes that the rest of it allows too, and a header value of
# any visible bytes, spaces and tabs is one that its optional whitespace and field content
# cover.
# NOTE: a target of visible bytes: Waitress passed a raw NUL, tab or other control byte on to
# the app ("/x\x00" was the path "/x\x00", "?q=\x01" a query), where h11 and httptools refuse
# it (RFC 9112 3.2, a target is URI characters) and Uvicorn answered 400. Bytes past ASCII are
# left to Waitress, whose own 400 says "Bad URI".
REQUEST_LINE = re.compile(
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [\x21-\x7e\x80-\xff]+(?: HTTP/[0-9]\.[0-9])?"
)


def plain_head(header_plus: bytes) -> bytes:
    """Return the head with each header line as ``name:value``, its folds and the whitespace
    around its value taken out, as Waitress would read it; check its lines first.

    Waitress reads the same headers from it, and its expressions take linear time on it.

    Raises:
        ParsingError: For a request line or a header line that Waitress's expressions do not
            match (Waitress's 400, and the connection closed).
    """
    first_line, _, header = header_plus.partition(b"\r\n")
    # NOTE: Waitress strips the request line's trailing whitespace and served "GET /
    # HTTP/1.1 ", where httptools and h11 answer 400 (RFC 9112 3: none after the version);
    # what it refuses for other reasons (no CRLF, a bare CR or LF) is left to it.
    if not REQUEST_LINE.fullmatch(first_line):
        raise ParsingError("Start line is invalid")
    if b"  " not in header and b"\t" not in header:
        # PERF: Waitress's expression is slow only on runs of whitespace; without them, the
        # head goes to it as it came: 32 us for a browser's head of 10 lines, against 54 us
        # checked and rebuilt (timeit, 2026-12-03).
        return header_plus
    lines = [first_line]
    for line in get_header_lines(header):
        if not FIELD_LINE.fullmatch(line):
            raise ParsingError("Invalid header")
        name, _, value = line.partition(b":")
        lines.append(name + b":" + value.strip(b" \t"))
    return b"\r\n".join(lines) if len(lines) > 1 else first_line + b"\r\n"


def escaped_target(head: bytes) -> tuple[bytes, bytes | None]:
    """Return ``head`` with its target replaced by ``/`` and the target, when the target holds
    a ``%``; else ``head`` and ``None``. ``head`` is ``plain_head()``'s.

    Waitress decodes the path of a target with ``unquote_to_bytes()``, a Python loop over
    its escapes that raises and catches a ``KeyError`` for each ``%`` that starts none, in
    the one thread that reads every connection: a target of 256 KiB of ``%`` took 175 ms of
    CPU, of ``%41`` 62 ms (fuzz3). Such a target is split by ``split_target()`` instead.
    """
    end = head.find(b"\r\n")
    end = len(head) if end < 0 else end
    method, _, line_rest = head[:end].partition(b" ")
    target, space, version = line_rest.partition(b" ")
    # NOTE: only escapes before the query are decoded (the query goes on as it came).
    if b"%" not in target.partition(b"?")[0].partition(b"#")[0]:
        return head, None
    return method + b" /" + space + version + head[end:], target


def split_target(target: bytes) -> tuple[str, str, str, str, str]:
    """Split a request target as Waitress does (its ``split_uri()``), the path decoded in C:
    the scheme, the authority, the path, the query and the fragment, as latin-1 text.

    Raises:
        ParsingError: For a target that ``urlsplit()`` can't read as ASCII (Waitress's 400).
    """
    scheme = netloc = query = fragment = b""
    if target[:2] == b"//":
        # NOTE: as Waitress reads it: a path that starts with "//", not an authority.
        path, _, fragment = target.partition(b"#")
        path, _, query = path.partition(b"?")
    else:
        try:
            scheme, netloc, path, query, fragment = urlsplit(target)
        except ValueError:
            # NOTE: a UnicodeError, or a bracket of an IPv6 host left open or closed alone
            # ("http://[/"), which urlsplit() refuses too (see OrderlyParser._refused()).
            raise ParsingError("Bad URI") from None
    path = percent_decode_bytes(path)
    return (
        scheme.decode("latin-1"),
        netloc.decode("latin-1"),
        path.decode("latin-1"),
        query.decode("latin-1"),
        fragment.decode("latin-1"),
    )


# NOTE: the spaces and tabs, and the lines, of a head past which Waitress is handed its
# headers one line a name, with no space inside a value (headers_joined()); a browser's head
# holds some 20 to 60 spaces on 10 to 20 lines.
MANY_SPACES = 256
MANY_LINES = 100


def headers_joined(head: bytes) -> tuple[bytes, dict[str, str]]:
    """Return ``head`` with one header line a name, the lines of a name joined with ``", "``
    and the spaces and tabs inside the values made ``!``; and the headers as Waitress reads
    them from ``head``.

    Waitress's expression for a header line keeps a backtracking point for each word of a
    value: a value of 250 KB of ``a a a ...`` took 32 MB and 14 ms of CPU to read, in the one
    thread that reads every connection (hostile6); and it joins each line of a name onto the
    ones before, copying them: 1,998 lines of one name took 14 ms. ``!`` is a visible byte,
    as each space or tab is between two of them, so that Waitress takes the same lines; and a
    value it reads itself (``Content-Length``, ``Connection``, ``Expect``) means nothing to it
    with spaces or with ``!`` in them.

    Raises:
        ParsingError: For a header line that Waitress's expression does not match.
    """
    first, _, header = head.partition(b"\r\n")
    found: dict[str, list[str]] = {}
    for line in get_header_lines(header):
        if not FIELD_LINE.fullmatch(line):
            raise ParsingError("Invalid header")
        name, _, value = line.partition(b":")
        if b"_" not in name:
            # NOTE: as Waitress reads a header: no name with "_", lines of a name joined.
            key = name.upper().replace(b"-", b"_").decode("latin-1")
            found.setdefault(key, []).append(value.strip(b" \t").decode("latin-1"))
    joined = {key: ", ".join(values) for key, values in found.items()}
    lines = [first]
    for key, value in joined.items():
        plain = value.encode("latin-1").replace(b" ", b"!").replace(b"\t", b"!")
        lines.append(key.replace("_", "-").encode("latin-1") + b":" + plain)
    # NOTE: a CRLF after the last line: Waitress refuses a request line without one ("HTTP
    # message header invalid"), when no header is left (each name had a "_"; review374).
    return b"\r\n".join(lines) + b"\r\n", joined


def splits(target: str) -> bool:
    """Whether ``urlsplit()`` reads a request target (Waitress's ``request_uri``)."""
    try:
        urlsplit(target)
    except ValueError:
        return False
    return True


def is_http11(head: bytes) -> bool:
    """Whether a head's request line names HTTP/1.1, the version whose ``Transfer-Encoding``
    Waitress reads."""
    end = head.find(b"\r\n")
    return (head if end < 0 else head[:end]).rstrip().endswith(b" HTTP/1.1")


def one_chunked_line(head: bytes) -> bytes:
    """Return ``head`` with its ``Transfer-Encoding`` lines as one line of ``chunked``, if
    ``transfer_coding_refusal()`` reads them as chunked alone, as ``_h11_framing`` hands h11 a
    head.

    Raises:
        ParsingError: For codings refused with 400 (Waitress's 400).
        TransferEncodingNotImplemented: For a coding before ``chunked`` (Waitress's 501).
    """
    # NOTE: Waitress split the value into a list of its members in Python before this
    # module read it in C: 240 KB of " , " took 26 MB and 23 ms of CPU to refuse, in the one
    # thread that reads every connection (hostile6). And it answered 501 to a member of
    # spaces between commas (", , chunked"), which h11 and RFC 9110 5.6.1 ignore.
    lines = head.split(b"\r\n")
    coded = [i for i, line in enumerate(lines) if line.partition(b":")[0].lower() == CODING]
    values = [lines[i].partition(b":")[2].decode("latin-1") for i in coded]
    length = any(line.partition(b":")[0].lower() == b"content-length" for line in lines)
    refusal = transfer_coding_refusal(values, length)
    if refusal is not None:
        if refusal.status == 400:
            raise ParsingError(refusal.reason)
        raise TransferEncodingNotImplemented(refusal.reason)
    lines[coded[0]] = b"Transfer-Encoding: chunked"
    return b"\r\n".join(line for i, line in enumerate(lines) if i == coded[0] or i not in coded)


CODING = b"transfer-encoding"


class OrderlyParser(ChunkedParser):
    """Waitress's request parser (``ChunkedBody`` for chunked bodies), with ``Cookie`` lines
    joined by ``"; "``, an ambiguous ``Transfer-Encoding`` refused (400), heads of more than
    ``MAX_HEAD_LINES`` header lines refused (431), and a ``Content-Length`` past ``int()``'s
    digits (413)."""

    headers: dict[str, str]
    version: str
    # NOTE: the head's header lines, before Waitress joins those of one name (HEADER_LINES).
    header_count = 0

    def _refused(self, header_plus: bytes) -> bool:
        """Parse the head as Waitress does, or refuse it unparsed (431, 413): tell which."""
        # NOTE: one LF a header line, after the request line's (the head ends in CRLF CRLF).
        self.header_count = header_plus.rstrip(b"\r\n").count(b"\n")
        if self.header_count > MAX_HEAD_LINES:
            # NOTE: as Waitress refuses a head past its size: a request to answer the error of.
            self._refuse(RequestHeaderFieldsTooLarge(f"more than {MAX_HEAD_LINES} header lines"))
            return True
        if b"\r\n " in header_plus or b"\r\n\t" in header_plus:
            # NOTE: a line folded onto the one before (has_folded_line()): Waitress joined it,
            # copying the lines before, in time in the square of the folded lines.
            raise ParsingError(FOLDED_LINE)
        head, target = escaped_target(plain_head(header_plus))
        if TRANSFER_ENCODING_LINE.search(head) and is_http11(head):
            head = one_chunked_line(head)
        joined = None
        # NOTE: tabs part words as spaces do: "a<TAB>a<TAB>..." cost as much (review374).
        blanks = head.count(b" ") + head.count(b"\t")
        if blanks > MANY_SPACES or head.count(b"\n") > MANY_LINES:
            head, joined = headers_joined(head)
        try:
            super().parse_header(head)
            if joined is not None:
                # NOTE: only the headers Waitress kept: it takes Transfer-Encoding out.
                headers = self.headers
                headers.update((key, joined[key]) for key in headers.keys() & joined.keys())
            if target is not None:
                self.request_uri = target.decode("latin-1")
                parts = split_target(target)
                self.proxy_scheme, self.proxy_netloc, self.path, self.query, self.fragment = parts
        except TransferEncodingNotImplemented:
            # NOTE: Waitress answered 501 to any coding but chunked ("identity", "gzip", and
            # "chunked" beside an empty line); only a coding before chunked keeps it.
            refusal = self._coding_refusal(header_plus)
            if refusal is not None and refusal.status == 400:
                raise ParsingError(refusal.reason) from None
            raise
        except ValueError:
            if not splits(self.request_uri):
                # NOTE: Waitress's split_uri() lets urlsplit()'s ValueError for a bracket of
                # an IPv6 host left open or closed alone ("http://[/") out: Waitress logged it
                # as an uncaptured exception, with its stack, and closed the connection
                # unanswered, where httptools answers 400 (hostile6).
                raise ParsingError("Bad URI") from None
            if "CONTENT_LENGTH" not in self.headers:
                raise
            # NOTE: Waitress reads a Content-Length of digits with int(), which raises past
            # sys.get_int_max_str_digits() (4,300): the ValueError left the parser, and the
            # connection was closed unanswered, a traceback logged. No body is that large
            # (Waitress's 413 for 20 digits; h11 refuses more than 20 with 400).
            self._refuse(RequestEntityTooLarge("Content-Length past the digits int() reads"))
            return True
        return False

    def _coding_refusal(self, header_plus: bytes) -> CodingRefusal | None:
        """Why the head's ``Transfer-Encoding`` is refused (``transfer_coding_refusal()``)."""
        values = header_lines(header_plus, b"transfer-encoding")
        return transfer_coding_refusal(values, "CONTENT_LENGTH" in self.headers)

    def _refuse(self, error: Any) -> None:
        # NOTE: Waitress adds to the headers it holds, and a request is needed to answer the
        # error of: an empty HTTP/1.0 GET, whose connection closes.
        self.headers.clear()
        super().parse_header(b"GET / HTTP/1.0\r\n")
        self.error = error
        self.completed = True

    def parse_header(self, header_plus: bytes) -> None:
        """Parse the head as Waitress does; join ``Cookie`` lines as one ``Cookie`` header.

        A head of more than ``MAX_HEAD_LINES`` header lines is refused with 431, unparsed, and
        one whose ``Content-Length`` has more digits than ``int()`` reads with 413.

        Raises:
            ParsingError: (Waitress's 400, and the connection closed) for a version other
                than HTTP/1.0 and HTTP/1.1 (or none, 0.9), for a target that is
                neither a path nor absolute-form (``http:/x``, ``#f``), for a
                ``Transfer-Encoding`` in a request that is not HTTP/1.1, or with a
                ``Content-Length``, or that names ``chunked`` twice, or has a line of no
                coding, or a header line folded onto the one before (obs-fold), or a body
                with a ``CONNECT`` or an ``Upgrade`` request: each a framing that a proxy
                before Waitress may read otherwise, as Uvicorn refuses them.
        """
        if self.blank_before_line:
            # SPEC: RFC 9112 2.2, only empty lines may come before the request line. NOTE:
            # Waitress stripped any whitespace and served " GET /", where httptools and h11
            # answer 400 (attack383).
            raise ParsingError("whitespace before the request line")
        if self._refused(header_plus):
            return
        if self.version not in SERVED_VERSIONS:
            # SPEC: RFC 9112 2.3. NOTE: Waitress served any HTTP/x.y, and a request line
            # without a version, where httptools and h11 answer 400 to most.
            raise ParsingError(f"HTTP version {self.version or 'missing'} is not served")
        # PERF: an origin-form target ("/...") has no authority: no copy and no call (0.2 us).
        uri = self.request_uri
        authority = None if uri[:1] == "/" else authority_refusal(uri.encode("latin-1"))
        if authority is not None:
            # NOTE: Waitress served a port past 65535 or not digits, userinfo, no host.
            raise ParsingError(authority)
        if self.request_uri[:1] != "/" and (self.path[:1] == "/" or not self.path):
            target = self.request_uri.encode("latin-1").partition(b"?")[0].partition(b"#")[0]
            if target_path(target, self.command) is None:
                # NOTE: "http:/x" and "foo:/x", no path nor absolute-form (RFC 9112 3.2): read
                # by urlsplit(), they gave the path "/x", where Uvicorn answers 400. And "#f"
                # or "?q=1" gave an empty path, answered as a request for "/".
                raise ParsingError("request target is not a path")
        if self.version != "1.1" and "TRANSFER_ENCODING" in self.headers:
            # SPEC: RFC 9112 6.1, an HTTP/1.0 message with Transfer-Encoding has faulty framing.
            # NOTE: Waitress reads chunked bodies in HTTP/1.1 only: it framed an HTTP/1.0
            # body by its Content-Length, or as empty, and kept the connection, so the
            # chunks were read as the next request, one no proxy before it had seen.
            raise ParsingError(f"Transfer-Encoding in an HTTP/{self.version} request")
        # NOTE: any Transfer-Encoding line of an HTTP/1.1 head was refused, or made one line of
        # chunked, before Waitress parsed it (one_chunked_line()): no search for one here.
        if self.chunked:
            # NOTE: Waitress ignored a Transfer-Encoding with no coding (empty, or ","): it
            # framed the body by its Content-Length, or as empty, and read the body as the
            # next request. It served one with a Content-Length, or chunked twice, and kept
            # the connection, whose next request a proxy that read the Content-Length (or one
            # chunked coding) had not seen as one. Uvicorn answers 400 to each.
            refusal = self._coding_refusal(header_plus)
            if refusal is not None:
                # NOTE: a 400: Waitress took each coding named for chunked.
                raise ParsingError(refusal.reason)
        body = self.chunked or bool(self.content_length)
        switching = switch_refusal(
            self.command,
            self.headers.get("CONNECTION"),
            bool(self.headers.get("UPGRADE", "").strip(" \t")),
            body,
        )
        if switching is not None:
            raise ParsingError(switching)
        joined = self.headers.get("COOKIE")
        if joined is not None and ", " in joined:
            # SPEC: RFC 6265 5.4 and RFC 9113 8.2.3, cookie pairs are joined with "; ": with
            # Waitress's ", ", "a=1" and "b=2" on two lines were one cookie a of "1, b=2".
            # NOTE: read again only when ", " is there, as one value may hold it too.
            self.headers["COOKIE"] = "; ".join(header_lines(header_plus, b"cookie"))
