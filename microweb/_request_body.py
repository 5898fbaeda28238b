"""The request body, in two colours: the twin methods ``Request`` reads its body with.

``read``/``aread``, ``text``/``atext``, ``json``/``ajson``, ``iter_bytes``/``aiter_bytes``,
``form``/``aform`` and ``iter_parts``/``aiter_parts`` share one cache (``_body_cache``); the
body comes from the driver's ``BodySource``, made by its request subclass on first use.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from typing import Any, cast

from ._body_cache import FORM_SHARES, WHOLE_READS, BodyCache, RefusedJSON
from ._buffer import BodyMeter, JSONMeter
from ._errors import ClientDisconnect, HTTPError, KeptError
from ._forms import FORM_READ, FormBuilder, FormData
from ._parsing import decode_text, is_coded, is_json_type
from ._parts import PartStream
from ._request_head import MISSING
from ._streamed_parts import AsyncParts, Part, SyncParts
from ._strict_json import parse_json

CODED = "unsupported Content-Encoding (send the body uncompressed)"


def _cancelled(call: str) -> str:
    """The name later errors give a read of ``call`` that ended without finishing: its task
    was cancelled (or an interrupt came), so a read that waited for it (``asyncio.gather``)
    is not told that it consumed the body itself."""
    return f"{call}, which was cancelled before it ended"


class BodyMethods(BodyCache):
    """The body methods of ``Request``, in both colours, over one cache (``BodyCache``)."""

    # NOTE: the slots are Request's, as Request's mixins leave theirs to Request.
    __slots__ = ()

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
            if isinstance(self._json, RefusedJSON):
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
