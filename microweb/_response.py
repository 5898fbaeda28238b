"""The response: ``Response``, its factories and the checks of what is assigned to it, and a
file's response (``described_file``). What it refuses, and why, is in ``_response_checks``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ._datastructures import HeaderItems, Headers, trusted_headers
from ._errors import OtherSpelling, refuse_other_spellings
from ._file_bodies import SVG, content_disposition, guess_type
from ._files import FileInfo, stat_file
from ._media import HTML, JSON, OCTETS, TEXT, encode_json, utf8
from ._percent import encode_location
from ._response_checks import (
    OTHER_SPELLINGS,
    bytes_of,
    check_subclass,
    checked_chunks,
    checked_length,
    pairs_of,
)
from ._response_cookies import CookieMethods
from ._sse import AsyncSSEChunks, SSEChunks, check_events
from ._status import checked_status

StreamBody = Iterable[bytes | str] | AsyncIterable[bytes | str]

_KNOWN_TYPES = frozenset({TEXT, HTML, JSON, OCTETS})


class Response(CookieMethods):
    """An HTTP response: a status, headers and a body (bytes, or a stream of chunks).

    ``Content-Length`` is computed by the framework when the response is sent; a value set by
    the app is replaced, so it can never disagree with the body.

    Args:
        body: The body; ``str`` is encoded as UTF-8.
        status: The status code.
        headers: Initial headers: a mapping, ``(name, value)`` pairs, or a ``Headers``.
        media_type: The ``Content-Type``; without one, a ``str`` body (and an empty one, as
            ``Response()`` has) is ``text/plain`` and other bodies ``application/octet-stream``.
            A ``Content-Type`` in ``headers`` wins over it, in the factories
            (``Response.json``, ``Response.html``...) too.

    Raises:
        TypeError: If ``status`` is not an ``int`` (a ``bool`` is not one), or a header value
            is not a ``str``.
        ValueError: If ``status`` is not 200 to 599, or a header is refused (see ``Headers``).
    """

    __slots__ = ("_body", "_headers", "_length", "_status", "chunks", "file_info")

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        headers: HeaderItems | None = None,
        media_type: str | None = None,
    ) -> None:
        if isinstance(body, str):
            # PERF: a str's own encode() where it is one: 49 ns, utf8() 83 (timeit, 2026-12-06).
            body = body.encode("utf-8") if type(body) is str else utf8(body)
            media_type = media_type or TEXT
        elif type(body) is not bytes:
            body = bytes_of(body)
        self._body: bytes = body
        self.status = status  # NOTE: through the setter, which checks it.
        if headers:
            self._headers = Headers(pairs_of(headers))
            # NOTE: a Content-Type in the headers is the app's own choice (an
            # application/problem+json error, a text template); it was silently replaced.
            if media_type is not None and "content-type" not in self.headers:
                self.headers["content-type"] = media_type
        elif media_type in _KNOWN_TYPES:
            # NOTE: the framework's own media types need no validation.
            self._headers = trusted_headers([("content-type", media_type)])
        else:
            self._headers = trusted_headers([])
            if media_type is not None:
                self.headers["content-type"] = media_type
        self.chunks: StreamBody | None = None
        # NOTE: a stream's length is known only for files the framework opened itself.
        self._length: int | None = None
        self.file_info: FileInfo | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        check_subclass(cls, Response)

    if not TYPE_CHECKING:
        # NOTE: hidden from type checkers: read as Any, response.status_code = 404 passed
        # mypy --strict and failed only when a request came.
        status_code = OtherSpelling(
            "status_code",
            "a Response has no 'status_code' (Flask's and Starlette's name): write response.status",
        )
        """Not one here: reading or setting it raises ``AttributeError``, which names
        ``status``."""

    @property
    def status(self) -> int:
        """The status code; assigning one checks it as the constructor does."""
        return self._status

    @status.setter
    def status(self, status: int) -> None:
        # NOTE: checked where the app sets it, so that a bad status is the app's 500 with a
        # traceback to that line, never a status line one server sends and the other refuses.
        # A plain int in range, the usual status, is told inline; checked_status() tells the
        # rest (an HTTPStatus member becomes its int) or refuses it.
        self._status = (
            status
            if type(status) is int and 200 <= status <= 599
            else checked_status(status, "a Response")
        )

    @property
    def body(self) -> bytes:
        """The whole body; assigning one converts it as the constructor does (``str`` as UTF-8,
        a ``bytearray`` or ``memoryview`` copied to ``bytes``).

        Raises:
            TypeError: If set to another type (a stream goes in ``Response.stream``).
            ValueError: If set to a ``str`` holding a lone surrogate, which UTF-8 can't encode.
        """
        return self._body

    @body.setter
    def body(self, body: bytes | str) -> None:
        # NOTE: a str went out as its characters, one chunk each, under a Content-Length that
        # counted characters (Waitress cut "héllo" to "héll" and kept the connection); a list,
        # under one of its item count.
        if type(body) is not bytes:
            body = utf8(body) if isinstance(body, str) else bytes_of(body)
        self._body = body

    @property
    def length(self) -> int | None:
        """The size of a streamed body, sent as its ``Content-Length``; ``None`` if unknown.

        A file response has its file's size, which is sent as long as its body is the read of
        its file, whatever ``length`` says. Set it to ``None`` when a stream put in the file's
        place changes the size. A stream that yields more or fewer bytes than its length is
        cut off as an error, under both interfaces.

        Raises:
            TypeError: If set to another type than ``int`` or ``None`` (a ``bool`` is no
                ``int`` here).
            ValueError: If set to a negative number.
        """
        return self._length

    @length.setter
    def length(self, length: int | None) -> None:
        # NOTE: checked where the app sets it, as the status is: a negative length went out as
        # "Content-Length: -1" under Waitress (h11 refused it and sent nothing at all).
        if length is not None and (type(length) is not int or length < 0):
            length = checked_length(length)
        self._length = length

    @property
    def headers(self) -> Headers:
        """The headers, a ``Headers``; assigning a mapping or ``(name, value)`` pairs replaces
        them all, checked as the constructor checks them. They are copied, as the constructor
        copies them: a ``Headers`` kept to assign to many responses never gets what one of
        them adds.

        Raises:
            TypeError: If set to another type, or a header value is not a ``str``.
            ValueError: If a header is refused (see ``Headers``).
        """
        return self._headers

    @headers.setter
    def headers(self, headers: HeaderItems) -> None:
        # NOTE: a dict assigned here went out as it was: the drivers read a Headers' list,
        # and the request ended as the server's own 500, with no line of microweb's log.
        if isinstance(headers, Headers):
            # NOTE: copied: kept, a module's Headers assigned in two handlers took the
            # Set-Cookie one added, and sent one client's session to the next (review176). And
            # checked: a subclass may hold what no check saw (request.headers, assigned to echo
            # them, sent the client's Connection and Host; under WSGI, the server's own 500).
            self._headers = Headers(headers.items())
        elif isinstance(headers, Mapping) or (
            isinstance(headers, Iterable) and not isinstance(headers, (str, bytes))
        ):
            self._headers = Headers(headers)
        else:
            raise TypeError(
                "a Response's headers are a Headers, a mapping or (name, value) pairs, not "
                f"{type(headers).__name__}"
            )

    @classmethod
    def text(cls, text: str, status: int = 200, headers: HeaderItems | None = None) -> Response:
        """Return a ``text/plain; charset=utf-8`` response."""
        return cls(text.encode("utf-8") if type(text) is str else utf8(text), status, headers, TEXT)

    @classmethod
    def html(cls, html: str, status: int = 200, headers: HeaderItems | None = None) -> Response:
        """Return a ``text/html; charset=utf-8`` response."""
        return cls(html.encode("utf-8") if type(html) is str else utf8(html), status, headers, HTML)

    @classmethod
    def json(cls, value: Any, status: int = 200, headers: HeaderItems | None = None) -> Response:
        """Return an ``application/json`` response.

        Raises:
            TypeError: If ``value`` is not JSON-serializable.
            ValueError: If ``value`` holds NaN or infinity.
        """
        return cls(encode_json(value), status, headers, JSON)

    @classmethod
    def redirect(cls, url: str, status: int = 307, headers: HeaderItems | None = None) -> Response:
        """Return a redirect to ``url`` (307 keeps the method; use 303 after a POST, 301/308 for
        permanent moves).

        Spaces and tabs around ``url`` are dropped, as a browser drops them from a typed URL;
        spaces inside it, control characters (tab, CR, LF, NUL...), non-ASCII characters and
        the other characters a URI cannot hold (``"<>\\^`{|}``) are percent-encoded (UTF-8),
        so a URL from the client never splits the response. A ``%`` is kept as it is. A
        non-ASCII host is sent in its IDNA form (``https://bücher.de`` as
        ``https://xn--bcher-kva.de``), which every client can follow, unless a browser would
        convert it otherwise or not at all (then it is percent-encoded: docs/responses.md).

        Raises:
            TypeError: If ``status`` is no ``int``.
            ValueError: If ``status`` is not a redirection (300, 301, 302, 303, 307, 308), or
                ``url`` is empty or holds a lone surrogate.
        """
        if status not in REDIRECTS:
            # NOTE: a status that is no int ("301") is refused as Response refuses it: the
            # ValueError below read "..., not 301" (review161).
            checked_status(status, "a redirect")
            raise ValueError(
                f"a redirect status is one of {', '.join(map(str, sorted(REDIRECTS)))}, not "
                f"{status}"
            )
        if not url.strip(" \t"):
            raise ValueError("a redirect needs a URL to go to, got an empty one")
        response = cls(b"", status, headers, TEXT)
        try:
            location = encode_location(url.strip(" \t"))
        except UnicodeEncodeError:
            # NOTE: a lone surrogate (say from bytes decoded with surrogateescape): said as a
            # redirect's error, not as the codec's.
            raise ValueError(f"a redirect URL must be text UTF-8 can encode, got {url!r}") from None
        response.headers["location"] = location
        return response

    @classmethod
    def stream(
        cls,
        iterable: StreamBody,
        media_type: str = OCTETS,
        status: int = 200,
        headers: HeaderItems | None = None,
    ) -> Response:
        """Return a response whose body is sent chunk by chunk as ``iterable`` yields it.

        ``iterable`` may be sync or async (``str`` chunks are UTF-8 encoded), under both
        interfaces; it is closed when the response ends, also when the client goes away.

        Raises:
            TypeError: If ``iterable`` is ``bytes``, ``bytearray``, ``memoryview`` or ``str``
                (give ``Response(body)``), or is not iterable.
        """
        iterable = checked_chunks(iterable)
        response = cls(b"", status, headers, media_type)
        response.chunks = iterable
        return response

    @classmethod
    def file(
        cls,
        path: str | bytes | os.PathLike[str] | os.PathLike[bytes],
        media_type: str | None = None,
        filename: str | None = None,
        status: int = 200,
        headers: HeaderItems | None = None,
    ) -> Response:
        """Return a response that streams the file at ``path``.

        Conditional requests get 304 (``If-None-Match``, ``If-Modified-Since``) or 412
        (``If-Match``, ``If-Unmodified-Since``), a single ``Range`` gets 206 (416 when
        unsatisfiable; ``If-Range`` is honoured), for ``GET`` and ``HEAD`` with status 200.

        Args:
            path: The file (``str``, ``bytes`` or path-like); its size and modification time are
                read now.
            media_type: The ``Content-Type``; guessed from the name when omitted.
            filename: When given, the file is offered as a download under this name.
            status: The status code.
            headers: Extra headers.

        Raises:
            FileNotFoundError: If there is no regular file at ``path``.
            PermissionError: If the file may not be read by this process.
        """
        return described_file(cls, stat_file(path), media_type, filename, status, headers)

    @classmethod
    def sse(
        cls,
        events: Iterable[Any] | AsyncIterable[Any],
        status: int = 200,
        headers: HeaderItems | None = None,
    ) -> Response:
        """Return a Server-Sent Events stream (``text/event-stream``).

        Args:
            events: A sync or async iterable of ``str`` (each one an event's data),
                ``ServerSentEvent`` items, or mappings with its field names as keys
                (``{"data": "hi", "event": "greeting"}``). Yield
                ``ServerSentEvent(comment="ping")`` now and then to keep an idle connection
                open. Another item is a ``TypeError`` (an unknown key a ``ValueError``) while
                the stream is sent: it is logged and cuts the stream.
            status: The status code.
            headers: Extra headers; a ``Cache-Control`` or ``X-Accel-Buffering`` of their
                own replaces the default (``no-cache``, ``no``).

        Raises:
            TypeError: If ``events`` is one event (a ``str``, a mapping, a
                ``ServerSentEvent``), ``bytes``, or not iterable.
            ValueError: If ``headers`` give another ``Content-Type`` than
                ``text/event-stream`` (with parameters or not), which ``EventSource`` refuses.
        """
        check_events(events)
        chunks = AsyncSSEChunks(events) if isinstance(events, AsyncIterable) else SSEChunks(events)
        response = cls.stream(chunks, "text/event-stream", status, headers)
        value = response._headers["content-type"]
        if value.partition(";")[0].strip().lower() != "text/event-stream":
            # NOTE: the app's header won, and EventSource refused the stream: it fired
            # error and reconnected, again and again, with nothing said on the server.
            raise ValueError(
                f"Response.sse() is text/event-stream, which EventSource requires, not "
                f"{value!r}: leave Content-Type out of its headers"
            )
        response.headers.setdefault("cache-control", "no-cache")
        # NOTE: tells nginx-style proxies not to buffer the stream.
        response.headers.setdefault("x-accel-buffering", "no")
        return response

    def __repr__(self) -> str:
        kind = "stream" if self.chunks is not None else f"{len(self._body)} bytes"
        return f"<Response {self.status} {kind}>"


# SPEC: RFC 9110 15.4: the 3xx statuses that send the client to the Location; 304 (Not
# Modified) answers a conditional request, 305 is deprecated and 306 unused.
REDIRECTS = frozenset({300, 301, 302, 303, 307, 308})


def _is_svgz(path: str, headers: HeaderItems | None) -> bool:
    """Tell whether ``path`` is an SVG image compressed by its author, sent as the image."""
    # NOTE: browsers show a .svgz only as an SVG labelled Content-Encoding: gzip, as nginx and
    # Apache are configured to send it. A download, or a type of the caller's own, stays the
    # archive, also when given in ``headers``: "application/gzip" with that encoding was read
    # by clients as the SVG itself, and a download was saved unpacked under the .svgz name.
    if not path.lower().endswith(".svgz"):
        return False
    own = Headers(pairs_of(headers or ()))
    return "content-type" not in own and "content-disposition" not in own


def described_file(
    cls: type[Response],
    info: FileInfo,
    media_type: str | None = None,
    filename: str | None = None,
    status: int = 200,
    headers: HeaderItems | None = None,
) -> Response:
    """Return what ``cls.file()`` returns for the file that ``info`` describes (``Static``'s,
    described from the descriptor it opened and checked)."""
    if headers is not None and not isinstance(headers, Mapping):
        # NOTE: read twice below, which an iterator of pairs is not.
        headers = list(headers.items() if isinstance(headers, Headers) else headers)
    svgz = media_type is None and filename is None and _is_svgz(info.path, headers)
    media_type = SVG if svgz else media_type or guess_type(info.path)
    response = cls.stream(info.chunks(), media_type, status, headers)
    response.file_info, response.length = info, info.size
    response.headers["last-modified"] = info.last_modified
    if svgz:
        response.headers.setdefault("content-encoding", "gzip")
    if filename is not None:
        response.headers["content-disposition"] = content_disposition(filename)
    return response


refuse_other_spellings(Response, OTHER_SPELLINGS)
