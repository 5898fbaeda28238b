"""The request content each side of ``TestClient`` takes: bytes or a sync iterable for the WSGI
side, an async iterable for the ASGI side, the same chunks for both under ``"both"``."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator, Mapping
from typing import Any

import httpx


def replayed(kwargs: dict[str, Any], cap: int) -> Callable[[], Iterable[Any]] | None:
    """Read a streamed ``content`` into chunks that each side is given in turn, in ``kwargs``:
    no more than one byte past ``cap``, the app's largest body limit, where each side's app
    answers 413.

    Returns:
        What gives the next side the same chunks, as the kind of iterable the test gave (one
        that can be read again, for a 307, or not), or ``None`` for no streamed content.

    Raises:
        TypeError: For an async iterable, which can't be read before the sides are called.
    """
    content = kwargs.get("content")
    if content is None or isinstance(content, (bytes, str)):
        return None
    if async_only(content):
        raise TypeError(
            "interface='both' replays content: pass bytes or a sync iterable, not an async iterable"
        )
    # NOTE: each side gets the same chunks, in the same sizes. Read whole, an endless upload
    # hung the test and filled memory.
    chunks: list[Any] = []
    size = 0
    for chunk in content:
        chunks.append(chunk)
        if not isinstance(chunk, (bytes, bytearray, memoryview)):
            # NOTE: kept for each side to refuse, naming content=, and the last read: counted
            # as nothing, an endless content of str chunks hung the test and filled memory.
            break
        # NOTE: in bytes, as uploaded() sends it: len() of a memoryview counts its items.
        size += chunk.nbytes if isinstance(chunk, memoryview) else len(chunk)
        if size > cap:
            break
    # NOTE: as the test gave them: a list can be read again (for a 307), an iterator once.
    replay: Callable[[], Iterable[Any]] = (
        (lambda: iter(chunks)) if once(content) else lambda: chunks
    )
    kwargs["content"] = replay()
    return replay


# NOTE: the request bodies httpx takes, in the order it picks one: content= over the others,
# files= (with any data=) over json=.
_BODIES = ("content", "data", "files", "json")


def one_body(kwargs: dict[str, Any]) -> None:
    """Refuse a request given two bodies, which httpx would send one of, dropping the others.

    httpx sent ``data=`` and left out a ``json=`` beside it (and ``files=``'s ``json=``, and
    all the others beside ``content=``) without a word. ``data=`` with ``files=`` is one
    multipart body; a ``None`` is no body, and so is an empty ``data=`` or ``files=`` form,
    which httpx skips. A ``data=`` that is no form (bytes) is httpx's old ``content=``.

    Raises:
        TypeError: Naming the bodies given.
    """
    given = [f"{name}=" for name in _BODIES if _is_body(name, kwargs.get(name))]
    if given == ["data=", "files="] and isinstance(kwargs["data"], Mapping):
        return
    if len(given) > 1:
        named = f"{', '.join(given[:-1])} and {given[-1]}"
        raise TypeError(
            f"a request takes one body, not {named} (pass one body; a dict data= with files= "
            f"is one multipart form)"
        )


def _is_body(name: str, value: Any) -> bool:
    """Tell whether httpx sends ``value``, given as ``name=``, when it is the only body."""
    # NOTE: as httpx reads them: data={} and files=[] with json= were refused as two bodies,
    # where httpx sends the JSON and drops nothing. A data= that is no mapping (b"raw") is
    # sent in place of files=, which went out with it unrefused and were dropped.
    if name == "files":
        return bool(value)
    if name == "data" and isinstance(value, Mapping):
        return bool(value)
    return value is not None


def encoded_once(method: str, kwargs: dict[str, Any]) -> None:
    """Encode a multipart request's ``files=`` (and ``data=``) into ``content``, in place, with
    the ``Content-Type`` httpx gives them, so that each side sends the same bytes.

    httpx draws a boundary for each request it builds: under ``"both"``, an app that echoes or
    signs the raw body answered each side differently (an ``AssertionError``).
    """
    if not kwargs.get("files"):
        return  # NOTE: one_body() has refused a content= beside files=.
    headers: httpx.Headers = kwargs["headers"]
    files, data = kwargs.pop("files"), kwargs.pop("data", None)
    built = httpx.Request(method, "http://testserver/", files=files, data=data, headers=headers)
    kwargs["content"] = built.read()
    headers["content-type"] = built.headers["content-type"]


def sync_content(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return a request's keyword arguments for the WSGI side; refuse an async iterable body."""
    # NOTE: httpx's sync client refused it with "Attempted to send an async request with a
    # sync Client instance", which the test never made.
    if async_only(kwargs.get("content")):
        raise TypeError(
            "the WSGI side reads content whole before the app runs, as Waitress does: pass "
            "bytes or a sync iterable, not an async iterable (or use interface='asgi')"
        )
    return kwargs


def async_content(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Return a request's keyword arguments with a sync iterable body made async."""
    content: Any = kwargs.get("content")
    streamed = content is not None and not isinstance(content, (bytes, str))
    if streamed and not hasattr(content, "__aiter__"):
        # NOTE: a list made a one-shot async generator: httpx raised StreamConsumed when it
        # followed a 307 with it, where the WSGI side (and httpx with a server) sends it again.
        return {**kwargs, "content": as_async(content) if once(content) else _Again(content)}
    if streamed and hasattr(content, "__iter__"):
        # NOTE: httpx reads a body that is both sync and async iterable as a sync one, which
        # its AsyncClient refuses ("Attempted to send a sync request with an AsyncClient").
        return {**kwargs, "content": read_async(content)}
    return kwargs


def once(content: Iterable[Any]) -> bool:
    """Whether ``content`` can be read once only: an iterator, where a list can be read again."""
    return iter(content) is content


class _Again:
    """A sync iterable that can be read again, as an async one that can be read again."""

    def __init__(self, chunks: Iterable[Any]) -> None:
        self._chunks = chunks

    def __aiter__(self) -> AsyncIterator[Any]:
        return as_async(self._chunks)  # type: ignore[no-any-return]


def async_only(content: object) -> bool:
    """Whether ``content`` is an async iterable that can't be read as a sync one too."""
    # NOTE: one that is both (httpx.ByteStream) is read as a sync one, as httpx's Client does.
    return hasattr(content, "__aiter__") and not hasattr(content, "__iter__")


async def read_async(content: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    async for chunk in content:
        yield chunk


async def as_async(chunks: Any) -> Any:
    # NOTE: httpx's AsyncClient takes only async iterables as streamed content.
    for chunk in chunks:
        yield chunk


def uploaded(chunk: object) -> bytes:
    """Return a chunk of a test's streamed ``content=`` as the bytes a server would hand over.

    Raises:
        TypeError: For a chunk that is no bytes-like object (a ``str``, a number).
    """
    # NOTE: a str chunk went to the ASGI app as an http.request body, which ASGI says is bytes:
    # the app failed, a 500 logged as its own error; under WSGI the test got a TypeError from
    # bytes.join(), which named no content=.
    if not isinstance(chunk, (bytes, bytearray, memoryview)):
        raise TypeError(f"content= chunks must be bytes, not {type(chunk).__name__}")
    return bytes(chunk)


class CheckedStream(httpx.SyncByteStream):
    """A request's body, each of whose chunks is checked by ``uploaded()`` as it is read."""

    def __init__(self, stream: httpx.SyncByteStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._stream:
            yield uploaded(chunk)
