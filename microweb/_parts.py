"""Multipart bodies as part events, shared by ``form()`` and ``iter_parts()``.

``MultipartEvents`` drives ``multipart.PushMultipartParser`` (non-strict, every limit set:
TRAPS.md 1-5) and turns its events into a ``PartHead`` when a part starts, ``bytes`` for its
data and ``None`` when it ends, each failure mapped to 400 or 413. ``FormBuilder`` (``_forms``)
collects those events into a ``FormData``; ``PartStream`` hands them out to the streamed parts
of ``_streamed_parts``, and keeps nothing.
"""

from __future__ import annotations

import itertools
import re
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import multipart

from ._datastructures import Headers, trusted_headers
from ._disposition import (
    misread_by_multipart,
    part_filename,
    repeats_a_param,
    stray_semicolons,
)
from ._errors import HTTPError
from ._fields import RequestHeaders
from ._limits import Limits
from ._parsing import find_text_codec, form_boundary, media_type

MULTIPART = "multipart/form-data"

Event = Any  # PartHead | bytes | None (a part's end)
END: Any = object()  # NOTE: the body has no more parts.


@dataclass(frozen=True, slots=True)
class PartHead:
    """The header section of one part: what is known of it before its data."""

    name: str
    filename: str | None
    content_type: str
    headers: Headers
    charset: str | None
    # NOTE: the checked codec of a text field; None for a file, whose bytes are the app's.
    codec: str | None


TOO_LONG = "a part's headers are too long"
TOO_MANY_LINES = "a part has too many header lines"
HEADS_TOO_LONG = "the parts' headers are too long together"
_MULTIPART_TOO_LONG = "Maximum segment header length exceeded"
# NOTE: multipart's words for a form past max_form_parts (its max_segment_count).
TOO_MANY_PARTS = "multipart limit reached: Maximum segment count exceeded"


def too_many_files(limits: Limits) -> HTTPError:
    """The 413 for a form of more than ``max_form_files`` files."""
    return HTTPError(413, f"the form has more than {limits.max_form_files} files")


def field_too_large(name: str, limits: Limits) -> HTTPError:
    """The 413 for the text field ``name`` past ``max_field_size``."""
    return HTTPError(413, f"form field {name!r} is larger than {limits.max_field_size} bytes")


def fields_too_large(limits: Limits) -> HTTPError:
    """The 413 for a form's text fields past ``max_form_memory`` together."""
    return HTTPError(413, f"form fields are larger than {limits.max_form_memory} bytes")


def _reason(exc: multipart.MultipartError) -> str:
    # NOTE: multipart adds the UnicodeDecodeError of a part header to the exception's args, and
    # its repr holds the raw header bytes: only the parser's own message goes to the client.
    message = exc.args[0] if exc.args else ""
    return message if isinstance(message, str) else type(exc).__name__


# NOTE: the fields of a FormMeasure, kept as a tuple until a check needs it.
Measures = tuple[Sequence[str | None], Sequence[int], Sequence[int], int, Limits]
# NOTE: the numbers a FormMeasure keeps of each part (see FormMeasure.numbers).
PART_NUMBERS = 3


@dataclass(frozen=True, slots=True)
class FormMeasure:
    """A form's sizes as the client sent them, which its limits count: what a form kept by a
    read before routing is checked against, under the route's limits.

    MEMORY: in arrays, not a list and a tuple a part: a form of 1,000 parts of eight head
    lines held 123 KB for them (317 KB for lines past 256 bytes, an int object each), on every
    form read; about 64 KB now (tracemalloc, 2026-12-06).
    """

    # NOTE: each part of a multipart form, in order: the name of a text field, or None (a file
    # or an empty file input).
    names: Sequence[str | None]
    # NOTE: PART_NUMBERS a part, in turn: the lines of its head, the bytes of a text field
    # (before decoding; 0 for a file) and 1 where it counts as a file (a file named "" counts
    # once it has data, as MultipartEvents counts it), else 0.
    numbers: Sequence[int]
    # NOTE: the bytes of each line of every part's head, in order.
    head_lines: Sequence[int]
    # NOTE: the fields of a urlencoded body as its parser counts them, the empty ones too.
    urlencoded_fields: int
    # NOTE: the limits the form was read (or last checked) under, which nothing of it is past.
    read_under: Limits

    def check(self, limits: Limits) -> None:
        """Raise the 413 that a read of the multipart form under ``limits`` would have raised
        first, if any.

        NOTE: a read meets the limits in the order of the body, part by part, each head line
        by line (as ``_Parser`` and ``MultipartEvents`` check them), so they are taken in that
        order here. Taken one limit at a time over the whole form, a kept form past several
        answered with another one than the handler's own read: the parts' count for a first
        field past ``max_field_size``, the files' for the fields' memory.
        """
        most_lines, most_head = limits.max_part_headers, limits.max_part_header_size
        most_heads, head_lines = limits.max_form_header_size, self.head_lines
        files = memory = all_heads = start = 0
        for index, field in enumerate(self.names):
            if index >= limits.max_form_parts:
                raise HTTPError(413, TOO_MANY_PARTS)
            at = index * PART_NUMBERS
            lines, size, is_file = self.numbers[at : at + PART_NUMBERS]
            head = sum(head_lines[start : start + lines])
            # PERF: a head within every limit is summed, not replayed line by line: a form
            # of 1,000 parts of eight head lines took 2.8 ms a check so, 0.6 ms now (timeit,
            # 2026-12-06, a test run beside), and a kept form is checked once per limits.
            if lines > most_lines or head > most_head or all_heads + head > most_heads:
                _check_head(head_lines[start : start + lines], all_heads, limits)
            all_heads += head
            start += lines
            if is_file:
                files += 1
                if files > limits.max_form_files:
                    raise too_many_files(limits)
            elif field is not None:
                # NOTE: as a field that comes in one chunk: past both, its own size first.
                if size > limits.max_field_size:
                    raise field_too_large(field, limits)
                memory += size
                if memory > limits.max_form_memory:
                    raise fields_too_large(limits)


def _check_head(lines: Sequence[int], all_heads: int, limits: Limits) -> None:
    """Raise the 413 that a part head of ``lines`` (their bytes) past a limit gets first, line
    by line, after heads of ``all_heads`` bytes."""
    head = 0
    for count, line in enumerate(lines, 1):
        head += line
        all_heads += line
        for reason, measured, limit in (
            (TOO_MANY_LINES, count, limits.max_part_headers),
            (TOO_LONG, head, limits.max_part_header_size),
            (HEADS_TOO_LONG, all_heads, limits.max_form_header_size),
        ):
            if measured > limit:
                raise HTTPError(413, f"multipart limit reached: {reason}")


def parser_error(exc: multipart.MultipartError) -> HTTPError:
    """Map an error of the parser to its answer: 413 past one of its limits, else 400."""
    # NOTE: the parser keeps its error, whose traceback holds the parser's frames: a cycle
    # that kept the request (in the frames above) until the garbage collector ran (seen under
    # Python 3.12). The answer does not need that traceback.
    exc.__traceback__ = None
    if isinstance(exc, multipart.ParserLimitReached):
        # NOTE: multipart's own words for a part header line past the limit while it is still
        # coming; for one that came whole, ours: the client's packets chose which it read.
        reason = TOO_LONG if _reason(exc) == _MULTIPART_TOO_LONG else _reason(exc)
        return HTTPError(413, f"multipart limit reached: {reason}")
    return HTTPError(400, f"invalid multipart body: {_reason(exc)}")


def _head_of(segment: multipart.MultipartSegment) -> PartHead:
    name = segment.name
    if not name:
        raise HTTPError(400, "multipart part without a name")
    filename = part_filename(segment.headerlist, segment.filename)
    codec = None
    if filename is None:
        # NOTE: a text field's charset is checked before its bytes arrive (TRAPS.md 2, 24);
        # a file's is the app's business, as its bytes are never decoded here.
        codec = find_text_codec(segment.charset, f"form field {name!r}")
    default = "text/plain" if filename is None else "application/octet-stream"
    return PartHead(
        name=name,
        filename=filename,
        content_type=segment.content_type or default,
        headers=trusted_headers([(k.lower(), v) for k, v in segment.headerlist], RequestHeaders),
        charset=segment.charset,
        codec=codec,
    )


# NOTE: multipart parses each parameter of a part's Content-Disposition and Content-Type in
# Python, and part_filename() reads those of a filename* header again: 800 parts with three
# 4 KB lines of ";a=b" each (9.7 MB, under every limit) took 2.2 s of CPU in one request. Real
# headers have two or three parameters, so a part with more is refused before they are
# parsed. Each starts at a ";": the semicolons are counted first (in C); past the limit, the
# parameters themselves are (in C too), as browsers, curl, requests and httpx send a file
# name's semicolons raw in its quoted value ("a;b.txt"), where they start none.
# PERF: 999 parts whose file name and Content-Type hold 1,900 quoted semicolons each (3.9 MB)
# parse in 71 ms, against 31 ms with letters instead (2026-12-03).
MAX_PART_HEADER_PARAMS = 32
# SPEC: RFC 2046 5.1.1, a boundary has 1 to 70 characters.
MAX_BOUNDARY = 70
_HEADERS_WITH_PARAMS = frozenset({"Content-Disposition", "Content-Type"})
# NOTE: the headers multipart reads (titled, as it names them), whose folded lines are refused.
_FOLD_REFUSED = _HEADERS_WITH_PARAMS | {"Content-Length"}
# NOTE: CR and LF are refused first, with multipart's own words for them.
_CONTROL = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def _check_params(name: str, value: str) -> None:
    if value.count(";") > MAX_PART_HEADER_PARAMS:
        params, stray = stray_semicolons(value)
        if params > MAX_PART_HEADER_PARAMS:
            raise multipart.ParserLimitReached(
                f"a part's {name} holds more than {MAX_PART_HEADER_PARAMS} parameters"
            )
        if stray > MAX_PART_HEADER_PARAMS:
            # NOTE: each is read as the start of a parameter by each reader of the header.
            raise multipart.ParserError(
                f"a part's {name} holds more than {MAX_PART_HEADER_PARAMS} ';' that start no "
                "parameter"
            )
    # NOTE: multipart takes the last of a parameter given twice (name="a"; name="b"), where a
    # proxy or a firewall may take the first (Go's mime/multipart does), and so read another
    # field, or a file where the app gets a text field.
    # SPEC: RFC 6266 4.1, a Content-Disposition that repeats a parameter is invalid.
    # PERF: looked for only where two values could share a name, and not in the two shapes
    # browsers send (multipart's own fast path): a file part's 2.8 -> 0.5 us (timeit,
    # 2026-12-05).
    if value.count("=") < 2:
        return
    if _browser_disposition(value):
        # NOTE: multipart reads this shape by its quotes, so a value that ends in a backslash
        # ends there (name="a\"; filename="evil.sh": a file), where a reader of the RFC's
        # quoted strings (Go's mime/multipart) reads an escaped quote, and no file.
        if '\\"' in value:
            raise multipart.ParserError(f"a part's {name} has a quoted value ending in '\\'")
        return
    if repeats_a_param(value):
        raise multipart.ParserError(f"a part's {name} names a parameter twice")
    # NOTE: named once by the RFC's reading, where multipart reads a second name (or the only
    # one) inside a quoted value (name="good"; x.y="; name=evil"): the app got "evil".
    if misread_by_multipart(value):
        raise multipart.ParserError(f"a part's {name} has a quoted value read as parameters")


def _browser_disposition(value: str) -> bool:
    """Whether ``value`` is ``form-data; name="..."; filename="..."`` with no other quote."""
    split = value.split('"', 5)
    return (
        len(split) == 5
        and split[0] == "form-data; name="
        and split[2] == "; filename="
        and not split[4]
    )


# NOTE: multipart's own parse(), called without super() in _Parser.parse(), which runs for
# every chunk.
# PERF: with the preamble held back as _Parser.parse() does, a one-field form's events take
# 11.0 -> 11.6 us (PartStream fed one chunk, best of 7 x 2,000, 2-CPU VM, 2026-12-05); a
# 10 MiB upload in 64 KiB chunks the same 4.4 ms.
_parse: Callable[[multipart.PushMultipartParser, bytes], Iterator[Any]] = (
    multipart.PushMultipartParser.parse
)


class _Parser(multipart.PushMultipartParser):  # type: ignore[misc]
    """``multipart``'s push parser, with the limits of a part's headers taken for the whole
    head (its lines and bytes, folded lines included), the bytes of every part's head together
    bounded too, and refusing (413) a part header with more parameters than
    ``MAX_PART_HEADER_PARAMS`` before they are parsed."""

    _head_lines = 0
    _head_bytes = 0
    _all_head_bytes = 0
    # NOTE: before the first "--boundary", the end of the input that may start it, held back.
    _held = b""
    _before_boundary = True
    # NOTE: set by MultipartEvents (Limits.max_part_header_size, max_form_header_size).
    max_head_bytes = max_all_head_bytes = 0
    # NOTE: the bytes of each line of every part's head, for a form's FormMeasure, where it
    # keeps them (see MultipartEvents.keep_head_lines).
    head_lines: array[int] | None = None

    def parse(self, chunk: bytes) -> Iterator[Any]:
        """Parse a chunk, as ``multipart`` does, with a preamble skipped the same way however
        the input is split."""
        # NOTE: skipping a preamble, multipart keeps back a chunk's end from its last CR only:
        # a "--boundary" glued to the preamble ("junk--b") was a 400 when it came whole, and
        # when a read ended inside it, dropped with what followed up to the next boundary,
        # the first part (a form without it). Until the input holds a whole "--boundary",
        # what may start one waits, with the two bytes before it, which the parser checks
        # (after a preamble it dropped whole, "--boundary" at the start of the next chunk
        # passed for the start of the body).
        if not self._before_boundary:
            return _parse(self, chunk)
        data = self._held + chunk if self._held else chunk
        start = b"--" + self.boundary
        if not chunk or start in data:
            self._before_boundary = False
            self._held = b""
            if not chunk and data:
                return itertools.chain(_parse(self, data), _parse(self, b""))
            return _parse(self, data)
        # NOTE: a "--boundary" that the next chunk ends starts in the last len(start) - 1
        # bytes; those wait, with the two before them.
        # PERF: the longest end that starts "--boundary", looked for one "-" at a time, took
        # 16 us a 100-byte read of a preamble of dashes (its boundary "x" and 68 dashes);
        # 2.0 us now, 0.8 us before any was held (process_time, 2026-12-05).
        held = min(len(data), len(start) + 1)
        self._held = data[len(data) - held :]
        passed = data[: len(data) - held]
        return _parse(self, passed) if passed else iter(())

    def _on_segment_start(self) -> None:
        super()._on_segment_start()
        self._head_lines = self._head_bytes = 0

    def _on_segment_headerline(self, line: bytes) -> None:
        # NOTE: multipart checks each line alone and counts headers, not lines: a folded line
        # (" x") joins its header again, so 2,000 of them under one header, in each of 999
        # parts (8 MB), took 4.2 s of CPU. docs/forms.md: the limits are the lines and bytes
        # of one part's head.
        # NOTE: multipart finds a line's end at its CRLF, and refuses a bare LF only while that
        # CRLF is still to come: a line that came whole kept its LF (or CR) inside the header's
        # value, so one body was a 400 or a field (with "text/plain\nX-Injected: 1" for its
        # Content-Type) as the client's packets fell (review179). Refused first, as there.
        # SPEC: RFC 9110 5.5, a field value holds no CR or LF; a recipient may reject it.
        if b"\n" in line or b"\r" in line:
            raise multipart.ParserError("Invalid line break in segment header")
        # SPEC: RFC 9110 5.5, a field value holding a control character but HTAB is invalid,
        # and a request's header with one is a 400 under every server (_h11, _httptools,
        # _waitress_parser). In a name or a file name it reached the app, a NUL where open()
        # raises ValueError on it (a 500).
        if _CONTROL.search(line):
            raise multipart.ParserError("control character in segment header")
        if line[0] in b" \t":
            # SPEC: RFC 9112 5.2 obsoletes line folding, which no browser or HTTP library
            # sends in a part. A folded header that is read here (its name, file name or
            # charset) is refused, as a folded framing header of a request is: a proxy or a
            # firewall that does not join it reads another part than the app (a part without
            # a name, where the app got a file). Another header's fold is still joined.
            # NOTE: multipart's own list of the part's headers so far (titled names); a
            # release that renames it fails test_forms_part_heads.
            previous = self._segment_headerlist[-1][0] if self._segment_headerlist else ""
            if previous in _FOLD_REFUSED:
                raise multipart.ParserError(f"a part's {previous} header is folded")
        elif (colon := line.find(b":")) > 0 and line[colon - 1] in b" \t":
            # SPEC: RFC 9112 5.1, no whitespace between a field name and its colon. multipart
            # strips it, where a reader that does not takes another header (and no name).
            raise multipart.ParserError("a part's header has whitespace before its colon")
        # PERF: the three checks above cost nothing seen: 999 file parts of two head lines each
        # parse in 11.5 ms, 11.7 before (MultipartEvents, best of 7 x 20, 2026-12-07). The
        # control characters' search for the NUL's "in": 11.2-11.7 ms, 10.9-11.1 before
        # (process_time, best of 9 x 20, 2026-12-07).
        self._head_lines += 1
        self._head_bytes += len(line)
        if self._head_lines > self.max_header_count:
            raise multipart.ParserLimitReached(TOO_MANY_LINES)
        if self._head_bytes > self.max_head_bytes:
            raise multipart.ParserLimitReached(TOO_LONG)
        self._all_head_bytes += len(line)
        if self._all_head_bytes > self.max_all_head_bytes:
            raise multipart.ParserLimitReached(HEADS_TOO_LONG)
        super()._on_segment_headerline(line)
        if self.head_lines is not None:
            self.head_lines.append(len(line))

    def _create_segment(self, headerlist: list[tuple[str, str]]) -> multipart.MultipartSegment:
        # NOTE: the hook multipart documents for subclasses; the names come title-cased.
        # PERF: 0.4 us more a part of two headers (1.35 -> 1.8 us, timeit, 2026-12-03).
        read: list[str] = []
        for name, value in headerlist:
            if name in _HEADERS_WITH_PARAMS:
                # NOTE: multipart reads the last line of each, where a proxy may read the
                # first, as of a repeated parameter (and a part's headers give the first).
                # SPEC: RFC 9110 5.3, a field that is no list is sent on one line.
                if name in read:
                    raise multipart.ParserError(f"a part's {name} header comes twice")
                read.append(name)
                _check_params(name, value)
        segment: multipart.MultipartSegment = super()._create_segment(headerlist)
        return segment


class MultipartEvents:
    """The events of one multipart body, with every limit checked and every error mapped.

    Raises:
        HTTPError: 400 for a missing or invalid boundary.
    """

    def __init__(self, boundary: str | None, limits: Limits) -> None:
        if not boundary:
            raise HTTPError(400, "multipart body without a boundary")
        if len(boundary) > MAX_BOUNDARY:
            # NOTE: the parser keeps a boundary's length of each chunk back, and copies it
            # again with the next one: a 200 KB boundary cost 40 ms a MB more in 100-byte
            # messages.
            raise HTTPError(400, f"multipart boundary longer than {MAX_BOUNDARY} characters")
        self.limits = limits
        self._field: str | None = None
        self._field_size = 0
        # NOTE: the current part is a file named "" (an input left empty) not counted yet.
        self._unnamed_file = False
        self._memory = 0
        self._files = 0
        try:
            self._parser = _Parser(
                boundary,
                # NOTE: multipart refuses a line still incomplete once what it holds of it is
                # longer than this, its CR included: a line of the limit itself was refused when
                # a read ended between its CR and LF (under ASGI, as the client's packets
                # fell), and served otherwise. _Parser checks the limit on each whole line.
                max_header_size=limits.max_part_header_size + 1,
                max_header_count=limits.max_part_headers,
                max_segment_count=limits.max_form_parts,
                strict=False,
            )
        except multipart.MultipartError:
            raise HTTPError(400, "invalid multipart boundary") from None
        self._parser.max_head_bytes = limits.max_part_header_size
        self._parser.max_all_head_bytes = limits.max_form_header_size
        # NOTE: the parser's own events of a chunk, for event_of(); its errors are unmapped.
        # The parse() method itself, not one that calls it (see the PERF of AsyncParts._adata).
        self.raw: Callable[[bytes], Iterator[Any]] = self._parser.parse

    def keep_head_lines(self) -> array[int]:
        """Return the array the bytes of each line of every part's head go to, in order, from
        now on (for a ``FormMeasure``)."""
        self._parser.head_lines = array("I")
        return self._parser.head_lines

    @property
    def head_line_count(self) -> int:
        """The lines of the current part's head, which the parser no longer changes once the
        part's data starts."""
        return self._parser._head_lines

    @property
    def closed(self) -> bool:
        """Whether the input has ended (or failed)."""
        return bool(self._parser.closed)

    @property
    def counting(self) -> bool:
        """Whether the current part's data goes through ``count()``: a text field's, which
        counts against the limits of text fields, and the first of a file named ``""``."""
        return self._field is not None or self._unnamed_file

    def event_of(self, raw: Any) -> Event:
        """Turn an event of ``raw()`` into a part event, checking the limits of fields.

        Raises:
            HTTPError: 400 for a part header section we refuse, 413 past a field limit.
        """
        if isinstance(raw, multipart.MultipartSegment):
            return self._start(raw)
        if raw is not None and (self._field is not None or self._unnamed_file):
            self.count(len(raw))
        return raw

    def parse(self, chunk: bytes) -> Iterator[Event]:
        """Yield the events of the next chunk; an empty chunk ends the input.

        Raises:
            HTTPError: 400 for malformed input (a truncated body included), 413 past a limit.
        """
        try:
            for event in self._parser.parse(chunk):
                if isinstance(event, multipart.MultipartSegment):
                    yield self._start(event)
                    continue
                if event is not None and (self._field is not None or self._unnamed_file):
                    self.count(len(event))
                yield event
        except multipart.MultipartError as exc:
            raise parser_error(exc) from None

    def _start(self, segment: multipart.MultipartSegment) -> PartHead:
        head = _head_of(segment)
        self._field, self._field_size = head.name if head.codec else None, 0
        # NOTE: a file input left empty (filename="", no data) is no file, as in Django: a form
        # of 100 files and one such input was a 413. A file named "" that has data is one,
        # counted at its first byte: uncounted, each was a temporary file of its own past
        # spool_threshold, up to max_form_parts of them in one form (review163).
        self._unnamed_file = head.filename == ""
        if head.filename:
            self._count_file()
        return head

    def _count_file(self) -> None:
        self._files += 1
        if self._files > self.limits.max_form_files:
            raise too_many_files(self.limits)

    def count(self, size: int) -> None:
        """Count ``size`` bytes of the current text field against the field limits (or the
        first bytes of a file named ``""``, which make it a file)."""
        if self._field is None:
            if size and self._unnamed_file:
                self._unnamed_file = False
                self._count_file()
            return
        self._field_size += size
        self._memory += size
        limits = self.limits
        if self._field_size > limits.max_field_size:
            raise field_too_large(self._field, limits)
        if self._memory > limits.max_form_memory:
            raise fields_too_large(limits)


class PartStream:
    """The events of a multipart body, pulled one at a time (sans-IO: the caller feeds chunks).

    ``pending`` yields the parser's own events of the chunks fed so far (``events.event_of()``
    turns each into a part event; its errors are the parser's own); once it is
    exhausted, feed the next chunk, or ``None`` at the end of the body (then ``ended`` is true).

    Raises:
        HTTPError: 415 for a body that is not ``multipart/form-data``, 400 without a boundary.
    """

    def __init__(self, content_type: str | None, limits: Limits) -> None:
        kind, params = media_type(content_type)
        if kind != MULTIPART:
            raise HTTPError(415, f"expected a {MULTIPART} body")
        self.events = MultipartEvents(form_boundary(content_type, params), limits)
        self.pending: Iterator[Any] = iter(())
        self.ended = False

    def feed(self, chunk: bytes | None) -> None:
        """Take the next body chunk; ``None`` says the body has ended."""
        if chunk is None:
            self.ended = True
            self.pending = self.events.raw(b"")
        elif chunk:
            self.pending = self.events.raw(chunk)
