"""Gzip compression of responses, whole or streamed, for the clients that accept it."""

from __future__ import annotations

import asyncio
import re
import zlib
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Generator,
    Iterable,
    Iterator,
)

from microweb import App, Request, Response
from microweb._closing import aclose_both, close_both
from microweb._emission import check_stream, encode_chunk, sized, stream_length
from microweb._files import reads_the_file
from microweb._parsing import MAX_ACCEPT_SIZE, header_value, quality
from microweb._response import StreamBody

from ._vary import add_vary

# NOTE: compressed already, or binary of unknown kind: gzip would cost CPU for nothing. SSE is
# left out too: its events are tiny, and some proxies hold compressed streams back.
SKIPPED_PREFIXES = ("image/", "audio/", "video/")
SKIPPED_TYPES = frozenset(
    {
        "application/gzip",
        "application/octet-stream",
        "application/pdf",
        "application/x-7z-compressed",
        "application/x-bzip2",
        "application/x-gzip",
        "application/x-rar-compressed",
        "application/x-xz",
        "application/zip",
        "application/zstd",
        "font/woff",
        "font/woff2",
        "text/event-stream",
    }
)
TEXTUAL_IMAGES = frozenset({"image/svg+xml", "image/x-icon", "image/vnd.microsoft.icon"})
# SPEC: RFC 9110 8.3.1 and 5.6.2: a type and a subtype, both tokens ("*" is a token character).
MEDIA_RANGE = re.compile(r"[!#$%&'*+.^_`|~0-9a-z-]+/[!#$%&'*+.^_`|~0-9a-z-]+")
GZIP_WBITS = 31  # 16 + 15: a gzip header and trailer around a 32 KiB-window deflate stream
# NOTE: a whole body up to this size is compressed where the flow runs, on the event loop under
# ASGI; a larger one as a stream, which runs in the thread pool there. zlib at level 6 took
# 0.6 ms for 64 KiB of JSON and 12.6 ms for 1 MiB (best of 20, 2-CPU VM, 2026-12-04): each
# such millisecond on the loop is one that no other connection gets (review153: 0.4 s for
# 12.7 MB of text).
INLINE_BODY = 64 * 1024
# NOTE: how much of a large whole body each compress() call takes.
BODY_SLICE = 256 * 1024

Flow = Generator[Response | None, Response, None]


def accepts_gzip(accept_encoding: str) -> bool:
    """Tell whether an ``Accept-Encoding`` value accepts gzip (``q`` above 0).

    SPEC: RFC 9110 12.5.3: ``*`` stands for any coding not listed; ``x-gzip`` is gzip. A value
    longer than ``MAX_ACCEPT_SIZE`` (4096 characters) is not read: the answer is then no, and
    the body goes plain, which every client accepts.
    """
    if len(accept_encoding) > MAX_ACCEPT_SIZE:
        return False
    star = 0.0
    for item in accept_encoding.split(","):
        coding, _, params = item.partition(";")
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            return quality(params) > 0
        if coding == "*":
            star = quality(params)
    return star > 0


def _compressor(level: int) -> zlib._Compress:
    return zlib.compressobj(level, zlib.DEFLATED, GZIP_WBITS)


def _compress_chunk(compressor: zlib._Compress, chunk: bytes | str) -> bytes:
    data = encode_chunk(chunk)
    if not data:
        return b""
    # NOTE: a sync flush ends each chunk on a byte boundary, so it leaves now, decodable as is.
    return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)


def gzip_chunks(chunks: Iterable[bytes | str], level: int) -> GzipStream:
    """Compress a sync stream chunk by chunk (a piece each, then the trailer); closing the
    result closes ``chunks``."""
    # NOTE: drained, the result does not close ``chunks`` (a generator's finally has run by
    # then; an object's close() has not): its close() alone does. Only the GZip plugin makes
    # one, as a response's body, which both drivers close whatever happens (PEP 3333 has the
    # server call close()); closed as the trailer was made, the source's close ran inside the
    # sending under ASGI, with no CLOSE_WAIT bound (see GzipStream).
    # NOTE: gzip's of a file's read is bound to no thread either (see bound_to_no_thread).
    return GzipStream(chunks, level, reads_the_file(chunks))


# NOTE: the streams are objects, not bare generators, for their close: a generator closed
# before its first next() runs no finally, so a driver that closed the body unsent (its
# http.response.start failed: the client gone, the task cancelled) left the app's stream (a
# file, a cursor) open. And the stream they read is closed by their close() alone, which the
# drivers call whatever happens: closed by the generator as it made its trailer, its close ran
# before the ASGI driver's began, unbounded by CLOSE_WAIT (a close that hung held the request).
class GzipStream:
    """The gzip data of a sync stream; closing it closes the stream, read or not.

    ``bound_to_no_thread`` says whether any thread may read it, a few chunks at a time: under
    ASGI it is then read in the pool a batch a call, with no thread held while its client
    takes them, as a file's own read is (true for gzip's of a file or of a whole body).
    """

    __slots__ = ("_compressed", "_iterator", "_level", "_source", "bound_to_no_thread")

    def __init__(
        self,
        source: Iterable[bytes | str] | None,
        level: int,
        bound_to_no_thread: bool,
        compressed: Generator[bytes, None, None] | None = None,
    ) -> None:
        self._source = source
        self._level = level
        self._iterator: Iterator[bytes | str] | None = None
        self._compressed = compressed
        # NOTE: held in one pool thread, gzip's of a large file waited there while its client
        # took each chunk: App.max_threads slow clients held the pool (review186).
        self.bound_to_no_thread = bound_to_no_thread

    def __iter__(self) -> GzipStream:
        return self

    def __next__(self) -> bytes:
        compressed = self._compressed
        if compressed is None:
            # NOTE: a stream whose iter() raises is closed by close() all the same.
            self._iterator = iter(self._source or ())
            compressed = self._compressed = _compressed(self._iterator, self._level)
        return next(compressed)

    def close(self) -> Awaitable[object] | None:
        """Close the compressed stream and the one it reads (the iterator it gave first), once;
        return what is left to await (see ``close_of()``)."""
        compressed, iterator, source = self._compressed, self._iterator, self._source
        self._iterator = self._source = None
        if compressed is not None:
            compressed.close()
        return close_both(iterator, source)


class AsyncGzipStream:
    """The gzip data of an async stream; closing it closes the stream, read or not."""

    __slots__ = ("_compressed", "_iterator", "_level", "_source")

    def __init__(self, chunks: AsyncIterable[bytes | str], level: int) -> None:
        self._source: AsyncIterable[bytes | str] | None = chunks
        self._level = level
        self._iterator: AsyncIterator[bytes | str] | None = None
        self._compressed: AsyncGenerator[bytes, None] | None = None

    def __aiter__(self) -> AsyncGzipStream:
        return self

    async def __anext__(self) -> bytes:
        compressed = self._compressed
        if compressed is None:
            self._iterator = aiter(self._source or _nothing())
            compressed = self._compressed = _acompressed(self._iterator, self._level)
        return await anext(compressed)

    async def aclose(self) -> None:
        """Close the compressed stream and the one it reads (the iterator it gave first), once."""
        compressed, iterator, source = self._compressed, self._iterator, self._source
        self._iterator = self._source = None
        if compressed is not None:
            await compressed.aclose()
        await aclose_both(iterator, source)


def _compressed(chunks: Iterator[bytes | str], level: int) -> Generator[bytes, None, None]:
    compressor = _compressor(level)
    for chunk in chunks:
        data = _compress_chunk(compressor, chunk)
        if data:
            yield data
    yield compressor.flush()


def _compressed_body(body: bytes, level: int) -> Generator[bytes, None, None]:
    """Compress a large whole body slice by slice, as a stream: flushed only at its end."""
    compressor = _compressor(level)
    for start in range(0, len(body), BODY_SLICE):
        data = compressor.compress(body[start : start + BODY_SLICE])
        if data:
            yield data
    yield compressor.flush()


async def _acompressed(
    chunks: AsyncIterator[bytes | str], level: int
) -> AsyncGenerator[bytes, None]:
    compressor = _compressor(level)
    async for chunk in chunks:
        # NOTE: measured only once it is a chunk: an int or None failed with "object of
        # type 'int' has no len()", not the TypeError that names the stream's chunk.
        if isinstance(chunk, (str, bytes, bytearray, memoryview)) and len(chunk) > INLINE_BODY:
            # NOTE: off the event loop, as a large whole body is (zlib lets go of the GIL):
            # a 1 MiB chunk held the loop 12.6 ms, for every connection (review181).
            data = await asyncio.to_thread(_compress_chunk, compressor, chunk)
        else:
            data = _compress_chunk(compressor, chunk)
        if data:
            yield data
    yield compressor.flush()


async def _nothing() -> AsyncGenerator[bytes, None]:
    """An async stream with no chunk: what a closed ``AsyncGzipStream`` reads."""
    return
    yield b""  # pragma: no cover


def _no_transform(lines: list[str]) -> bool:
    """Tell whether ``Cache-Control`` lines hold the ``no-transform`` directive.

    NOTE: every line is read (a handler may add ``no-transform`` on a line of its own, which
    means the same as one line: RFC 9110 5.3), and directives are matched by name, not as text:
    a ``no-transform`` on a line after ``public, max-age=60`` was compressed.
    """
    for line in lines:
        for directive in line.split(","):
            if directive.partition("=")[0].strip().lower() == "no-transform":
                return True
    return False


def _media_types(media_types: Iterable[str]) -> frozenset[str]:
    """Return ``media_types`` in lower case, each checked to be one that can match.

    NOTE: a type is matched without its parameters, and ``*/*`` matches nothing: with
    ``"text/html; charset=utf-8"``, ``"text/html "`` or ``"*/*"`` listed, nothing was
    compressed, and nothing said why.

    Raises:
        ValueError: For an entry that is not ``type/subtype`` or ``type/*``.
    """
    checked = set()
    for media_type in media_types:
        lowered = media_type.lower()
        if lowered == "*/*":
            raise ValueError("media_types=['*/*']: leave media_types out to compress every type")
        if not MEDIA_RANGE.fullmatch(lowered) or lowered.startswith("*/"):
            raise ValueError(
                f"media_types takes types without parameters or spaces, such as 'text/html' "
                f"or 'text/*', not {media_type!r}"
            )
        checked.add(lowered)
    return frozenset(checked)


def _weaken(response: Response) -> None:
    etag = response.headers.get("etag")
    if etag and not etag.startswith("W/"):
        # SPEC: RFC 9110 8.8.3: another encoding, other bytes: the tag is weak for them.
        response.headers["etag"] = f"W/{etag}"


class GZip:
    """Compress responses with gzip for clients whose ``Accept-Encoding`` allows it.

    Whole bodies of at least ``minimum_size`` bytes are compressed at once, up to
    ``INLINE_BODY`` (64 KiB); a larger one is compressed as a stream (in the thread pool under
    ASGI, not on the event loop), sent without ``Content-Length``. Streamed bodies
    (``Response.stream``, ``Response.file``) are compressed as they go, each chunk flushed so
    that it leaves when it comes. A ``HEAD`` answer gets the headers the ``GET`` answer would
    have. Responses that already have a ``Content-Encoding``, bodiless and partial answers,
    ``Cache-Control: no-transform`` and media types that do not compress (images, audio,
    video, archives, fonts, SSE...) are left alone.

    Args:
        minimum_size: Bodies smaller than this many bytes are sent as they are (an empty
            one always is).
        compresslevel: From 1 (fastest) to 9 (smallest); 0 stores without compressing.
        media_types: Only compress these media types (``"text/*"`` covers a whole type but
            for the types known not to compress, such as ``text/event-stream``, which must be
            listed by name); by default, every type but the ones known not to compress.

    Raises:
        ValueError: If ``minimum_size`` is negative, ``compresslevel`` not in 0 to 9, or an
            entry of ``media_types`` is not ``type/subtype`` or ``type/*`` (parameters,
            spaces, ``*/*``).
        TypeError: If ``compresslevel`` is not an ``int``, or ``media_types`` is one string.
    """

    name = "gzip"

    def __init__(
        self,
        minimum_size: int = 500,
        compresslevel: int = 6,
        media_types: Iterable[str] | None = None,
    ) -> None:
        if minimum_size < 0:
            raise ValueError(f"minimum_size must be 0 or more, got {minimum_size}")
        if not isinstance(compresslevel, int):
            # NOTE: 6.0 passed the range check, and zlib refused it at each compressed response.
            raise TypeError(f"compresslevel must be an int from 0 to 9, got {compresslevel!r}")
        if not 0 <= compresslevel <= 9:
            raise ValueError(f"compresslevel must be from 0 to 9, got {compresslevel}")
        if isinstance(media_types, str):
            raise TypeError(f"media_types takes a list of strings: [{media_types!r}]")
        self.minimum_size = minimum_size
        self.compresslevel = compresslevel
        self.media_types = None if media_types is None else _media_types(media_types)

    def setup(self, app: App) -> None:
        """Add the flow that compresses responses on their way out."""
        app.middleware(self.flow)

    def flow(self, request: Request) -> Flow:
        """Compress the response of the rest of the stack when it is worth it.

        A file's 304 and 206 answers are settled before flows run, so a file response seen
        here with status 200 is the whole file, to compress like any other.
        """
        response = yield None
        if response.status == 304:
            self.not_modified(request, response)
            return
        if response.chunks is not None and not _is_stream(response.chunks):
            # NOTE: compressed lazily, response.chunks = 5 passed the drivers' check as this
            # plugin's stream and failed once the 200 had gone. Left, it is the app's logged 500.
            return
        if response.status == 206:
            self.partial(response)
            return
        if not self.eligible(request, response):
            return
        # NOTE: whether or not this client gets gzip, a cache must know the answer depends on it.
        add_vary(response, "Accept-Encoding")
        if not accepts_gzip(header_value(request.headers, "accept-encoding") or ""):
            return
        if request.method == "HEAD" and response.chunks is not None:
            # SPEC: RFC 9110 9.3.2: HEAD carries the GET answer's headers (its ETag included);
            # the stream is never sent, so it is left as it is for the server to close.
            if isinstance(response.chunks, (list, tuple)):
                # NOTE: counted as the GET's is (a 500 when it is not the declared length):
                # left, the HEAD answered 200 where the GET answered 500 (review184).
                _held_to_length(response.chunks, response)
            self.label(response)
            response.length = None
            response.file_info = None
            return
        self.compress(response)

    def compressible(self, media_type: str) -> bool:
        """Tell whether responses of ``media_type`` (no parameters) are compressed."""
        if self.media_types is not None:
            if media_type in self.media_types:
                return True
            # NOTE: a whole type ("text/*") leaves out the types that don't compress: with the
            # docs' own list, SSE streams were compressed, which some proxies hold back.
            major = media_type.partition("/")[0]
            return f"{major}/*" in self.media_types and media_type not in SKIPPED_TYPES
        if media_type in TEXTUAL_IMAGES:
            return True
        return media_type not in SKIPPED_TYPES and not media_type.startswith(SKIPPED_PREFIXES)

    def eligible(self, request: Request, response: Response) -> bool:
        """Tell whether ``response`` may be compressed (its answer then varies by client)."""
        status = response.status
        if status < 200 or status in (204, 205, 206, 304) or not self.encodable(response):
            return False
        size = len(response.body) if response.chunks is None else response.length
        return size is None or self._large_enough(size)

    def _large_enough(self, size: int) -> bool:
        # NOTE: never an empty body, whatever minimum_size says: gzip made 20 bytes of nothing,
        # and a redirect went out labelled Content-Encoding: gzip.
        return size > 0 and size >= self.minimum_size

    def encodable(self, response: Response) -> bool:
        """Tell whether ``response``'s headers and media type allow compressing it, size aside."""
        return "content-range" not in response.headers and self._transformable(response)

    def _transformable(self, response: Response) -> bool:
        headers = response.headers
        if "content-encoding" in headers:
            return False
        if _no_transform(headers.getlist("cache-control")):
            return False
        content_type = headers.get("content-type") or "application/octet-stream"
        return self.compressible(content_type.partition(";")[0].strip().lower())

    def not_modified(self, request: Request, response: Response) -> None:
        """Give a 304 answer the ``Vary`` and ``ETag`` of the 200 answer it stands for.

        SPEC: RFC 9110 15.4.5: a 304 carries the ``ETag`` and ``Vary`` a 200 would have; else
        a cache would store the strong tag of the plain file with its gzip copy.
        """
        if not self.encodable(response):
            return
        # NOTE: a file's 304 keeps the file's size in ``length``: a file under minimum_size
        # gets a plain 200, with no Vary and its strong ETag, and so does its 304. An app's own
        # 304 has no size and is labelled as a large body's when it has a Content-Type that
        # compresses; without one (the usual 304) it is left as the app made it.
        if response.length is not None and not self._large_enough(response.length):
            return
        add_vary(response, "Accept-Encoding")
        if accepts_gzip(header_value(request.headers, "accept-encoding") or ""):
            response.headers.pop("accept-ranges")  # NOTE: as on the gzip 200 (see label).
            _weaken(response)

    def partial(self, response: Response) -> None:
        """Give a 206 answer the ``Vary`` of the 200 answer its whole file would get.

        SPEC: RFC 9110 15.3.7: a 206 carries the ``Vary`` a 200 to the same request would
        have; else a cache that stored the plain part would take it for every client.
        """
        if not self._transformable(response):
            return
        _, _, total = response.headers.get("content-range", "").rpartition("/")
        if total.isdigit() and int(total) < self.minimum_size:
            return
        add_vary(response, "Accept-Encoding")

    def label(self, response: Response) -> None:
        """Set the headers of a gzip answer on ``response``, leaving its body alone."""
        headers = response.headers
        headers["content-encoding"] = "gzip"
        headers.pop("content-length")
        headers.pop("accept-ranges")  # NOTE: ranges of the compressed bytes are not offered.
        _weaken(response)

    def compress(self, response: Response) -> None:
        """Compress ``response``'s body in place and label it ``Content-Encoding: gzip``."""
        self.label(response)
        chunks = response.chunks
        if chunks is None:
            body = response.body
            if len(body) <= INLINE_BODY:
                compressor = _compressor(self.compresslevel)
                response.body = compressor.compress(body) + compressor.flush()
                return
            response.body = b""
            # NOTE: a length left on a whole body (a flow that read a file response into
            # response.body keeps the file's) was held against the compressed stream: the
            # response was cut as an error (before review168, sent under that Content-Length).
            compressed = _compressed_body(body, self.compresslevel)
            stream = GzipStream(None, self.compresslevel, True, compressed)
            response.chunks, response.length = stream, None
            response.file_info = None
            return
        chunks = _held_to_length(chunks, response)
        if isinstance(chunks, AsyncIterable):
            response.chunks = AsyncGzipStream(chunks, self.compresslevel)
        else:
            response.chunks = gzip_chunks(chunks, self.compresslevel)
        # NOTE: the compressed length is unknown, and the bytes are no longer the file's.
        response.length = None
        response.file_info = None


def _is_stream(chunks: object) -> bool:
    try:
        check_stream(chunks)
    except TypeError:
        return False
    return True


def _held_to_length(chunks: StreamBody, response: Response) -> StreamBody:
    """Return ``chunks``, ``response``'s stream, held to the length the app declared, if any.

    Raises:
        StreamLengthError: For a list or tuple of chunks of another length (see ``sized``).
    """
    length, held = stream_length(response)
    if length is not None and not held:
        # NOTE: held to the length the app declared, as when it is sent: a stream that ended
        # short went out as a whole gzip body, the part taken for all (review181).
        chunks = sized(chunks, length)
    return chunks
