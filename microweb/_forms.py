"""Form bodies: one builder, fed chunks by either colour, that turns them into ``FormData``.

Multipart bodies go through ``multipart.PushMultipartParser`` (non-strict, with every limit set:
TRAPS.md 1-5); urlencoded bodies through the standard library with a cap on field count.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable
from typing import IO, Any

import multipart

from ._buffer import BodyBuffer
from ._datastructures import Headers, MultiDict
from ._errors import HTTPError
from ._limits import Limits
from ._parsing import decode_with, find_text_codec, media_type, parse_fields

URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"

# NOTE: runs a blocking call from async code; the driver's lives in _concurrency (a thread).
BlockingRunner = Callable[..., Awaitable[Any]]


async def run_here(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in this thread: the runner of forms built outside a request (tests)."""
    return fn(*args)


class UploadFile:
    """A file sent in a multipart form.

    Held in memory up to ``Limits.spool_threshold`` bytes, then in a temporary file that is
    removed when the request ends. ``filename`` is the client's name for it: never use it as a
    path (see ``safe_filename``).
    """

    def __init__(
        self,
        filename: str,
        content_type: str,
        headers: Headers,
        spool_threshold: int,
        run_blocking: BlockingRunner = run_here,
    ) -> None:
        self.filename = filename
        self._run_blocking = run_blocking
        self.content_type = content_type
        self.headers = headers
        self.size = 0
        # NOTE: closed with the form when the request ends, so no with-block here.
        spooled = tempfile.SpooledTemporaryFile(max_size=spool_threshold)  # noqa: SIM115
        self.file: IO[bytes] = spooled

    def _write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.size += len(chunk)

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all by default) from the current position."""
        return self.file.read(size)

    async def aread(self, size: int = -1) -> bytes:
        """Read from async code; the async twin of ``read()``."""
        data: bytes = await self._run_blocking(self.file.read, size)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the read position; ``seek(0)`` reads the file again from the start."""
        return self.file.seek(offset, whence)

    def save(self, path: str | os.PathLike[str]) -> int:
        """Copy the whole file to ``path`` (chosen by the server, never the client's name).

        Returns:
            The number of bytes written.
        """
        self.file.seek(0)
        with open(path, "wb") as target:
            shutil.copyfileobj(self.file, target, 1024 * 1024)
        self.file.seek(0)
        return self.size

    async def asave(self, path: str | os.PathLike[str]) -> int:
        """Copy the whole file to ``path`` in a worker thread; the async twin of ``save()``."""
        written: int = await self._run_blocking(self.save, path)
        return written

    @property
    def in_memory(self) -> bool:
        """Whether the file is still held in memory (below the spool threshold)."""
        return not getattr(self.file, "_rolled", True)

    def close(self) -> None:
        """Close the file; a temporary file on disk is removed."""
        self.file.close()

    def __repr__(self) -> str:
        return f"<UploadFile {self.filename!r} {self.content_type} {self.size} bytes>"


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_WINDOWS_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)]
)


def safe_filename(filename: str, default: str = "upload") -> str:
    """Return a name made from ``filename`` that is safe to use as one path component.

    Directories, dots in front, and characters other than ASCII letters, digits, ``_``, ``.``
    and ``-`` are dropped; an empty result (or a reserved Windows name) gives ``default``.
    """
    original = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    base, dot, extension = name.rpartition(".")
    if dot and not _UNSAFE.sub("", base).strip("._") and original.rpartition(".")[0].strip("._"):
        # NOTE: a name of non-ASCII letters only ("写真.jpg") keeps its extension.
        name = f"{default}.{extension}"
    name = _UNSAFE.sub("_", name).strip("._")[:200]
    if not name or name.split(".")[0].upper() in _WINDOWS_NAMES:
        return default
    return name


FormValue = str | UploadFile


class FormData(MultiDict[FormValue]):
    """A form: a multidict of ``str`` fields and ``UploadFile`` files."""

    __slots__ = ()

    def close(self) -> None:
        """Close every uploaded file."""
        for _, value in self.multi_items():
            if isinstance(value, UploadFile):
                value.close()


class FormBuilder:
    """Builds ``FormData`` from body chunks; the sync and async body readers both feed it."""

    def __init__(
        self, content_type: str | None, limits: Limits, run_blocking: BlockingRunner = run_here
    ) -> None:
        kind, params = media_type(content_type)
        self.limits = limits
        self.run_blocking = run_blocking
        self.items: list[tuple[str, FormValue]] = []
        # NOTE: one buffer, not a list of chunks: a body dripped a byte at a time (TRAPS.md 27).
        self._urlencoded: BodyBuffer | None = None
        self._parser: multipart.PushMultipartParser | None = None
        self._memory = 0
        self._part: _Part | None = None
        if kind == URLENCODED:
            self._urlencoded = BodyBuffer()
        elif kind == MULTIPART:
            self._parser = self._make_parser(params.get("boundary"))
        else:
            raise HTTPError(415, f"expected a form body ({URLENCODED} or {MULTIPART})")

    def _make_parser(self, boundary: str | None) -> multipart.PushMultipartParser:
        if not boundary:
            raise HTTPError(400, "multipart body without a boundary")
        try:
            return multipart.PushMultipartParser(
                boundary,
                max_header_size=self.limits.max_part_header_size,
                max_header_count=self.limits.max_part_headers,
                max_segment_count=self.limits.max_form_parts,
                strict=False,
            )
        except multipart.MultipartError:
            raise HTTPError(400, "invalid multipart boundary") from None

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body.

        Raises:
            HTTPError: 400 for malformed input, 413 past a limit.
        """
        if self._urlencoded is not None:
            self._memory += len(chunk)
            self._check_memory()
            self._urlencoded.add(chunk)
        elif self._parser is not None and not self._parser.closed and chunk:
            self._parse(chunk)

    def finish(self) -> FormData:
        """Close the input and return the form.

        Raises:
            HTTPError: 400 for a truncated multipart body.
        """
        if self._urlencoded is not None:
            fields = parse_fields(self._urlencoded.take(), self.limits.max_query_params)
            self.items.extend(fields)
        elif self._parser is not None and not self._parser.closed:
            self._parse(b"")
        return FormData(self.items)

    def discard(self) -> None:
        """Close the files of a form that will not be finished (after an error)."""
        FormData(self.items).close()
        if self._part is not None:
            self._part.discard()

    def _parse(self, chunk: bytes) -> None:
        assert self._parser is not None
        try:
            for event in self._parser.parse(chunk):
                self._on_event(event)
        except multipart.ParserLimitReached as exc:
            raise HTTPError(413, f"multipart limit reached: {exc}") from None
        except multipart.MultipartError as exc:
            raise HTTPError(400, f"invalid multipart body: {_reason(exc)}") from None

    def _on_event(self, event: Any) -> None:
        if isinstance(event, multipart.MultipartSegment):
            self._part = _Part(event, self.limits, self.run_blocking)
        elif event is None:
            assert self._part is not None
            self.items.append(self._part.finish())
            self._part = None
        else:
            assert self._part is not None
            self._memory += self._part.write(event)
            self._check_memory()

    def _check_memory(self) -> None:
        if self._memory > self.limits.max_form_memory:
            raise HTTPError(413, f"form fields are larger than {self.limits.max_form_memory} bytes")


def _reason(exc: multipart.MultipartError) -> str:
    # NOTE: multipart adds the UnicodeDecodeError of a part header to the exception's args, and
    # its repr holds the raw header bytes: only the parser's own message goes to the client.
    message = exc.args[0] if exc.args else ""
    return message if isinstance(message, str) else type(exc).__name__


class _Part:
    """One multipart part being received: a text field in memory, or a file."""

    def __init__(
        self, segment: multipart.MultipartSegment, limits: Limits, run_blocking: BlockingRunner
    ) -> None:
        if not segment.name:
            raise HTTPError(400, "multipart part without a name")
        self.segment = segment
        self.limit = limits.max_field_size
        self.buffer = BodyBuffer()
        self.size = 0
        self.upload: UploadFile | None = None
        self.codec = "utf-8"
        if segment.filename is None:
            # NOTE: a text field's charset is checked before its bytes arrive (TRAPS.md 2, 24);
            # a file's is the app's business, as its bytes are never decoded here.
            self.codec = find_text_codec(segment.charset, f"form field {segment.name!r}")
        else:
            headers = Headers(_trusted=[(k.lower(), v) for k, v in segment.headerlist])
            content_type = segment.content_type or "application/octet-stream"
            self.upload = UploadFile(
                segment.filename, content_type, headers, limits.spool_threshold, run_blocking
            )

    def write(self, chunk: bytes) -> int:
        """Store a chunk; return the bytes it adds to the form's memory (text fields only)."""
        if self.upload is not None:
            self.upload._write(chunk)
            return 0
        self.size += len(chunk)
        if self.size > self.limit:
            raise HTTPError(
                413, f"form field {self.segment.name!r} is larger than {self.limit} bytes"
            )
        self.buffer.add(chunk)
        return len(chunk)

    def finish(self) -> tuple[str, FormValue]:
        name = self.segment.name or ""
        if self.upload is not None:
            self.upload.seek(0)
            return name, self.upload
        return name, decode_with(self.buffer.take(), self.codec, f"form field {name!r}")

    def discard(self) -> None:
        if self.upload is not None:
            self.upload.close()
