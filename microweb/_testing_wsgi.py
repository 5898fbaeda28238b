"""The WSGI side of ``TestClient``: an httpx transport that calls the app as a server would."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import io
import re
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, unquote_to_bytes
from wsgiref.util import FileWrapper, is_hop_by_hop
from wsgiref.validate import WSGIWarning, validator

import httpx

from ._app_loop import AppClosed
from ._errors import InterfaceWarning
from ._limits import MAX_INT_DIGITS, Limits
from ._target import strip_root
from ._testing_content import CheckedStream
from ._testing_sides import Answer, Side, record_answer, stop_if_reported
from ._wsgi_request import HEADER_LINES

if TYPE_CHECKING:
    from ._app import App
    from ._types import WSGIApp
    from ._wsgi import WSGIDriver

CLIENT_ADDRESS = ("127.0.0.1", 123)
# NOTE: what reading a response says once its client was closed.
CLIENT_CLOSED = (
    "the TestClient was closed while this response was read: the app's answer was cut off "
    "as a server's shutdown cuts it off"
)
# NOTE: the request extension that carries a path as the test wrote it (see written_path()).
WRITTEN_PATH = "microweb.written_path"

T = TypeVar("T")


def written_path(base_url: str, url: object) -> list[bytes] | None:
    """Return the raw path of ``url`` as written, where httpx would send another one.

    httpx drops dot segments (``/static/../secret`` goes out as ``/secret``) and reads a
    leading ``//`` as a host, where a server hands the app the target as it came. The path is
    percent-encoded as httpx encodes it, behind ``base_url``'s own path. It comes in a list
    that the transport empties: httpx gives a redirect the first request's extensions.
    ``"*"`` is the asterisk form (``OPTIONS *``), sent as it is.
    """
    if url == "*":
        # NOTE: httpx made it "/*"; Waitress gives PATH_INFO "*", Uvicorn path "*" (measured).
        return [b"*"]
    if not isinstance(url, str) or not url.startswith("/"):
        return None
    path = url.partition("#")[0].partition("?")[0]
    if not path.startswith("//") and not {".", ".."} & set(path.split("/")):
        return None
    # NOTE: a URL with neither a scheme nor a host is the one kind httpx leaves unnormalised;
    # the "/-" in front keeps a leading "//" from reading as a host.
    encoded = httpx.URL("/-" + path).raw_path[2:]
    return [httpx.URL(base_url).raw_path.rstrip(b"/") + encoded]


def check_scheme(url: httpx.URL) -> None:
    """Refuse a request to a URL that is not ``http`` or ``https``, as httpx's own transport does.

    Raises:
        httpx.UnsupportedProtocol: For any other scheme (a redirect to ``ftp://...``).
    """
    # NOTE: the WSGI side failed with KeyError('ftp') and the ASGI side served the request,
    # with request.scheme "ftp".
    if url.scheme not in ("http", "https"):
        raise httpx.UnsupportedProtocol(
            f"the TestClient sends http:// and https:// requests only, not {str(url)!r}"
        )


# SPEC: RFC 9110 5.1 and 5.5, a field name is a token; a field value holds no control
# character but HTAB.
_FIELD_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_FIELD_VALUE_BREACH = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


def refused_request_head(request: httpx.Request) -> httpx.Response | None:
    """Return the 400 that servers answer to a method or a header line that breaks HTTP's
    syntax, or None.

    httpx sends any method, name and value it is given, and the app got them: a test of
    ``headers={"X Y": "1"}``, of a value with a NUL or a line break, or of the method ``G@T``
    passed (or got 405), where Waitress, Uvicorn and microweb serve answer 400 before the app
    runs (measured on a raw socket).
    """
    # SPEC: RFC 9110 9.1, a method is a token.
    if not _FIELD_NAME.fullmatch(request.method.encode("latin-1", "replace")):
        return httpx.Response(400, text="invalid method")
    for name, value in request.headers.raw:
        if not _FIELD_NAME.fullmatch(name) or _FIELD_VALUE_BREACH.search(value):
            return httpx.Response(400, text="invalid header line")
    return None


def take_written_path(request: httpx.Request) -> bytes | None:
    """Return the path ``written_path()`` gave ``request``, once (never to a redirect)."""
    written = request.extensions.get(WRITTEN_PATH)
    return written.pop() if written else None


class WSGITransport(httpx.BaseTransport):
    """An httpx transport that calls a WSGI app as a PEP 3333 server would.

    ``PATH_INFO`` holds the percent-decoded path bytes as latin-1 text, a chunked request body
    arrives with its ``CONTENT_LENGTH`` and a header whose name holds ``_`` is dropped (as
    Waitress does both), and a hop-by-hop response header fails the request (as Waitress fails
    it). The body is the app's iterable, read as the response is read and closed with it.
    """

    def __init__(
        self,
        app: WSGIApp,
        peer: Callable[[], tuple[str, int] | None] = lambda: CLIENT_ADDRESS,
        closed: Callable[[], bool] = lambda: False,
        root_path: str = "",
        body_cap: Callable[[], int] = lambda: sys.maxsize,
    ) -> None:
        self.app, self.peer, self.closed, self.root_path = app, peer, closed, root_path
        self.body_cap = body_cap

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        check_scheme(request.url)
        refused = refused_request_head(request)
        if refused is not None:
            return refused
        if isinstance(request.stream, httpx.SyncByteStream):
            request.stream = CheckedStream(request.stream)
        body = read_up_to(request, self.body_cap())
        environ = self._environ(request, body)
        if not _DIGITS.fullmatch(environ.get("CONTENT_LENGTH", "0")):
            # NOTE: Waitress answers 400 before the app runs, and PEP 3333 gives no environ for
            # it (wsgiref.validate raised ValueError); the text is the ASGI side's, the core's.
            return httpx.Response(400, text="invalid Content-Length")
        if len(environ.get("CONTENT_LENGTH", "")) > MAX_INT_DIGITS:
            # NOTE: as microweb serve's Waitress answers it (_waitress_parser.OrderlyParser), where
            # wsgiref.validate's int() raised ValueError into the test.
            return httpx.Response(413, text="request body is too large")
        seen: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            headers = take_headers(environ, headers)
            _refuse_hop_by_hop(headers)
            seen["status"], seen["headers"] = status, headers
            return lambda data: None

        if request.method in _VALIDATED_METHODS:
            result = self.app(environ, start_response)
        else:
            # NOTE: wsgiref.validate warns of a method outside its list (PURGE, PROPFIND), which
            # PEP 3333 does not restrict and Waitress passes on: under -W error the app's 405
            # failed the test under WSGI only.
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Unknown REQUEST_METHOD", WSGIWarning)
                result = self.app(environ, start_response)
        # NOTE: PEP 3333 lets an app call start_response() as late as its first non-empty
        # chunk; microweb's driver calls it before it returns, even for a stream.
        assert "status" in seen, "the WSGI driver returned before calling start_response()"
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in seen["headers"]]
        return Answer(
            int(seen["status"][:3]), headers=headers, stream=WSGIBody(result, self.closed)
        )

    def _below_root(self, raw_path: bytes) -> bytes:
        if not self.root_path:
            return raw_path
        # NOTE: as Waitress does, leading slashes collapse before the root is taken out.
        collapsed = b"/" + raw_path.lstrip(b"/") if raw_path[:2] == b"//" else raw_path
        return strip_root(collapsed, quote(self.root_path, safe="/").encode("ascii"))

    def _environ(self, request: httpx.Request, body: bytes) -> dict[str, Any]:
        url = request.url
        raw_path = take_written_path(request) or url.raw_path.partition(b"?")[0]
        query = b"?" + url.query if url.query else b""
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": url.scheme,
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "REQUEST_METHOD": request.method,
            # SPEC: PEP 3333, text as the bytes of the URL taken as latin-1; as Waitress's
            # url_prefix, the root path is taken out of a path that has it.
            "SCRIPT_NAME": self.root_path.encode("utf-8").decode("latin-1"),
            "PATH_INFO": _path_info(self._below_root(raw_path)),
            "QUERY_STRING": url.query.decode("latin-1"),
            # NOTE: the ASCII name (an IDN host in its xn-- form): url.host decodes it, and a
            # native string holds latin-1 only (PEP 3333).
            "SERVER_NAME": url.raw_host.decode("ascii"),
            "SERVER_PORT": str(url.port or {"http": 80, "https": 443}[url.scheme]),
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REQUEST_URI": (raw_path + query).decode("latin-1"),
            "wsgi.file_wrapper": FileWrapper,
        }
        if raw_path == b"*":
            environ[_ASTERISK] = True
        client = self.peer()
        if client is not None:
            # NOTE: a peer with no address has neither, as microweb serve gives a Unix socket's.
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = client[0], str(client[1])
        for name, value in request.headers.raw:
            # NOTE: as Waitress does: in a CGI name "_" and "-" are one, and X_Forwarded_For
            # would pass for X-Forwarded-For.
            if b"_" in name:
                continue
            key = name.decode("latin-1").upper().replace("-", "_")
            text = value.strip(b" \t").decode("latin-1")  # NOTE: as every server strips it.
            if key == "TRANSFER_ENCODING" and _only_chunked(text):
                continue
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
            # NOTE: Cookie lines joined by "; ", as microweb serve's Waitress joins them.
            joint = "; " if key == "HTTP_COOKIE" else ", "
            environ[key] = f"{environ[key]}{joint}{text}" if key in environ else text
        # NOTE: the lines as sent, before the join, as microweb serve's Waitress tells them
        # (for Limits.max_headers): joined, 40 lines of one name were one (review408).
        environ[HEADER_LINES] = len(request.headers.raw)
        # NOTE: like Waitress, which decodes a chunked body and gives the app its real length
        # (a Content-Length sent beside Transfer-Encoding is ignored: RFC 9112 6.3).
        if "transfer-encoding" in request.headers or (body and "CONTENT_LENGTH" not in environ):
            environ["CONTENT_LENGTH"] = str(len(body))
        return environ


def read_up_to(request: httpx.Request, cap: int) -> bytes:
    """Read ``request``'s body, as Waitress does before the app runs: a streamed one no more
    than one byte past ``cap``; leave it to be sent again (a 307), as ``read()``
    leaves it. One the test gave whole is in memory already, and is left whole."""
    with contextlib.suppress(httpx.RequestNotRead):
        return request.content  # NOTE: given whole: in memory already.
    # NOTE: read whole, an endless upload hung the test and filled memory, where Waitress
    # stops at its cap and the app's 413 comes once a body is past its limit.
    body = bytearray()
    for chunk in request.stream:  # type: ignore[union-attr]
        body += chunk
        if len(body) > cap:
            del body[cap + 1 :]
            break
    request.stream = httpx.ByteStream(bytes(body))
    return request.read()


def body_cap(app: App) -> int:
    """Return the most bytes of a request body that ``app`` may read: its largest limit."""
    routes = [route.limits for route in app.routes if isinstance(route.limits, Limits)]
    return max(limits.max_body_size for limits in [app.limits, *routes])


def _path_info(raw_path: bytes) -> str:
    if raw_path == b"*":
        # NOTE: past wsgiref.validate's check of the environ: see validated().
        return ""
    return unquote_to_bytes(raw_path).decode("latin-1")


# NOTE: in the environ of an asterisk-form request (OPTIONS *) only, while it passes the checks.
_ASTERISK = "microweb.testing.asterisk"


# NOTE: in the environ while start_response() passes the checks: the headers as the app gave
# them, where a value holds a tab.
_TABBED = "microweb.testing.tabbed"


def validated(app: WSGIApp) -> WSGIApp:
    """Return ``app`` under ``wsgiref.validate``, but for two things every server passes that
    the validator refuses, which the app gets, or sends, as under a server.

    ``OPTIONS *``: the validator refuses a ``PATH_INFO`` that is not empty and does not start
    with ``/`` (CGI's rule), and given an empty one, the app answered ``OPTIONS /``; Waitress
    gives ``"*"`` (measured). The validator is given an empty one, the app ``"*"``.

    A tab inside a response header value: RFC 9110 5.5 allows it, Waitress, Granian and
    Uvicorn send it as it is (measured), and the validator refuses it with the control
    characters PEP 3333 forbids. The validator checks the value with a space in its place; the
    transport takes the app's own (``take_headers()``).
    """

    def unmasked(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.pop(_ASTERISK, False):
            environ["PATH_INFO"] = "*"

        def start(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            if any("\t" in value for _, value in headers):
                environ[_TABBED] = headers
                headers = [(name, value.replace("\t", " ")) for name, value in headers]
            return start_response(status, headers, *exc_info)

        return app(environ, start)

    return validator(unmasked)


def take_headers(environ: dict[str, Any], checked: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Return the headers the app gave, which the validator ``checked`` (see ``validated()``)."""
    tabbed: list[tuple[str, str]] | None = environ.pop(_TABBED, None)
    return checked if tabbed is None else tabbed


_DIGITS = re.compile(r"[0-9]+")
# NOTE: the methods wsgiref.validate knows (its check_environ); it warns of any other.
_VALIDATED_METHODS = frozenset(
    {"GET", "HEAD", "POST", "OPTIONS", "PATCH", "PUT", "DELETE", "TRACE"}
)


class WSGIBody(httpx.SyncByteStream):
    """A WSGI app's iterable as an httpx body: each chunk taken when the reader asks for it."""

    def __init__(self, result: Iterable[bytes], closed: Callable[[], bool]) -> None:
        self._result, self._closed = result, closed

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._result)
        while True:
            if self._closed():
                # NOTE: a def stream runs in the reader's thread: it went on for ever.
                raise RuntimeError(CLIENT_CLOSED)
            chunk = next(chunks, None)
            if chunk is None:
                return
            if chunk:
                yield chunk

    def close(self) -> None:
        # SPEC: PEP 3333, the server calls close() however the response ends (the validator
        # checks that it does).
        # NOTE: let go, as httpx's response and its stream refer to each other: the iterable
        # (and the validator's wrapper, whose __del__ checks it was closed) waited for the
        # garbage collector, which ran that __del__ in whatever code was running then.
        result, self._result = self._result, ()
        close = getattr(result, "close", None)
        if close is not None:
            # NOTE: the client was closed while the response was read: the app's close cut
            # off an async stream already, as a server's shutdown does.
            with contextlib.suppress(AppClosed):
                close()


def _only_chunked(codings: str) -> bool:
    """Tell whether a ``Transfer-Encoding`` names ``chunked`` alone, which Waitress decodes.

    Any other coding (``gzip, chunked``) stays in the environ, where the app refuses it with
    501 as under ASGI; Waitress answers it with 501 itself, before the app runs.
    """
    return all(coding.strip(" \t").lower() == "chunked" for coding in codings.split(","))


def _refuse_hop_by_hop(headers: list[tuple[str, str]]) -> None:
    """Fail on a hop-by-hop response header, which PEP 3333 forbids an app to set.

    microweb refuses all but ``Upgrade`` when they are set; Waitress answers an app that sends
    ``Upgrade`` with its own 500, where Uvicorn sends it on.
    """
    for name, _ in headers:
        if is_hop_by_hop(name):
            raise AssertionError(
                f"{name!r} is a hop-by-hop header, which a WSGI app must not send (PEP 3333): "
                "Waitress answers the request with its own 500"
            )


def as_wsgi_served(call: Callable[[], T]) -> T:
    """Return ``call()``, made in a thread without a running event loop, as a WSGI server's.

    A test written ``async def`` calls the client in a thread whose loop is running, where a
    ``def`` handler's ``request.json()`` would refuse to block, and fail with a 500 that no
    server gives; such a call is made in a thread of its own, in this thread's context.
    """
    if asyncio._get_running_loop() is None:
        return call()
    with concurrent.futures.ThreadPoolExecutor(1, "microweb-testclient-wsgi") as thread:
        return thread.submit(contextvars.copy_context().run, call).result()


class ServedBody(httpx.SyncByteStream):
    """A WSGI answer's body, read and closed in a thread without a running event loop.

    The app's ``def`` stream runs as the body is read, and its after-response work when the
    body is closed: in an ``async def`` test's thread, a stream that reads the request failed
    as a handler did (see ``as_wsgi_served``). Every step is made in one thread of its own, in one
    context, as a server's thread would make them.
    """

    def __init__(self, body: httpx.SyncByteStream) -> None:
        self._body = body
        self._thread = concurrent.futures.ThreadPoolExecutor(1, "microweb-testclient-wsgi")
        self._context = contextvars.copy_context()

    def _run(self, call: Callable[[], T]) -> T:
        return self._thread.submit(self._context.run, call).result()

    def __iter__(self) -> Iterator[bytes]:
        chunks = iter(self._body)
        while (chunk := self._run(lambda: next(chunks, None))) is not None:
            yield chunk

    def close(self) -> None:
        try:
            self._run(self._body.close)
        finally:
            self._thread.shutdown()


def wsgi_side(
    app: App, peer: list[tuple[str, int] | None], root_path: str
) -> tuple[WSGIDriver, httpx.Client]:
    """Make the WSGI side of a ``TestClient``: the app's driver (its startup hooks run) and the
    httpx client that sends requests to it, the peer address read from ``peer`` at each."""
    with warnings.catch_warnings():
        # NOTE: a suite under -W error must not fail because the app has WebSocket
        # routes; a request to one still answers 501 with a message naming as_asgi().
        warnings.simplefilter("ignore", InterfaceWarning)
        # NOTE: as_wsgi() runs the startup hooks: as a server runs them, with no
        # running event loop, also from an async def test.
        driver = as_wsgi_served(app.as_wsgi)
    transport = WSGITransport(
        validated(driver), reader(peer), lambda: driver.closed, root_path, lambda: body_cap(app)
    )
    return driver, Side(
        transport=transport,
        event_hooks={"request": [stop_if_reported], "response": [record_answer]},
    )


def reader(peer: list[tuple[str, int] | None]) -> Callable[[], tuple[str, int] | None]:
    """Return what reads the client's peer address as it is at each request."""
    return lambda: peer[0]
