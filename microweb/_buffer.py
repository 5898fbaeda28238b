"""A body that arrives in pieces: one growing buffer, and the meter of its size (sans-IO)."""

from __future__ import annotations

from io import BytesIO
from typing import NoReturn

from ._errors import HTTPError


class BodyBuffer:
    """Joins chunks into one ``bytes`` without holding each chunk as its own object.

    ``b"".join(chunks)`` first needs every chunk alive: a body dripped one byte per message
    costs about 90 times its size that way (TRAPS.md 27). Here a lone chunk is kept as it is
    (no copy: the usual one-message body), and from the second one on they are written into a
    ``BytesIO``, whose ``getvalue()`` hands its buffer over without a second copy.
    """

    __slots__ = ("_buffer", "_first")

    def __init__(self) -> None:
        self._first = b""
        self._buffer: BytesIO | None = None

    def __len__(self) -> int:
        return len(self._first) if self._buffer is None else self._buffer.tell()

    def add(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        if self._buffer is not None:
            self._buffer.write(chunk)
        elif not self._first:
            self._first = chunk
        elif chunk:
            self._buffer = BytesIO()
            self._buffer.write(self._first)
            self._buffer.write(chunk)
            self._first = b""

    def take(self) -> bytes:
        """Return everything added so far, and start again empty."""
        value = self._first if self._buffer is None else self._buffer.getvalue()
        self._first, self._buffer = b"", None
        return value


# NOTE: a chunk of at least this many bytes is kept by a PieceBuffer as it came; smaller ones
# are joined, so the pieces held cost at most about 1% of their bytes in objects.
PIECE_MIN = 4096


class PieceBuffer:
    """Keeps chunks as they came, to be written out one by one (or with one ``os.writev()``)
    where a ``BodyBuffer`` would copy them into one ``bytes``: the first bytes of an uploaded
    file, held until it ends or passes its spool threshold.

    Chunks under ``PIECE_MIN`` bytes are joined in a ``BodyBuffer`` first: a file dripped one
    byte a read is not a list of a million objects (TRAPS.md 27).
    """

    __slots__ = ("_pieces", "_small")

    def __init__(self) -> None:
        self._pieces: list[bytes] = []
        self._small: BodyBuffer | None = None

    def add(self, chunk: bytes) -> None:
        """Append ``chunk``."""
        small = self._small
        if len(chunk) < PIECE_MIN:
            if small is None:
                small = self._small = BodyBuffer()
            small.add(chunk)
            return
        if small is not None:
            self._small = None
            self._pieces.append(small.take())
        self._pieces.append(chunk)

    def take(self) -> list[bytes]:
        """Return the pieces added so far, in order, and start again empty."""
        pieces, self._pieces = self._pieces, []
        if self._small is not None:
            pieces.append(self._small.take())
            self._small = None
        return pieces


_TOO_LARGE = "_microweb_too_large"


def is_too_large(error: HTTPError) -> bool:
    """Tell whether ``error`` is the 413 that a read of a body past its limit raised."""
    return vars(error).get(_TOO_LARGE) is True


class BodyMeter:
    """Counts body bytes against the body limit and the announced ``Content-Length``.

    Raises ``HTTPError`` 413 as soon as the limit is passed (when the announced length is
    already past it too), and 400 for a body longer or shorter than its ``Content-Length``.
    """

    __slots__ = ("bound", "ended", "expected", "failed", "limit", "total")
    # NOTE: what the 413 calls the body.
    what = "request body"

    def __init__(self, limit: int, expected: int | None) -> None:
        if expected is not None and expected > limit:
            raise self.too_large(limit)
        self.limit, self.expected, self.total = limit, expected, 0
        # NOTE: the status and detail of the 413 or 400 it raised: a read that streamed the
        # body (form(), iter_parts()) has no other way to leave it for the request's later
        # reads. Not the error itself: its traceback holds the frames that hold this meter.
        self.failed: tuple[int, str] | None = None
        # NOTE: whether the body ended whole (finish() passed): a client that leaves after a
        # stream read it all did not cut that read short.
        self.ended = False
        # NOTE: the most a body may have (the limit, or the announced length within it).
        self.bound = limit if expected is None else expected

    def count(self, chunk: bytes) -> bytes:
        """Count ``chunk`` and return it."""
        self.total += len(chunk)
        if self.total > self.bound:
            self.refuse()
        return chunk

    def refuse(self) -> NoReturn:
        """Raise the error of a body past ``bound``: 413 past the limit, else 400."""
        if self.total > self.limit:
            self._fail(self.too_large(self.limit))
        self._fail(HTTPError(400, "request body is longer than its Content-Length"))

    def keep(self, error: HTTPError) -> None:
        """Keep ``error``, a 4xx of the reader of this body (a form's), for the request's later
        reads, unless this meter failed first."""
        if self.failed is None:
            self.failed = error.status, error.detail

    def _fail(self, error: HTTPError) -> NoReturn:
        self.failed = error.status, error.detail
        try:
            raise error
        finally:
            del error  # NOTE: this frame goes into its traceback: no cycle through it.

    @classmethod
    def too_large(cls, limit: int) -> HTTPError:
        """The 413 of a body past ``limit`` (``is_too_large()`` tells it from an app's own)."""
        error = HTTPError(413, f"{cls.what} is larger than {limit} bytes")
        # NOTE: one for a Content-Length past the limit is raised before a meter keeps it: an
        # error handler's read that met it was taken for its answer (see _calls' _body_failed).
        vars(error)[_TOO_LARGE] = True
        return error

    def finish(self) -> None:
        """Check, once the body has ended, that none of it is missing."""
        if self.expected is not None and self.total < self.expected:
            self._fail(HTTPError(400, "request body is shorter than its Content-Length"))
        self.ended = True


class JSONMeter(BodyMeter):
    """A ``BodyMeter`` for a body read by ``json()``/``ajson()``, against ``max_json_size``.

    ``given_back`` is true once the source, past that limit, kept what it had read for the
    request's next read (see ``ASGIBody.aread_all``).
    """

    __slots__ = ("given_back",)
    what = "JSON body"

    def __init__(self, limit: int, expected: int | None) -> None:
        super().__init__(limit, expected)
        self.given_back = False
