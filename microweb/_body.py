"""The WSGI request body source (``wsgi.input``, read from either colour), and what both
drivers' body sources share: the chunk sizes and the ``Content-Length`` parser. The ASGI
source is ``_asgi_body``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from contextlib import suppress
from typing import Any

from ._buffer import BodyBuffer, BodyMeter, JSONMeter
from ._errors import ClientDisconnect, HTTPError
from ._framing import UNSUPPORTED_CODING, transfer_coding_refusal
from ._limits import Limits
from ._types import Environ

CHUNK_SIZE = 64 * 1024
# NOTE: the most chunks a bridge takes per hop between threads. A def handler under ASGI takes
# up to HOP_CHUNKS of receive()'s messages, which the server holds already (1 MiB).
HOP_CHUNKS = 16
# NOTE: an async def handler under WSGI reads up to READ_HOP_CHUNKS of wsgi.input in a worker
# thread; those are new bytes, alive until the handler has them all (256 KiB).
# PERF: 16 chunks a hop grew a streamed 5 MiB upload's RSS by 1.9-2.4 MiB under Waitress (one
# 64 KiB read at a time, def: 0.2 MiB); 4 a hop by 0-0.6 MiB, for aform() of 10 MiB in 9.0-9.3
# ms instead of 7.6-8.6 (`bench/cells.py --repeats 20 --only`, alternating, 2-CPU VM,
# 2026-12-01).
READ_HOP_CHUNKS = 4
DEFAULT_BODY_LIMIT = Limits().max_body_size
# NOTE: int() of thousands of digits is slow and then raises; no real length needs 19.
MAX_LENGTH_DIGITS = 18


def parse_content_length(value: str | None) -> int | None:
    """Parse a ``Content-Length`` value.

    Raises:
        HTTPError: 400 for a value that is not a whole number.
    """
    if value is None or value == "":
        return None
    value = value.strip()
    if not (value.isascii() and value.isdigit()):
        raise HTTPError(400, "invalid Content-Length")
    if len(value) > MAX_LENGTH_DIGITS:
        # SPEC: RFC 9110 8.6, 1*DIGIT: leading zeros are valid, and Waitress, h11 and
        # httptools frame the body by the number they spell ("0...05" is 5 bytes): a 413 for
        # it refused a body the server had read. Stripped (in linear time) before the count.
        value = value.lstrip("0") or "0"
        if len(value) > MAX_LENGTH_DIGITS:
            raise HTTPError(413, "request body is too large")
    return int(value)


def check_transfer_coding(values: Iterable[str]) -> None:
    """Refuse a ``Transfer-Encoding`` (its field lines' ``values``) other than ``chunked``.

    Raises:
        HTTPError: 501 for any other (``gzip, chunked``, ``chunked, chunked``): what the
            servers refuse before the app (``transfer_coding_refusal()``), with 400 unless
            a coding comes before chunked.
    """
    # NOTE: the app reads a Transfer-Encoding that a server passed on (httptools, "gzip,
    # chunked", its body still coded) or that no server parsed (the test client's).
    if transfer_coding_refusal(values) is not None:
        raise HTTPError(501, UNSUPPORTED_CODING)


# NOTE: held while a read of a body claims it or ends (Request._claim()), and by ReadDone: a
# def handler's read runs in a pool thread (under WSGI, the server's) while a flow's task
# reads on the loop. Never held across a wait or any I/O.
CLAIM = threading.Lock()


class ReadDone:
    """The end of a read of the body that keeps it, told to the reads that wait to share it:
    in a task of any event loop (``await wait()``) or in a thread (``wait_blocking()``)."""

    __slots__ = ("_done", "_waiters")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        """Wake every read waiting, whatever its thread."""
        with CLAIM:
            self._done.set()
            waiters, self._waiters = self._waiters, []
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, future in waiters:
            if loop is running:
                _wake(future)  # NOTE: another task of this loop (asyncio.gather).
            elif not loop.is_closed():
                with suppress(RuntimeError):  # NOTE: closed meanwhile: no one waits there.
                    loop.call_soon_threadsafe(_wake, future)

    async def wait(self) -> None:
        with CLAIM:
            if self._done.is_set():
                return
            loop = asyncio.get_running_loop()
            future = loop.create_future()
            self._waiters.append((loop, future))
        await future

    def wait_blocking(self) -> None:
        """Wait in a thread where no event loop runs (the sync reads are refused elsewhere)."""
        # NOTE: no timed check of the reader's loop, as wait_for() makes: a loop that stops
        # (the WSGI app loop at the app's close, asyncio.run() at a server's) cancels the
        # reader's task, whose read ends in its finally (_end_read()) and sets this; the waiter
        # then gets the error of a read that waited for a cancelled one (review276). Only a
        # loop closed with its tasks left pending, which none of those does, would leave it.
        # Under ASGI a thread waits through a hop to the loop instead (LoopReadDone).
        self._done.wait()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # NOTE: not a waiter cancelled meanwhile.
        future.set_result(None)


def _read_chunks(
    stream: Any,
    room: int | None,
    count: int,
    stop: threading.Event,
    client_left: Callable[[OSError], ClientDisconnect],
) -> tuple[list[bytes], Exception | None]:
    """Read up to ``count`` chunks of ``CHUNK_SIZE``, ``room`` bytes in all; blocking.

    Returns the chunks (fewer at the end of the stream, or once ``stop`` is set) and the error
    of a read that failed after some of them: the caller hands those on before raising it.
    ``client_left`` makes the error of an ``OSError`` (the body's ``_client_left``).
    """
    chunks: list[bytes] = []
    try:
        for _ in range(count):
            size = CHUNK_SIZE if room is None else min(CHUNK_SIZE, room)
            if size <= 0 or stop.is_set():
                break
            chunk = stream.read(size)
            if not chunk:
                break
            chunks.append(chunk)
            if room is not None:
                room -= len(chunk)
    except OSError as exc:
        if not chunks:
            raise client_left(exc) from exc
        return chunks, client_left(exc)
    except Exception as exc:
        if not chunks:
            raise
        return chunks, exc
    return chunks, None


class _GivenBack:
    """A ``wsgi.input`` whose first bytes are some that a read gave back.

    It stands for the server's input in the environ too, so a reader of ``wsgi.input`` (a
    middleware, once the app is done) gets them as well: ``read``, ``readline``, ``readlines``
    and iteration, as PEP 3333 asks of an input. Once they are all read, each call goes to the
    server's input as it was made (a ``read()`` with no size stays one).
    """

    __slots__ = ("_at", "_rest", "_stream")

    def __init__(self, rest: bytes, stream: Any) -> None:
        self._rest, self._at, self._stream = rest, 0, stream

    def prepend(self, data: bytes) -> None:
        """Put ``data`` before the bytes still to read."""
        self._rest, self._at = data + self._rest[self._at :], 0

    def _given(self, stop: int) -> bytes:
        """Take the given-back bytes up to ``stop``; let them go once all are taken."""
        given = self._rest[self._at : stop]
        self._at += len(given)
        if self._at >= len(self._rest):
            self._rest, self._at = b"", 0
        return given

    def read(self, *size: int | None) -> bytes:
        if not self._rest:
            read: bytes = self._stream.read(*size)
            return read
        wanted = size[0] if size else None
        if wanted is None or wanted < 0:
            given = self._given(len(self._rest))
            tail: bytes = self._stream.read(*size)
            return given + tail
        given = self._given(self._at + wanted)
        if len(given) < wanted and not self._rest:
            # NOTE: the given-back bytes ended inside the read: the server's input has the
            # rest. A read cut short there looked like the body's end (review338).
            more: bytes = self._stream.read(wanted - len(given))
            return given + more
        return given

    def readline(self, *size: int | None) -> bytes:
        if not self._rest:
            line: bytes = self._stream.readline(*size)
            return line
        wanted = size[0] if size else None
        end = self._rest.find(b"\n", self._at)
        stop = len(self._rest) if end < 0 else end + 1
        if wanted is not None and wanted >= 0:
            stop = min(stop, self._at + wanted)
        given = self._given(stop)
        if given.endswith(b"\n") or self._rest or (wanted is not None and len(given) >= wanted):
            return given
        # NOTE: the given-back bytes ended inside the line: the server's input has its rest.
        rest: bytes = (
            self._stream.readline(wanted - len(given))
            if wanted is not None and wanted >= 0
            else self._stream.readline()
        )
        return given + rest

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        lines: list[bytes] = []
        size = 0
        for line in self:
            lines.append(line)
            size += len(line)
            if hint is not None and 0 < hint <= size:
                break
        return lines

    def __iter__(self) -> Iterator[bytes]:
        while line := self.readline():
            yield line


class WSGIBody:
    """The body of a WSGI request, read from ``wsgi.input`` in bounded chunks."""

    __slots__ = ("_environ", "_given", "disconnected", "ended")
    # NOTE: a WSGI server hands the body over as it is read: nothing is held before a read.
    overflowed = False
    lock = CLAIM

    def __init__(self, environ: Environ) -> None:
        # PERF: the environ is read when the body is, not for every request: 0.11 us to make
        # instead of 0.14.
        self._environ = environ
        # NOTE: whether a read of wsgi.input failed: the client is gone, whatever became of
        # the ClientDisconnect raised then (a parser raises it again "from None"; app code
        # may raise one of its own from it). The driver's stream ends quietly only then.
        self.disconnected = False
        # NOTE: set once the response is out (before the after-response callbacks): the
        # request has ended, as the ASGI body says then.
        self.ended = False
        # NOTE: what a JSON read past max_json_size gave back, before the rest of wsgi.input.
        self._given: _GivenBack | None = None

    def _client_left(self, exc: OSError) -> ClientDisconnect:
        """The error of a ``wsgi.input`` read that failed: the client reset the connection."""
        self.disconnected = True
        error = ClientDisconnect(f"the client disconnected while its body was read ({exc})")
        error.__cause__ = exc
        return error

    def is_disconnected(self) -> bool:
        if self.ended:
            return True
        # NOTE: only Waitress tells a WSGI app that the client left; elsewhere this stays False.
        disconnected = self._environ.get("waitress.client_disconnected")
        return bool(disconnected()) if disconnected is not None else False

    async def ais_disconnected(self) -> bool:
        return self.is_disconnected()

    @property
    def content_length(self) -> int | None:
        coding = self._environ.get("HTTP_TRANSFER_ENCODING")
        if coding is not None:
            check_transfer_coding((coding,))
            # SPEC: RFC 9112 6.3, Content-Length is ignored when Transfer-Encoding is present.
            # (Waitress itself drops Transfer-Encoding and sets the length it decoded.)
            return None
        return parse_content_length(self._environ.get("CONTENT_LENGTH"))

    @property
    def content_encoding(self) -> str | None:
        return self._environ.get("HTTP_CONTENT_ENCODING")

    def _remaining(self, length: int | None) -> int | None:
        if length is None:
            # SPEC: PEP 3333 leaves a body without Content-Length empty unless the server says
            # it terminates the stream itself (wsgi.input_terminated, for chunked requests).
            return None if self._environ.get("wsgi.input_terminated") else 0
        return length

    def chunks(self, meter: BodyMeter, size: int | None = None) -> Iterator[bytes]:
        most = CHUNK_SIZE if size is None else size
        remaining = self._remaining(self.content_length)
        stream = self._given or self._environ["wsgi.input"]
        while remaining is None or remaining > 0:
            try:
                chunk = stream.read(most if remaining is None else min(most, remaining))
            except OSError as exc:
                raise self._client_left(exc) from exc
            if not chunk:
                break
            if remaining is not None:
                remaining -= len(chunk)
            yield self._count(meter, chunk, stream)
        meter.finish()

    def _count(self, meter: BodyMeter, chunk: bytes, stream: Any) -> bytes:
        """Count ``chunk``; past ``max_json_size`` of a body of unknown length (a
        ``JSONMeter``'s limit, below ``max_body_size``), give it back before refusing it."""
        meter.total += len(chunk)
        if meter.total > meter.bound:
            # NOTE: json()'s 413 left nothing to read: a read() after it got that 413 too,
            # where a body of the same size with a Content-Length, refused before a byte was
            # read, was read() whole (review319). The reader gives back what it read before
            # (prepend()): at most max_json_size and one chunk.
            if type(meter) is JSONMeter and meter.expected is None and meter.total > meter.limit:
                self._given = _GivenBack(chunk, stream)
                # NOTE: in the environ too, so that a reader of wsgi.input (a middleware once
                # the app is done) does not miss what json() read (review331).
                self._environ["wsgi.input"] = self._given
                meter.given_back = True
            meter.refuse()
        return chunk

    def _prepend(self, meter: BodyMeter, read: bytes) -> None:
        """Give back ``read``, what came before the chunk that ``_count()`` gave back."""
        if self._given is not None and type(meter) is JSONMeter and meter.given_back:
            self._given.prepend(read)

    def read_all(self, meter: BodyMeter) -> bytes:
        """Read the whole body, each chunk counted by ``meter`` (``finish()`` is the caller's)."""
        # PERF: a loop, not chunks() under a generator that counts: a request whose def
        # handler reads a 1 KB body takes 5.1 us instead of 6.4. The meter's length is the
        # Content-Length, parsed once.
        remaining = self._remaining(meter.expected)
        stream = self._given or self._environ["wsgi.input"]
        try:
            if remaining is not None and remaining <= CHUNK_SIZE:
                # NOTE: the usual body, asked for in one read; a short read goes on below.
                body = meter.count(stream.read(remaining) if remaining else b"")
                if len(body) == remaining or not body:
                    return body
                remaining -= len(body)
            else:
                body = b""
            buffer = BodyBuffer()
            buffer.add(body)
            while remaining is None or remaining > 0:
                size = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                chunk = stream.read(size)
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                buffer.add(self._count(meter, chunk, stream))
        except OSError as exc:
            raise self._client_left(exc) from exc
        except HTTPError:
            if type(meter) is JSONMeter and meter.given_back:
                # NOTE: only the loop gives back (a body of unknown length), so buffer is set:
                # the one read of a short body has none, and its 400 (an input that gave more
                # than asked) was an UnboundLocalError here, a 500.
                self._prepend(meter, buffer.take())
            raise
        return buffer.take()

    async def achunks(self, meter: BodyMeter) -> AsyncGenerator[bytes, None]:
        remaining = self._remaining(self.content_length)
        stream = self._given or self._environ["wsgi.input"]
        if remaining is not None and remaining <= CHUNK_SIZE:
            # NOTE: a small body is read inline, as chunks() reads it, with no thread hop.
            for chunk in self.chunks(meter):
                yield chunk
            return
        # NOTE: a larger body is read in a worker thread, so that a slow wsgi.input never
        # stalls the app loop that all async handlers share: one chunk in the first hop, then
        # twice as many each hop, up to READ_HOP_CHUNKS (a slow client's first bytes come at
        # once).
        # PERF: a 10 MiB upload took 160 hops of one chunk, then 14 of up to 16 (now 42 of up
        # to 4: see READ_HOP_CHUNKS). aform() in an async def handler under WSGI,
        # `bench/cells.py --only`, two runs each way (2-CPU VM, 2026-11-30): 17.4-18.4 ms ->
        # 9.8 ms.
        count, stop = 1, threading.Event()
        while remaining is None or remaining > 0:
            # NOTE: a body of unknown length is read to one byte past the limit, no further:
            # enough for the meter's 413.
            room = meter.bound - meter.total + 1 if remaining is None else remaining
            try:
                chunks, error = await asyncio.to_thread(
                    _read_chunks, stream, room, count, stop, self._client_left
                )
            except asyncio.CancelledError:
                # NOTE: the handler gave up (a timeout): its thread ends the read under way
                # and reads no more of wsgi.input, which the server may read again.
                stop.set()
                raise
            for chunk in chunks:
                if remaining is not None:
                    remaining -= len(chunk)
                yield self._count(meter, chunk, stream)
            if error is not None:
                try:
                    raise error  # NOTE: after the chunks read before it, as chunks() does.
                finally:
                    del error  # NOTE: no cycle through this frame and the traceback.
            if not chunks:
                break  # NOTE: the stream ended (before Content-Length, for a short body).
            # PERF: let go of this hop's bytes before the next hop reads. Emptied, not only
            # dropped: the finished future of the thread's read holds this list too, until the
            # loop has run on past the next read's start. A 4 MiB body's traced peak: 2.05-2.32
            # hops in most runs -> 1.31 in every run (tracemalloc, 2026-12-01).
            chunks.clear()
            del chunk
            count = min(count * 2, READ_HOP_CHUNKS)
        meter.finish()

    def signal(self) -> ReadDone:
        return ReadDone()

    async def aread_all(self, meter: BodyMeter) -> bytes:
        """Read the whole body from async code, each chunk counted by ``meter``."""
        remaining = self._remaining(meter.expected)
        if remaining is not None and remaining <= CHUNK_SIZE:
            # PERF: a small body read inline, as achunks() does, but with no async generator:
            # a request whose async def handler reads 1 KB, 38 us instead of 45 (bridge).
            return self.read_all(meter)
        buffer = BodyBuffer()
        try:
            async for chunk in self.achunks(meter):
                buffer.add(chunk)
        except HTTPError:
            self._prepend(meter, buffer.take())
            raise
        return buffer.take()
