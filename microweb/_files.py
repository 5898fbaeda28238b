"""Files as values: what a file response serves, its validators and byte ranges (RFC 9110 13-14).

Nothing here sees a request or a response; ``_emission`` answers conditional and range requests
with these values.
"""

from __future__ import annotations

import calendar
import errno
import os
import re
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
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
    identity: tuple[int, int] | None = None  # (device, inode): the file described, not its name
    # NOTE: the file, opened already (by Static, for its checks): sent from that descriptor.
    held: HeldFile | None = field(default=None, compare=False, repr=False)

    @property
    def etag(self) -> str:
        """A strong validator made from size and modification time."""
        return f'"{self.size:x}-{int(self.mtime * 1_000_000):x}"'

    @property
    def last_modified(self) -> str:
        """The ``Last-Modified`` value: the modification time, not after now nor before 1970."""
        # SPEC: RFC 9110 8.8.2.1, a modification time in the future is sent as the current
        # time. NOTE: a clock set wrong, or a file unpacked from an archive, leaves one in 2100;
        # sent as it is, a client's If-Modified-Since of 2100 made every later version a 304.
        # Bounded, it is an HTTP date too: a time past the year 9999 (tmpfs, btrfs and XFS
        # store one) made formatdate raise ValueError, a 500.
        return formatdate(min(max(self.mtime, 0.0), time.time()), usegmt=True)

    @property
    def dated(self) -> bool:
        """Whether ``Last-Modified`` is the modification time, so that a date validates it."""
        # NOTE: a bounded date is shared by other versions (every one before 1970 is sent as
        # 1970): If-Modified-Since with it gave 304 for a changed file, and If-Range a 206 of
        # the new version spliced onto the old one's first bytes.
        return 0.0 <= self.mtime <= time.time()

    @property
    def whole(self) -> bool:
        """Whether the whole file is sent (not a range)."""
        return self.start == 0 and self.length == self.size

    def chunks(self) -> Iterator[bytes]:
        """Read the span in chunks; the file is opened on the first ``next()``.

        Raises:
            OSError: If the file ends before the span does (it shrank since it was described).
        """
        with open_described(self) as file:
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


class HeldFile:
    """A file opened to be described and checked, kept to be sent from the same descriptor.

    The first read of the file that describes it takes it (``take()``); the request that
    holds it closes it when it ends unless a read took it (``discard()``): a ``HEAD``, a 304,
    a response replaced. Sent from it, the body is the bytes of the file whose size and
    validators its headers give, with no second open to fail once the headers are out (the
    descriptors run out, a file renamed over it).
    """

    __slots__ = ("_files",)
    # NOTE: a request's cleanup, as its form's files are; closing a file read from is no
    # disk work for the loop to hand to a thread.
    on_disk = False

    def __init__(self, file: BinaryIO) -> None:
        self._files = [file]

    def take(self) -> BinaryIO | None:
        """Return the file, once; ``None`` once taken or discarded."""
        # NOTE: list.pop() is atomic: a stream's thread and the request's end never both get it.
        # Looked at first, the list could be emptied by the other before the pop (IndexError).
        try:
            return self._files.pop()
        except IndexError:
            return None

    def discard(self) -> None:
        """Close the file unless a read took it."""
        file = self.take()
        if file is not None:
            file.close()


def open_checked(path: str) -> tuple[BinaryIO, os.stat_result]:
    """Open the file at ``path`` for reading, without waiting on a named pipe; return it
    and its status.

    Raises:
        OSError: If it can't be opened or described.
    """
    opened = open(path, "rb", opener=_open_without_waiting)  # noqa: SIM115
    try:
        return opened, os.fstat(opened.fileno())
    except BaseException:
        opened.close()
        raise


def held_file(path: str, opened: BinaryIO, found: os.stat_result) -> FileInfo:
    """Describe the regular file ``opened`` (at ``path``, of status ``found``), to be sent
    from that descriptor (see ``HeldFile``)."""
    identity = (found.st_dev, found.st_ino)
    held = HeldFile(opened)
    return FileInfo(path, found.st_size, found.st_mtime, 0, found.st_size, identity, held)


def open_described(file: FileInfo) -> BinaryIO:
    """Open the file that ``file`` describes, for reading in binary mode: the one it holds
    (``HeldFile``), the first time, else the file at its path.

    Raises:
        OSError: If it can't be opened, or its name now leads to another file (one renamed
            over it, a named pipe) since it was described.
    """
    opened = file.held.take() if file.held is not None else None
    if opened is None:
        opened = open(file.path, "rb", opener=_open_without_waiting)  # noqa: SIM115
    try:
        found = os.fstat(opened.fileno())
        if not stat.S_ISREG(found.st_mode) or (
            file.identity is not None and (found.st_dev, found.st_ino) != file.identity
        ):
            # NOTE: its headers (length, ETag, Content-Range) describe the file that was there:
            # another file's bytes under them would be a corrupt download that looks whole.
            raise OSError(f"{file.path} was replaced since it was described")
        if NONBLOCK:
            os.set_blocking(opened.fileno(), True)
    except BaseException:
        opened.close()
        raise
    return opened


# NOTE: a named pipe put in a file's place blocked open() until some writer came: a pool thread
# (ASGI) or a server thread (WSGI) held for ever. Opened without waiting, it is refused.
NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)


def _open_without_waiting(path: str, flags: int) -> int:
    try:
        return os.open(path, flags | NONBLOCK)
    except BlockingIOError:
        # NOTE: a file under another process's write lease (Samba's oplocks, an NFS server's
        # delegation) refuses an open that would wait for the lease to end (45 s at most, the
        # kernel's lease-break-time): it was an error after the headers. A pipe never refuses.
        return os.open(path, flags)


def shrank(path: str, missing: int) -> OSError:
    """The error for a file that ended ``missing`` bytes before the length announced for it."""
    return OSError(f"{path} ended {missing} bytes short of its announced length (it shrank)")


class SizedFile:
    """A file opened to be sent, for a server's file wrapper: it ends at its announced length.

    Waitress sends a wrapped file from its main loop, and a file that shrank while it is sent
    left it retrying the missing bytes until its ``channel_timeout`` (120 s by default): a CPU
    busy all that time, and the client waiting. An ``OSError`` from ``read()`` makes it close
    the connection at once. A file that grew ends at the announced length, for a wrapper that
    reads to the end of the file (``wsgiref``'s).

    Args:
        file: The file, opened for reading in binary mode.
        size: The length announced for it: where the bytes sent end (a range's end).
    """

    __slots__ = ("_file", "_size")

    def __init__(self, file: BinaryIO, size: int) -> None:
        self._file = file
        self._size = size

    @classmethod
    def span(cls, file: BinaryIO, described: FileInfo) -> SizedFile:
        """Return ``file`` at the start of the span ``described`` sends, ending at its end."""
        file.seek(described.start)
        return cls(file, described.start + described.length)

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
        """Move to ``offset`` as ``whence`` says (``SEEK_END``: the announced end)."""
        # NOTE: Waitress seeks to the end to learn the size: the file's own end is a length
        # that may differ from the announced one, and /proc files refuse it (EINVAL, a 500).
        if whence == os.SEEK_END:
            return self._file.seek(self._size + offset)
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


def stat_file(path: str | bytes | os.PathLike[str] | os.PathLike[bytes]) -> FileInfo:
    """Describe the regular file at ``path``.

    Raises:
        FileNotFoundError: If there is no regular file there.
        PermissionError: If this process may not read it.
    """
    # NOTE: fsdecode, as Static takes its folder: a bytes path (os.listdir() of bytes gives
    # such names) was taken, then the type guess raised TypeError, a 500 for every request.
    fspath = os.fsdecode(path)
    info = os.stat(fspath)
    if not stat.S_ISREG(info.st_mode):
        raise FileNotFoundError(f"not a regular file: {fspath}")
    # NOTE: found now, before any header is out: found at the first read, it was a 200 (or a
    # 304, a HEAD's 200) and then a cut connection, with a traceback logged for each request.
    if not os.access(fspath, os.R_OK, effective_ids=EFFECTIVE_ACCESS):
        raise PermissionError(errno.EACCES, "not readable", fspath)
    identity = (info.st_dev, info.st_ino)
    return FileInfo(fspath, info.st_size, info.st_mtime, 0, info.st_size, identity)


# NOTE: open() uses the effective ids and capabilities; os.access checks the real uid unless
# told: a server with the effective uid nobody passed the check and then failed at the read, and
# one run with CAP_DAC_READ_SEARCH (systemd's AmbientCapabilities) got a 404 for every file.
EFFECTIVE_ACCESS = os.access in os.supports_effective_ids


# SPEC: RFC 9110 8.8.3, an entity-tag: an optional weak prefix and a quoted string, whose
# characters may be commas.
_QUOTED_TAG = re.compile(r'(?:W/)?"[^"]*"')


# NOTE: the longest If-Match or If-None-Match value read; a longer one lists no tag (see
# etag_listed() and etag_matched() for what that answers). A browser sends one tag, a cache
# one per version it keeps (RFC 9111 4.3.1): 4 KiB holds 150 of ours, weak and spaced.
# PERF: each tag costs Python work: 256 KiB of quote marks (a head Waitress and httptools let
# through) took 40 ms of CPU to read, of commas 23, of spaces 14; 4 KiB of quote marks takes
# 0.6-0.8 ms, an over-long value 0.4 us (timeit, best of 5, 2026-12-06). The other fields of
# a file's conditions take at most 3 ms at 256 KiB (Range: bytes=000...-1, its zeros
# stripped), the dates and If-Range 0.1 ms: they need no cap.
MAX_TAG_LIST_SIZE = 4096


def listed_tags(header: str) -> set[str]:
    """Return the entity-tags (and ``*``) an ``If-Match`` or ``If-None-Match`` value lists:
    none for a value longer than ``MAX_TAG_LIST_SIZE``."""
    if len(header) > MAX_TAG_LIST_SIZE:
        return set()
    # NOTE: split at every comma, the app's ETag "v1,2" was two tags, matched by neither list.
    # What is not quoted (``*``, an app's unquoted ETag) is split at its commas.
    rest = _QUOTED_TAG.sub(",", header)
    return {tag.strip() for tag in rest.split(",")} | set(_QUOTED_TAG.findall(header))


def etag_listed(header: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` value lists ``etag`` (or ``*``); an over-long value
    (``MAX_TAG_LIST_SIZE``) does not."""
    # SPEC: RFC 9110 13.1.2, If-None-Match uses the weak comparison. NOTE: an over-long value
    # lists nothing: the condition holds and the file is sent whole (200, or the 206 a Range
    # asks for), which is always a right answer, only not the cheapest. If-Modified-Since is
    # still ignored, as for any If-None-Match (13.1.3).
    tags = {tag.removeprefix("W/") for tag in listed_tags(header)}
    return "*" in tags or etag.removeprefix("W/") in tags


def etag_matched(header: str, etag: str) -> bool:
    """Whether an ``If-Match`` value lists ``etag`` (or ``*``), by the strong comparison; an
    over-long value (``MAX_TAG_LIST_SIZE``) does not."""
    # SPEC: RFC 9110 13.1.1, If-Match uses the strong comparison: a weak tag never matches.
    # NOTE: an over-long value matches nothing, so the answer is 412, not the file: If-Match
    # asks for this version or nothing (a download resumed with a Range, a check before
    # overwriting), and a value ignored could splice another version's bytes onto the
    # client's. 412 is also the 4xx that 5.4 asks of a field larger than a server reads.
    tags = listed_tags(header)
    return "*" in tags or (etag in tags and not etag.startswith("W/"))


def unmodified_since(header: str, file: FileInfo) -> bool:
    """Whether an ``If-Unmodified-Since`` value lets the request on (an invalid date does)."""
    since = parse_http_date(header)
    if since is None:
        # SPEC: RFC 9110 13.1.4, an invalid date is ignored.
        return True
    # NOTE: a bounded Last-Modified is shared by other versions: it can't vouch for this one.
    return file.dated and int(file.mtime) <= since


def not_modified_since(header: str, mtime: float) -> bool:
    """Whether an ``If-Modified-Since`` value is at or after ``mtime`` (an invalid date: no)."""
    since = parse_http_date(header)
    return since is not None and int(mtime) <= since


_DAY = r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH = f"(?P<month>{'|'.join(_MONTHS)})"
_TIME = r"(?P<hour>\d\d):(?P<minute>\d\d):(?P<second>\d\d)"
# SPEC: RFC 9110 5.6.7, the three forms a recipient accepts, each one date in GMT.
_HTTP_DATES = [
    re.compile(rf"{_DAY}, (?P<day>\d\d) {_MONTH} (?P<year>\d{{4}}) {_TIME} GMT"),
    re.compile(
        rf"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), "
        rf"(?P<day>\d\d)-{_MONTH}-(?P<year>\d\d) {_TIME} GMT"
    ),
    re.compile(rf"{_DAY} {_MONTH} (?P<day>[ \d]\d) {_TIME} (?P<year>\d{{4}})"),
]


def parse_http_date(value: str) -> int | None:
    """Return the POSIX time of an HTTP-date, or ``None`` for anything else.

    NOTE: ``email.utils`` read the first date of a list ("<date>, <date>", which RFC 9110
    13.1.3 has ignored), offsets other than GMT, and asctime's date in the server's local time.
    """
    value = value.strip()
    for form in _HTTP_DATES:
        match = form.fullmatch(value)
        if match is not None:
            break
    else:
        return None
    year = int(match["year"])
    if len(match["year"]) == 2:
        # SPEC: RFC 9110 5.6.7, a two-digit year more than 50 years ahead is in the past.
        this_year = time.gmtime().tm_year
        year += this_year - this_year % 100
        if year > this_year + 50:
            year -= 100
    month = _MONTHS.index(match["month"]) + 1
    fields = (int(match["day"]), int(match["hour"]), int(match["minute"]), int(match["second"]))
    day, hour, minute, second = fields
    if not (year and 1 <= day <= calendar.monthrange(year, month)[1]):
        return None
    if hour > 23 or minute > 59 or second > 60:  # NOTE: 60, a leap second.
        return None
    return calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))


def range_applies(if_range: str | None, file: FileInfo, etag: str) -> bool:
    """Whether a ``Range`` is honoured given the request's ``If-Range`` value, if any.

    ``etag`` is the ETag sent with the file (``file.etag``, unless the app set its own).
    """
    if if_range is None:
        return True
    # SPEC: RFC 9110 13.1.5, If-Range needs a strong match (an ETag, or the exact date).
    validator = if_range.strip()
    if validator == etag:
        return not etag.startswith("W/")
    if validator.startswith(('"', "W/")) or not file.dated:
        return False
    # NOTE: the date is compared as a time, so that the same second in another of the three
    # forms matches too. SPEC: RFC 9110 8.8.2.2, a date is a strong validator only if the
    # file was last changed at least a second before now: another change in the same second
    # would keep its date.
    when = parse_http_date(validator)
    return when == int(file.mtime) and when < int(time.time())


def ranges_accepted(accept_ranges: str) -> bool:
    """Whether an ``Accept-Ranges`` value (the app's, or ``bytes``) lists the unit ``bytes``."""
    # NOTE: the app's own value is the one sent: "none" went out on the 206 it denied.
    # SPEC: RFC 9110 14.1, range units are case-insensitive.
    return "bytes" in {unit.strip().lower() for unit in accept_ranges.split(",")}


def parse_range(header: str, size: int) -> tuple[int, int] | Literal[False] | None:
    """Parse a ``Range`` header for one span of a ``size``-byte file.

    Returns:
        ``(start, length)`` for one satisfiable range, ``False`` for an unsatisfiable one, and
        ``None`` for a header to ignore (malformed, another unit, several ranges, or a suffix
        of an empty file: the whole file is then sent, which bounds the work any ``Range`` can
        cause).
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    digits = first + last
    if not dash or not digits or not (digits.isascii() and digits.isdigit()):
        return None
    # NOTE: leading zeros are allowed (1*DIGIT), and say nothing of the size.
    first, last = first and (first.lstrip("0") or "0"), last and (last.lstrip("0") or "0")
    if not first:
        suffix = _position(last)
        if suffix and not size:
            # SPEC: RFC 9110 14.1.1, satisfiable (the only range-spec an empty file satisfies),
            # yet no Content-Range can give it: sent whole, as a 200 (it was a 416).
            return None
        return (max(size - suffix, 0), min(suffix, size)) if suffix else False
    if last and (len(last), last) < (len(first), first):
        return None
    start = _position(first)
    end = min(_position(last), size - 1) if last else size - 1
    if start >= size:
        return False
    return start, end - start + 1


# NOTE: more than any file holds (2**63 - 1 bytes at most), and than any 18 digits say.
_BEYOND = 10**19


def _position(digits: str) -> int:
    """Return a byte position of a ``Range``, given with no leading zeros; one of more than
    18 digits is ``_BEYOND``.

    A client that asks for "the rest, whatever its size" may write a last position of 20
    digits (``bytes=0-18446744073709551615``), and got the whole file with a 200.
    """
    # NOTE: int() of a long run of digits is slow (quadratic): it is never made.
    return int(digits) if len(digits) <= 18 else _BEYOND


# NOTE: the code of every FileInfo.chunks() generator, by which one is told from a stream put
# in its place (gzip's, a flow's own), which is what is sent instead of the file.
_FILE_READ = FileInfo.chunks.__code__


def reads_the_file(chunks: object) -> bool:
    """Whether ``chunks`` is a read of a ``FileInfo`` (``FileInfo.chunks()``), not a stream."""
    return getattr(chunks, "gi_code", None) is _FILE_READ


def bound_to_no_thread(chunks: object) -> bool:
    """Whether a sync stream may be read a few chunks at a time by any thread: a file's read,
    or a stream that says so with a true ``bound_to_no_thread`` attribute (gzip's of a file).

    Any other sync stream is read in one thread from its start to its end, as a ``sqlite3``
    cursor must be.
    """
    return reads_the_file(chunks) or getattr(chunks, "bound_to_no_thread", False) is True
