"""What goes out for a response, decided once for both drivers (sans-IO).

File responses are settled against the request here (304, 206, 416); then ``outgoing`` gives the
header list and one of: the body bytes, a stream to send, or nothing (HEAD, 1xx, 204, 205,
304). The drivers only do the I/O, encoding each streamed chunk with ``encode_chunk``. A stream
that is not sent, as a flow replaced its response, is closed after the request
(``close_replaced``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from ._closing import aclose_both, close_both
from ._effects import AfterCall, AfterCalls, Colored
from ._files import (
    FileInfo,
    etag_listed,
    etag_matched,
    not_modified_since,
    parse_range,
    range_applies,
    ranges_accepted,
    reads_the_file,
    unmodified_since,
)
from ._media import JSON, OCTETS, TEXT, encode_json, utf8
from ._parsing import header_value
from ._response import Response, StreamBody
from ._results import copied
from ._routing import is_async_callable

if TYPE_CHECKING:
    from ._request import Request

Header = tuple[str, str]
T = TypeVar("T", str, bytes)


class LengthHeaders(dict[int, tuple[T, T]]):
    """The Content-Length header of each body size, made by ``make`` on first use.

    The first 1,024 sizes met are kept, so that most answers look their header up.
    """

    __slots__ = ("_make",)
    _make: Callable[[int], tuple[T, T]]

    def __init__(self, make: Callable[[int], tuple[T, T]]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, size: int) -> tuple[T, T]:
        header = self._make(size)
        if len(self) < 1024:
            self[size] = header
        return header


# PERF: looked up, not formatted: a WSGI hello 23,150 -> 22,570 instructions (valgrind).
LENGTHS = LengthHeaders(lambda size: ("content-length", str(size)))
# NOTE: the default error body's labels (see default_error).
NOSNIFF = ("x-content-type-options", "nosniff")
ACCEPT_VARIES = ("vary", "Accept")


def negotiate_file(response: Response, request: Request) -> Response:
    """Answer conditional and range requests for a file response, on a copy that reads the
    file anew."""
    file = response.file_info
    assert file is not None  # NOTE: every caller checks file_info first, inline.
    # NOTE: a file response the app keeps (a module's constant) went out empty the second time
    # under ASGI, its one read spent, and kept the first request's 206 under both: the copy
    # reads the file anew.
    response = copied(response)
    # NOTE: a 200 to GET or HEAD that sends the file only: a stream the app put in the file's
    # place is not the file, whose validators and ranges describe other bytes.
    if not (
        response._status == 200
        and request.method in ("GET", "HEAD")
        and reads_the_file(response.chunks)
    ):
        return response
    headers = request.headers
    # NOTE: the app's own ETag, if it set one, is the one sent: the client sends that back.
    etag = response.headers.setdefault("etag", file.etag)
    response.headers.setdefault("accept-ranges", "bytes")
    # SPEC: RFC 9110 13.2.2, in this order: If-Match, else If-Unmodified-Since (412); then
    # If-None-Match, else If-Modified-Since (304); then If-Range.
    if_match = header_value(headers, "if-match")
    if if_match is not None:
        if not etag_matched(if_match, etag):
            return _without_body(response, 412)
    elif (unmodified := header_value(headers, "if-unmodified-since")) and not unmodified_since(
        unmodified, file
    ):
        return _without_body(response, 412)
    if_none_match = header_value(headers, "if-none-match")
    if if_none_match is not None:
        if etag_listed(if_none_match, etag):
            return _not_modified(response, file.size)
    elif (
        (since := header_value(headers, "if-modified-since"))
        and file.dated
        and not_modified_since(since, file.mtime)
    ):
        return _not_modified(response, file.size)
    return _ranged(response, request, file, etag)


def _ranged(response: Response, request: Request, file: FileInfo, etag: str) -> Response:
    """Answer a ``Range`` with 206 or 416, or leave the whole file to send."""
    headers = request.headers
    range_header = header_value(headers, "range")
    if range_header is None or not ranges_accepted(response.headers["accept-ranges"]):
        return response
    if not range_applies(header_value(headers, "if-range"), file, etag):
        return response
    span = parse_range(range_header, file.size)
    if span is None:
        return response
    if span is False:
        response.headers["content-range"] = f"bytes */{file.size}"
        return _without_body(response, 416)
    start, length = span
    ranged = replace(file, start=start, length=length)
    response._status, response.file_info = 206, ranged
    response.chunks, response.length = ranged.chunks(), length
    response.headers["content-range"] = f"bytes {start}-{start + length - 1}/{file.size}"
    return response


def _without_body(response: Response, status: int) -> Response:
    response._status, response.file_info = status, None
    response.chunks, response._length, response._body = None, None, b""
    if status in (412, 416):
        response.headers["content-type"] = TEXT
    return response


def _not_modified(response: Response, size: int) -> Response:
    _without_body(response, 304)
    # NOTE: never sent (a 304 has no Content-Length here), but a flow that labels the 304 as
    # the 200 it stands for needs the size: GZip left a small file's 200 plain and strong, and
    # gave its 304 a weak ETag and a Vary (review160).
    response.length = size
    return response


def no_body_status(status: int) -> bool:
    """Whether a response with ``status`` must not have a body (1xx, 204, 304)."""
    return status < 200 or status in (204, 304)


def head_list(response: Response) -> list[Header]:
    """Return the headers to send, with ``Content-Length`` and ``Content-Type`` settled.

    SPEC: RFC 9110 sections 8.6 and 15.3.5: no Content-Length on 1xx and 204; a HEAD answer
    carries the length the GET answer would have; a 205 says ``0`` (15.3.6).
    """
    # NOTE: one pass over the header list, which this package owns.
    items = []
    typed = False
    for item in response._headers._list:
        name = item[0]
        if name == "content-length":
            continue
        typed = typed or name == "content-type"
        items.append(item)
    status = response._status
    if no_body_status(status):
        # NOTE: wsgiref.validate refuses Content-Type on 304 too; nothing is lost without it.
        return [item for item in items if item[0] != "content-type"] if typed else items
    if status == 205:
        # SPEC: RFC 9110 15.3.6: a 205 has no content, and a client reads one by its length.
        items.append(LENGTHS[0])
    elif response.chunks is None:
        items.append(LENGTHS[len(response._body)])
    else:
        length, _ = stream_length(response)
        if length is not None:
            items.append(("content-length", str(length)))
    if not typed:
        items.append(("content-type", OCTETS if response._body or response.chunks else TEXT))
    return items


def outgoing(response: Response, method: str) -> tuple[list[Header], bytes | StreamBody | None]:
    """Return the headers to send and the body: bytes, a stream of chunks, or ``None``.

    ``None`` means no body at all (HEAD, 1xx, 204, 205, 304); the driver must still close
    ``response.chunks`` when there is a stream, unsent.
    """
    items = response._headers._list
    status = response._status
    if (
        response.chunks is None
        and status >= 200
        and status != 204
        and status != 304
        and status != 205
        and method != "HEAD"
    ):
        if len(items) == 1 and items[0][0] == "content-type":
            # PERF: a plain answer (a str, a dict, a Response with only its type): its two
            # headers at once, with no pass over the list, 0.39 -> 0.23 us; head_list() does
            # the rest.
            return [items[0], LENGTHS[len(response._body)]], response._body
        # PERF: a body with its type and no length of the app's (a default error, a redirect,
        # a cookie set): its headers as they are and the length, without head_list()'s second
        # list; outgoing() with one header of the app's took 0.79 -> 0.44 us (timeit,
        # 2026-12-05), a 405's Allow 80.8k -> 77.8k instructions a request (valgrind, WSGI).
        typed = False
        for item in items:
            name = item[0]
            if name == "content-length":
                break
            typed = typed or name == "content-type"
        else:
            if typed:
                return [*items, LENGTHS[len(response._body)]], response._body
    if response.chunks is not None:
        check_stream(response.chunks)
    headers = head_list(response)
    if no_body_status(status) or status == 205:
        return headers, None
    # NOTE: Waitress would send a HEAD body and break keep-alive (TRAPS.md 7).
    head = method == "HEAD"
    chunks = response.chunks
    if chunks is None:
        return headers, None if head else response._body
    length, held = stream_length(response)
    if length is not None and not held:
        # NOTE: for HEAD too, so that a list of another length is the 500 its GET is (a HEAD
        # got a 200 under that length); a stream is only wrapped, not read.
        chunks = sized(chunks, length)
    return headers, None if head else chunks


def check_stream(chunks: object) -> None:
    """Refuse a ``response.chunks`` that is no stream of chunks.

    Raises:
        TypeError: If ``chunks`` is not an iterable, or is ``bytes`` or ``str`` (whose
            items are no chunks: the body goes in ``response.body``).
    """
    # NOTE: response.chunks = 5 failed when the body was iterated, after the headers: the
    # server's 500 under WSGI, under ASGI a cut response, each logged its own way.
    if isinstance(chunks, (bytes, bytearray, memoryview, str)) or not isinstance(
        chunks, (Iterable, AsyncIterable)
    ):
        raise TypeError(
            "a Response's chunks are an iterable or async iterable of bytes, not "
            f"{type(chunks).__name__}: a whole body goes in response.body"
        )


def stream_length(response: Response) -> tuple[int | None, bool]:
    """Return the ``Content-Length`` of a streamed response, and whether its stream holds to
    it itself (a read of its file, which sends that many bytes or fails)."""
    file = response.file_info
    if file is not None and reads_the_file(response.chunks):
        # NOTE: the file's span, whatever response.length says: a length of 3 set on a file
        # response went out before the file's 10 bytes, under both interfaces, and the WSGI
        # server's file wrapper sent the file under it too.
        return file.length, True
    return response._length, False


def sized(chunks: StreamBody, length: int) -> StreamBody:
    """Return ``chunks`` as a stream that is an error unless it yields ``length`` bytes.

    For a stream whose length was declared (``response.length``): its ``Content-Length`` is
    out, so a body that ends short or goes on is cut off as an error, under both interfaces.

    Raises:
        StreamLengthError: For a list or tuple of chunks of another length, counted now,
            before anything is sent.
        TypeError: For a list or tuple that holds a chunk of another type than ``bytes`` or
            ``str`` (see ``encode_chunk``).
    """
    if isinstance(chunks, AsyncIterable):
        return AsyncSizedStream(chunks, length)
    if type(chunks) is list or type(chunks) is tuple:
        # NOTE: counted here, so that a wrong length is the app's 500 rather than a response
        # cut off, and the list stays one: wrapped, it went through the thread pool under
        # ASGI, one chunk at a time, where a list is sent from the loop.
        encoded = [encode_chunk(chunk) for chunk in chunks]
        sent = sum(map(len, encoded))
        if sent != length:
            raise StreamLengthError(length, sent)
        return encoded
    return SizedStream(chunks, length)


class StreamLengthError(RuntimeError):
    """A stream that yielded more or fewer bytes than its declared length; ``short`` for fewer."""

    def __init__(self, length: int, sent: int) -> None:
        what = "went on past" if sent > length else f"ended after {sent} bytes of"
        super().__init__(
            f"a streamed response {what} its length, {length} bytes (response.length), the "
            "Content-Length sent: set response.length = None when the size is not known"
        )
        self.short = sent < length


def ended_for_a_client_gone(exc: BaseException, gone: bool) -> bool:
    """Whether ``exc`` is a stream that stopped short of its length because the client left:
    a generator that returns once ``is_disconnected()`` says so, as docs/streaming.md shows."""
    return gone and isinstance(exc, StreamLengthError) and exc.short


# NOTE: Waitress cut a stream that went on at its Content-Length and kept the connection, so
# the client took the first bytes for the whole body, while Uvicorn cut the connection; a
# negative length was sent as it was. Both interfaces now end such a response as an error.
class _Sized:
    """What both colours of a stream counted against its declared length share."""

    __slots__ = ("_length", "_sent")

    def __init__(self, length: int) -> None:
        self._length, self._sent = length, 0

    def _counted(self, chunk: bytes | str) -> bytes:
        """Return ``chunk`` encoded, counted; raise once the stream went past its length."""
        data = encode_chunk(chunk)
        self._sent += len(data)
        if self._sent > self._length:
            raise StreamLengthError(self._length, self._sent)
        return data

    def _end_error(self) -> StreamLengthError | None:
        """The error of a stream that ended short of its length, if it did."""
        return StreamLengthError(self._length, self._sent) if self._sent != self._length else None


class SizedStream(_Sized):
    """A sync stream counted against its declared length; its ``close()`` closes the stream."""

    __slots__ = ("_iterator", "_source")

    def __init__(self, chunks: Iterable[bytes | str], length: int) -> None:
        super().__init__(length)
        self._source = chunks
        self._iterator: Iterator[bytes | str] | None = None

    def __iter__(self) -> SizedStream:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            # NOTE: on the first next(), in the thread that iterates (a pool thread under ASGI).
            self._iterator = iter(self._source)
        try:
            chunk = next(self._iterator)
        except StopIteration:
            if (error := self._end_error()) is not None:
                raise error from None  # NOTE: no StopIteration chained to it in the log.
            raise
        return self._counted(chunk)

    def close(self) -> Awaitable[object] | None:
        """Close the stream (and the iterator it gave, if another object); return what is left
        to await (see ``close_of()``)."""
        return close_both(self._iterator, self._source)


class AsyncSizedStream(_Sized):
    """An async stream counted against its declared length; ``aclose()`` closes the stream."""

    __slots__ = ("_iterator", "_source")

    def __init__(self, chunks: AsyncIterable[bytes | str], length: int) -> None:
        super().__init__(length)
        self._source = chunks
        self._iterator: AsyncIterator[bytes | str] | None = None

    def __aiter__(self) -> AsyncSizedStream:
        return self

    async def __anext__(self) -> bytes:
        if self._iterator is None:
            self._iterator = aiter(self._source)
        try:
            chunk = await anext(self._iterator)
        except StopAsyncIteration:
            if (error := self._end_error()) is not None:
                raise error from None  # NOTE: no StopAsyncIteration chained to it in the log.
            raise
        return self._counted(chunk)

    async def aclose(self) -> None:
        """Close the stream (and the iterator it gave, if another object)."""
        await aclose_both(self._iterator, self._source)


def plain_answer(result: Any, method: str) -> tuple[bytes, str] | None:
    """Return the body and Content-Type of a handler's plain result, sent with status 200.

    A ``str``, ``dict`` or ``list`` gives what ``outgoing(to_response(result), method)`` gives
    (the two headers are Content-Type and Content-Length), without the response objects.
    ``None``: the result needs a ``Response`` (another type, a HEAD request, or a value that
    does not encode, for which ``to_response`` raises the error).
    """
    if method == "HEAD":
        return None
    kind = type(result)
    try:
        if kind is str:
            return result.encode("utf-8"), TEXT
        if kind is dict or kind is list:
            return encode_json(result), JSON
    except Exception:
        return None
    return None


def encode_chunk(chunk: object) -> bytes:
    """Encode one streamed chunk: ``str`` as UTF-8, a ``bytearray`` or ``memoryview`` as bytes.

    Raises:
        TypeError: For a chunk of another type, under both interfaces alike.
    """
    if type(chunk) is bytes:
        return chunk
    if type(chunk) is str:
        return chunk.encode("utf-8")  # PERF: 49 ns, utf8() 83 (see Response()); a subclass below.
    if isinstance(chunk, str):
        return utf8(chunk)
    if isinstance(chunk, (bytes, bytearray, memoryview)):
        # NOTE: the servers differ on these (wsgiref refuses them, ASGI wants bytes): copied.
        return bytes(chunk)
    # NOTE: an int went out under ASGI as that many NUL bytes (bytes(5)), and failed under
    # WSGI; a dict failed with "'str' object cannot be interpreted as an integer".
    raise TypeError(f"a streamed response yields bytes or str chunks, not {type(chunk).__name__}")


def close_replaced(request: Request, replaced: Response, final: Response | None) -> None:
    """Close the stream of a response a flow replaced, after the request, as a sent one is.

    Closed once the final response has gone (its stream may read this one: gzip's does), unless
    the final response streams the very same object, which the driver closes.
    """
    chunks = replaced.chunks
    if chunks is None or (final is not None and final.chunks is chunks):
        return
    # NOTE: a close of None is none, as the drivers take it.
    aclose, close = getattr(chunks, "aclose", None), getattr(chunks, "close", None)
    if aclose is not None:
        call: AfterCall = (Colored(aclose, True), (), {})
    elif close is not None:
        call = (Colored(close, is_async_callable(close)), (), {})
    else:
        return
    # NOTE: first of the after-response callbacks, as the driver closes a sent stream before
    # them (one may close the connection a cursor reads: docs/plugins.md); and the last one
    # replaced first, from the outside in, as a wrapper is closed before the stream it reads.
    if request._after is None:
        request._after = AfterCalls([call])
    else:
        request._after.insert(0, call)


# NOTE: ASGI's encoded headers (see encoded_headers), kept for the framework's own headers
# only, so that no app value (a cookie) is kept here.
_CACHED_NAMES = frozenset({"content-type", "content-length"})
# PERF: the labels of a default error (see default_error) encoded once too: the headers of
# an ASGI 404 encoded in 1.6 us, not 2.0 (timeit, 2026-12-05).
_ENCODED: dict[tuple[str, str], tuple[bytes, bytes]] = {
    pair: (pair[0].encode("latin-1"), pair[1].encode("latin-1"))
    for pair in (NOSNIFF, ACCEPT_VARIES)
}


def encoded_headers(headers: list[Header]) -> list[tuple[bytes, bytes]]:
    """Return ``headers`` as ASGI sends them, in latin-1 bytes."""
    # PERF: Content-Type and Content-Length encoded once: 0.13 us for both instead of 0.36.
    encoded = []
    for pair in headers:
        found = _ENCODED.get(pair)
        if found is None:
            found = (pair[0].encode("latin-1"), pair[1].encode("latin-1"))
            if pair[0] in _CACHED_NAMES and len(_ENCODED) < 1024:
                _ENCODED[pair] = found
        encoded.append(found)
    return encoded
