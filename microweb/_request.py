"""The request: its head (protocol-neutral, parsed lazily) and its body, in two colours."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import parse_qsl, quote, unquote_to_bytes

from ._cookies import parse_cookie_header
from ._datastructures import Headers, MultiDict
from ._errors import HTTPError
from ._limits import Limits

if TYPE_CHECKING:
    from ._app import App


class Address(NamedTuple):
    """A peer address: ``host`` and ``port``."""

    host: str
    port: int


class BodySource(Protocol):
    """Where a driver's request body comes from; each colour has one way to pull chunks."""

    @property
    def content_length(self) -> int | None:
        """The announced body length, ``None`` when unknown (400 when invalid)."""
        ...

    def chunks(self) -> Iterator[bytes]:
        """Yield the body's chunks, blocking (called where no event loop runs)."""
        ...

    def achunks(self) -> AsyncIterator[bytes]:
        """Yield the body's chunks from async code."""
        ...


class SyncOnlyCheck(Protocol):
    def __call__(self, call: str, twin: str) -> None: ...


def decode_path(raw: bytes) -> str | None:
    """Decode a percent-decoded path strictly as UTF-8; ``None`` when it is not valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_raw_path(raw_path: bytes) -> str | None:
    """Percent-decode and UTF-8-decode a raw (still encoded) request path."""
    return decode_path(unquote_to_bytes(raw_path))


_JSON_TYPES = ("application/json",)


def _media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    if not content_type:
        return "", {}
    main, *rest = content_type.split(";")
    params = {}
    for item in rest:
        key, _, value = item.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), params


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(body: bytes, content_type: str | None) -> Any:
    """Parse a JSON request body.

    Raises:
        HTTPError: 415 for a non-JSON content type, 400 for invalid, non-UTF-8 or too deep JSON.
    """
    media, _ = _media_type(content_type)
    if media not in _JSON_TYPES and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise HTTPError(415, "expected a JSON body (Content-Type: application/json)")
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise HTTPError(400, "JSON body is not valid UTF-8") from None
    except RecursionError:
        raise HTTPError(400, "JSON body is nested too deeply") from None
    except ValueError:
        raise HTTPError(400, "invalid JSON body") from None


def decode_text(body: bytes, content_type: str | None) -> str:
    """Decode a body with the charset of its content type (UTF-8 when none is given).

    Raises:
        HTTPError: 400 for an unknown charset or bytes that do not decode.
    """
    charset = _media_type(content_type)[1].get("charset", "utf-8")
    try:
        return body.decode(charset)
    except LookupError:
        raise HTTPError(400, f"unknown charset {charset!r}") from None
    except UnicodeDecodeError:
        raise HTTPError(400, f"body is not valid {charset}") from None


class _BodyMeter:
    """Counts body bytes against the limit and the announced ``Content-Length``."""

    __slots__ = ("expected", "limit", "total")

    def __init__(self, limit: int, expected: int | None) -> None:
        if expected is not None and expected > limit:
            raise HTTPError(413, f"request body is larger than {limit} bytes")
        self.limit, self.expected, self.total = limit, expected, 0

    def count(self, chunk: bytes) -> bytes:
        self.total += len(chunk)
        if self.total > self.limit:
            raise HTTPError(413, f"request body is larger than {self.limit} bytes")
        if self.expected is not None and self.total > self.expected:
            raise HTTPError(400, "request body is longer than its Content-Length")
        return chunk

    def finish(self) -> None:
        if self.expected is not None and self.total < self.expected:
            raise HTTPError(400, "request body is shorter than its Content-Length")


_MISSING: Any = object()


class Request:
    """An HTTP request, the same object under WSGI and ASGI.

    The head is parsed lazily; the body is read with twin methods: ``read``/``aread``,
    ``text``/``atext``, ``json``/``ajson``, ``iter_bytes``/``aiter_bytes``. Both colours share one
    cache. Calling a sync body method where an event loop is running raises ``RuntimeError``
    naming the async twin.
    """

    __slots__ = (
        "_body",
        "_consumed",
        "_cookies",
        "_headers",
        "_json",
        "_load_headers",
        "_query",
        "_source",
        "_state",
        "_sync_only",
        "app",
        "client",
        "interface",
        "limits",
        "method",
        "path",
        "path_is_valid",
        "path_params",
        "query_string",
        "raw_path",
        "root_path",
        "route",
        "scheme",
        "server",
    )

    def __init__(
        self,
        *,
        app: App,
        interface: str,
        method: str,
        path: str | None,
        raw_path: bytes,
        root_path: str,
        query_string: bytes,
        headers: Callable[[], Headers],
        scheme: str,
        server: tuple[str, int | None] | None,
        client: Address | None,
        body: BodySource,
        sync_only: SyncOnlyCheck,
    ) -> None:
        self.app, self.interface, self.method = app, interface, method
        # NOTE: a path that is not valid UTF-8 is kept as None; routing answers it with 400.
        self.path: str = path if path is not None else ""
        self.raw_path, self.root_path, self.query_string = raw_path, root_path, query_string
        self.scheme, self.server, self.client = scheme, server, client
        self._load_headers, self._source, self._sync_only = headers, body, sync_only
        self.limits: Limits = app.limits
        self.path_params: dict[str, Any] = {}
        self.path_is_valid = path is not None
        self.route: Any = None
        self._headers: Headers | None = None
        self._query: MultiDict[str] | None = None
        self._cookies: dict[str, str] | None = None
        self._state: SimpleNamespace | None = None
        self._body: bytes | None = None
        self._json: Any = _MISSING
        self._consumed = False

    @property
    def headers(self) -> Headers:
        """The request headers: case-insensitive, multi-valued."""
        if self._headers is None:
            self._headers = self._load_headers()
        return self._headers

    @property
    def query(self) -> MultiDict[str]:
        """The query string as a multidict.

        Raises:
            HTTPError: 400 for invalid UTF-8 or more than ``max_query_params`` fields.
        """
        if self._query is None:
            self._query = MultiDict(parse_fields(self.query_string, self.limits.max_query_params))
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """The request cookies, parsed from every ``Cookie`` header."""
        if self._cookies is None:
            self._cookies = parse_cookie_header("; ".join(self.headers.getlist("cookie")))
        return self._cookies

    @property
    def state(self) -> SimpleNamespace:
        """A free namespace for this request, for flows and plugins to share values."""
        if self._state is None:
            self._state = SimpleNamespace()
        return self._state

    @property
    def host(self) -> str:
        """The ``Host`` header, or the server's address when there is none."""
        host = self.headers.get("host")
        if host:
            return host
        if self.server is None:
            return ""
        name, port = self.server
        return name if port is None else f"{name}:{port}"

    @property
    def url(self) -> str:
        """The full URL: scheme, host, root path, path and query string."""
        query = self.query_string.decode("latin-1")
        path = quote(self.root_path + self.path)
        return f"{self.scheme}://{self.host}{path}" + (f"?{query}" if query else "")

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, if any."""
        return self.headers.get("content-type")

    def url_for(self, name: str, /, **params: Any) -> str:
        """Build the path of the route called ``name``, with the app's root path in front."""
        return self.root_path + self.app.url_for(name, **params)

    # -- body, sync colour -------------------------------------------------------------------

    def read(self) -> bytes:
        """Read the whole body (bounded by ``max_body_size``).

        Raises:
            HTTPError: 413 past the limit, 400 for a body shorter than its ``Content-Length``.
            RuntimeError: Where an event loop runs in this thread (use ``await aread()``).
        """
        self._sync_only("read()", "aread()")
        if self._body is None:
            self._body = b"".join(self._stream("read()"))
        return self._body

    def text(self) -> str:
        """Read the body and decode it with its charset (UTF-8 by default)."""
        self._sync_only("text()", "atext()")
        return decode_text(self.read(), self.content_type)

    def json(self) -> Any:
        """Read the body and parse it as JSON (415 for another content type, 400 if invalid)."""
        self._sync_only("json()", "ajson()")
        if self._json is _MISSING:
            self._json = parse_json(self.read(), self.content_type)
        return self._json

    def iter_bytes(self) -> Iterator[bytes]:
        """Yield the body in chunks as they arrive, without holding it whole."""
        self._sync_only("iter_bytes()", "aiter_bytes()")
        if self._body is not None:
            if self._body:
                yield self._body
            return
        yield from self._stream("iter_bytes()")

    def _stream(self, call: str) -> Iterator[bytes]:
        meter = self._start(call)
        for chunk in self._source.chunks():
            yield meter.count(chunk)
        meter.finish()

    # -- body, async colour ------------------------------------------------------------------

    async def aread(self) -> bytes:
        """Read the whole body (bounded by ``max_body_size``); the async twin of ``read()``."""
        if self._body is None:
            self._body = b"".join([chunk async for chunk in self._astream("aread()")])
        return self._body

    async def atext(self) -> str:
        """Read and decode the body; the async twin of ``text()``."""
        return decode_text(await self.aread(), self.content_type)

    async def ajson(self) -> Any:
        """Read and parse a JSON body; the async twin of ``json()``."""
        if self._json is _MISSING:
            self._json = parse_json(await self.aread(), self.content_type)
        return self._json

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield the body in chunks as they arrive; the async twin of ``iter_bytes()``."""
        if self._body is not None:
            if self._body:
                yield self._body
            return
        async for chunk in self._astream("aiter_bytes()"):
            yield chunk

    async def _astream(self, call: str) -> AsyncIterator[bytes]:
        meter = self._start(call)
        async for chunk in self._source.achunks():
            yield meter.count(chunk)
        meter.finish()

    def _start(self, call: str) -> _BodyMeter:
        if self._consumed:
            raise RuntimeError(f"request.{call}: the body was already consumed by streaming it")
        self._consumed = True
        return _BodyMeter(self.limits.max_body_size, self._source.content_length)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path!r} via {self.interface}>"


def parse_fields(data: bytes, max_fields: int) -> list[tuple[str, str]]:
    """Parse a query string or urlencoded body into ``(name, value)`` pairs.

    Raises:
        HTTPError: 400 for invalid UTF-8 or more than ``max_fields`` fields.
    """
    if not data:
        return []
    try:
        return parse_qsl(
            data.decode("utf-8"),
            keep_blank_values=True,
            errors="strict",
            max_num_fields=max_fields,
        )
    except UnicodeDecodeError:
        raise HTTPError(400, "query or form data is not valid UTF-8") from None
    except ValueError:
        raise HTTPError(400, f"more than {max_fields} query or form fields") from None
