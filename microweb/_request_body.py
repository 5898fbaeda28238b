"""The request body, in two colours: the twin methods ``Request`` reads its body with.

``read``/``aread``, ``text``/``atext``, ``json``/``ajson``, ``iter_bytes``/``aiter_bytes``,
``form``/``aform`` and ``iter_parts``/``aiter_parts`` share one cache; the body comes from the
driver's ``BodySource``, made by its request subclass on first use.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import aclosing
from typing import TYPE_CHECKING, Any, Protocol, cast

from ._buffer import BodyMeter, JSONMeter, is_too_large
from ._errors import ClientDisconnect, HTTPError, KeptError
from ._forms import FORM_READ, URLENCODED, FormBuilder, FormData, check_kept_form
from ._parsing import decode_text, is_coded, is_json_type, media_type
from ._parts import PartStream
from ._request_head import MISSING, BodyChunks, BodySource, HeadProperties, Signal
from ._streamed_parts import AsyncParts, Part, SyncParts
from ._strict_json import parse_json

CODED = "unsupported Content-Encoding (send the body uncompressed)"
# NOTE: the reads that keep the whole body, which a read started meanwhile can share; a form
# read shares a form read's form too.
WHOLE_READS = frozenset({"aread()", "atext()", "ajson()", "read()", "text()", "json()"})
FORM_SHARES = WHOLE_READS | {"aform()", "form()"}


async def _once(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


def _cancelled(call: str) -> str:
    """The name later errors give a read of ``call`` that ended without finishing: its task
    was cancelled (or an interrupt came), so a read that waited for it (``asyncio.gather``)
    is not told that it consumed the body itself."""
    return f"{call}, which was cancelled before it ended"


class _RefusedJSON:
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


class BodyMethods(HeadProperties):
    """The body methods of ``Request``, in both colours, over one cache."""

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

    # -- body, sync colour -------------------------------------------------------------------

    def _check_sync(self, call: str, twin: str) -> None:
        if self._inline == self._thread_id():
            # NOTE: refused under WSGI too, so that an app passing under WSGI passes under ASGI.
            raise RuntimeError(
                f"request.{call} blocks, and this code runs inline (a sync flow, a sync error "
                "handler or a def handler with offload=False), which under ASGI is the event "
                f"loop: read the body in an offloaded def handler, or write `await request.{twin}`"
                " in async code"
            )
        self._sync_only(call, twin)

    def read(self) -> bytes:
        """Read the whole body (bounded by ``max_body_size``).

        Raises:
            HTTPError: 413 past the limit; 400 for an invalid ``Content-Length`` or a body
                shorter than it; 501 for a ``Transfer-Encoding`` other than ``chunked``.
            RuntimeError: Where an event loop runs in this thread (use ``await aread()``), or
                once the body was streamed (``iter_bytes()``, ``iter_parts()``...).
            ClientDisconnect: If the client left before the end of the body, or the request
                ended (its response sent) before the body was read.
        """
        self._check_sync("read()", "aread()")
        return self._whole("read()")

    def _whole(self, call: str, json: bool = False) -> bytes:
        """The whole body, read by ``call`` (named if the body was already streamed)."""
        body = self._body
        if body is None:
            # NOTE: an announced length past the limit is refused before anything is read, and
            # kept (_keep_length_refusal()); a read() after json()'s 413 of max_json_size still
            # reads the body (within max_body_size).
            meter = self._claim(call, WHOLE_READS, json, keeps=True)
            if not isinstance(meter, BodyMeter):
                meter.wait_blocking()
                return self._whole(call, json)
            # PERF: the source reads it whole, with no generator per chunk (see read_all()):
            # 5.1 us instead of 6.4 for a request that reads a 1 KB body under WSGI.
            try:
                body = self._body_source().read_all(meter)
                meter.finish()
                self._body = body  # NOTE: before the end of the read, which the waiters see.
            except (HTTPError, ClientDisconnect) as exc:
                # NOTE: a kept error raised again (by _start()) stays as it was first kept.
                if not self._given_back(meter):
                    self._body_error = self._body_error or KeptError.of(exc)
                raise
            finally:
                self._end_read()
        else:
            self._check_kept(len(body), body if json else None)
        return body

    def _given_back(self, meter: BodyMeter) -> bool:
        """After a JSON read's 413 whose source kept what it had read (``JSONMeter``), leave
        the body to a later read, and the 413 to the JSON reads, as for a 413 decided by the
        ``Content-Length`` alone (``_keep_length_refusal()``)."""
        if type(meter) is not JSONMeter or not meter.given_back:
            return False
        self._json = _RefusedJSON(meter.limit)
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

    def text(self) -> str:
        """Read the body and decode it with its charset (UTF-8 by default).

        Raises:
            HTTPError: 415 for a body with a ``Content-Encoding``; 400 for a charset that is not
                accepted or named twice, or bytes that do not decode.
        """
        self._check_sync("text()", "atext()")
        self._uncoded()
        return decode_text(self._whole("text()"), self.content_type)

    def json(self, *, silent: bool = False, force: bool = False) -> Any:
        """Read the body and parse it as JSON (415 for another content type or a
        ``Content-Encoding``, 400 if invalid).

        Args:
            silent: Return ``None`` instead of the 415 or the 400, as Flask's
                ``get_json(silent=True)``. A body past the size limit is still a 413.
            force: Parse the body whatever its ``Content-Type``, as Flask's
                ``get_json(force=True)``: for a client that sends JSON as ``text/plain``.
        """
        self._check_sync("json()", "ajson()")
        if (unread := self._json_unread(silent, force)) is not MISSING:
            return unread
        return self._parsed_json(self._whole("json()", json=True), silent)

    def _json_unread(self, silent: bool, force: bool) -> Any:
        """What ``json()`` and ``ajson()`` give without reading the body: the JSON kept (within
        this read's limits), or ``None`` for a body they refuse silently; ``MISSING`` if they
        read it."""
        if self._json is not MISSING:
            if isinstance(self._json, _RefusedJSON):
                # NOTE: a route's smaller limit named, as for the body's 413 (see _start()).
                raise JSONMeter.too_large(min(self._json.limit, self.limits.max_json_size))
            self._check_kept(len(self._body or b""), self._body)
            if self.limits.max_json_depth < self._json_depth:
                # NOTE: JSON an app flow read within the app's max_json_depth, for a route of a
                # lower one: refused as the route's own read would refuse it, as for its size.
                return self._parsed_json(self._body or b"", silent)
            return self._json
        if (
            (not force and not self._is_json(silent))
            or not self._uncoded(silent)
            or (silent and self._streamed())
        ):
            return None
        return MISSING

    def _is_json(self, silent: bool) -> bool:
        # NOTE: asked before the body is read, as Flask does: a form or a file is not read (or
        # refused with 413) only to be refused as not JSON, and json(silent=True) after form()
        # gives None where it raised RuntimeError (the body already consumed).
        # PERF: the header read without the content_type property's call around it: valgrind
        # instructions per request, ASGI echo 313,680 -> 312,889 (bench/icount.sh, mean over
        # PYTHONHASHSEED 0 to 3, 2026-12-06).
        if is_json_type(self._read_content_type()):
            return True
        if silent:
            return False
        raise HTTPError(415, "expected a JSON body (Content-Type: application/json)")

    def _uncoded(self, silent: bool = False) -> bool:
        """Whether the body comes without a content coding; else 415 (``False`` if ``silent``).

        For the reads that parse the body; ``read()`` and ``iter_bytes()`` give it as it came.
        """
        # NOTE: text() gave gzip's bytes decoded as ISO-8859-1 with a 200, and json() and
        # form() a 400 that blamed the JSON or the form. Asked before the body is read.
        # SPEC: RFC 9110 8.4, 415 for a content coding that is not acceptable, and 15.5.16,
        # Accept-Encoding in the answer says which are.
        # PERF: the source as it is once made, with no call (as in the async reads below):
        # with them, 970 instructions less an ASGI echo, 1,650 a WSGI one (review285).
        # PERF: is_coded() called only for a body with a Content-Encoding, rare: valgrind
        # instructions per request, ASGI echo 312,889 -> 312,639 (bench/icount.sh, mean over
        # PYTHONHASHSEED 0 to 3, 2026-12-06).
        encoding = (self._source or self._body_source()).content_encoding
        if encoding is None or not is_coded(encoding):
            return True
        if silent:
            return False
        raise HTTPError(415, CODED, headers={"accept-encoding": "identity"})

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

    def _parsed_json(self, body: bytes, silent: bool) -> Any:
        depth = self.limits.max_json_depth
        try:
            value = parse_json(body, depth)
        except HTTPError:
            if silent:
                return None  # NOTE: not kept: a later json() without silent gets its error.
            raise
        if self._json is MISSING:
            self._json = value  # NOTE: JSON kept and checked again keeps its first value.
        self._json_depth = depth
        return self._json

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body in chunks as they arrive, without holding it whole."""
        self._check_sync("iter_bytes()", "aiter_bytes()")
        while (chunks := self._body_or_stream("iter_bytes()", WHOLE_READS)) is None:
            pass  # NOTE: a whole read in another thread ended: its body, or its error.
        if self._body is None:
            yield from chunks
        elif self._body:
            yield self._body

    def form(self) -> FormData:
        """Read and parse a urlencoded or multipart form (bounded by the form limits).

        Raises:
            HTTPError: 415 for another content type or a ``Content-Encoding``, 400 for a
                malformed form, 413 past a limit.
            RuntimeError: Where an event loop runs in this thread (use ``await aform()``).
        """
        self._check_sync("form()", "aform()")
        form = self._form
        if form is None:
            self._uncoded()
            builder = self._form_builder(defer_writes=False)
            chunks = None  # NOTE: this read's own, not one it waited for, is ended below.
            try:
                chunks = self._body_or_stream("form()", FORM_SHARES, FORM_READ, keeps=True)
                if chunks is None:
                    builder.discard()
                    return self.form()  # NOTE: the read waited for kept the body or the form.
                form = self._form = builder.feed_all(chunks)
            except Exception as exc:
                self._form = KeptError.of(exc)
                self._keep_form_error(exc, "form()")
                builder.discard()
                raise
            except BaseException:
                builder.discard()
                raise
            finally:
                if chunks is not None and self._reading == "form()":
                    self._end_read()
        elif not isinstance(form, FormData):
            # NOTE: raised from the attribute, not a local: this frame goes into the error's
            # traceback, and a local holding the error would make a cycle that keeps the request.
            del form
            cast(KeptError, self._form).raise_again()
        else:
            self._check_kept_form(form)
        return form

    def iter_parts(self) -> Iterator[Part]:
        """Yield the parts of a multipart body in order, each streamed by ``part.iter_bytes()``.

        Nothing is spooled: a part's data is read as it arrives, before the next part is asked
        for (a part not read is skipped). Limits and errors are those of ``form()``.

        Raises:
            HTTPError: 415 for a body that is not multipart or has a ``Content-Encoding``, 400
                malformed, 413 past a limit.
            RuntimeError: Where an event loop runs in this thread (use ``aiter_parts()``), or
                for a body already consumed.
        """
        self._check_sync("iter_parts()", "aiter_parts()")
        self._uncoded()
        stream = PartStream(self.content_type, self.limits)
        while (chunks := self._body_or_stream("iter_parts()", WHOLE_READS)) is None:
            pass  # NOTE: as in iter_bytes().
        parts = SyncParts(stream, chunks, lambda: self._check_sync("iter_parts()", "aiter_parts()"))
        parts.meter = self._meter if self._body is None else None
        try:
            while (part := parts.next_part()) is not None:
                yield part
        finally:
            # NOTE: a loop left early reads no more of the body (but for a part being read).
            if parts.end():
                getattr(chunks, "close", lambda: None)()

    def _form_builder(self, defer_writes: bool) -> FormBuilder:
        builder = FormBuilder(
            self.content_type,
            self.limits,
            defer_writes=defer_writes,
            run_blocking=self._run_blocking,
            spooler=self._spooler(),
        )
        self._close_at_end(builder)
        return builder

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

    # -- body, async colour ------------------------------------------------------------------

    async def aread(self) -> bytes:
        """Read the whole body (bounded by ``max_body_size``); the async twin of ``read()``."""
        return await self._awhole("aread()")

    async def _awhole(self, call: str, json: bool = False) -> bytes:
        """The whole body, read by ``call``; the async twin of ``_whole()``."""
        body = self._body
        if body is None:
            # NOTE: as in _whole(), refused and kept.
            meter = self._claim(call, WHOLE_READS, json, keeps=True)
            if not isinstance(meter, BodyMeter):
                await meter.wait()
                return await self._awhole(call, json)
            # PERF: the source reads it whole, with no async generator (see aread_all()):
            # 8.8 us instead of 11.6 for a request that reads a 1 KB body under ASGI.
            try:
                # PERF: the source made by the claim, with no _body_source() call, here and in
                # _claim(), _start() and _end_read(): valgrind instructions per request, ASGI
                # echo 321,073 -> 320,103, WSGI echo (def handler) 289,018 -> 287,364
                # (bench/icount.sh, PYTHONHASHSEED=0, 2026-12-06).
                body = await (self._source or self._body_source()).aread_all(meter)
                meter.finish()
                self._body = body  # NOTE: as in _whole().
            except (HTTPError, ClientDisconnect) as exc:
                # NOTE: a kept error raised again (by _start()) stays as it was first kept.
                if not self._given_back(meter):
                    self._body_error = self._body_error or KeptError.of(exc)
                raise
            except BaseException as exc:
                if not isinstance(exc, Exception):
                    self._consumed = _cancelled(call)
                raise
            finally:
                self._end_read()
        else:
            self._check_kept(len(body), body if json else None)
        return body

    async def atext(self) -> str:
        """Read and decode the body; the async twin of ``text()``."""
        self._uncoded()
        return decode_text(await self._awhole("atext()"), self.content_type)

    async def ajson(self, *, silent: bool = False, force: bool = False) -> Any:
        """Read and parse a JSON body; the async twin of ``json()``."""
        if (unread := self._json_unread(silent, force)) is not MISSING:
            return unread
        return self._parsed_json(await self._awhole("ajson()", json=True), silent)

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive; the async twin of ``iter_bytes()``."""
        while (chunks := await self._abody_or_stream("aiter_bytes()", WHOLE_READS)) is None:
            pass  # NOTE: as in iter_bytes().
        if self._body is None:
            async with aclosing(chunks):
                async for chunk in chunks:
                    yield chunk
        elif self._body:
            yield self._body

    async def aform(self) -> FormData:
        """Read and parse a form; the async twin of ``form()``."""
        form = self._form
        if form is None:
            self._uncoded()
            # NOTE: writes of a spooled file go to a file thread, never on the event loop.
            builder = self._form_builder(defer_writes=True)
            chunks = None  # NOTE: this read's own, not one it waited for, is ended below.
            try:
                chunks = await self._abody_or_stream("aform()", FORM_SHARES, keeps=True)
                if chunks is None:
                    builder.discard()
                    return await self.aform()  # NOTE: as in form().
                async with aclosing(chunks):
                    form = self._form = await builder.afeed_all(chunks)
            except BaseException as exc:
                if isinstance(exc, Exception):
                    self._form = KeptError.of(exc)
                    self._keep_form_error(exc, "aform()")
                elif chunks is not None and self._consumed == "aform()":
                    # NOTE: not an aform() cancelled as it waited for another's (chunks
                    # None): the body named cancelled, that read's 413 or 400 was not kept.
                    self._consumed = _cancelled("aform()")
                # NOTE: files on disk are left to the request's end, which closes them in a
                # file thread (under ASGI): closing one is disk work, kept off the event loop.
                if not builder.on_disk:
                    builder.discard()
                raise
            finally:
                if chunks is not None and self._reading == "aform()":
                    self._end_read()
        elif not isinstance(form, FormData):
            del form  # NOTE: as in form().
            cast(KeptError, self._form).raise_again()
        else:
            self._check_kept_form(form)
        return form

    async def aiter_parts(self) -> AsyncIterator[Part]:
        """Yield the parts of a multipart body; the async twin of ``iter_parts()``.

        Read each part's data with ``part.aiter_bytes()``.
        """
        self._uncoded()
        stream = PartStream(self.content_type, self.limits)
        while (chunks := await self._abody_or_stream("aiter_parts()", WHOLE_READS)) is None:
            pass  # NOTE: as in iter_bytes().
        parts = AsyncParts(stream, chunks)
        parts.meter = self._meter if self._body is None else None
        try:
            while (part := await parts.next_part()) is not None:
                yield part
        finally:
            # NOTE: as in iter_parts(), the chunks of a part being read are left to its reader.
            if parts.end():
                await chunks.aclose()

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
            self._json = _RefusedJSON(limits.max_json_size)
        else:
            self._body_error = KeptError(BodyMeter.too_large(limits.max_body_size), None)

    def is_disconnected(self) -> bool:
        """Tell whether the client has gone, for long-polling ``def`` code.

        Under ASGI this asks ``receive()``; under WSGI only Waitress can tell (elsewhere it is
        always ``False``).
        """
        self._check_sync("is_disconnected()", "ais_disconnected()")
        return self._body_source().is_disconnected()

    async def ais_disconnected(self) -> bool:
        """Tell whether the client has gone; the async twin of ``is_disconnected()``."""
        return await self._body_source().ais_disconnected()
