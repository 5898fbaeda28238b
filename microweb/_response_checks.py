"""What ``Response`` refuses: a body, a length or a stream of a type it cannot send, and a
subclass that hides one of its checked attributes; and the other frameworks' spellings its
attributes refuse by name."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

from ._datastructures import HeaderItems, Headers
from ._file_bodies import OPEN_FILES, FileBlocks

# NOTE: what other frameworks' responses call what a Response spells otherwise (Falcon's
# resp.media, Flask's response.content_type); status_code is a refusal of the class's own.
OTHER_SPELLINGS = {
    "media": "Response.json(value), or return the dict or list",
    "content_type": 'response.headers["content-type"]',
    "mimetype": 'response.headers["content-type"]',
    "location": 'response.headers["location"]',
    "set_header": "response.headers[name] = value",
    "append_header": "response.headers.add(name, value)",
    "data": "response.body",
}


def check_subclass(cls: type, base: type) -> None:
    """Refuse ``cls``, a subclass of ``base`` (``Response``), if it hides a checked attribute.

    Raises:
        TypeError: If ``cls`` sets ``status`` or ``status_code``, or defines ``body``,
            ``headers`` or ``length``, itself or through a class before ``base``.
    """
    if _hides(cls, base, "status"):
        # NOTE: a class-level status (Django's style) hides the checked property, and the
        # drivers, which read the checked value, failed every response with a 500.
        raise TypeError(
            f"{_where(cls, 'status')} sets 'status' as a class attribute, which hides "
            "Response.status; pass the status to Response.__init__ instead, e.g. "
            "super().__init__(body, status=410)"
        )
    for name in ("body", "headers", "length"):
        if _hides(cls, base, name):
            # NOTE: the drivers read what the checked property keeps: a subclass's own
            # "body" (a property that renders late, say) was silently never sent.
            raise TypeError(
                f"{_where(cls, name)} defines '{name}', which hides Response.{name}; give "
                f"the body to Response.__init__, or assign response.{name} once it is made"
            )
    if _hides(cls, base, "status_code"):
        # NOTE: Django's own spelling (HttpResponseGone's status_code = 410) was ignored:
        # every response of the class went out as a 200.
        raise TypeError(
            f"{_where(cls, 'status_code')} sets 'status_code' as a class attribute, which "
            "microweb does not read; pass the status to Response.__init__ instead, e.g. "
            "super().__init__(body, status=410)"
        )


def _hides(cls: type, base: type, name: str) -> bool:
    """Tell whether ``cls``, or a class before ``base`` in its MRO, defines ``name``."""
    # NOTE: not cls.__dict__ alone: a mixin listed before Response (class Page(Lazy,
    # Response)) hid Response.body as the subclass's own would, and was let through.
    for owner in cls.__mro__:
        if owner is base:
            return False
        if name in owner.__dict__:
            return True
    return False


def _where(cls: type, name: str) -> str:
    """Name ``cls``, and the class before ``Response`` in its MRO that defines ``name``."""
    owner = next(owner for owner in cls.__mro__ if name in owner.__dict__)
    return cls.__name__ if owner is cls else f"{cls.__name__} (through {owner.__name__})"


def pairs_of(headers: HeaderItems) -> HeaderItems:
    """Return ``headers``, or the pairs of a ``Headers`` (which is no mapping)."""
    # NOTE: iterated, a Headers gives its names: a two-letter one ("ab") became the header
    # "a: b", any other a ValueError about unpacking (review168).
    return headers.items() if isinstance(headers, Headers) else headers


def bytes_of(body: object) -> bytes:
    """Return a bytes-like body as ``bytes``, or raise for one that cannot be sent."""
    if isinstance(body, (bytes, bytearray, memoryview)):
        return bytes(body)
    # NOTE: a generator was accepted here and failed with a 500 only when the response was
    # sent (its length is asked for then), far from the line that made it.
    hint = (
        "; to send chunks as they are made, return Response.stream(...)"
        if isinstance(body, (Iterable, AsyncIterable))
        else ""
    )
    raise TypeError(f"Response body must be bytes or str, not {type(body).__name__}{hint}")


def checked_length(length: object) -> int:
    """Return ``length``, a length that is not a plain ``int`` of 0 or more, as one; or raise.

    Raises:
        TypeError: If ``length`` is no ``int`` (a ``bool`` is none here).
        ValueError: If ``length`` is negative.
    """
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"a Response's length is an int or None, not {type(length).__name__}")
    if length < 0:
        raise ValueError(f"a Response's length is 0 or more, not {length}")
    return int(length)


def checked_chunks(
    iterable: Iterable[bytes | str] | AsyncIterable[bytes | str],
) -> Iterable[bytes | str] | AsyncIterable[bytes | str]:
    """Return ``iterable``, the chunks of ``Response.stream()``, as they are sent (a file read
    in blocks); or raise for one that is no stream of chunks.

    Raises:
        TypeError: If ``iterable`` is ``bytes``, ``bytearray``, ``memoryview`` or ``str``, or
            is not iterable.
    """
    if isinstance(iterable, (bytes, bytearray, memoryview, str)):
        # NOTE: a bytearray or memoryview was iterated as ints: a 200 went out, then the
        # stream was cut with "yields bytes or str chunks, not int" (review158).
        raise TypeError(
            f"Response.stream() takes an iterable of chunks, not {type(iterable).__name__}: "
            "give a whole body to Response(body)"
        )
    if not isinstance(iterable, (Iterable, AsyncIterable)):
        # NOTE: None was sent as an empty 200, another value failed once the headers had
        # gone (under ASGI) or outside the stream's handling (under WSGI).
        raise TypeError(
            f"Response.stream() takes an iterable of chunks, not {type(iterable).__name__}"
        )
    if isinstance(iterable, OPEN_FILES):
        # NOTE: a file iterates by lines: a 50 MiB binary file with no line break went out
        # as one chunk of 50 MiB (100 MiB at the peak), and 16 such were made ahead.
        return FileBlocks(iterable)
    return iterable
