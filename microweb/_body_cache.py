"""The request body's one cache: which read claims the body, and what reads keep for later ones.

``BodyCache`` is the part of ``Request`` under its body methods (``_request_body``): a read
claims the body (``_claim()``) or waits for the read in progress whose body or form it shares,
in another task or thread; the body, the form, the JSON and the errors of a read are kept, and
held to a later read's limits; a read that streamed the body leaves its error to those after it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator
from typing import TYPE_CHECKING, Any, Protocol

from ._buffer import BodyMeter, JSONMeter, is_too_large
from ._errors import ClientDisconnect, HTTPError, KeptError
from ._forms import URLENCODED, FormData, check_kept_form
from ._parsing import media_type
from ._request_head import BodyChunks, BodySource, HeadProperties, Signal

# NOTE: the reads that keep the whole body, which a read started meanwhile can share; a form
# read shares a form read's form too.
WHOLE_READS = frozenset({"aread()", "atext()", "ajson()", "read()", "text()", "json()"})
FORM_SHARES = WHOLE_READS | {"aform()", "form()"}


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


class RefusedJSON:
    """What ``json()`` keeps of a body it refused by its length alone: the limit it passed."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        self.limit = limit


class _Ended:
    """What a read waits for when the body (or form) was kept after it looked: nothing."""

    def set(self) -> None:
        """Nothing waits."""

    async def wait(self) -> None:
        """Return at once."""

    def wait_blocking(self) -> None:
        """Return at once."""


_ENDED = _Ended()


class Cleanup(Protocol):
    """What a request closes when it ends: a form's files (``FormBuilder``), a file held to be
    sent (``HeldFile``)."""

    @property
    def on_disk(self) -> bool:
        """Whether closing it is disk work (the ASGI driver closes those in a thread)."""

    def discard(self) -> None:
        """Close it."""


# PERF: a class more in Request's chain, no call or attribute look-up more: valgrind
# instructions per request (bench/icount.sh, PYTHONHASHSEED 0 to 3, 2026-12-07), ASGI hello
# 28,169 -> 28,220, echo 315,595 -> 316,392; by function (cachegrind, 2,000 less 200 requests),
# the eval loop's count is unchanged, subtype_dealloc (+10) and PyType_IsSubtype (+5) walk
# the class more, and the rest is the allocator's (malloc and free, moved by its layout).
class BodyCache(HeadProperties):
    """The cache under ``Request``'s body methods: the claim of the body, and what reads keep."""

    # NOTE: as in HeadProperties, the slots are Request's; these are the ones filled here.
    if TYPE_CHECKING:
        __slots__ = (
            "_body",
            "_body_error",
            "_cleanups",
            "_consumed",
            "_form",
            "_json",
            "_json_depth",
            "_meter",
            "_read_done",
            "_reading",
            "_source",
        )
    else:
        __slots__ = ()

    _source: BodySource | None
    _body: bytes | None
    # NOTE: the 4xx a whole read of the body raised (413, a short body), or its
    # ClientDisconnect, raised again by every later read: the body is gone, and a flow that
    # caught it (around json(silent=True), say) must not turn the handler's json() into a 500
    # ("already consumed").
    _body_error: KeptError | None
    # NOTE: the meter of the last read: the 413 or 400 it raised in a read that streamed the
    # body (form(), iter_parts()...) is kept as a whole read's error, by _keep_stream_error().
    _meter: BodyMeter | None
    _json: Any
    # NOTE: the max_json_depth that _json was parsed within, set with it: a route's lower one
    # has the kept JSON parsed again (see _json_unread()).
    _json_depth: int
    # NOTE: the form, or the error its reading raised, raised again by every later call: the
    # body is gone, and a flow that caught a 400 must not turn the handler's form() into a 500.
    _form: FormData | KeptError | None
    # NOTE: the call that streamed the body ("" before), named when another one is refused.
    _consumed: str
    # NOTE: the read in progress that keeps what it reads (a whole read, a form; "" else), and
    # the signal its end gives to reads started meanwhile: in another task (asyncio.gather),
    # or in another thread (a def handler's read beside a task that a flow started).
    _reading: str
    _read_done: Signal | None
    # NOTE: the thread that runs the request's inline code (0: none), not a flag for the
    # request: a thread that a sync flow started reads while the flow runs (review272).
    _inline: int
    _cleanups: list[Cleanup] | None

    def _given_back(self, meter: BodyMeter) -> bool:
        """After a JSON read's 413 whose source kept what it had read (``JSONMeter``), leave
        the body to a later read, and the 413 to the JSON reads, as for a 413 decided by the
        ``Content-Length`` alone (``_keep_length_refusal()``)."""
        if type(meter) is not JSONMeter or not meter.given_back:
            return False
        self._json = RefusedJSON(meter.limit)
        self._consumed, self._meter = "", None
        return True

    def _check_kept(self, size: int, json: bytes | None = None) -> None:
        """Refuse what a read before this one kept (the body, its form or its JSON, of
        ``size`` bytes) where this read's limits would have refused it (413)."""
        # NOTE: app flows run before routing, so a flow's read took the app's limits, and the
        # handler's read got what it kept: a form of 5 KB on a route of max_body_size=100
        # (review239), as json() got a body that read() had read within max_body_size.
        limit = self.limits.max_body_size
        if size > limit:
            raise BodyMeter.too_large(limit)
        if json is not None and len(json) > self.limits.max_json_size:
            raise JSONMeter.too_large(self.limits.max_json_size)

    def _streamed(self) -> bool:
        # NOTE: the body went to form() or a stream, unkept: json(force=True, silent=True) read
        # it again (RuntimeError, a 500), where Flask's get_json gives None, as json(silent=True)
        # does for a form's type.
        # NOTE: a read that failed (a 413 counted as the body came, a body shorter than its
        # Content-Length, a client gone; in a read that streamed the body too) left no body:
        # its kept error is raised again, as by every later read.
        # NOTE: not a whole read in progress in another task, which keeps the body: ajson()
        # waits for it (a json(silent=True) gave None beside an aread(), asyncio.gather).
        self._keep_stream_error()
        return (
            self._body is None
            and bool(self._consumed)
            and self._body_error is None
            and self._reading not in WHOLE_READS
        )

    def _keep_stream_error(self) -> None:
        """Keep the error of a read that streamed the body, as a whole read's error is kept:
        its 413 or 400, or the client gone."""
        meter = self._meter
        if self._body_error is not None or meter is None or self._body is not None:
            return
        # NOTE: a new error, raised from where it is raised again: the meter and the source
        # keep no error, whose traceback holds frames that hold them. (No local of the caller
        # holds it either: its frame would be in the traceback, a cycle through the request.)
        source = self._source
        if meter.failed is not None:
            self._body_error = KeptError(HTTPError(*meter.failed), None)
        elif not meter.ended and source is not None and source.overflowed:
            # NOTE: the 413 of messages held before the read (under ASGI, by a disconnect
            # check), raised by the source, not the meter: read() raised RuntimeError (review169).
            self._body_error = KeptError(BodyMeter.too_large(self.limits.max_body_size), None)
        elif not meter.ended and self._client_gone():
            # NOTE: not once the stream read the body to its end: a client seen leaving after
            # that (ais_disconnected()) turned json(silent=True) into a ClientDisconnect.
            error = ClientDisconnect("the client disconnected while its body was read")
            self._body_error = KeptError(error, None)

    def _keep_form_error(self, exc: Exception, call: str) -> None:
        """Leave the 4xx of a form that streamed the body (a malformed form's 400, a form
        limit's 413) to the request's later reads, as the meter leaves its own."""
        meter = self._meter
        # NOTE: only where this call streamed the body: a 415 comes before the reading, and a
        # 413 by Content-Length alone read nothing (_start() keeps it as the body's error).
        if (
            isinstance(exc, HTTPError)
            and self._consumed == call
            and self._body is None
            and meter is not None
        ):
            # NOTE: read() after form()'s 400 raised RuntimeError ("already consumed"), a
            # 500, and json(silent=True) gave None, where docs/requests.md promises the 400.
            meter.keep(exc)

    def _close_at_end(self, cleanup: Cleanup) -> None:
        """Have ``cleanup`` discarded when the request ends (``close()``)."""
        if self._cleanups is None:
            self._cleanups = []
        self._cleanups.append(cleanup)

    def _body_or_stream(
        self, call: str, shares: frozenset[str], size: int | None = None, keeps: bool = False
    ) -> Iterator[bytes] | None:
        """The body's chunks for ``call``: the kept body, or the stream of it; ``None`` once
        ``call`` has waited for a read in another thread to share what it keeps (see
        ``_claim()``), to be asked again."""
        if self._body is None:
            meter = self._claim(call, shares, keeps=keeps)
            if not isinstance(meter, BodyMeter):
                meter.wait_blocking()
                return None
            # PERF: the source's own generator, which counts each chunk: no generator around it
            # (about 2 % of aiter_parts() on 10 MiB; docs/performance.md).
            return self._body_source().chunks(meter, size)
        self._check_kept(len(self._body))
        return iter((self._body,))

    def _check_kept_form(self, form: FormData) -> None:
        """Refuse a form a read before this one kept where this read's limits would have
        refused it: its body's size, and the form limits that can be told from the form."""
        size = self._form_size()
        self._check_kept(size)
        urlencoded = media_type(self.content_type)[0] == URLENCODED
        check_kept_form(form, self.limits, size, urlencoded=urlencoded)

    def _form_size(self) -> int:
        """The bytes of the body that the kept form was read from."""
        if self._body is not None:
            return len(self._body)
        return self._meter.total if self._meter is not None else 0

    def _claim(
        self, call: str, shares: frozenset[str], json: bool = False, keeps: bool = False
    ) -> BodyMeter | Signal:
        """Begin ``call``'s read of the body (its meter), or give the end of the read in
        progress it waits for, to take what that read keeps (the body, the form), where that
        read is one of ``shares``. ``keeps``: ``call`` keeps what it reads (a whole read, a
        form), and reads started meanwhile wait for it."""
        # NOTE: asyncio.gather(request.aform(), request.aform()) gave a 500 ("already
        # consumed") when the first had to wait for more of the body, where the same two reads
        # one after the other share the cache, as a Starlette or Flask user expects. So did a
        # def handler's read() beside a task of a flow that awaited aread() (review269), or
        # each read got part of the body. What is not kept (aform()'s body, a stream) cannot
        # be shared: refused, naming both reads (_start()).
        # NOTE: under the source's lock: a def handler's read runs in a pool thread (under
        # WSGI, the server's) while a flow's task reads on the loop; both could pass the check
        # of _consumed, and each read part of the body.
        source = self._source or self._body_source()
        # PERF: acquire() and release(), not a with block (83 against 199 ns, timeit): an ASGI
        # echo 322,890 -> 321,389 instructions (bench/drive_cell.py under valgrind,
        # PYTHONHASHSEED=0, 2026-12-06); 316,127 before reads shared across threads.
        # PERF: no lock for a claim on the ASGI loop while no read can run off it (a flag set
        # on the loop when a def handler goes to the pool, or by a sync read's hop there
        # first), tried (review272): ASGI echo 320,421 -> 319,502, WSGI echo 288,300 ->
        # 289,759 (same measure, several runs). No lock at all, unsafe, saved ~1,600 under
        # ASGI. Not worth a second path through every claim: the lock stays.
        lock = source.lock
        lock.acquire()
        try:
            if (
                self._body is not None
                or self._reading in shares
                or (self._form is not None and shares is FORM_SHARES)
            ):
                # NOTE: the body (or form) was kept after the caller looked: it looks again.
                if not self._reading:
                    return _ENDED
                done = self._read_done
                if done is None:
                    done = self._read_done = source.signal()
                return done
            meter = self._start(source, call, json)
            if keeps:
                self._reading = call
            return meter
        finally:
            lock.release()

    def _end_read(self) -> None:
        """End the read that claimed the body with ``keeps``, and wake those that wait for it."""
        # NOTE: an uncontended lock, taken twice a whole read (its claim and its end; see
        # _claim() for its cost); a signal is made only where a read waits.
        lock = (self._source or self._body_source()).lock
        lock.acquire()
        self._reading = ""
        done, self._read_done = self._read_done, None
        lock.release()
        if done is not None:
            done.set()

    def _read_meanwhile(self, call: str) -> RuntimeError:
        return RuntimeError(
            f"request.{call}: the body is being read by request.{self._reading} at the same "
            "time (in another task or thread: asyncio.gather, a task a flow started...): await "
            "that read first, then read what it kept"
        )

    async def _abody_or_stream(
        self, call: str, shares: frozenset[str], keeps: bool = False
    ) -> BodyChunks | None:
        """The body's chunks for ``call``; the async twin of ``_body_or_stream()``."""
        if self._body is None:
            meter = self._claim(call, shares, keeps=keeps)
            if not isinstance(meter, BodyMeter):
                await meter.wait()
                return None
            # PERF: the source's own async iterator, which counts each chunk, with none around
            # it: one async hop less per chunk. aiter_parts() of 10 MiB, two A/B runs of
            # bench/cells.py's upload timers: x1.137 and x1.115 -> x1.107 and x1.101 of the
            # parser loop (2-CPU VM, 2026-11-30). Callers close it (aclosing) when they stop
            # early.
            return self._body_source().achunks(meter)
        self._check_kept(len(self._body))
        return _once(self._body)

    def _body_source(self) -> BodySource:
        source = self._source
        if source is None:
            source = self._source = self._make_body(self._body_limit)
        return source

    def _client_gone(self) -> bool:
        """Whether a read of the body found the client gone (the drivers answer nobody then)."""
        source = self._source
        return source is not None and source.disconnected

    def _body_limit(self) -> int:
        return self.limits.max_body_size

    def _start(self, source: BodySource, call: str, json: bool = False) -> BodyMeter:
        if self._meter is not None:  # NOTE: a read began before this one.
            self._keep_stream_error()
        limits, length = self.limits, source.content_length
        if self._body_error is not None:
            # NOTE: no local holds the kept error: its traceback would hold this frame.
            if (
                length is not None
                and length > limits.max_body_size
                and isinstance(self._body_error.error, HTTPError)
                and is_too_large(self._body_error.error)
            ):
                # NOTE: a kept 413 named the app flow's limit (1,000) on a route of a smaller
                # one (100): the route's read refuses the length with its own, as a read of it
                # alone would (review314).
                raise BodyMeter.too_large(limits.max_body_size)
            self._body_error.raise_again()
        if self._consumed:
            if self._reading:
                raise self._read_meanwhile(call)
            raise RuntimeError(
                f"request.{call}: the body was already consumed by request.{self._consumed}: "
                "a request's body is read from the network once"
            )
        if source.ended:
            # NOTE: an after-response callback's read (under ASGI, also a def handler's that
            # the server cancelled): Uvicorn's receive() says http.disconnect once the response
            # is sent, so the body is gone; Waitress still had it. Refused under both.
            raise ClientDisconnect(
                f"the request ended before its body was read (its response was sent, or the "
                f"server gave up on it): read it in the handler, not after its response "
                f"(request.{call} in an after-response callback), and pass the callback what "
                "it needs"
            )
        json = json and limits.max_json_size < limits.max_body_size
        try:
            meter = (
                JSONMeter(limits.max_json_size, length)
                if json
                else BodyMeter(limits.max_body_size, length)
            )
        except HTTPError:
            self._keep_length_refusal(json)
            raise
        self._consumed = call  # NOTE: once the meter let the read begin.
        self._meter = meter
        return meter

    def _keep_length_refusal(self, json: bool) -> None:
        """Keep the 413 of a body whose ``Content-Length`` alone is past this read's limit, as
        a 413 counted while reading is kept: for ``json()``'s ``max_json_size``, for the JSON
        reads only (nothing was read: ``read()`` takes the body within ``max_body_size``)."""
        # NOTE: a later read of a route's larger limit took the body that an app flow's read
        # had refused by its length (a 200), where one refused while reading stayed refused:
        # under WSGI always (the servers and the test client give a chunked body a length),
        # under ASGI for a body sent with a Content-Length (review311). A new error, never
        # raised (see _keep_stream_error()).
        limits = self.limits
        if json:
            self._json = RefusedJSON(limits.max_json_size)
        else:
            self._body_error = KeptError(BodyMeter.too_large(limits.max_body_size), None)
