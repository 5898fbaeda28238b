"""What a handler's return value becomes: a ``Response`` (``to_response``), and the copy of a
response that flows may change apart from the one the app keeps (``copied``)."""

from __future__ import annotations

import copy
import functools
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping
from types import MemberDescriptorType
from typing import Any

from ._datastructures import Headers
from ._files import reads_the_file
from ._media import JSON, OCTETS, TEXT, encode_json, utf8
from ._response import Response
from ._status import checked_status


def to_response(result: Any) -> Response:
    """Turn a handler's return value into a ``Response``.

    Raises:
        TypeError: For a value of another type, naming the types a handler may return.
    """
    if isinstance(result, Response):
        return result
    if isinstance(result, str):
        # NOTE: a subclass's own encode() does not decide the bytes (see utf8()).
        body = result.encode("utf-8") if type(result) is str else utf8(result)
        media_type = TEXT
    elif isinstance(result, (dict, list)):
        body, media_type = encode_json(result), JSON
    else:
        return _other_response(result)
    # PERF: what Response(body, 200, None, media_type) makes, here with no call: 0.2 us
    # instead of 0.48 through __init__ (and 0.05 less than through a helper).
    response = object.__new__(Response)
    response._body, response._status = body, 200
    headers = object.__new__(Headers)  # NOTE: trusted_headers(), inlined
    headers._list = [("content-type", media_type)]
    response._headers = headers
    response.chunks = response._length = response.file_info = None
    return response


def copied(response: Response, *, reread: bool = True) -> Response:
    """Return a copy of ``response`` whose status, headers and body change apart from it.

    For a response the app may keep and return again (a module's constant, a cached page):
    what flows and plugins add for one request (a session cookie) goes on the copy, never on
    the kept one. A stream is the same object in both: it is read once, whichever is sent. A
    file response's copy reads its file anew, unless not ``reread`` (a response on its way,
    whose reading is this request's) or its chunks are a stream put in the file's place.
    """
    # PERF: 0.29 us a copy, one slot at a time, where packing them in tuples and calling
    # trusted_headers() took 0.32 (timeit, same process, 2026-12-04). A whole WSGI request
    # through one flow took 8.4 to 10.6 us, with the copy or without it (3 runs each).
    if type(response) is Response:
        twin = object.__new__(Response)
        twin._status = response._status
        twin._body = response._body
        twin.chunks = response.chunks
        twin._length = response._length
        twin.file_info = response.file_info
    else:
        twin = _twin_of(response)
    if reread and twin.file_info is not None and reads_the_file(twin.chunks):
        # NOTE: a kept file response's one read is spent by its first request: a kept error
        # page or a flow's answer (Response.file(..., status=404)) then went out empty under
        # its Content-Length, under ASGI (and WSGI with after-response work) (review142).
        twin.chunks = twin.file_info.chunks()
    headers = object.__new__(Headers)  # NOTE: trusted_headers(), inlined
    headers._list = response._headers._list.copy()
    twin._headers = headers
    return twin


def _twin_of(response: Response) -> Response:
    """Return an object of the subclass ``response`` is, with its slots and ``__dict__``.

    Made without calling the class: its ``__new__`` or ``__init__`` may take arguments of its
    own (``copy.copy`` calls ``__new__`` with none, a 500 on every request that returned one).
    """
    cls: type = type(response)
    if hasattr(cls, "__copy__"):
        shallow = copy.copy(response)
        if shallow is not response:
            return shallow
        # NOTE: a __copy__ that returns the object (an "immutable" class's) let the flows
        # change the kept response, whose headers then went to every later client.
    twin: Response = object.__new__(cls)
    for slot in _slots_of(cls):
        try:
            value = slot.__get__(response, cls)
        except AttributeError:
            continue  # NOTE: a slot never set stays unset.
        slot.__set__(twin, value)
    if hasattr(response, "__dict__"):
        vars(twin).update(vars(response))
    return twin


@functools.lru_cache(maxsize=64)
def _slots_of(cls: type) -> tuple[MemberDescriptorType, ...]:
    """The slots of ``cls`` and its bases: each one's own descriptor, to read and write it."""
    # NOTE: not getattr/setattr by the names in __slots__, which missed a name Python did
    # not mangle (a class named "_"), a __slots__ given as an iterator (spent once the class
    # was made), and went through a subclass's property or __setattr__ of that name.
    # PERF: read once a class: a copy of a subclass's response took 4.8 us, now 1.5 (timeit,
    # 2026-12-04).
    return tuple(
        slot
        for owner in cls.__mro__
        for slot in vars(owner).values()
        if type(slot) is MemberDescriptorType and slot.__objclass__ is owner
    )


def _other_response(result: Any) -> Response:
    if isinstance(result, (bytes, bytearray, memoryview)):
        return Response(bytes(result), 200, None, OCTETS)
    if result is None:
        return Response(b"", 204)
    if isinstance(result, tuple):
        # NOTE: after the common cases, so that plain returns pay nothing for tuples.
        return _from_tuple(result)
    if isinstance(result, Coroutine):
        result.close()  # NOTE: no "never awaited" warning beside the error that explains it.
        raise TypeError(
            "a handler returned a coroutine: it was called as a def function because neither "
            "it nor its __call__ is async def (a mock wrapping an async function?); register "
            "the async def function, or an object whose __call__ is async def"
        )
    if isinstance(result, BaseException):
        # NOTE: `return HTTPError(404)` for `raise`: a 500 whose message listed return types.
        raise TypeError(
            f"a handler returned the exception {result!r}: raise it (raise HTTPError(404)) to "
            "answer with its status or its error handler"
        )
    if isinstance(result, type) and issubclass(result, Response):
        raise TypeError(
            f"a handler returned the class {result.__name__}, not a response: return "
            f"{result.__name__}(...) or one of its factories, such as Response.json(...)"
        )
    if isinstance(result, (Iterator, AsyncIterator)):
        # NOTE: Flask streams a generator a view returns; here it must be asked for.
        raise TypeError(
            f"a handler returned {type(result).__name__}, an iterator: to stream it, return "
            "Response.stream(iterator, media_type=...); to send it whole, return a str or bytes"
        )
    raise TypeError(
        f"a handler returned {type(result).__name__}; return a Response, str, bytes, dict, list, "
        f"None, {_TUPLE_FORMS}"
    )


_TUPLE_FORMS = "(value, status) or (value, status, headers)"


def _from_tuple(result: tuple[Any, ...]) -> Response:
    """Convert ``(value, status)`` or ``(value, status, headers)`` like ``value`` alone."""
    if len(result) not in (2, 3) or isinstance(result[0], tuple):
        raise TypeError(f"a handler returned a tuple of {len(result)} items; return {_TUPLE_FORMS}")
    if len(result) == 2 and isinstance(result[1], (Mapping, list)):
        # NOTE: Flask's (body, headers): a status here is never a mapping or a list.
        raise TypeError(
            f"a handler returned a tuple whose status is {type(result[1]).__name__}: for a value "
            "with headers and no status of its own, return (value, 200, headers)"
        )
    try:
        status = checked_status(result[1], "a handler returned a tuple")
    except TypeError as exc:
        raise TypeError(f"{exc}: return {_TUPLE_FORMS} with an int status") from None
    # NOTE: a Response the app keeps gets this status and these headers on a copy.
    value = result[0]
    response = copied(value) if isinstance(value, Response) else to_response(value)
    response._status = status
    if len(result) == 3 and result[2]:
        _set_headers(response.headers, result[2])
    return response


def _set_headers(headers: Headers, given: Any) -> None:
    """Let ``given`` (a mapping or pairs) replace the headers of the names it sets."""
    if isinstance(given, Mapping):
        pairs = list(given.items())
    elif isinstance(given, (list, tuple)) and all(
        isinstance(pair, tuple) and len(pair) == 2 for pair in given
    ):
        pairs = list(given)
    else:
        raise TypeError(
            f"a handler returned headers of type {type(given).__name__}; give a mapping or a "
            "list of (name, value) pairs"
        )
    for name in {str(name).lower() for name, _ in pairs}:
        headers.pop(name)
    for name, value in pairs:
        headers.add(name, value)
