"""Streamed parts: ``Part``, what ``iter_parts()`` and ``aiter_parts()`` yield, and the pullers
``SyncParts`` and ``AsyncParts`` that take them from a ``PartStream`` fed with body chunks.

Rules of streamed parts (docs/forms.md, "Streaming parts"):

1. Parts come in body order; a part's data can be read once, and only while it is the current
   part. Asking for the next part skips what is left of the current one (the limits still count).
   When the loop ends, the current part is left behind, unless its data is being read already.
2. A part without a filename is a text field: it streams like any other part, but is bounded by
   ``max_field_size`` and, with the other fields, by ``max_form_memory``, exactly as in
   ``form()``, so a request gets the same answer from either.
3. An error (400, 413, a client that left) is raised by whichever call pulls the bytes that show
   it, the part's iterator or the next step of ``iter_parts()``; every later call raises it again.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import multipart

from ._buffer import BodyMeter
from ._errors import HTTPError
from ._parsing import decode_with, find_text_codec
from ._parts import END, Event, PartHead, PartStream, parser_error

_NEW, _READING, _DONE, _LEFT = "new", "reading", "done", "left behind"
# NOTE: what next() of a PartStream's pending events gives once they are used up.
_NEED_DATA: Any = object()
_PART_END = (None, END)


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
        return self._decode(b"".join(self._parts.data_of(self, "text()")))

    async def atext(self) -> str:
        """Read and decode the part's data; the async twin of ``text()``."""
        data = [chunk async for chunk in self._parts.adata_of(self, "atext()")]
        return self._decode(b"".join(data))

    def _decode(self, data: bytes) -> str:
        what = f"form field {self.name!r}"
        codec = self._head.codec or find_text_codec(self._head.charset, what)
        return decode_with(data, codec, what)

    def __repr__(self) -> str:
        kind = "field" if self.filename is None else f"file {self.filename!r}"
        return f"<Part {self.name!r} {kind} {self.content_type!r}>"  # NOTE: see UploadFile's.


class _Parts:
    """What both colours share: the current part, the states of parts, the first error."""

    def __init__(self, stream: PartStream, call: str) -> None:
        self.stream, self.call = stream, call
        self.current: Part | None = None
        self.error: Exception | None = None
        self.ended = False
        # NOTE: the meter of the read that streams the body for these parts (None when the
        # body was read whole before): their 400 or 413 is left on it for the request's later
        # reads, as form()'s is.
        self.meter: BodyMeter | None = None

    def _fail(self, exc: Exception) -> Exception:
        """Keep the first error of the body (a parser error mapped to 400/413); return it."""
        if isinstance(exc, multipart.MultipartError):
            exc = parser_error(exc)
        meter = self.meter
        if isinstance(exc, HTTPError) and meter is not None:
            # NOTE: read() after the parts' 400 raised RuntimeError ("already consumed"), a 500
            # (review169), where docs/requests.md promises the 400 again.
            meter.keep(exc)
        # NOTE: a copy is kept, to be raised again by every later step (_again()): it is never
        # raised itself, so it holds no traceback. The traceback's frames hold this object and
        # the request: kept here, the error made a cycle that held them (the parser, the body
        # read so far) until a full collection, for every malformed body.
        self.error = copy.copy(exc)
        return exc

    def end(self) -> bool:
        """The loop over the parts has ended: the part it was at is left behind, unless its
        data is being read; return whether the body's chunks may be closed (no reader left).
        """
        # NOTE: the current part refers to this object, which refers to it: a cycle, kept
        # until a full collection, once a handler broke out of the loop or a part's data
        # failed (the part, the parser, the body read so far).
        self.ended = True
        current, self.current = self.current, None
        if current is not None and current._state is _READING and self.error is None:
            # NOTE: its reader goes on to the part's end, and pulls the chunks itself. An
            # async generator left by a `break` is closed later, when the event loop runs its
            # finaliser: taken from under a reader mid-part, the part failed after some of its
            # data (a 500 under Uvicorn for a 300 KB file read after the loop), and under WSGI
            # the closing of the chunks it was awaiting failed too ("aclose(): asynchronous
            # generator is already running", logged by asyncio).
            return False
        if current is not None and current._state is not _DONE:
            current._state = _LEFT
        return True

    def _again(self) -> Exception:
        """A copy of the kept error, to raise."""
        error = copy.copy(self.error)
        assert error is not None
        return error

    def _claim(self, part: Part, method: str) -> None:
        if self.error is not None:
            raise self._again()
        if part._state is _NEW and part is self.current:
            part._state = _READING
            return
        if part._state is _LEFT:
            raise self._left_behind(part, method)
        raise RuntimeError(f"part.{method}: the data of part {part.name!r} was already read")

    def _left_behind(self, part: Part, method: str) -> RuntimeError:
        if self.ended:
            return RuntimeError(
                f"part.{method}: part {part.name!r} was left behind by request.{self.call}, "
                "whose loop has ended (a break, or the generator closed): read each part's "
                "data inside the loop"
            )
        return RuntimeError(
            f"part.{method}: part {part.name!r} was left behind by request.{self.call}: read "
            "each part's data before asking for the next part"
        )

    def _next_head(self, event: Event) -> Part | None:
        if event is END:
            self.current = None
            return None
        self.current = Part(event, self)
        return self.current

    def _wrong_colour(self, method: str, twin: str) -> RuntimeError:
        return RuntimeError(
            f"part.{method}: this part comes from request.{self.call}: read it with part.{twin}"
        )

    def data_of(self, part: Part, method: str = "iter_bytes()") -> Iterator[bytes]:
        """Return the iterator of ``part``'s data (sync colour), for the part's ``method``."""
        raise self._wrong_colour(method, f"a{method} in async code")

    def adata_of(self, part: Part, method: str = "aiter_bytes()") -> AsyncIterator[bytes]:
        """Return the async iterator of ``part``'s data (async colour), for ``method``."""
        raise self._wrong_colour(method, method[1:])


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
            raise self._again()
        stream = self.stream
        try:
            while (event := next(stream.pending, _NEED_DATA)) is _NEED_DATA:
                if stream.ended:
                    return END
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

    def data_of(self, part: Part, method: str = "iter_bytes()") -> Iterator[bytes]:
        self._check()
        self._claim(part, method)
        return self._data(part)

    def _data(self, part: Part) -> Iterator[bytes]:
        # PERF: the parser's own events pulled here, with no generator or call per event
        # between (next_part() takes the slower _next_event()): iter_parts() of 10 MiB
        # 18.20M -> 17.81M instructions (docs/performance.md); see AsyncParts._adata().
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
            raise self._again()
        stream = self.stream
        try:
            while (event := next(stream.pending, _NEED_DATA)) is _NEED_DATA:
                if stream.ended:
                    return END
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

    def adata_of(self, part: Part, method: str = "aiter_bytes()") -> AsyncIterator[bytes]:
        self._claim(part, method)
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
