"""The test client's requests: ``request()`` and its verbs through one side or both,
``stream()``, and ``websocket_connect()``; ``TestClient`` inherits them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from ._testing_content import async_content, encoded_once, one_body, replayed, sync_content
from ._testing_handshake import handshake_scope
from ._testing_http import SyncBody
from ._testing_options import check_flag
from ._testing_sides import ANSWERS, FOLLOWING, assert_same, first_reported, reporting, watching
from ._testing_websocket import WebSocketRefused, WebSocketSession
from ._testing_wsgi import WRITTEN_PATH, ServedBody, as_wsgi_served, body_cap, written_path

if TYPE_CHECKING:
    import weakref

    from ._app import App
    from ._asgi import ASGIDriver
    from ._testing_asgi import LoopThread


class RequestMethods:
    """The request methods of ``TestClient``, which gives them its options and its sides."""

    # NOTE: what TestClient gives these methods, told to mypy here.
    if TYPE_CHECKING:
        app: App
        interface: str
        base_url: str
        client: tuple[str, int] | None
        headers: httpx.Headers
        follow_redirects: bool
        raise_server_exceptions: bool
        ignore_headers: frozenset[str]
        _root_path: str
        _sessions: weakref.WeakSet[WebSocketSession]

        def _wsgi_side(self) -> httpx.Client: ...
        def _asgi_side(self) -> tuple[LoopThread, httpx.AsyncClient]: ...
        def _prepare(self, side: httpx.Client | httpx.AsyncClient) -> None: ...
        def _keep(self, answers: list[httpx.Response]) -> None: ...
        def _headers_for(self, headers: Any) -> httpx.Headers: ...
        @property
        def asgi_app(self) -> ASGIDriver: ...

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send a request; keyword arguments are httpx's (``json``, ``content``, ``headers``,
        ``follow_redirects``...).

        Raises:
            TypeError: For two bodies (``json=`` beside ``data=``, say), which httpx would
                send one of, or a ``follow_redirects`` that is not a ``bool``.
        """
        one_body(kwargs)
        kwargs["headers"] = self._headers_for(kwargs.get("headers"))
        kwargs.setdefault("follow_redirects", self.follow_redirects)
        check_flag("follow_redirects", kwargs["follow_redirects"])
        if self.interface == "wsgi":
            return self._wsgi_request(method, url, kwargs, [], keep=True)
        if self.interface == "asgi":
            return self._asgi_request(method, url, kwargs, keep=True)
        encoded_once(method, kwargs)
        replay = replayed(kwargs, body_cap(self.app))
        wsgi_answers: list[httpx.Response] = []
        try:
            via_wsgi = self._wsgi_request(method, url, kwargs, wsgi_answers, keep=False)
        except BaseException:
            # NOTE: raised (raise_server_exceptions, a redirect httpx refuses), the ASGI side is
            # not called: the cookies the WSGI side was given on the way are kept, as one side's.
            self._keep(wsgi_answers)
            raise
        if replay is not None:
            kwargs["content"] = replay()
        try:
            via_asgi = self._asgi_request(method, url, kwargs, keep=False)
        finally:
            # NOTE: the WSGI side's, as its answer is returned (they differ only where
            # ignore_headers lets a Set-Cookie differ); also when the ASGI side raises.
            self._keep(wsgi_answers)
        assert_same(method, url, via_wsgi, via_asgi, self.ignore_headers)
        return via_wsgi

    def _wsgi_request(
        self,
        method: str,
        url: str,
        kwargs: dict[str, Any],
        answers: list[httpx.Response],
        *,
        keep: bool,
    ) -> httpx.Response:
        side = self._wsgi_side()
        self._prepare(side)
        kwargs = self._as_written(url, sync_content(kwargs), answers, kwargs["follow_redirects"])
        try:
            return watching(
                self.raise_server_exceptions,
                lambda: as_wsgi_served(lambda: side.request(method, url, **kwargs)),
            )
        finally:
            # NOTE: also when an error is raised: a redirect's cookies came before it, as in
            # stream() and in a browser (a sign-in's session, dropped, signed the test out).
            if keep:
                self._keep(answers)

    def _asgi_request(
        self, method: str, url: str, kwargs: dict[str, Any], *, keep: bool
    ) -> httpx.Response:
        loop, side = self._asgi_side()
        answers: list[httpx.Response] = []
        self._prepare(side)
        kwargs = self._as_written(url, async_content(kwargs), answers, kwargs["follow_redirects"])
        try:
            return watching(
                self.raise_server_exceptions, lambda: loop.run(side.request(method, url, **kwargs))
            )
        finally:
            if keep:
                self._keep(answers)  # NOTE: also when an error is raised, as under WSGI.

    def _as_written(
        self, url: str, kwargs: dict[str, Any], answers: list[httpx.Response], following: bool
    ) -> dict[str, Any]:
        """Add the path as written to the request, where httpx would change it (each side its own:
        the transport takes it), and the list its answers go to and whether its redirects are
        followed (see record_answer())."""
        extensions = {**kwargs.get("extensions", {}), ANSWERS: answers, FOLLOWING: following}
        written = written_path(self.base_url, url)
        if written is not None:
            extensions[WRITTEN_PATH] = written
        return {**kwargs, "extensions": extensions}

    @contextlib.contextmanager
    def stream(self, method: str, url: str, **kwargs: Any) -> Iterator[httpx.Response]:
        """Send a request and give its response with the body unread, as httpx's ``stream()``.

        ``iter_bytes()``, ``iter_text()``, ``iter_lines()`` and ``iter_raw()`` give the body
        as the app sends it; ``read()`` takes the rest. Leaving the ``with`` block before the
        end is a client that goes away: the app sees it as under a server (its stream is
        closed, its after-response work runs), and the block's exit waits for that. Keyword
        arguments are ``request()``'s.

        Raises:
            RuntimeError: Under ``interface="both"``, which compares whole answers.
            Exception: Under ``raise_server_exceptions=True``, an error that no error handler
                answered, from the ``with`` statement (or, for an after-response callback,
                from the block's exit); an error in the streamed body, whatever the option,
                from the read that meets it.
        """
        if self.interface == "both":
            # NOTE: a comparison needs both bodies whole, which an endless stream never is,
            # and a read paced by the test would run the app's code twice, once per side.
            raise RuntimeError(
                "stream() reads one interface's answer as it comes: use "
                "TestClient(app, 'wsgi') or TestClient(app, 'asgi')"
            )
        one_body(kwargs)
        kwargs["headers"] = self._headers_for(kwargs.get("headers"))
        kwargs.setdefault("follow_redirects", self.follow_redirects)
        check_flag("follow_redirects", kwargs["follow_redirects"])
        with reporting(self.raise_server_exceptions) as reported:
            response = self._open(method, url, kwargs)
            try:
                if reported:
                    raise first_reported(reported)
                yield response
            except BaseException:
                response.close()
                raise
            response.close()
            if reported:
                raise first_reported(reported)

    def _open(self, method: str, url: str, kwargs: dict[str, Any]) -> httpx.Response:
        """Send a request through the client's one side; return once the answer's head is in."""
        # NOTE: httpx takes these when it sends a request, not when it builds one.
        sending = {name: kwargs.pop(name) for name in _SENDING if name in kwargs}
        following = bool(sending.get("follow_redirects"))
        if self.interface == "wsgi":
            side = self._wsgi_side()
            self._prepare(side)
            answers: list[httpx.Response] = []
            written = self._as_written(url, sync_content(kwargs), answers, following)
            request = side.build_request(method, url, **written)
            try:
                response = as_wsgi_served(lambda: side.send(request, stream=True, **sending))
            finally:
                # NOTE: also when an error is raised, as in request(): a followed redirect's
                # cookies, whose Location led nowhere, were lost.
                self._keep(answers)
            if asyncio._get_running_loop() is not None:
                assert isinstance(response.stream, httpx.SyncByteStream)
                response.stream = ServedBody(response.stream)
            return response
        loop, async_side = self._asgi_side()
        self._prepare(async_side)
        async_answers: list[httpx.Response] = []
        kwargs = self._as_written(url, async_content(kwargs), async_answers, following)
        request = async_side.build_request(method, url, **kwargs)
        try:
            response = loop.run(async_side.send(request, stream=True, **sending))
        finally:
            self._keep(async_answers)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = SyncBody(loop.loop, response.stream, lambda: loop.stopping)
        return response

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a GET request."""
        return self.request("GET", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a HEAD request."""
        return self.request("HEAD", url, **kwargs)

    def options(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send an OPTIONS request."""
        return self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a POST request."""
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a PUT request."""
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a PATCH request."""
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> httpx.Response:
        """Send a DELETE request."""
        return self.request("DELETE", url, **kwargs)

    def websocket_connect(
        self,
        url: str,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
        origin: str | bool = True,
    ) -> WebSocketSession:
        """Open a WebSocket to the app (ASGI only; under ``"both"`` the ASGI side is used).

        The handshake carries the client's default ``headers``, the cookies it holds for the
        URL (as set by earlier responses), and ``headers``, which win over the defaults; for a
        URL with credentials (``http://user:pw@host``), Basic auth, as httpx gives a request.
        Where ``headers`` have no ``Origin``, ``origin`` gives it, as a browser always
        sends one: ``True``, the client's default or the app's own page's
        (``http://testserver`` for ``ws://testserver/...``), a ``str`` that origin (a
        non-ASCII host in IDNA), ``False`` none.

        ``url`` is a path, or a URL: ``wss://`` and ``https://`` ones give the app the
        ``wss`` scheme, ``ws://`` and ``http://`` ones ``ws``.

        Raises:
            RuntimeError: Under ``interface="wsgi"``: WebSockets need ASGI.
            ValueError: For a URL of another scheme, or a non-ASCII ``origin`` that is no
                ``scheme://host[:port]``.
            TypeError: For an ``origin`` that is neither a ``bool`` nor a ``str``.
            WebSocketRefused: If the app refuses the handshake (a ``WebSocketDisconnect``
                whose ``response`` is the answer the client got).
            TimeoutError: If the app neither accepts nor refuses it within 10 seconds (its
                handler is cancelled then).
        """
        if self.interface == "wsgi":
            raise RuntimeError("WebSockets need the ASGI interface: TestClient(app, 'asgi')")
        loop, client = self._asgi_side()
        self._prepare(client)
        # NOTE: httpx builds the request it would send (Host, default headers, the cookies
        # that match the URL); the handshake takes its headers.
        merged = self._headers_for(headers)
        if origin is not True and "origin" not in httpx.Headers(headers):
            # NOTE: origin= given to the call wins over the client's default Origin, which
            # silently went instead; the call's own headers= win over both.
            merged.pop("origin", None)
        handshake = client.build_request("GET", url, headers=merged)
        scope = handshake_scope(
            handshake,
            url,
            written_path(self.base_url, url),
            self._root_path,
            self.client,
            subprotocols or [],
            origin,
        )
        try:
            session = WebSocketSession(
                loop,
                self.asgi_app,
                scope,
                self.raise_server_exceptions,
                owner=self,
                handshake=handshake,
            )
        except WebSocketRefused as refused:
            # NOTE: a browser keeps the cookies of any answer to the handshake (Fetch,
            # HTTP-network fetch): a refusal's Set-Cookie was dropped.
            self._keep([refused.response])
            raise
        # NOTE: a Set-Cookie on the acceptance (a session a flow changed) is kept, as a browser
        # keeps it: the jar had no word of it, and the next request sent the old cookie.
        self._sessions.add(session)
        raw = [(bytes(name), bytes(value)) for name, value in session.accepted.get("headers", [])]
        self._keep([httpx.Response(101, headers=raw, request=handshake)])
        return session


_SENDING = ("auth", "follow_redirects")
