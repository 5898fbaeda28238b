"""Uploaded files: ``UploadFile`` (in memory, then a temporary file), and its disk writes.

A form's files are written past their spool threshold in batches (``_forms``); each batch
reaches the file here, with as few system calls as possible. ``safe_filename`` turns a
client's file name into one safe to use on disk.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import unicodedata
import weakref
from collections.abc import Awaitable, Callable
from typing import IO, Any

from ._datastructures import Headers
from ._errors import HTTPError

try:
    import resource
except ImportError:  # pragma: no cover - NOTE: Windows has no resource module.
    resource = None  # type: ignore[assignment]

# NOTE: runs a blocking call from async code; the driver's lives in _file_threads (a thread).
BlockingRunner = Callable[..., Awaitable[Any]]


async def run_here(fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in this thread: the runner of forms built outside a request (tests)."""
    return fn(*args)


# NOTE: max_form_files bounds one form's temporary files, not the process's. A form of one
# 1 MiB file (which fills spool_threshold in memory) and 99 files of 30 KB each (4 MB) holds
# 99 file descriptors while its client stalls before the end of the body: 13 such requests
# (52 MB) took all 1,024 of a Uvicorn process, which then failed to accept any connection
# ("Too many open files") until they timed out (microweb serve, 2026-12-03). The uploads that
# hold a temporary file are counted here, and one more past the cap is 503, so that the
# process keeps the rest of its descriptors for connections. A WeakSet, so that an upload
# dropped without close() is not counted for ever.
_ON_DISK: weakref.WeakSet[UploadFile] = weakref.WeakSet()
# NOTE: the cap where the process's limit of open files is unknown or unlimited.
DEFAULT_DISK_UPLOADS = 512


def disk_upload_cap() -> int:
    """Return how many uploads may hold a temporary file at once in this process: half of
    its limit of open files (``RLIMIT_NOFILE``, read each time: an app may raise it)."""
    if resource is None:  # pragma: no cover
        return DEFAULT_DISK_UPLOADS
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return DEFAULT_DISK_UPLOADS
    return max(1, soft // 2)


def disk_uploads() -> int:
    """Return how many uploads hold (or are about to hold) a temporary file in this process."""
    return len(_ON_DISK)


class UploadFile:
    """A file sent in a multipart form.

    Held in memory while the form's files hold up to ``Limits.spool_threshold`` bytes together,
    then in a temporary file that is removed when the request ends. ``filename`` is the
    client's name for it: never use it as a path (see ``safe_filename``).
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
        self._spooled = tempfile.SpooledTemporaryFile(max_size=spool_threshold)  # noqa: SIM115
        self.file: IO[bytes] = self._spooled
        self._writing = self._closing = False

    def _reserve_disk(self) -> None:
        """Count the temporary file this upload is about to hold; called by the parser's
        thread before its first write to disk is batched.

        Raises:
            HTTPError: 503 when ``disk_upload_cap()`` uploads of the process hold one already.
        """
        if self in _ON_DISK or self.file.closed:
            return
        if len(_ON_DISK) >= disk_upload_cap():
            raise HTTPError(503, "too many uploaded files held on disk at once; try again later")
        _ON_DISK.add(self)

    def _write(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.size += len(chunk)

    def _to_disk(self) -> None:
        """Move the file to a temporary file on disk, if it is still in memory; blocking."""
        if self.in_memory:
            self._guarded(self._spooled.rollover)

    def _append(self, chunks: list[bytes]) -> None:
        """Write ``chunks`` to the temporary file (moved there first); blocking disk I/O."""
        self._guarded(self._write_chunks, chunks)

    def _write_chunks(self, chunks: list[bytes]) -> None:
        self._spooled.rollover()
        write_all(self.file.fileno(), chunks)
        self.size += sum(map(len, chunks))

    def _guarded(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn`` (disk I/O), unless the file was closed; close it after, if asked meanwhile.

        The writes run in a file thread while the request may close the file (an upload
        cancelled mid-way): whichever of the two comes last closes it, so the file descriptor
        is never closed under a write in flight.
        """
        # NOTE: each side sets its flag, then reads the other's (GIL-ordered): one of them closes.
        self._writing = True
        try:
            if not self._closing:
                fn(*args)
        finally:
            self._writing = False
            if self._closing:
                self._close_file()

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all by default) from the current position.

        Raises:
            ValueError: Once the file is closed (its request ended), with a message that says so.
        """
        try:
            return self.file.read(size)
        except ValueError:
            self._check_open("read()")
            raise

    async def aread(self, size: int = -1) -> bytes:
        """Read from async code; the async twin of ``read()``."""
        data: bytes = await self._run_blocking(self.read, size)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move the read position; ``seek(0)`` reads the file again from the start."""
        try:
            return self.file.seek(offset, whence)
        except ValueError:
            self._check_open("seek()")
            raise

    def tell(self) -> int:
        """Return the read position."""
        try:
            return self.file.tell()
        except ValueError:
            self._check_open("tell()")
            raise

    def save(self, target: str | os.PathLike[str] | IO[bytes]) -> int:
        """Copy the whole file to ``target``, a path or a binary file object open for writing.

        A path is chosen by the server, never the client's name; a file there is replaced. If
        the copy fails (a full disk), what it wrote at the path is removed. A file object is
        written from its current position and left open.

        Returns:
            The number of bytes written.

        Raises:
            ValueError: Once the upload is closed (its request ended).
            OSError: If the copy fails.
        """
        self._check_open("save()")
        self.file.seek(0)
        if isinstance(target, (str, os.PathLike)):
            _copy_to_path(self.file, target)
        else:
            shutil.copyfileobj(self.file, target, COPY_CHUNK)
        self.file.seek(0)
        return self.size

    async def asave(self, target: str | os.PathLike[str] | IO[bytes]) -> int:
        """Copy the whole file to ``target`` in a worker thread; the async twin of ``save()``."""
        written: int = await self._run_blocking(self.save, target)
        return written

    def _check_open(self, call: str) -> None:
        if self.file.closed:
            raise ValueError(
                f"{call} on upload {self.filename!r}, which is closed: uploads are closed when "
                "their request ends; read or save it before (or in request.after_response())"
            ) from None

    @property
    def in_memory(self) -> bool:
        """Whether the file is still held in memory (below the spool threshold)."""
        return not getattr(self.file, "_rolled", True)

    def close(self) -> None:
        """Close the file; a temporary file on disk is removed."""
        self._closing = True
        if not self._writing:
            self._close_file()

    def _close_file(self) -> None:
        # NOTE: counted among the uploads on disk until its descriptor is closed, by close() or,
        # with a write in flight, by the writer after it.
        try:
            self.file.close()
        finally:
            _ON_DISK.discard(self)  # NOTE: a close that failed left it counted for ever.

    def __repr__(self) -> str:
        # NOTE: the type as the client wrote it (ESC, BEL), which drove the terminal of a log
        # that held the repr: in repr()'s escapes, as the file name is.
        return f"<UploadFile {self.filename!r} {self.content_type!r} {self.size} bytes>"


COPY_CHUNK = 1024 * 1024


def _copy_to_path(source: IO[bytes], path: str | os.PathLike[str]) -> None:
    """Copy ``source`` to a new file at ``path``; blocking. A failed copy leaves no file."""
    # NOTE: opened outside the try: a file that did not open (not ours to write) is not removed.
    out = open(path, "wb")  # noqa: SIM115
    try:
        # NOTE: closed within the try: the last buffered bytes are written by close(), which
        # finds a full disk as a write does.
        with out:
            shutil.copyfileobj(source, out, COPY_CHUNK)
    except BaseException:
        # NOTE: a half-written file would pass for the upload: a full disk leaves nothing.
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_WINDOWS_NAMES = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"{p}{i}" for p in ("COM", "LPT") for i in range(10)]
)


def safe_filename(filename: str, default: str = "upload") -> str:
    """Return a name made from ``filename`` that is safe to use as one path component.

    Directories and dots in front are dropped, accents are stripped (``é`` gives ``e``), each
    run of other characters than ASCII letters, digits, ``_``, ``.`` and ``-`` becomes one
    ``_``, the result is cut to 200 characters (keeping an extension of up to 16), and
    underscores and dots at either end are dropped; an empty result (or a reserved Windows
    name) gives ``default``, and a name of non-ASCII letters only keeps its extension
    (``写真.jpg`` gives ``upload.jpg``).
    """
    original = filename.replace("\\", "/").rsplit("/", 1)[-1]
    name = unicodedata.normalize("NFKD", original).encode("ascii", "ignore").decode("ascii")
    base, dot, extension = name.rpartition(".")
    if dot and not _UNSAFE.sub("", base).strip("._") and original.rpartition(".")[0].strip("._"):
        # NOTE: a name of non-ASCII letters only ("写真.jpg") keeps its extension.
        name = f"{default}.{extension}"
    name = _cut(_UNSAFE.sub("_", name).strip("._"))
    if not name or name.split(".")[0].upper() in _WINDOWS_NAMES:
        return default
    return name


def _cut(name: str, most: int = 200) -> str:
    """Cut ``name`` to ``most`` characters, keeping a short extension (``.txt``) at its end."""
    if len(name) <= most:
        return name
    stem, dot, extension = name.rpartition(".")
    if dot and stem and len(extension) <= 16:
        # NOTE: stripped again after the cut, which may end the stem on a dot or an underscore.
        return f"{stem[: most - len(extension) - 1].rstrip('._')}.{extension}"
    return name[:most].rstrip("._")


# NOTE: below IOV_MAX (1024 on Linux and macOS), and it bounds a batch of dripped chunks.
MAX_PIECES = 512


def write_all(fd: int, chunks: list[bytes]) -> None:
    """Write ``chunks`` to the file descriptor ``fd``, in order, with as few calls as possible."""
    writev = getattr(os, "writev", None)  # NOTE: not on Windows.
    for start in range(0, len(chunks), MAX_PIECES):
        piece = chunks[start : start + MAX_PIECES]
        written = writev(fd, piece) if writev is not None else 0
        rest = memoryview(b"".join(piece))[written:] if written < sum(map(len, piece)) else b""
        while rest:
            # NOTE: a short write (rare on a file) or no writev: the rest, one call at a time.
            rest = rest[os.write(fd, rest) :]
