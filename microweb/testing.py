"""Drive an app in-process through its real WSGI and ASGI callables.

``TestClient`` is built on httpx: requests go through a small PEP 3333 transport (the app under
``wsgiref.validate``) or a small ASGI one. Both hand over the body as the app gives it, so that
``stream()`` reads it chunk by chunk; a response closed early is a client that went away.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

try:
    import httpx
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "microweb.testing needs httpx: pip install httpx (microweb's 'testing' extra)"
    ) from exc

if TYPE_CHECKING:
    from ._app import App
    from ._asgi import ASGIDriver
    from ._wsgi import WSGIDriver

from ._testing_asgi import Lifespan, LoopThread, asgi_side
from ._testing_close import close_asgi_side, close_now, close_wsgi_side, on_drop, stop_asgi_side
from ._testing_cookies import GivenCookies, GivenJar, clients_jar, keep_answers, side_jar
from ._testing_options import (
    Flag,
    browsers_base_url,
    check_app,
    check_interface,
    check_peer,
    check_root_path,
    ignored_headers,
)
from ._testing_requests import RequestMethods
from ._testing_websocket import WebSocketRefused, WebSocketSession
from ._testing_wsgi import CLIENT_ADDRESS, as_wsgi_served, wsgi_side

__all__ = ["TestClient", "WebSocketRefused", "WebSocketSession"]

# NOTE: documented, and shown in reprs, as microweb.testing's.
WebSocketSession.__module__ = WebSocketRefused.__module__ = __name__

Interface = Literal["wsgi", "asgi", "both"]


class TestClient(RequestMethods):
    """A requests-like client that sends each request through the app's real entrypoints.

    Args:
        app: The app under test.
        interface: ``"wsgi"`` (``as_wsgi()`` under ``wsgiref.validate``), ``"asgi"``
            (``as_asgi()``), or ``"both"``: each request goes through both and an
            ``AssertionError`` is raised if status, headers (but ``date`` and
            ``ignore_headers``) or body differ.
        base_url: Scheme and host the requests claim to go to; ``https://...`` makes
            ``request.scheme`` ``"https"`` under both interfaces. A path in it goes before
            each request's; a query or a fragment is refused. An IP address host goes out
            as a browser writes it (``http://127.1`` is ``http://127.0.0.1``).
        client: The peer address the app sees (``request.client``), as a server gives it
            (``REMOTE_ADDR`` and ``REMOTE_PORT``, the ASGI ``client``): to test code that
            depends on it, such as ``ProxyHeaders``; ``None`` for a peer with no address, as
            a Unix socket's (``request.client`` is ``None``).
        headers: Headers sent with every request and WebSocket handshake.
        cookies: Cookies to start with, in any form httpx's client takes them (a mapping of
            names to values, ``(name, value)`` pairs as tuples or lists, an ``httpx.Cookies`` or a
            ``CookieJar``); they go to the app's host on any path.
        follow_redirects: Whether requests follow redirects (each request may say otherwise
            with ``follow_redirects=``); off by default, as in httpx.
        ignore_headers: Header names (any case) that ``"both"`` leaves out of its
            comparison, for values that differ on every request: request ids, timings,
            cookies signed with the current time.
        raise_server_exceptions: Raise, from the request's call, an error that no error
            handler answered (the app's last-resort 500) or that an after-response callback
            raised, instead of returning the 500 (the default) or only logging it; and an
            error that ends a WebSocket handler, from the session (see ``WebSocketSession``),
            instead of the close with 1011.
        root_path: The prefix the app is mounted at (``"/app"``), as ``microweb serve
            --root-path`` mounts it: ``request.root_path`` is the prefix, ``request.path``
            the URL's path without it, and ``url_for`` puts it in front. Write URLs with the
            prefix, as a browser sends them (``client.get("/app/items")``).

    Raises:
        ValueError: For an unknown ``interface``, a ``base_url`` that is not an ``http://`` or
            ``https://`` URL with a host (or that has a query, a fragment, a port past
            65535 or a host that ends in a number and is no IPv4 address), or a
            ``root_path`` that does not start with ``/`` or that ends with one.
        TypeError: If ``app`` is no ``App``: the class ``App``, a ``Router`` (include it in
            an app), what ``as_wsgi()`` or ``as_asgi()`` made (give the app itself), or any other
            object; or if ``ignore_headers`` is one string, ``client`` is neither a
            ``(host, port)`` tuple nor ``None``, or ``follow_redirects`` or
            ``raise_server_exceptions`` is not a ``bool``.

    Attributes:
        base_url: As given; read on every request and WebSocket handshake, and checked as
            when given.
        client: As given; read on every request and WebSocket handshake, and checked as
            when given.
        headers: An ``httpx.Headers``, read on every request and handshake: a test may
            change it as it goes (``client.headers["authorization"] = ...`` after a login).
        cookies: An ``httpx.Cookies``, the one jar of both interfaces. Each answer's
            ``Set-Cookie`` goes there as a browser takes it (a ``Secure`` one from an https
            answer only; under ``"both"``, the WSGI side's, once both sides have answered,
            so both get the same request); each request and handshake sends what it holds
            then, in a browser's order. A test may read it, ``set()``, ``delete()``,
            ``clear()``, or assign anything ``cookies=`` takes.
        follow_redirects: As given (``True`` or ``False``, as any assigned value, or a
            ``TypeError``); read on every request. A followed redirect goes where
            a browser goes, with the method a browser uses.
        raise_server_exceptions: As given (``True`` or ``False``, as any assigned value);
            read on every request and WebSocket handshake.
            An error an error handler answered, an ``HTTPError`` and a ``ClientDisconnect``
            are never raised; an error in a streamed body always is, as the response cannot
            be completed.

    Use it as a context manager to run startup and shutdown hooks (the ASGI lifespan protocol
    under ASGI); without ``with``, startup runs on the first request. The
    ``InterfaceWarning`` that ``as_wsgi()`` gives for an app with WebSocket routes is not
    issued through the client: a test that runs under WSGI chose to.
    """

    __test__ = False  # NOTE: not a test class, whatever pytest thinks of the name.
    follow_redirects = Flag()
    raise_server_exceptions = Flag()

    def __init__(
        self,
        app: App,
        interface: Interface = "wsgi",
        base_url: str = "http://testserver",
        client: tuple[str, int] | None = CLIENT_ADDRESS,
        *,
        headers: Mapping[str, str] | None = None,
        cookies: GivenJar = None,
        follow_redirects: bool = False,
        ignore_headers: Iterable[str] = (),
        raise_server_exceptions: bool = False,
        root_path: str = "",
    ) -> None:
        check_app(app)
        check_interface(interface)
        check_root_path(root_path)
        self._root_path = root_path
        self.app, self.interface, self.base_url = app, interface, base_url
        # NOTE: one list, read by each side's transport on every request, which holds no
        # reference to the client (a dropped client is closed when collected).
        self._peer = [check_peer(client)]
        self.headers = httpx.Headers(headers)
        self.cookies = cookies
        self.follow_redirects = follow_redirects
        self.raise_server_exceptions = raise_server_exceptions
        self.ignore_headers = ignored_headers(ignore_headers)
        self._wsgi: WSGIDriver | None = None
        self._wsgi_client: httpx.Client | None = None
        self._loop: LoopThread | None = None
        self._asgi: ASGIDriver | None = None
        self._asgi_client: httpx.AsyncClient | None = None
        self._lifespan: Lifespan | None = None
        # NOTE: the WebSocket sessions made, told of the stop before the shutdown hooks run.
        self._sessions: weakref.WeakSet[WebSocketSession] = weakref.WeakSet()
        # NOTE: what releases each side's threads and files; also run when the client is
        # dropped unclosed (a fixture that returns TestClient(app), as with Flask's and
        # Starlette's clients), where each side held a thread and three descriptors until exit.
        self._release_wsgi: weakref.finalize[Any, TestClient] | None = None
        self._release_asgi: weakref.finalize[Any, TestClient] | None = None
        self._given: GivenCookies = weakref.WeakKeyDictionary()
        # NOTE: held while a side is made: the first requests of a client used without `with`,
        # sent from several threads at once, each made the side (startup hooks run once per
        # thread, the extra sides left to the collector, "Event loop is closed" at exit).
        self._making = threading.RLock()
        # NOTE: held while the jar is copied to a side and back: _keep() empties the client's
        # jar and fills it again, and a request from another thread that copied it meanwhile
        # went without its cookies, then put the jar back without them, for good.
        self._jar_lock = threading.Lock()
        self._entered = False

    @property
    def base_url(self) -> str:
        """The scheme and host (and a path, put in front of each request's) requests go to."""
        return self._base_url

    @base_url.setter
    def base_url(self, base_url: str) -> None:
        url = browsers_base_url(base_url)
        self._base_url, self._browsers_base = base_url, url

    @property
    def client(self) -> tuple[str, int] | None:
        """The peer address the app sees; read on every request and WebSocket handshake."""
        return self._peer[0]

    @client.setter
    def client(self, client: tuple[str, int] | None) -> None:
        self._peer[0] = check_peer(client)

    @property
    def root_path(self) -> str:
        """The prefix the app is mounted at, as ``microweb serve --root-path`` mounts it."""
        return self._root_path

    @property
    def cookies(self) -> httpx.Cookies:
        """The cookies sent with the next request, and set by the app's answers (one jar)."""
        return self._cookies

    @cookies.setter
    def cookies(self, cookies: GivenJar) -> None:
        # NOTE: a copy; a Cookies keeps domain and path.
        self._cookies = clients_jar(cookies)

    # -- the two sides -------------------------------------------------------------------------

    def _wsgi_side(self) -> httpx.Client:
        client = self._wsgi_client
        if client is not None:
            return client
        with self._making:
            if self._wsgi_client is None:
                self._wsgi, self._wsgi_client = wsgi_side(self.app, self._peer, self._root_path)
                self._release_wsgi = on_drop(
                    self, close_wsgi_side, self._wsgi_client, self._wsgi, hooks=True
                )
            return self._wsgi_client

    def _prepare(self, side: httpx.Client | httpx.AsyncClient) -> None:
        # NOTE: an httpx client copies its options when made, so base_url and the cookies are given
        # to a side before each request (headers and follow_redirects go with it), and a change
        # to the attributes after the first request counts. The side gets a copy of the jar, and
        # the answers (each redirect's too) are put in the client's by _keep(): under "both",
        # each side must send the cookies from before the request, or the two would differ.
        with self._jar_lock:
            side.base_url = self._browsers_base
            # NOTE: made whole before the side takes it: a request from another thread,
            # built meanwhile, read the side's jar without the cookies to_host() moves.
            side.cookies = side_jar(self._cookies, side.base_url, self._given).jar

    def _keep(self, answers: list[httpx.Response]) -> None:
        """Put the cookies that ``answers`` set in the client's jar, as the side's jar took them."""
        with self._jar_lock:
            keep_answers(self._cookies, answers, self._browsers_base, self._given)

    def _headers_for(self, headers: Any) -> httpx.Headers:
        merged = httpx.Headers(self.headers)
        if headers is not None:
            merged.update(headers)  # NOTE: a request's own headers win, name by name.
        return merged

    def _asgi_side(self) -> tuple[LoopThread, httpx.AsyncClient]:
        loop, client = self._loop, self._asgi_client
        if loop is not None and client is not None:
            return loop, client
        with self._making:
            if self._loop is None or self._asgi_client is None:
                self._loop, self._asgi, self._asgi_client = asgi_side(
                    self.app, self._peer, self._root_path
                )
                self._release_asgi = on_drop(
                    self, close_asgi_side, self._loop, self._asgi_client, self._asgi
                )
            return self._loop, self._asgi_client

    @property
    def asgi_app(self) -> ASGIDriver:
        """The ASGI callable under test (made on first use)."""
        self._asgi_side()
        assert self._asgi is not None
        return self._asgi

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop the ASGI side runs on."""
        return self._asgi_side()[0].loop

    # -- lifespan ------------------------------------------------------------------------------

    def __enter__(self) -> TestClient:
        if self._entered:
            # NOTE: the inner block ran the ASGI startup hooks again (the first lifespan never
            # ended), and its exit closed the client under the outer block, which went on with
            # sides made anew whose shutdown hooks never ran. Flask's client refuses it too.
            raise RuntimeError("this TestClient is in a with block already; use that block")
        self._entered = True
        try:
            if self.interface in ("wsgi", "both"):
                self._wsgi_side()
            if self.interface in ("asgi", "both"):
                loop, _ = self._asgi_side()
                lifespan = Lifespan(self.asgi_app)
                loop.run(lifespan.startup())
                self._lifespan = lifespan
        except BaseException:
            # NOTE: also for the WSGI side's startup, which as_wsgi() runs: left marked as
            # entered, the client refused every later `with` ("in a with block already").
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Run shutdown hooks (where startup ran) and release the client's resources.

        Under ``"both"``, both sides are closed even if the first one's shutdown fails.
        """
        self._entered = False
        try:
            self._close_wsgi()
        finally:
            self._close_asgi()

    def _close_wsgi(self) -> None:
        release = self._release_wsgi
        # NOTE: forgotten first, so a failing shutdown hook does not run again on close().
        self._wsgi_client = self._wsgi = self._release_wsgi = None
        as_wsgi_served(lambda: close_now(release))  # NOTE: the shutdown hooks, as startup's.

    def _close_asgi(self) -> None:
        loop, lifespan, release = self._loop, self._lifespan, self._release_asgi
        self._loop = self._asgi_client = self._asgi = self._lifespan = self._release_asgi = None
        if loop is not None and release is not None:
            stop_asgi_side(loop, lifespan, list(self._sessions), release)
