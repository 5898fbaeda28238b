"""Server-Sent Events framing (the WHATWG HTML "event stream" format)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event of an event stream.

    Args:
        data: The payload; a multi-line string becomes several ``data:`` lines.
        event: The event type (``onmessage`` gets events without one).
        id: The last-event id the browser sends back when it reconnects.
        retry: The reconnection delay, in milliseconds.
        comment: A comment line, ignored by browsers: useful as a keep-alive.
    """

    data: str | None = None
    event: str | None = None
    id: str | None = None
    retry: int | None = None
    comment: str | None = None

    def __post_init__(self) -> None:
        for name in ("event", "id", "comment"):
            value = getattr(self, name)
            if value is not None and ("\n" in value or "\r" in value):
                raise ValueError(f"ServerSentEvent {name} cannot contain a line break")
        if self.id is not None and "\0" in self.id:
            raise ValueError("ServerSentEvent id cannot contain NUL")

    def encode(self) -> bytes:
        """Return the event's bytes, ending with the blank line that dispatches it."""
        lines = []
        if self.comment is not None:
            lines.append(f": {self.comment}")
        if self.event is not None:
            lines.append(f"event: {self.event}")
        if self.id is not None:
            lines.append(f"id: {self.id}")
        if self.retry is not None:
            lines.append(f"retry: {int(self.retry)}")
        if self.data is not None:
            # SPEC: the event stream splits lines only on CRLF, CR and LF (str.splitlines() also
            # splits on form feeds and U+2028 and drops a final empty line).
            lines.extend(f"data: {line}" for line in _LINE_BREAK.split(self.data))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


def encode_event(item: Any) -> bytes:
    """Encode a ``str`` (the data) or a ``ServerSentEvent``.

    Raises:
        TypeError: For any other value.
    """
    if isinstance(item, str):
        return ServerSentEvent(data=item).encode()
    if isinstance(item, ServerSentEvent):
        return item.encode()
    raise TypeError(f"an event stream takes str or ServerSentEvent items, not {type(item)}")


def sse_chunks(events: Iterable[Any]) -> Iterator[bytes]:
    """Frame a sync iterable of events."""
    for item in events:
        yield encode_event(item)


async def asse_chunks(events: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    """Frame an async iterable of events."""
    async for item in events:
        yield encode_event(item)
