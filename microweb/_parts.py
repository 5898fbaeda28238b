"""Multipart bodies as part events, shared by ``form()`` and ``iter_parts()``; streamed parts.

``MultipartEvents`` drives ``multipart.PushMultipartParser`` (non-strict, every limit set:
TRAPS.md 1-5) and turns its events into a ``PartHead`` when a part starts, ``bytes`` for its
data and ``None`` when it ends, each failure mapped to 400 or 413. ``FormBuilder`` (``_forms``)
collects those events into a ``FormData``; ``PartStream`` hands them out one ``Part`` at a time,
pulled by ``SyncParts`` or ``AsyncParts`` from the request's body chunks, and keeps nothing.

Rules of streamed parts (docs/forms.md, "Streaming parts"):

1. Parts come in body order; a part's data can be read once, and only while it is the current
   part. Asking for the next part skips what is left of the current one (the limits still count).
2. A part without a filename is a text field: it streams like any other part, but is bounded by
   ``max_field_size`` and, with the other fields, by ``max_form_memory``, exactly as in
   ``form()``, so a request gets the same answer from either.
3. An error (400, 413, a client that left) is raised by whichever call pulls the bytes that show
   it, the part's iterator or the next step of ``iter_parts()``; every later call raises it again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import multipart

from ._datastructures import Headers, trusted_headers
from ._errors import HTTPError
from ._limits import Limits
from ._parsing import RequestHeaders, decode_with, find_text_codec, media_type, part_filename

MULTIPART = "multipart/form-data"

Event = Any  # PartHead | bytes | None (a part's end)
_NEED_DATA: Any = object()
_END: Any = object()


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


def _reason(exc: multipart.MultipartError) -> str:
    # NOTE: multipart adds the UnicodeDecodeError of a part header to the exception's args, and
    # its repr holds the raw header bytes: only the parser's own message goes to the client.
    message = exc.args[0] if exc.args else ""
    return message if isinstance(message, str) else type(exc).__name__


def parser_error(exc: multipart.MultipartError) -> HTTPError:
    """Map an error of the parser to its answer: 413 past one of its limits, else 400."""
    if isinstance(exc, multipart.ParserLimitReached):
        return HTTPError(413, f"multipart limit reached: {exc}")
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


class MultipartEvents:
    """The events of one multipart body, with every limit checked and every error mapped.

    Raises:
        HTTPError: 400 for a missing or invalid boundary.
    """

    def __init__(self, boundary: str | None, limits: Limits) -> None:
        if not boundary:
            raise HTTPError(400, "multipart body without a boundary")
        self.limits = limits
        self._field: str | None = None
        self._field_size = 0
        self._memory = 0
        try:
            self._parser = multipart.PushMultipartParser(
                boundary,
                max_header_size=limits.max_part_header_size,
                max_header_count=limits.max_part_headers,
                max_segment_count=limits.max_form_parts,
                strict=False,
            )
        except multipart.MultipartError:
            raise HTTPError(400, "invalid multipart boundary") from None
        # NOTE: the parser's own events of a chunk, for event_of(); its errors are unmapped.
        # The parse() method itself, not one that calls it (see the PERF of AsyncParts._adata).
        self.raw: Callable[[bytes], Iterator[Any]] = self._parser.parse

    @property
    def closed(self) -> bool:
        """Whether the input has ended (or failed)."""
        return bool(self._parser.closed)

    @property
    def counting(self) -> bool:
        """Whether the current part's data counts against the limits of text fields."""
        return self._field is not None

    def event_of(self, raw: Any) -> Event:
        """Turn an event of ``raw()`` into a part event, checking the limits of fields.

        Raises:
            HTTPError: 400 for a part header section we refuse, 413 past a field limit.
        """
        if isinstance(raw, multipart.MultipartSegment):
            return self._start(raw)
        if raw is not None and self._field is not None:
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
                if event is not None and self._field is not None:
                    self.count(len(event))
                yield event
        except multipart.MultipartError as exc:
            raise parser_error(exc) from None

    def _start(self, segment: multipart.MultipartSegment) -> PartHead:
        head = _head_of(segment)
        self._field, self._field_size = head.name if head.codec else None, 0
        return head

    def count(self, size: int) -> None:
        """Count ``size`` bytes of the current text field against the field limits."""
        self._field_size += size
        self._memory += size
        limits = self.limits
        if self._field_size > limits.max_field_size:
            raise HTTPError(
                413, f"form field {self._field!r} is larger than {limits.max_field_size} bytes"
            )
        if self._memory > limits.max_form_memory:
            raise HTTPError(413, f"form fields are larger than {limits.max_form_memory} bytes")


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
        self.events = MultipartEvents(params.get("boundary"), limits)
        self.pending: Iterator[Any] = iter(())
        self.ended = False

    def feed(self, chunk: bytes | None) -> None:
        """Take the next body chunk; ``None`` says the body has ended."""
        if chunk is None:
            self.ended = True
            self.pending = self.events.raw(b"")
        elif chunk:
            self.pending = self.events.raw(chunk)


# -- streamed parts ----------------------------------------------------------------------------

_NEW, _READING, _DONE, _LEFT = "new", "reading", "done", "left behind"
_PART_END = (None, _END)


class Part:
    """One part of a multipart body, streamed by ``request.iter_parts()`` or ``aiter_parts()``.

    ``name``, ``filename`` (``None`` for a text field), ``content_type`` (``text/plain`` for a
    field and ``application/octet-stream`` for a file that names none) and ``headers`` are known
    when the part is handed out; its data comes from ``iter_bytes()`` (parts of
    ``iter_parts()``) or ``aiter_bytes()`` (parts of ``aiter_parts()``), once, before the next
    part is asked for. ``filename`` is the client's: never use it as a path.
    """

    __slots__ = ("_head", "_parts", "_state", "content_type", "filename", "headers", "name")

    def __init__(self, head: PartHead, parts: _Parts) -> None:
        self._head, self._parts, self._state = head, parts, _NEW
        self.name, self.filename = head.name, head.filename
        self.content_type, self.headers = head.content_type, head.headers

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the part's data in chunks as they arrive.

        Raises:
            HTTPError: 400 for a body that ends inside the part, 413 past a limit.
            RuntimeError: For a part of ``aiter_parts()``, a part read before, or one left behind.
        """
        return self._parts.data_of(self)

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the part's data in chunks; the async twin of ``iter_bytes()``."""
        return self._parts.adata_of(self)

    def text(self) -> str:
        """Read the part's data whole and decode it with its charset (UTF-8 by default).

        Raises:
            HTTPError: 400 for a charset off the allow-list or bytes that do not decode.
        """
        return self._decode(b"".join(self.iter_bytes()))

    async def atext(self) -> str:
        """Read and decode the part's data; the async twin of ``text()``."""
        return self._decode(b"".join([chunk async for chunk in self.aiter_bytes()]))

    def _decode(self, data: bytes) -> str:
        what = f"form field {self.name!r}"
        codec = self._head.codec or find_text_codec(self._head.charset, what)
        return decode_with(data, codec, what)

    def __repr__(self) -> str:
        kind = "field" if self.filename is None else f"file {self.filename!r}"
        return f"<Part {self.name!r} {kind} {self.content_type}>"


class _Parts:
    """What both colours share: the current part, the states of parts, the first error."""

    def __init__(self, stream: PartStream, call: str) -> None:
        self.stream, self.call = stream, call
        self.current: Part | None = None
        self.error: Exception | None = None

    def _fail(self, exc: Exception) -> Exception:
        # NOTE: the first error of the body (a parser error mapped to 400/413), kept to be
        # raised again by every later step.
        self.error = parser_error(exc) if isinstance(exc, multipart.MultipartError) else exc
        return self.error

    def _claim(self, part: Part, method: str) -> None:
        if self.error is not None:
            raise self.error
        if part._state is _NEW and part is self.current:
            part._state = _READING
            return
        if part._state is _LEFT:
            raise self._left_behind(part, method)
        raise RuntimeError(f"part.{method}: the data of part {part.name!r} was already read")

    def _left_behind(self, part: Part, method: str) -> RuntimeError:
        return RuntimeError(
            f"part.{method}: part {part.name!r} was left behind by request.{self.call}: read "
            "each part's data before asking for the next part"
        )

    def _next_head(self, event: Event) -> Part | None:
        if event is _END:
            self.current = None
            return None
        self.current = Part(event, self)
        return self.current

    def _wrong_colour(self, method: str, twin: str) -> RuntimeError:
        return RuntimeError(
            f"part.{method}: this part comes from request.{self.call}: read it with part.{twin}"
        )

    def data_of(self, part: Part) -> Iterator[bytes]:
        """Return the iterator of ``part``'s data (sync colour)."""
        raise self._wrong_colour("iter_bytes()", "aiter_bytes() in async code")

    def adata_of(self, part: Part) -> AsyncIterator[bytes]:
        """Return the async iterator of ``part``'s data (async colour)."""
        raise self._wrong_colour("aiter_bytes()", "iter_bytes()")


class SyncParts(_Parts):
    """The parts of ``request.iter_parts()``, pulled from a blocking chunk iterator.

    ``check`` refuses to block where that is wrong (the request's wrong-colour check).
    """

    def __init__(
        self, stream: PartStream, chunks: Iterator[bytes], check: Callable[[], None]
    ) -> None:
        super().__init__(stream, "iter_parts()")
        self._chunks, self._check = chunks, check

    def _next_event(self) -> Event:
        if self.error is not None:
            raise self.error
        stream = self.stream
        try:
            while (event := next(stream.pending, _NEED_DATA)) is _NEED_DATA:
                if stream.ended:
                    return _END
                stream.feed(next(self._chunks, None))
            return stream.events.event_of(event)
        except Exception as exc:
            raise self._fail(exc) from None

    def next_part(self) -> Part | None:
        """Skip what is left of the current part; return the next one, ``None`` at the end."""
        current = self.current
        if current is not None and current._state is not _DONE:
            current._state = _LEFT
            while self._next_event() not in _PART_END:
                pass
        return self._next_head(self._next_event())

    def data_of(self, part: Part) -> Iterator[bytes]:
        self._check()
        self._claim(part, "iter_bytes()")
        return self._data(part)

    def _data(self, part: Part) -> Iterator[bytes]:
        # PERF: the parser's own events pulled here, with no generator or call per event
        # between (next_part() takes the slower _next_event()); see AsyncParts._adata().
        stream, chunks = self.stream, self._chunks
        counting = stream.events.counting
        while part._state is _READING:
            try:
                # NOTE: a part's data can only end with its None event: at the end of the body
                # the parser raises for a part cut short, so this never feeds past the end.
                if (event := next(stream.pending, _NEED_DATA)) is _NEED_DATA:
                    stream.feed(next(chunks, None))
                    continue
                if event is None:
                    part._state = _DONE
                    return
                if counting:
                    stream.events.count(len(event))
            except Exception as exc:
                raise self._fail(exc) from None
            yield event
        # NOTE: this iterator was kept past the next iter_parts() step.
        raise self._left_behind(part, "iter_bytes()")


class AsyncParts(_Parts):
    """The parts of ``request.aiter_parts()``, pulled from an async chunk iterator."""

    def __init__(self, stream: PartStream, chunks: AsyncIterator[bytes]) -> None:
        super().__init__(stream, "aiter_parts()")
        self._chunks = chunks

    async def _next_event(self) -> Event:
        if self.error is not None:
            raise self.error
        stream = self.stream
        try:
            while (event := next(stream.pending, _NEED_DATA)) is _NEED_DATA:
                if stream.ended:
                    return _END
                stream.feed(await anext(self._chunks, None))
            return stream.events.event_of(event)
        except Exception as exc:
            raise self._fail(exc) from None

    async def next_part(self) -> Part | None:
        """Skip what is left of the current part; return the next one, ``None`` at the end."""
        current = self.current
        if current is not None and current._state is not _DONE:
            current._state = _LEFT
            while await self._next_event() not in _PART_END:
                pass
        return self._next_head(await self._next_event())

    def adata_of(self, part: Part) -> AsyncIterator[bytes]:
        self._claim(part, "aiter_bytes()")
        return self._adata(part)

    async def _adata(self, part: Part) -> AsyncIterator[bytes]:
        # PERF: the parser's own events pulled here, with no coroutine, generator or call per
        # event between (next_part() takes the slower _next_event()): aiter_parts() of a 10 MiB
        # upload in 64 KiB messages, 19.19M -> 18.70M instructions a request (valgrind,
        # PYTHONHASHSEED=0, 2026-11-30).
        stream, chunks = self.stream, self._chunks
        counting = stream.events.counting
        while part._state is _READING:
            try:
                # NOTE: as in SyncParts._data(), the parser raises for a part cut short.
                if (event := next(stream.pending, _NEED_DATA)) is _NEED_DATA:
                    stream.feed(await chunks.__anext__())
                    continue
                if event is None:
                    part._state = _DONE
                    return
                if counting:
                    stream.events.count(len(event))
            except StopAsyncIteration:
                stream.feed(None)
            except Exception as exc:
                raise self._fail(exc) from None
            else:
                yield event
        raise self._left_behind(part, "aiter_bytes()")
