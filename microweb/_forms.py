"""Form bodies: one builder, fed chunks by either colour, that turns them into ``FormData``.

Multipart bodies come as the part events of ``_parts.MultipartEvents`` (the parser, its limits
and its 400/413 answers, shared with ``iter_parts()``); urlencoded bodies go through the standard
library with a cap on field count. Files are ``_uploads.UploadFile``s, written in batches here.
"""

from __future__ import annotations

import logging
from array import array
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Protocol

import multipart

from ._buffer import BodyBuffer, PieceBuffer
from ._errors import HTTPError
from ._fields import RequestFields, parse_fields, too_many_fields
from ._limits import Limits
from ._parsing import decode_with, form_boundary, media_type
from ._parts import (
    MULTIPART,
    Event,
    FormMeasure,
    Measures,
    MultipartEvents,
    PartHead,
    field_too_large,
    fields_too_large,
    parser_error,
)
from ._uploads import MAX_PIECES, BlockingRunner, UploadFile, run_here

logger = logging.getLogger("microweb")
URLENCODED = "application/x-www-form-urlencoded"


FormValue = str | UploadFile


class FormData(RequestFields[FormValue]):
    """A form: a multidict of ``str`` fields and ``UploadFile`` files.

    ``form[name]`` for a field the client did not send raises an ``HTTPError(400)`` that is
    also a ``KeyError``. ``form.fields`` and ``form.files`` hold the fields and the files
    apart, as Werkzeug's ``request.form`` and ``request.files`` do.
    """

    __slots__ = ("_files", "_measure", "_text")
    what = "form field"
    # NOTE: set on a form that FormBuilder read, for check_kept_form(): the fields of a
    # FormMeasure, which is made only there. PERF: a tuple is 0.02 us, the dataclass 1.6
    # (timeit, 2026-12-06).
    _measure: Measures
    _text: RequestFields[str]
    _files: RequestFields[UploadFile]

    @property
    def fields(self) -> RequestFields[str]:
        """The text fields alone, a multidict of ``str``.

        A file that the client sent under a field's name is not there: ``form.fields.get(
        "title", "")`` is always text, and ``form.fields["title"]`` answers 400 for it.
        """
        try:
            return self._text
        except AttributeError:
            self._text = FormFields((k, v) for k, v in self._items if isinstance(v, str))
            return self._text

    @property
    def files(self) -> RequestFields[UploadFile]:
        """The files alone, a multidict of ``UploadFile``: ``form.files["avatar"]`` answers 400
        (``missing form file 'avatar'``) when no file came under that name."""
        try:
            return self._files
        except AttributeError:
            self._files = FormFiles((k, v) for k, v in self._items if isinstance(v, UploadFile))
            return self._files

    def close(self) -> None:
        """Close every uploaded file.

        Raises:
            OSError: The first error a file's close raised (or whatever else it raised), once
                every file is closed.
        """
        failed: BaseException | None = None
        for _, value in self.multi_items():
            if isinstance(value, UploadFile):
                try:
                    value.close()
                # NOTE: the files after it were left open; also after a KeyboardInterrupt or
                # SystemExit of app code (a file of its own in an upload's place).
                except BaseException as exc:
                    if failed is None:
                        failed = exc
        if failed is not None:
            try:
                raise failed
            finally:
                del failed  # NOTE: this frame, in its traceback, held it: a cycle.


class FormFields(RequestFields[str]):
    """``form.fields``: the text fields of a form."""

    __slots__ = ()
    what = "form field"


class FormFiles(RequestFields[UploadFile]):
    """``form.files``: the files of a form."""

    __slots__ = ()
    what = "form file"


# PERF: the data of a spooled file is written in batches of this many bytes (or MAX_PIECES
# chunks), each with one os.writev() call by a file thread while the next batch is parsed
# (ThreadSpooler). 10 MiB upload, best of 2 runs of 10 rounds (shared 2-CPU VM, 2026-11-30):
# form() 7.02 -> 6.54 ms with batches (per-chunk writes before); 64 KiB batches took 17.1 ms,
# 256 KiB 12.7 ms under aform(). 2 MiB instead of 1 MiB halves the hand-overs: aform()
# 7.30 -> 6.79 ms. Written in a file thread rather than inline (form(), 30 interleaved rounds
# of 3 requests, 2026-11-30): 6.16 -> 5.23 ms best, 6.57 -> 5.62 ms median.
WRITE_BATCH = 2 * 1024 * 1024
# PERF: form() reads a stream (wsgi.input) in chunks of this many bytes, not the 64 KiB that
# stream() and iter_parts() read, which hand their chunks on: a form holds up to WRITE_BATCH
# of them anyway. Fewer, larger chunks take the parser and the spooling code fewer rounds.
# 10 MiB upload, WSGI, best of 8 rounds (2-CPU VM, 2026-12-03): 64 KiB 4.75 ms (x1.98 of
# the parser loop), 128 KiB 4.38 ms, 256 KiB 4.07 ms (x1.70).
FORM_READ = 256 * 1024
# NOTE: the writes of spooled files waiting for disk, in order: (file, its chunks) or (file,
# None) for a seek back to the start once the file is complete.
Steps = list[tuple[UploadFile, list[bytes] | None]]


def write_steps(steps: Steps, ready: Callable[[], object] = lambda: None) -> None:
    """Run the waiting writes of spooled files; blocking (disk I/O).

    ``ready()`` is called once, when the first file is on disk and its data about to be
    written (or at the end): a thread that waits for it can go on while the write runs.
    """
    for upload, chunks in steps:
        if chunks is None:
            upload.seek(0)
        else:
            upload._to_disk()
            ready()
            ready = _nothing
            upload._append(chunks)
    ready()


def _nothing() -> None:
    """Do nothing: what ``ready`` becomes once called."""


class Spooler(Protocol):
    """Writes a form's batches of spooled file data (``write_steps``), in order.

    ``put()`` and ``aput()`` may return before their batch is written, but only once the batch
    before it is. ``end()`` and ``aend()`` wait for every batch. Each of them raises what a
    write raised (an ``OSError``: a full disk); no batch is written after it.
    """

    def put(self, steps: Steps) -> None:
        """Hand over a batch; blocking."""
        ...

    async def aput(self, steps: Steps) -> None:
        """Hand over a batch from async code."""
        ...

    def end(self) -> None:
        """Wait until every batch is written; blocking."""
        ...

    async def aend(self) -> None:
        """Wait from async code until every batch is written."""
        ...


class InlineSpooler:
    """Writes each batch at once, in the calling thread: for forms built outside a request."""

    def put(self, steps: Steps) -> None:
        """Write the batch now."""
        write_steps(steps)

    async def aput(self, steps: Steps) -> None:
        """Write the batch now."""
        write_steps(steps)

    def end(self) -> None:
        """Return: every batch was written by ``put()``."""

    async def aend(self) -> None:
        """Return: every batch was written by ``aput()``."""


class FormBuilder:
    """Builds ``FormData`` from body chunks; the sync and async body readers both feed it.

    A multipart body comes as the part events of ``MultipartEvents``, the ones that
    ``iter_parts()`` streams. What a file writes past its spool threshold waits, in order, in
    a batch that goes to ``spooler`` when full: from ``feed()``, or, with ``defer_writes``
    (``aform()``), from ``afeed_all()``. The driver's spooler writes it in a file thread.
    """

    def __init__(
        self,
        content_type: str | None,
        limits: Limits,
        *,
        defer_writes: bool = False,
        run_blocking: BlockingRunner = run_here,
        spooler: Spooler | None = None,
    ) -> None:
        kind, params = media_type(content_type)
        self.limits = limits
        self.run_blocking = run_blocking
        self.defer_writes = defer_writes
        self.spooler: Spooler = InlineSpooler() if spooler is None else spooler
        self.items: list[tuple[str, FormValue]] = []
        # NOTE: one buffer, not a list of chunks: a body dripped a byte at a time (TRAPS.md 27).
        self._urlencoded: BodyBuffer | None = None
        self._events: MultipartEvents | None = None
        self._memory = 0
        # NOTE: the bytes of the form's files kept in memory: together they stay within the
        # spool threshold, so a form of many small files is not held whole in memory.
        self.files_in_memory = 0
        self._part: _FormPart | None = None
        # NOTE: the current part where it is a file with a name (see _parse()).
        self._file: _FormPart | None = None
        # NOTE: the lines of the current part's head, then each part as read, for the form's
        # FormMeasure (see its fields).
        # PERF: a form of 999 one-line fields read in 11-15 ms before and after they were kept
        # (timeit, best of 5 x 20, a loaded 2-CPU VM, 2026-12-06): within the noise.
        self._head_line_count = 0
        self._names: list[str | None] = []
        self._numbers = array("q")
        self._head_lines: Sequence[int] = ()
        self._steps: Steps = []
        self._batch_size = self._batch_pieces = 0
        if kind == URLENCODED:
            self._urlencoded = BodyBuffer()
        elif kind == MULTIPART:
            self._events = MultipartEvents(form_boundary(content_type, params), limits)
            self._head_lines = self._events.keep_head_lines()
        else:
            raise HTTPError(415, f"expected a form body ({URLENCODED} or {MULTIPART})")

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body.

        Raises:
            HTTPError: 400 for malformed input, 413 past a limit.
        """
        if self._urlencoded is not None:
            self._memory += len(chunk)
            if self._memory > self.limits.max_form_memory:
                raise fields_too_large(self.limits)
            self._urlencoded.add(chunk)
        elif self._events is not None and not self._events.closed and chunk:
            self._parse(chunk)

    def finish(self) -> FormData:
        """Close the input and return the form (every batch written, unless ``defer_writes``).

        Raises:
            HTTPError: 400 for a truncated multipart body.
        """
        urlencoded_fields = 0
        if self._urlencoded is not None:
            data = self._urlencoded.take()
            self.items.extend(parse_fields(data, self.limits.max_query_params))
            check_urlencoded_fields(self.items, self.limits, len(data))
            # NOTE: as parse_fields() counts them (empty ones too), for check_kept_form().
            urlencoded_fields = data.count(b"&") + 1 if data else 0
        elif self._events is not None and not self._events.closed:
            self._parse(b"")
        if not self.defer_writes:
            if self._steps:
                self.spooler.put(self.take_batch())
            self.spooler.end()
        form = FormData(self.items)
        form._measure = (
            self._names,
            self._numbers,
            self._head_lines,
            urlencoded_fields,
            self.limits,
        )
        return form

    def feed_all(self, chunks: Iterable[bytes]) -> FormData:
        """Feed every chunk and return the form (the sync colour).

        A batch is written while the next is parsed. After an error the write in flight ends
        before this raises, so the files can be closed.
        """
        try:
            for chunk in chunks:
                self.feed(chunk)
            return self.finish()
        except BaseException:
            try:
                self.spooler.end()
            except Exception as exc:
                _lost_write(exc)
            raise

    async def afeed_all(self, chunks: AsyncIterator[bytes]) -> FormData:
        """Feed every chunk and return the form; the async twin of ``feed_all()``."""
        spooler = self.spooler
        # PERF: a multipart body's chunks go to _parse() at once, and the batch is measured
        # here, not through feed() and a property (spool() measures it inline too): aform() of a
        # 10 MiB upload in 256 KiB messages, 16.90M-16.92M -> 16.84M-16.85M instructions a
        # request (bench/icount.sh microweb form 12 2, two runs each, 2026-12-07).
        events = self._events
        try:
            if events is None:
                async for chunk in chunks:
                    self.feed(chunk)
            else:
                async for chunk in chunks:
                    if chunk and not events.closed:
                        self._parse(chunk)
                        if self._batch_size >= WRITE_BATCH or self._batch_pieces >= MAX_PIECES:
                            await spooler.aput(self.take_batch())
            form = self.finish()
            if self._steps:
                await spooler.aput(self.take_batch())
            await spooler.aend()
            return form
        except BaseException:
            try:
                await spooler.aend()
            except Exception as exc:
                _lost_write(exc)
            raise

    def spool(self, upload: UploadFile, chunk: bytes | None) -> None:
        """Add a chunk of a file past its threshold (``None``: its end) to the batch."""
        steps = self._steps
        if chunk is None:
            steps.append((upload, None))
        else:  # NOTE: consecutive chunks of one file go in one list, so in one os.writev().
            if steps and steps[-1][0] is upload and (run := steps[-1][1]) is not None:
                run.append(chunk)
            else:
                steps.append((upload, [chunk]))
            self._batch_size += len(chunk)
            self._batch_pieces += 1
        if not self.defer_writes and (
            self._batch_size >= WRITE_BATCH or self._batch_pieces >= MAX_PIECES
        ):
            self.spooler.put(self.take_batch())

    def take_batch(self) -> Steps:
        """Return the waiting writes and start a new batch."""
        steps, self._steps = self._steps, []
        self._batch_size = self._batch_pieces = 0
        return steps

    @property
    def on_disk(self) -> bool:
        """Whether a file of the form is a temporary file on disk (closing it is disk work)."""
        part = self._part
        if part is not None and part.upload is not None and not part.upload.in_memory:
            return True
        return any(isinstance(v, UploadFile) and not v.in_memory for _, v in self.items)

    def discard(self) -> None:
        """Close the form's files: when the request ends, or for a form not finished."""
        try:
            FormData(self.items).close()
        finally:
            if self._part is not None:
                # NOTE: a part cut off refers back to this builder: left, that cycle kept what
                # it had received (up to spool_threshold) until a full collection.
                self._part.discard()
                self._part = self._file = None
            self.take_batch()

    def _parse(self, chunk: bytes) -> None:
        events = self._events
        assert events is not None
        # PERF: the parser's own events, the data of a named file's part (which no limit of
        # fields counts) written at once, the rest through event_of(): one generator less a
        # chunk than MultipartEvents.parse(), which does that for each event. aform() of a
        # 10 MiB upload in 256 KiB messages, 16.98M-17.00M -> 16.90M-16.92M instructions a
        # request (bench/icount.sh microweb form 12 2, two runs each, 2026-12-07).
        try:
            for event in events.raw(chunk):
                file = self._file
                if file is not None and event.__class__ is bytes:
                    file.write(event)
                else:
                    self._take(events.event_of(event))
        except multipart.MultipartError as exc:
            raise parser_error(exc) from None

    def _take(self, event: Event) -> None:
        part = self._part
        if isinstance(event, PartHead):
            part = self._part = _FormPart(event, self)
            # NOTE: a file named "" counts as a file at its first byte (event_of()).
            self._file = part if part.upload is not None and event.filename else None
            assert self._events is not None
            self._head_line_count = self._events.head_line_count
        elif event is None:
            assert part is not None
            self.items.append(part.finish())
            name, size, is_file = part.measure()
            self._names.append(name)
            self._numbers.extend((self._head_line_count, size, is_file))
            self._part = self._file = None
        else:
            assert part is not None
            part.write(event)


def _lost_write(error: Exception) -> None:
    """Log the error of a spooled write that the request's own error (raised instead) hides."""
    # NOTE: a full disk met while the request failed for another reason (the client left, or
    # sent a malformed body): the request ends with its own error, and the disk's was dropped
    # unseen; the server's operator needs it.
    logger.error("a write of an uploaded file failed as the request failed", exc_info=error)


class _FormPart:
    """One multipart part being received: a text field in memory, or a file."""

    def __init__(self, head: PartHead, builder: FormBuilder) -> None:
        self.head = head
        self.builder = builder
        # NOTE: a text field's bytes; a file's first ones wait in pieces.
        self.buffer = BodyBuffer()
        self.pieces = PieceBuffer()
        self.received = 0
        # NOTE: what the form's files in memory leave of the threshold; past it, to disk.
        self.threshold = max(0, builder.limits.spool_threshold - builder.files_in_memory)
        self.upload: UploadFile | None = None
        if head.filename is not None:
            self.upload = UploadFile(
                head.filename,
                head.content_type,
                head.headers,
                max(self.threshold, 1),  # NOTE: 0 is "never" to SpooledTemporaryFile.
                builder.run_blocking,
            )

    def write(self, chunk: bytes) -> None:
        """Store a chunk (its size was checked by ``MultipartEvents``)."""
        upload = self.upload
        self.received += len(chunk)
        if upload is None:
            self.buffer.add(chunk)
            return
        if self.received <= self.threshold:
            # PERF: a file's first bytes wait here, and reach the file at its end (in memory)
            # or with its first batch (on disk), not copied into memory and out again by a
            # rollover that the first hand-over waited for (0.36-0.70 ms -> 0.19-0.25 ms).
            # 10 MiB upload, three runs of best of 15 x 5 (2-CPU VM, 2026-11-30): form()
            # x1.98-2.02 -> x1.88-1.94 of the parser loop; aform() the same within noise.
            # PERF: kept as they came (PieceBuffer), not copied into one buffer first: the
            # 1 MiB under the threshold of a 10 MiB upload read with aform() in 256 KiB
            # messages, 18.29M-18.70M -> 16.98M-17.00M instructions a request (bench/icount.sh
            # microweb form 12 2, two runs each, 2026-12-07).
            self.pieces.add(chunk)
            return
        if self.received - len(chunk) <= self.threshold:
            upload._reserve_disk()  # NOTE: the file's first bytes past its threshold.
            spool = self.builder.spool
            for piece in self.pieces.take():
                spool(upload, piece)
        self.builder.spool(upload, chunk)

    def finish(self) -> tuple[str, FormValue]:
        name = self.head.name
        if self.upload is not None:
            if self.received > self.threshold:
                self.builder.spool(self.upload, None)
            else:
                for piece in self.pieces.take():
                    self.upload._write(piece)
                self.upload.seek(0)
                self.builder.files_in_memory += self.received
            return name, self.upload
        assert self.head.codec is not None
        return name, decode_with(self.buffer.take(), self.head.codec, f"form field {name!r}")

    def measure(self) -> tuple[str | None, int, int]:
        """The part as its limits count it: a text field's name and bytes (``None``, 0 for a
        file), and 1 where it counts as a file, else 0."""
        if self.upload is None:
            return self.head.name, self.received, 0
        # NOTE: a file named "" counts once it has data, as MultipartEvents counts it.
        return None, 0, int(bool(self.head.filename or self.received))

    def discard(self) -> None:
        if self.upload is not None:
            self.upload.close()


def check_kept_form(form: FormData, limits: Limits, size: int, *, urlencoded: bool) -> None:
    """Refuse a form read before (a flow's read, under the app's limits) where ``limits``
    would have refused it, as far as the form tells: ``size`` is its body's bytes.

    NOTE: so that a route's limits hold for a form a flow read before routing, as for the
    handler's own read, with the same answer where it is past several. What is counted here is
    what the parser counted, in the order it counted it (a file has a name or data; the sizes
    of a multipart form's parts and their heads are its ``FormMeasure``), so a form read under
    these limits is never refused.
    """
    measure = FormMeasure(*form._measure)
    if limits == measure.read_under:
        return  # NOTE: read, or checked already, under these limits: nothing is past them.
    if urlencoded:
        # NOTE: in the order its read checks them: the body's bytes as they come, then its
        # fields' count as it is parsed, then each field's bytes.
        if size > limits.max_form_memory:
            raise fields_too_large(limits)
        # NOTE: its items alone, "a=1&&&" passed max_query_params=2, which its read refuses.
        if measure.urlencoded_fields > limits.max_query_params:
            raise too_many_fields(limits.max_query_params)
        check_urlencoded_fields(form._items, limits, size)
    else:
        # NOTE: measured in characters, a field of 10 UTF-8 bytes in 5 characters passed a
        # route of max_field_size=6; the part heads' limits were not checked at all.
        measure.check(limits)
    # NOTE: each form()/aform() of a kept form checks it: the same limits again cost nothing.
    form._measure = (*form._measure[:-1], limits)


def check_urlencoded_fields(items: list[tuple[str, FormValue]], limits: Limits, size: int) -> None:
    """Refuse a urlencoded form (``size``: its body's bytes) with a field past
    ``max_field_size``, measured in bytes once percent-decoded, as a multipart field's bytes.

    NOTE: the limit held for multipart fields alone: a urlencoded field of any size within
    max_form_memory passed. Its value is counted, not its name, as in a multipart part.
    """
    # NOTE: decoding never makes a field longer, so a body within the limit holds none past it.
    if size <= limits.max_field_size:
        return
    for name, value in items:
        if isinstance(value, str) and len(value.encode("utf-8")) > limits.max_field_size:
            raise field_too_large(name, limits)
