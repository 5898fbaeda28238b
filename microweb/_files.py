"""Files as values: what a file response serves, its validators and byte ranges (RFC 9110 13-14).

Nothing here sees a request or a response; ``_emission`` answers conditional and range requests
with these values.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from typing import BinaryIO, Literal

FILE_CHUNK = 64 * 1024


@dataclass(frozen=True, slots=True)
class FileInfo:
    """What a file response serves: the file, its validators, and the byte span sent."""

    path: str
    size: int
    mtime: float
    start: int = 0
    length: int = -1

    @property
    def etag(self) -> str:
        """A strong validator made from size and modification time."""
        return f'"{self.size:x}-{int(self.mtime * 1_000_000):x}"'

    @property
    def last_modified(self) -> str:
        """The ``Last-Modified`` value."""
        return formatdate(self.mtime, usegmt=True)

    @property
    def whole(self) -> bool:
        """Whether the whole file is sent (not a range)."""
        return self.start == 0 and self.length == self.size

    def chunks(self) -> Iterator[bytes]:
        """Read the span in chunks; the file is opened on the first ``next()``.

        Raises:
            OSError: If the file ends before the span does (it shrank since it was described).
        """
        with open(self.path, "rb") as file:
            file.seek(self.start)
            remaining = self.length
            while remaining > 0 and (chunk := file.read(min(FILE_CHUNK, remaining))):
                remaining -= len(chunk)
                yield chunk
        # NOTE: its Content-Length is out: ending short would be a length that lies, which
        # desynchronises a kept-alive connection on a server that does not count (an error
        # makes every server cut the connection).
        if remaining:
            raise shrank(self.path, remaining)


def shrank(path: str, missing: int) -> OSError:
    """The error for a file that ended ``missing`` bytes before the length announced for it."""
    return OSError(f"{path} ended {missing} bytes short of its announced length (it shrank)")


class SizedFile:
    """A file opened to be sent whole, for a server's file wrapper: it ends at its length.

    Waitress sends a wrapped file from its main loop, and a file that shrank while it is sent
    left it retrying the missing bytes until its ``channel_timeout`` (120 s by default): a CPU
    busy all that time, and the client waiting. An ``OSError`` from ``read()`` makes it close
    the connection at once. A file that grew ends at the announced length, for a wrapper that
    reads to the end of the file (``wsgiref``'s).

    Args:
        file: The file, opened for reading in binary mode.
        size: The length announced for it.
    """

    __slots__ = ("_file", "_size")

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._size = size

    def read(self, size: int = -1) -> bytes:
        """Read ``size`` bytes (the rest when negative), never past the announced length.

        Raises:
            OSError: If the file ends before its announced length.
        """
        due = max(self._size - self._file.tell(), 0)
        wanted = due if size < 0 else min(size, due)
        data = self._file.read(wanted)
        if len(data) < wanted:
            raise shrank(self._file.name, due - len(data))
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        """Move to ``offset`` as ``whence`` says; return the new position."""
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        """Return the current position."""
        return self._file.tell()

    def seekable(self) -> bool:
        """Return ``True``: a regular file can seek."""
        return True

    def fileno(self) -> int:
        """Return the file descriptor (servers that ``sendfile()`` use it)."""
        return self._file.fileno()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def stat_file(path: str | os.PathLike[str]) -> FileInfo:
    """Describe the regular file at ``path``.

    Raises:
        FileNotFoundError: If there is no regular file there.
    """
    fspath = os.fspath(path)
    info = os.stat(fspath)
    if not os.path.isfile(fspath):
        raise FileNotFoundError(f"not a regular file: {fspath}")
    return FileInfo(fspath, info.st_size, info.st_mtime, 0, info.st_size)


def etag_listed(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value lists ``etag`` (or ``*``)."""
    # SPEC: RFC 9110 13.1.2, If-None-Match uses the weak comparison.
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in tags or etag in tags


def not_modified_since(header: str, mtime: float) -> bool:
    """Whether an ``If-Modified-Since`` value is at or after ``mtime`` (an invalid date: no)."""
    try:
        since = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return int(mtime) <= since


def range_applies(if_range: str | None, file: FileInfo) -> bool:
    """Whether a ``Range`` is honoured given the request's ``If-Range`` value, if any."""
    if if_range is None:
        return True
    # SPEC: RFC 9110 13.1.5, If-Range needs a strong match (an ETag, or the exact date).
    return if_range.strip() in (file.etag, file.last_modified)


def parse_range(header: str, size: int) -> tuple[int, int] | Literal[False] | None:
    """Parse a ``Range`` header for one span of a ``size``-byte file.

    Returns:
        ``(start, length)`` for one satisfiable range, ``False`` for an unsatisfiable one, and
        ``None`` for a header to ignore (malformed, another unit, or several ranges: the whole
        file is then sent, which bounds the work any ``Range`` can cause).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    digits = first + last
    too_long = max(len(first), len(last)) > 18
    if not dash or not digits or too_long or not (digits.isascii() and digits.isdigit()):
        return None
    if not first:
        suffix = int(last)
        return (max(size - suffix, 0), min(suffix, size)) if suffix and size else False
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if last and int(last) < start:
        return None
    if start >= size:
        return False
    return start, end - start + 1
