"""One growing buffer for a body that arrives in pieces (sans-IO)."""

from __future__ import annotations

from io import BytesIO


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
