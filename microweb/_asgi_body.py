"""The ASGI request body source: ``receive()``'s messages, read from either colour.

An ``async def`` handler awaits them on the loop; a ``def`` handler in the pool takes them
through the loop in hops (``HOP_CHUNKS``). The same source tells when the client has gone.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from ._app_loop import run_on_loop
from ._asgi_body_terms import LoopReadDone, default_limit, framing, warn_stalled
from ._body import (
    CHUNK_SIZE,
    CLAIM,
    HOP_CHUNKS,
    MAX_LENGTH_DIGITS,
    ReadDone,
    parse_content_length,
)
from ._buffer import BodyBuffer, BodyMeter, JSONMeter
from ._concurrency import coroutine_of
from ._errors import ClientDisconnect, HTTPError
from ._types import Message, Receive

if TYPE_CHECKING:
    from ._request import Request

T = TypeVar("T")
# NOTE: held while ASGIBody._stalled() sets a request's flag: one warning a request.
_TOLD = threading.Lock()
# NOTE: a header line's name.
_NAME = itemgetter(0)


class MessageChunks:
    """The chunks of an ``ASGIBody``, one ``http.request`` message's bytes at a time.

    What ``achunks()`` returns: an async iterator that ``aclose()`` stops, each chunk counted by
    the meter, which is finished at the end of the body (not after ``aclose()``).
    """

    __slots__ = ("_meter", "_more", "_open", "_source")

    def __init__(self, source: ASGIBody, meter: BodyMeter) -> None:
        self._source, self._meter = source, meter
        # NOTE: _more: messages remain; _open: the meter is still to finish.
        self._more = self._open = True

    def __aiter__(self) -> MessageChunks:
        return self

    async def __anext__(self) -> bytes:
        # PERF: a coroutine method, not an async generator (each of whose yields raises a
        # StopIteration inside the interpreter), with the message read and counted right here,
        # not by _body_of() and meter.count(): aiter_parts() of a 10 MiB upload in 64 KiB
        # messages, 18.70M -> 18.47M instructions a request (valgrind, PYTHONHASHSEED=0,
        # 2026-11-30).
        source = self._source
        while self._more:
            message = await source._next_message()
            if message["type"] == "http.disconnect":
                raise source._client_left()
            body: bytes = message.get("body", b"")
            self._more = message.get("more_body", False)
            if body:
                meter = self._meter
                meter.total += len(body)
                if meter.total > meter.bound:
                    meter.refuse()
                return body
        if self._open:
            self._open = False
            self._meter.finish()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Read no more of the body."""
        self._more = self._open = False


class ASGIBody:
    """The body of an ASGI request, pulled from ``receive()``.

    A ``def`` handler in the pool reads it through the loop, one message at a time, so nothing
    is buffered whole. The same source tells when the client has gone: while a response streams
    (the driver's watcher) and for ``ais_disconnected()``. The body bytes that those checks
    receive are kept for the reader in one buffer, up to the body limit.
    """

    __slots__ = (
        "_awaited",
        "_early",
        "_early_end",
        "_has_early",
        "_headers",
        "_hop",
        "_kept",
        "_loop",
        "_names",
        "_overflow",
        "_pending",
        "_receive",
        "_stall_told",
        "_watching",
        "disconnected",
        "ended",
        "limit",
        "reader",
        "sends_dropped",
    )
    lock = CLAIM

    def __init__(
        self,
        scope_headers: list[tuple[bytes, bytes]],
        receive: Receive,
        loop: asyncio.AbstractEventLoop,
        reader: Request | None = None,
    ) -> None:
        # NOTE: the loop the request runs on: a def handler reads through it from the pool.
        self._headers = scope_headers
        # NOTE: the names of the headers, once read (_lowered_names()).
        self._names: list[bytes] | None = None
        self._receive = receive
        self._loop = loop
        # NOTE: one buffer, not the messages: a body dripped a byte per message would cost
        # ~200 bytes per byte as dicts (TRAPS.md 27). _early_end: the last message is kept too.
        # PERF: made when a message is kept, rarely: 0.1 us less a request.
        self._early: BodyBuffer | None = None
        self._has_early = self._early_end = self._overflow = self._watching = False
        # NOTE: whether _stalled() has warned for this request: once, not at each hop of a read.
        self._stall_told = False
        self.disconnected = False
        # NOTE: the server's word that what is sent is dropped (SENDS_DROPPED), if it gives one.
        self.sends_dropped: Callable[[], bool] | None = None
        self._kept = 0
        self._pending: asyncio.Future[Message] | None = None
        # NOTE: the task of a pool thread's hop in progress, and whether the request ended
        # (close()): a hop still waiting then is cancelled, so the thread is not held; a read
        # that starts then is refused (Request._start()).
        self._hop: asyncio.Task[Any] | None = None
        self.ended = False
        self.limit: Callable[[], int] = default_limit
        # NOTE: the request whose body this is, named by the warning of a thread's read that
        # waits for a held loop (_stalled); None once it ended, as the limit is let go.
        self.reader = reader
        self._awaited: Callable[[], object] | None = None

    def tell_awaited(self, awaited: Callable[[], object]) -> None:
        """Call ``awaited`` when a reader first waits for the body (``BODY_AWAITED``)."""
        self._awaited = awaited

    @property
    def content_length(self) -> int | None:
        names = self._lowered_names()
        headers = self._headers
        if b"transfer-encoding" not in names and names.count(b"content-length") == 1:
            # PERF: the usual framing, one Content-Length of ASCII digits alone (what
            # bytes.isdigit() takes), found by the names' list in C and parsed from the bytes
            # as parse_content_length() would parse it decoded, with no loop and no call; any
            # other goes the general way below: valgrind instructions per request, ASGI echo
            # 317,623 -> 315,521 (the digits), 315,268 -> 313,992 (the names)
            # (bench/icount.sh, PYTHONHASHSEED=0, 2026-12-06).
            length = headers[names.index(b"content-length")][1]
            if length.isdigit() and len(length) <= MAX_LENGTH_DIGITS:
                return int(length)
        chunked, found = framing(headers)
        # SPEC: RFC 9112 6.3, Content-Length is ignored when Transfer-Encoding is present.
        if chunked or found is None:
            return None
        return parse_content_length(found.decode("latin-1"))

    @property
    def content_encoding(self) -> str | None:
        # PERF: read by every json(), text() and form(): 0.3 us for five headers (timeit,
        # 2026-12-05), where request.headers would build them all; none looked for in C
        # first (see content_length).
        if b"content-encoding" not in self._lowered_names():
            return None
        found = None
        for name, value in self._headers:
            if name == b"content-encoding":
                text = value.decode("latin-1")
                found = text if found is None else f"{found}, {text}"
        return found

    def _lowered_names(self) -> list[bytes]:
        """The names of the scope's headers, all lowered once if a server kept the client's
        case (and ``_headers`` with them)."""
        names = self._names
        if names is None:
            # NOTE: looked for again lowered only when missing as sent, "content-length: 4"
            # hid a "Content-Length: 3" (a 400 in one case), a "Transfer-Encoding" or a
            # "Content-Encoding" beside a lower-case Content-Type. PERF: checked once a request
            # that reads its body, joined (names of any bytes-like type, a server's bytearray,
            # are read): as long as one loop of framing() over 8 names (timeit, 2026-12-06).
            names = list(map(_NAME, self._headers))
            if not b"".join(names).islower():
                self._headers = [(name.lower(), value) for name, value in self._headers]
                names = list(map(_NAME, self._headers))
            self._names = names
        return names

    def _receive_task(self) -> asyncio.Future[Message]:
        # NOTE: one receive() in flight, shared by the reader, the watcher and the checks.
        if self._pending is None:
            self._pending = asyncio.ensure_future(coroutine_of(self._receive()))
        return self._pending

    def _take(self, pending: asyncio.Future[Message]) -> Message | None:
        if self._pending is not pending or not pending.done():
            return None  # NOTE: another reader took it first.
        self._pending = None
        message = pending.result()
        if message["type"] == "http.disconnect":
            self.disconnected = True
        return message

    def _keep(self, message: Message) -> None:
        if message["type"] != "http.request":
            return
        body = message.get("body", b"")
        self._kept += len(body)
        if self._kept > self.limit():
            # NOTE: never held past the limit; a reader gets 413 as it would have anyway.
            self._overflow = True
            self._early = None
            return
        if self._early is None:
            self._early = BodyBuffer()
        self._early.add(body)
        self._has_early = True
        self._early_end = not message.get("more_body", False)

    @property
    def overflowed(self) -> bool:
        """Whether messages that came before a read went past the body limit (a 413)."""
        return self._overflow

    def _early_message(self) -> Message:
        self._has_early = False
        return {
            "type": "http.request",
            "body": self._early.take() if self._early is not None else b"",
            "more_body": not self._early_end,
        }

    def _next_message(self) -> Awaitable[Message]:
        """The next message to await; on the loop only (from a pool thread, ``_wait_message``)."""
        if self._pending is None and not (
            self._overflow
            or self._has_early
            or self.disconnected
            or self._watching
            or self._awaited
        ):
            # PERF: the common case is receive()'s own awaitable, with no coroutine around
            # it: one frame less a message; aiter_parts() of 10 MiB 19.24M -> 19.11M
            # instructions (valgrind).
            return self._receive()
        return self._wait_message()

    async def _wait_message(self) -> Message:
        if self._awaited is not None:
            # NOTE: a reader, not the disconnect watcher nor a check, which read no body.
            awaited, self._awaited = self._awaited, None
            awaited()
        while True:
            if self._overflow:
                raise HTTPError(413, f"request body is larger than {self.limit()} bytes")
            if self._has_early:
                return self._early_message()
            if self.disconnected:
                return {"type": "http.disconnect"}
            if self._pending is None and not self._watching:
                # NOTE: the common case awaits receive() directly, with no task.
                return await self._receive()
            pending = self._receive_task()
            # NOTE: asyncio.wait leaves the shared task running if this caller is cancelled.
            await asyncio.wait({pending})
            message = self._take(pending)
            if message is not None:
                return message

    def _body_of(self, message: Message) -> tuple[bytes, bool]:
        if message["type"] == "http.disconnect":
            raise self._client_left()
        return message.get("body", b""), message.get("more_body", False)

    def _client_left(self) -> ClientDisconnect:
        self.disconnected = True
        return ClientDisconnect("the client disconnected before the body was read")

    def achunks(self, meter: BodyMeter) -> MessageChunks:
        return MessageChunks(self, meter)

    def signal(self) -> ReadDone:
        return LoopReadDone(self._loop, self._stalled)

    async def aread_all(self, meter: BodyMeter) -> bytes:
        """Read the whole body, each message's bytes counted by ``meter``."""
        # PERF: messages awaited in a loop, not through achunks() and a counting loop: a
        # request whose async def handler reads a 1 KB body takes 8.8 us instead of 11.6.
        # PERF: the first message (most bodies' only one) read and counted right here, as
        # MessageChunks.__anext__() does, with no _body_of() and no meter.count() call:
        # valgrind instructions per request, ASGI echo 318,399 -> 317,623 (bench/icount.sh,
        # PYTHONHASHSEED=0, 2026-12-06).
        message = await self._next_message()
        if message["type"] == "http.disconnect":
            raise self._client_left()
        body: bytes = message.get("body", b"")
        more = message.get("more_body", False)
        meter.total += len(body)
        if meter.total > meter.bound:
            self._give_back(meter, body, more)
        if not more:
            return body
        buffer = BodyBuffer()
        buffer.add(body)
        while more:
            body, more = self._body_of(await self._next_message())
            buffer.add(body)
            meter.total += len(body)
            if meter.total > meter.bound:
                self._give_back(meter, buffer.take(), more)
        return buffer.take()

    def _give_back(self, meter: BodyMeter, read: bytes, more: bool) -> NoReturn:
        """Refuse a body past ``meter``'s bound; past ``max_json_size`` (a ``JSONMeter``'s
        limit, below ``max_body_size``), keep ``read`` for the request's next read first."""
        # NOTE: json()'s 413 of a body of unknown length (chunked) left nothing to read: a
        # read() after it got that 413 too, where a body of the same size with a
        # Content-Length, refused before a byte was read, was read() whole, and the WSGI
        # servers give a chunked body a length (review319). Kept as messages that came before
        # a read are: at most max_json_size and one message.
        if type(meter) is JSONMeter and meter.expected is None and meter.total > meter.limit:
            early = BodyBuffer()
            early.add(read)
            if self._has_early and self._early is not None:
                early.add(self._early.take())
            else:
                self._early_end = not more
            # NOTE: counted as kept, so what the checks keep after it (_keep()) stays within the
            # body limit with it: they kept up to that limit more (review331). All the body
            # received so far is in it, kept messages that this read took included; past that
            # limit already (one large message), it is dropped, as _keep() drops its own.
            self._kept = len(early)
            if self._kept > self.limit():
                self._overflow, self._has_early, self._early = True, False, None
            else:
                self._early, self._has_early = early, True
            meter.given_back = True
        meter.refuse()

    def chunks(self, meter: BodyMeter, size: int | None = None) -> Iterator[bytes]:
        # NOTE: the chunks are the messages of receive(), as the server sized them.
        more = True
        most = 1  # NOTE: twice as many each hop, as WSGIBody.achunks() reads them.
        while more:
            # NOTE: messages up to one byte past what the meter lets through: enough for its 413.
            room = min(HOP_CHUNKS * CHUNK_SIZE, meter.bound - meter.total + 1)
            hop = self._hop_for(self._ready_messages(most, room))
            for message in run_on_loop(self._loop, hop, self._stalled):
                body, more = self._body_of(message)
                if body:
                    yield meter.count(body)
            most = min(most * 2, HOP_CHUNKS)
        meter.finish()

    async def _ready_messages(self, most: int, room: int) -> list[Message]:
        """The next message, and those after it that ``receive()`` has ready, until there are
        ``most`` messages or ``room`` bytes: what a pool thread takes in one hop to the loop.

        Never waits for a message past the first: one not ready yet stays pending for the next
        hop, so a slow client's bytes reach the handler as they come.
        """
        # PERF: one hop per message took 160 hops for a 10 MiB upload of 64 KiB messages all
        # ready, now 14. form() in a def handler under ASGI, `bench/cells.py --only`, two runs
        # each way (2-CPU VM, 2026-11-30): 10.1-12.4 ms -> 8.6-8.7 ms.
        message = await self._wait_message()
        messages = [message]
        size = len(message.get("body", b""))
        while (
            message["type"] == "http.request"
            and message.get("more_body", False)
            and size < room
            and len(messages) < most  # NOTE: a dripped body's messages are dicts.
            and not (self._overflow or self._has_early or self.disconnected or self._watching)
        ):
            pending = self._receive_task()
            await asyncio.sleep(0)  # NOTE: a receive() with a message ready returns in it.
            taken = self._take(pending)
            if taken is None:
                break
            message = taken
            messages.append(message)
            size += len(message.get("body", b""))
        return messages

    def read_all(self, meter: BodyMeter) -> bytes:
        """Read the whole body from a worker thread, counted by ``meter``."""
        # NOTE: one hop to the loop for the whole body, not one per message.
        return run_on_loop(self._loop, self._hop_for(self.aread_all(meter)), self._stalled)

    def _stalled(self, waited: float) -> bool:
        """Warn that a thread's sync read has waited ``waited`` seconds for the loop, which has
        run nothing else meanwhile, once a request; ``False`` (nothing said) once the request has
        ended.

        Code that holds the loop (inline code, or a blocking call in async code) and joins the
        reading thread waits for ever: the read needs the loop. Whatever holds it, this request
        is the one whose read waits; the read is not refused, as the loop may yet come to it (a
        thread that inline code started may read once that code returns).
        """
        request = self.reader
        if request is None or self._stall_told:
            return self._stall_told
        # NOTE: two threads' reads can wait at once (a read() and an is_disconnected()): each
        # was past the check above before either set the flag, and both warned. Checked again
        # under a lock, taken only here, once a read has waited SLOW_START.
        with _TOLD:
            if self._stall_told:
                return True
            self._stall_told = True
        warn_stalled(request, waited)
        return True

    async def _hop_for(self, awaitable: Awaitable[T]) -> T:
        """Await ``awaitable`` as a pool thread's hop, which ``close()`` ends.

        Raises:
            ClientDisconnect: If the request ended (its task cancelled: the server gave up on
                it) before or while the hop waited for ``receive()``.
        """
        if self.ended:
            if asyncio.iscoroutine(awaitable):
                awaitable.close()  # NOTE: it will never run; no "never awaited" warning.
            raise self._request_ended()
        self._hop = asyncio.current_task()
        try:
            return await awaitable
        except asyncio.CancelledError:
            if self.ended:
                raise self._request_ended() from None
            raise
        finally:
            self._hop = None

    def _request_ended(self) -> ClientDisconnect:
        return ClientDisconnect("the request ended before its body was read")

    async def ais_disconnected(self) -> bool:
        """Tell, without waiting, whether the client has gone (a body message is kept).

        Once the request has ended (``close()``), it has: as Uvicorn's ``receive()`` says once
        the response is complete, and with no ``receive()`` left waiting after a cancel.
        """
        if self.disconnected or self.ended:
            return True
        pending = self._receive_task()
        await asyncio.sleep(0)
        message = self._take(pending)
        if message is not None:
            self._keep(message)
        return self.disconnected

    def is_disconnected(self) -> bool:
        return run_on_loop(self._loop, self.ais_disconnected(), self._stalled)

    async def wait_disconnect(self) -> None:
        """Return once the client has gone; body messages go to the reader (bounded)."""
        self._watching = True
        while not self.disconnected:
            pending = self._receive_task()
            await asyncio.wait({pending})
            message = self._take(pending)
            if message is not None:
                self._keep(message)

    def close(self) -> None:
        """Stop a receive() still waiting after the response is done, and the hop of a pool
        thread still reading (when the request's task was cancelled under it)."""
        self.ended = True
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None
        if self._hop is not None:
            self._hop.cancel()
