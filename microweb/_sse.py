"""Server-Sent Events framing (the WHATWG HTML "event stream" format)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from inspect import GEN_CREATED, getgeneratorstate
from types import GeneratorType
from typing import Any

from ._closing import aclose_both, close_both

ACCEPTED = "str, ServerSentEvent or a mapping with keys data, event, id, retry, comment"
# NOTE: far past any delay a browser waits (2**64 ms is 584 million years), far below the
# 4,300 digits str() gives an int.
RETRY_BITS = 64


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
        for name in ("data", "event", "id", "comment"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(
                    f"ServerSentEvent {name} must be str, not {type(value).__name__}"
                    + (": encode it first, with json.dumps() say" if name == "data" else "")
                )
            if value is not None and type(value) is not str:
                # NOTE: a str subclass is kept as its text: a (str, Enum) member was framed by
                # its format(), "event: Kind.UPDATE" for the value "update", so the page's
                # addEventListener("update") never fired; and the checks below read the text
                # that goes out, not what a subclass's own methods say of it.
                object.__setattr__(self, name, str.__str__(value))
        if self.retry is not None and (
            not isinstance(self.retry, int) or isinstance(self.retry, bool)
        ):
            raise TypeError(
                f"ServerSentEvent retry must be an int, not {type(self.retry).__name__}"
            )
        if self.retry is not None and type(self.retry) is not int:
            # NOTE: an int subclass is kept as its value, as a str subclass is kept as its
            # text: the checks below asked its own methods, and encode() wrote its int(), so
            # a retry of 10 whose __int__ said -5 went out as "retry: -5", which browsers ignore.
            object.__setattr__(self, "retry", int.__int__(self.retry))
        if self.retry is not None and self.retry < 0:
            # SPEC: WHATWG HTML 9.2.6: a retry value that is not all ASCII digits is ignored.
            raise ValueError(
                f"ServerSentEvent retry must be 0 or more milliseconds, not {self.retry}: "
                "a browser ignores a negative one"
            )
        if self.retry is not None and self.retry.bit_length() > RETRY_BITS:
            # NOTE: encode() raised "Exceeds the limit (4300 digits)" once the headers had gone.
            raise ValueError(
                f"ServerSentEvent retry must be below 2**{RETRY_BITS} milliseconds, "
                f"not a {self.retry.bit_length()}-bit number"
            )
        for name in ("event", "id", "comment"):
            value = getattr(self, name)
            if value is not None and ("\n" in value or "\r" in value):
                raise ValueError(f"ServerSentEvent {name} cannot contain a line break")
        for name in ("data", "event", "id", "comment"):
            _check_utf8(name, getattr(self, name))
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
            lines.append(f"retry: {self.retry}")
        if self.data is not None:
            # SPEC: the event stream splits lines only on CRLF, CR and LF (str.splitlines() also
            # splits on form feeds and U+2028 and drops a final empty line).
            # NOTE: three replacements in C, not a str per line nor a regex match per line:
            # data of 1 MB of "\n" held 79 MB and took 2.4 s to frame (a sub(), 0.14 s).
            data = self.data.replace("\r\n", "\n").replace("\r", "\n")
            lines.append("data: " + data.replace("\n", "\ndata: "))
        return ("\n".join(lines) + "\n\n").encode("utf-8")


_FIELDS = frozenset(field.name for field in fields(ServerSentEvent))


def _check_utf8(name: str, value: str | None) -> None:
    """Refuse a field that UTF-8 cannot encode (a lone surrogate, from ``surrogateescape`` or
    a JSON ``"\\ud800"``): the event stream is UTF-8."""
    if value is None or value.isascii():
        return
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        # NOTE: encode() raised it once the headers had gone, as a cut stream that named no
        # field; an event the handler makes is now refused before any header (review160).
        raise ValueError(
            f"ServerSentEvent {name} holds {value[exc.start : exc.end]!r}, a lone surrogate, "
            "which UTF-8 cannot encode"
        ) from None


def event_from_mapping(item: Mapping[str, Any]) -> ServerSentEvent:
    """Return the ``ServerSentEvent`` a mapping such as ``{"data": ..., "event": ...}`` stands for.

    Raises:
        ValueError: If a key is not a field of ``ServerSentEvent``.
        TypeError: If a value has the wrong type.
    """
    unknown = [key for key in item if key not in _FIELDS]
    if unknown:
        raise ValueError(
            f"unknown event stream key(s) {', '.join(map(repr, unknown))}: "
            "use data, event, id, retry, comment"
        )
    return ServerSentEvent(**item)


def encode_event(item: Any) -> bytes:
    """Encode a ``str`` (the data), a ``ServerSentEvent`` or a mapping of its fields.

    Raises:
        TypeError: For any other value, or a field of the wrong type.
        ValueError: For a mapping with an unknown key, or a field that would break the stream.
    """
    if isinstance(item, str):
        return ServerSentEvent(data=item).encode()
    if isinstance(item, ServerSentEvent):
        return item.encode()
    if isinstance(item, Mapping):
        return event_from_mapping(item).encode()
    raise TypeError(f"an event stream takes {ACCEPTED}; got {type(item).__name__}")


def check_events(events: object) -> None:
    """Refuse what is not an iterable of events, before any header goes out.

    Raises:
        TypeError: For one event (a ``str``, a mapping, a ``ServerSentEvent``), bytes, or
            anything that is not iterable.
    """
    # NOTE: a str went out as one event per character, a mapping as one per key, with no
    # error; the others failed only once the headers had gone, as a cut stream.
    if isinstance(events, (str, Mapping, ServerSentEvent)):
        raise TypeError(
            f"Response.sse() takes an iterable of events, not one {type(events).__name__}: "
            "wrap it in a list, [event]"
        )
    if isinstance(events, (bytes, bytearray, memoryview)) or not isinstance(
        events, (Iterable, AsyncIterable)
    ):
        raise TypeError(
            f"Response.sse() takes an iterable of events ({ACCEPTED}), not {type(events).__name__}"
        )


class SSEChunks:
    """The framed chunks of a sync iterable of events.

    ``close()`` closes the events however the stream ends: a bad item, a client that left, or
    a response never sent (HEAD, a failed start), so the app's generator or subscription (and
    what it holds: a connection) does not wait for the garbage collector. Once iterated, the
    iterator ``iter(events)`` is closed too, where it is another object.
    """

    __slots__ = ("_closed", "_events", "_iterator")

    def __init__(self, events: Iterable[Any]) -> None:
        self._events = events
        self._iterator: Iterator[Any] | None = None
        self._closed = False

    def __iter__(self) -> SSEChunks:
        return self

    def __next__(self) -> bytes:
        if self._iterator is None:
            self._iterator = iter(self._events)
        # NOTE: closed by the driver, whatever happens, not here at the end of the events (or a
        # bad one): closed as the last chunk was made, the ASGI driver's CLOSE_WAIT did not
        # bound the close (one that hung held the request for ever).
        return encode_event(next(self._iterator))

    def untouched(self) -> bool:
        """Tell whether ``close()`` runs none of the app's code: never iterated, and its events
        a list, a tuple or a generator never started."""
        events = self._events
        return self._iterator is None and (
            type(events) in (list, tuple)
            or (type(events) is GeneratorType and getgeneratorstate(events) == GEN_CREATED)
        )

    def close(self) -> Awaitable[object] | None:
        """Close the events, once; return what is left to await (see ``close_of()``)."""
        if self._closed:
            return None
        self._closed = True
        # NOTE: the iterator made of the events first (its finally blocks may use the events),
        # then the events: an object whose __iter__ is a generator holds the subscription.
        return close_both(self._iterator, self._events)


class AsyncSSEChunks:
    """The framed chunks of an async iterable of events; ``aclose()`` as ``SSEChunks.close()``."""

    __slots__ = ("_closed", "_events", "_iterator")

    def __init__(self, events: AsyncIterable[Any]) -> None:
        self._events = events
        self._iterator: AsyncIterator[Any] | None = None
        self._closed = False

    def __aiter__(self) -> AsyncSSEChunks:
        return self

    async def __anext__(self) -> bytes:
        if self._iterator is None:
            self._iterator = aiter(self._events)
        return encode_event(await anext(self._iterator))  # NOTE: closed as SSEChunks is.

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await aclose_both(self._iterator, self._events)
