"""The request head: the properties read from a driver's request lazily, and what they read.

``HeadProperties`` is the part of ``Request`` that reads the head on first use: headers, host,
query, cookies, addresses and the URL. It reads through the driver hooks (``_read_header_lines()``
and the rest), which each driver's ``Request`` subclass (``WSGIRequest``, ``ASGIRequest``)
gives from its environ or scope; that subclass also makes the ``BodySource``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from urllib.parse import quote

from ._buffer import BodyMeter
from ._cookies import parse_cookie_header
from ._datastructures import Headers, MultiDict, trusted_headers
from ._errors import HTTPError
from ._fields import RequestCookies, RequestFields, RequestHeaders, parse_fields
from ._forms import Spooler
from ._limits import Limits
from ._target import PATH_SAFE, check_host, clipped, query_text, valid_host, without_empty_port
from ._types import AppLike


class Address(NamedTuple):
    """A peer address: ``host`` and ``port``."""

    host: str
    port: int


class BodyChunks(Protocol):
    """The chunks of a body, pulled from async code: an async iterator that ``aclose()`` stops."""

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    def __anext__(self) -> Awaitable[bytes]: ...

    def aclose(self) -> Awaitable[None]:
        """Read no more of the body."""
        ...


class Signal(Protocol):
    """A one-shot signal from the read of a body that keeps it to the reads that wait for it,
    in a task of any event loop or in a thread (``_body.ReadDone``)."""

    def set(self) -> None:
        """Wake every read waiting, whatever its thread."""

    async def wait(self) -> None:
        """Wait, in a task, until ``set()`` is called."""

    def wait_blocking(self) -> None:
        """Wait, in a thread where no event loop runs, until ``set()`` is called."""


class Lock(Protocol):
    """A lock taken with ``acquire()`` and ``release()`` (``threading.Lock``)."""

    def acquire(self) -> bool:
        """Wait until the lock is free, then take it."""
        ...

    def release(self) -> None:
        """Free the lock."""


class BodySource(Protocol):
    """Where a driver's request body comes from; each colour has one way to pull chunks.

    ``disconnected`` is true once a read found the client gone (``http.disconnect``, or a
    ``wsgi.input`` read that failed), whatever became of the ``ClientDisconnect`` raised then.
    ``ended`` is true once the request has ended (its response sent, or its task cancelled):
    its body, if not read by then, can no longer be. ``overflowed`` is true once the source
    refused to hold more than the body limit of messages that came before a read (ASGI).
    """

    disconnected: bool
    ended: bool

    @property
    def overflowed(self) -> bool:
        """Whether messages held before a read went past the body limit (then a 413)."""
        ...

    @property
    def content_length(self) -> int | None:
        """The announced body length, ``None`` when unknown (400 when invalid)."""
        ...

    @property
    def content_encoding(self) -> str | None:
        """The ``Content-Encoding`` header (lines of it joined by ``, ``), ``None`` without one."""
        ...

    def chunks(self, meter: BodyMeter, size: int | None = None) -> Iterator[bytes]:
        """Yield the body's chunks, blocking (called where no event loop runs).

        Each chunk is counted by ``meter``, which is finished at the end of the body. ``size``
        is the most bytes a chunk read from a stream may hold (the source's own when
        ``None``); a source that yields the body as the server received it ignores it.
        """
        ...

    def is_disconnected(self) -> bool:
        """Tell, without blocking for long, whether the client has gone."""
        ...

    async def ais_disconnected(self) -> bool:
        """Tell whether the client has gone, from async code."""
        ...

    def achunks(self, meter: BodyMeter) -> BodyChunks:
        """Yield the body's chunks from async code, counted and finished as ``chunks()``."""
        ...

    def read_all(self, meter: BodyMeter) -> bytes:
        """Read the whole body, blocking, each chunk counted by ``meter``."""
        ...

    async def aread_all(self, meter: BodyMeter) -> bytes:
        """Read the whole body from async code, each chunk counted by ``meter``."""
        ...

    @property
    def lock(self) -> Lock:
        """Held while a read claims the body or ends (one lock for every body)."""
        ...

    def signal(self) -> Signal:
        """A new signal, for a read that waits for another read of this body."""
        ...


# NOTE: "not read yet", where None is a value (no client address, a JSON body of null).
MISSING: Any = object()
# NOTE: the scheme of an absolute URL, by the kind of its route and whether the request came
# secure: a WebSocket route's URL is only of use as ws/wss (as Starlette builds it), a page's as
# http/https, whatever the kind of the request that builds it.
_URL_SCHEMES = {
    ("http", False): "http",
    ("http", True): "https",
    ("websocket", False): "ws",
    ("websocket", True): "wss",
}
_SECURE_SCHEMES = frozenset({"https", "wss"})
_WEBSOCKET_SCHEMES = frozenset({"ws", "wss"})


def owes_host(version: str) -> bool:
    """Tell whether a request of HTTP ``version`` (``"1.1"``, ``"1.0"``, ``"2"``) owes a
    ``Host`` header: HTTP/1.1, and a later HTTP/1 (``"1.2"``) read as HTTP/1.1."""
    # SPEC: RFC 9110 2.5, a message of a higher minor version is processed as the highest one
    # the recipient implements. NOTE: Waitress gives "HTTP/1.2" to the app as "HTTP/1.0" and
    # httptools refuses it; a server that passes it on is read as for 1.1 (review139).
    major, dot, minor = version.partition(".")
    return major == "1" and dot == "." and minor.isascii() and minor.isdigit() and int(minor) > 0


class HeadProperties:
    """The properties of ``Request`` read from its driver's head, each parsed on first use.

    The ``_read_*`` methods, ``_make_body()`` and the class attributes below are the driver
    hooks: a driver's subclass of ``Request`` gives them. ``interface`` and ``may_block`` are
    the driver's own: ``may_block`` is true where the calling thread may block (WSGI), so that
    ``def`` handlers need no offload. ``_sync_only`` refuses a blocking call where an event
    loop runs; ``_run_blocking`` runs a blocking call from async code (uploads'
    ``aread``/``asave``); ``_spooler()`` makes what writes a form's spooled files (in a file
    thread, off the event loop); ``_thread_id()`` tells the calling thread (the one that runs
    a request's inline code, ``_inline``).
    """

    # NOTE: the slots are all on Request, one layout for the hot path; mypy is told here the
    # ones these properties fill, so that it checks the assignments.
    if TYPE_CHECKING:
        __slots__ = ("_client", "_cookies", "_headers", "_host", "_query", "_raw_path")
    else:
        __slots__ = ()

    interface: str
    may_block: bool
    _sync_only: Callable[[str, str], None]
    _thread_id: Callable[[], int]
    _run_blocking: Callable[..., Awaitable[Any]]
    _spooler: Callable[[], Spooler]

    app: AppLike
    limits: Limits
    path: str
    query_string: bytes
    scheme: str
    _raw_path: bytes | None
    _client: Address | None
    _headers: Headers | None
    _host: str | None
    _query: MultiDict[str] | None
    _cookies: dict[str, str] | None

    # -- the driver hooks ---------------------------------------------------------------------

    def _read_raw_path(self) -> bytes:
        """The path as sent, still percent-encoded, without the query and the root path."""
        raise NotImplementedError

    def _read_root_path(self) -> str:
        """The path the app is mounted at (``""`` at the root)."""
        raise NotImplementedError

    def _read_header_lines(self, limit: int) -> list[tuple[str, str]]:
        """The request's header lines (names in lower case); a driver may stop after the
        first ``limit + 1``, as ``headers`` refuses more than ``limit``."""
        raise NotImplementedError

    def _read_lines_sent(self) -> int:
        """How many header lines the client sent, where the server joined lines of one name
        (as WSGI servers do) and told how many there were; 0 where it did not tell."""
        return 0

    def _read_content_type(self) -> str | None:
        """The ``Content-Type`` header; lines of it joined by ``, ``, as WSGI servers join them."""
        raise NotImplementedError

    def _read_server(self) -> tuple[str, int | None] | None:
        """The server's address, when known."""
        raise NotImplementedError

    def _read_client(self) -> Address | None:
        """The client's address, when known."""
        raise NotImplementedError

    def _read_owes_host(self) -> bool:
        """Whether the request's protocol owes a ``Host`` header (HTTP/1.1)."""
        raise NotImplementedError

    def _make_body(self, limit: Callable[[], int]) -> BodySource:
        """Make the body source (once, on first use); ``limit()`` gives the body size limit."""
        raise NotImplementedError

    # -- the properties -------------------------------------------------------------------------

    @property
    def raw_path(self) -> bytes:
        """The path as the client sent it, still percent-encoded, without the query."""
        if self._raw_path is None:
            self._raw_path = self._read_raw_path()
        return self._raw_path

    @property
    def root_path(self) -> str:
        """The path the app is mounted at (``SCRIPT_NAME``, ASGI's ``root_path``) without a
        final ``/``, or ``""`` (for a root path of ``/`` too)."""
        return self._read_root_path()

    @property
    def server(self) -> tuple[str, int | None] | None:
        """The server's ``(host, port)``, or ``None`` when the server gives none."""
        return self._read_server()

    @property
    def client(self) -> Address | None:
        """The client's address (``.host``, ``.port``), or ``None`` when the server gives none."""
        if self._client is MISSING:
            self._client = self._read_client()
        return self._client

    @client.setter
    def client(self, address: tuple[str, int] | None) -> None:
        # NOTE: for plugins that know better than the server, such as ProxyHeaders.
        self._client = None if address is None else Address(*address)

    @property
    def headers(self) -> Headers:
        """The request headers: case-insensitive, multi-valued.

        Raises:
            HTTPError: 431 for more than ``max_headers`` header lines (the first ones are kept,
                for the error's answer).
        """
        if self._headers is None:
            limit = self.limits.max_headers
            lines = self._read_header_lines(limit)
            if len(lines) > limit or self._read_lines_sent() > limit:
                self._headers = trusted_headers(lines[:limit], RequestHeaders)
                raise HTTPError(431, f"more than {limit} header lines")
            self._headers = trusted_headers(lines, RequestHeaders)
        return self._headers

    @property
    def query(self) -> MultiDict[str]:
        """The query string as a multidict; ``query[name]`` missing answers 400 (a ``KeyError``).

        Raises:
            HTTPError: 400 for invalid UTF-8 or more than ``max_query_params`` fields.
        """
        if self._query is None:
            self._query = RequestFields(
                parse_fields(self.query_string, self.limits.max_query_params)
            )
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """The request cookies, parsed from every ``Cookie`` header: a ``dict`` where a name
        the client did not send answers 400 (``missing cookie 'name'``), as for ``query``."""
        if self._cookies is None:
            cookies = parse_cookie_header("; ".join(self.headers.getlist("cookie")))
            self._cookies = RequestCookies(cookies)
        return self._cookies

    @property
    def host(self) -> str:
        """The ``Host`` header, or the server's address when it is empty or, in HTTP/1.0,
        missing; ``""`` when the server gives no address either, or one that is no
        ``host[:port]`` (a Unix socket's path).

        Assigning a host (``ProxyHeaders`` does) replaces both, for ``url`` too; assigning a
        value that is no ``host[:port]`` (nor ``""``) raises ``ValueError``.

        Raises:
            HTTPError: 400 for more than one ``Host``, one that is not ``host[:port]``, or
                none in an HTTP/1.1 request.
        """
        if self._host is not None:
            return self._host
        hosts = self.headers.getlist("host")
        if len(hosts) > 1 or (hosts and hosts[0]):
            return check_host(hosts)
        if not hosts and self._read_owes_host():
            # SPEC: RFC 9112 3.2, an HTTP/1.1 request without Host is answered with 400.
            # NOTE: h11 refuses it before the app runs; Waitress and httptools passed it on,
            # with the server's address for a host (hostile137).
            raise HTTPError(400, "missing Host header")
        if self.server is None:
            return ""
        name, port = self.server
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"  # NOTE: an IPv6 address, given bare by servers on [::1].
        host = name if port is None else f"{name}:{port}"
        # NOTE: "uvicorn --uds" gives the socket's path as the server's name: the host was
        # "/run/app.sock", and url_for(_external=True) "http:///run/app.sock/items", a link to
        # the host "run", where a request naming no host must get 400.
        return host if valid_host(host) else ""

    @host.setter
    def host(self, host: str) -> None:
        # NOTE: what the getter gives, a checked host[:port] or "", is what may be assigned:
        # TrustedHosts reads the name without checking it again, and a flow that assigned a
        # header as it came ("evil.com/.example.com") had it allowed under "*.example.com".
        if not isinstance(host, str) or (host and not valid_host(host)):
            shown = clipped(host) if isinstance(host, str) else host
            raise ValueError(f"request.host takes a host[:port] or '', not {shown!r}")
        self._set_host(host)

    def _set_host(self, host: str) -> None:
        """Set ``host``, checked already (``""`` or ``valid_host()``): the setter's, or the one a
        plugin checked as it parsed a header (``ProxyHeaders``), not checked twice."""
        self._host = without_empty_port(host)

    @property
    def url(self) -> str:
        """The full URL: scheme, host, root path, path (percent-encoded) and query string.

        For a request that names no host, on a server that has no address either (no ``Host``
        in HTTP/1.0, on a Unix socket), ``host`` is ``""``, and the URL is relative: the root
        path, path and query string alone, as Starlette gives it.

        Raises:
            HTTPError: 400 for a ``Host`` that ``host`` refuses.
        """
        query = query_text(self.query_string)
        query = f"?{query}" if query else ""
        host = self.host
        if self.path == "*":
            # SPEC: RFC 9112 3.3, the URL of an asterisk-form target (OPTIONS *) has an empty
            # path.
            return f"{self.scheme}://{host}{query}" if host else "*" + query
        path = quote(self.root_path + self.path, PATH_SAFE)
        if not host:
            # SPEC: RFC 9110 4.2.1, no http URI has an empty host. "http:///app/x" was the URL,
            # which a browser reads as "http://app/x": a redirect to it left the site (fix154).
            return path + query
        return f"{self.scheme}://{host}{path}{query}"

    @property
    def full_path(self) -> str:
        """The path (percent-encoded, as in ``url``, without the root path) and, after a
        ``?``, the query string when there is one: ``/search?q=a%20b``, as Flask's
        ``request.full_path`` (which always ends in ``?`` without a query string)."""
        query = self.query_string
        path = quote(self.path, PATH_SAFE)
        return f"{path}?{query_text(query)}" if query else path

    @property
    def content_type(self) -> str | None:
        """The ``Content-Type`` header, if any (two lines of it joined by a comma)."""
        # PERF: read alone, without building every header: 0.05 us instead of 2.3 (WSGI).
        return self._read_content_type()

    def url_for(self, name: str, /, *, _external: bool = False, **params: Any) -> str:
        """Build the path of the route called ``name``, with the app's root path in front.

        The path parameters are keywords, and ``_query`` adds a query string, as for
        ``App.url_for``. The root path is percent-encoded, as ``url`` encodes it (it is
        decoded text). With
        ``_external=True``, the URL is absolute: a scheme and the request's host in front, for
        a link that leaves the site, such as one in an email; install ``TrustedHosts`` so that
        the host is yours. The scheme is ``http`` or ``https`` for an HTTP route, ``ws`` or
        ``wss`` for a WebSocket route, the secure one when the request came over ``https``
        or ``wss``. A name of both an HTTP and a WebSocket route (one path served both ways)
        builds the request's own kind.

        Raises:
            HTTPError: 400 for a ``Host`` that ``host`` refuses, or for no host at all (a
                request without ``Host`` on a Unix socket), with ``_external=True`` only.
            KeyError: If no route has that name.
            TypeError: If the parameters do not fit the template (a keyword the template
                lacks, instead of ``_query``, say), as ``App.url_for`` raises it.
            ValueError: For a value that no route could take back, as ``App.url_for``
                raises it.
        """
        # NOTE: _external is keyword-only: app.url_for's second place is the query, and a
        # query given there (request.url_for("x", {"q": "a"})) made an absolute URL without it.
        # NOTE: root_path has no final "/": a root path of "/" made "//items", a host to a browser.
        root = self.root_path
        path = (quote(root, PATH_SAFE) if root else "") + self.app.url_for(name, **params)
        if not _external:
            return path
        secure = self.scheme in _SECURE_SCHEMES
        own = "websocket" if self.scheme in _WEBSOCKET_SCHEMES else "http"
        scheme = _URL_SCHEMES[self.app._kind_of(name, own), secure]
        host = self.host
        if not host:
            # NOTE: "http:///items" (no Host, on a Unix socket) is a link to the host "items"
            # for a browser, which skips the extra slash.
            raise HTTPError(400, "the request names no host: no absolute URL can be built")
        return f"{scheme}://{host}{path}"
