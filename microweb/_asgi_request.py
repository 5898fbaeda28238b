"""The ASGI request: built from a scope by ``request_of()``, which decodes its path; what the
scope says beyond its first line is read on first use (the driver hooks of ``HeadProperties``),
and the body source is made there too."""

from __future__ import annotations

import asyncio
import itertools
import sys
from collections.abc import Callable, Iterable
from operator import countOf, itemgetter
from typing import Any
from urllib.parse import quote

from ._asgi_body import ASGIBody
from ._asgi_body_terms import BODY_AWAITED, SENDS_DROPPED
from ._file_threads import ThreadHooks
from ._limits import Limits
from ._request import Request, decode_raw_path, new_request
from ._request_head import Address, owes_host
from ._response import Response
from ._status import STATUS_LINES
from ._target import strip_root, target_path
from ._types import AppLike, Message, Receive, Scope


class ASGIRequest(ThreadHooks, Request):
    """A request as the ASGI driver builds it, from a scope.

    Its ``_channel`` is ``(receive, loop)``: the body may be made in the pool (a ``def``
    handler), so the loop is known here, once the driver has it.
    """

    __slots__ = ()
    interface = "asgi"
    may_block = False
    _raw: Scope
    _raw_path: bytes

    def _read_raw_path(self) -> bytes:
        # NOTE: the driver gives it, once the root path is out of it.
        return self._raw_path

    def _make_body(self, limit: Callable[[], int]) -> ASGIBody:
        receive, loop = self._channel
        scope = self._raw
        if scope["type"] == "http":
            # PERF: __init__ called from here, not by the class's call, which CPython 3.11
            # enters from C with a frame of its own (see new_request()): valgrind instructions
            # per request, ASGI echo 313,874 -> 313,680 (bench/icount.sh, mean over PYTHONHASHSEED
            # 0 to 3, 2026-12-06; each seed 195 less).
            body = _new(ASGIBody)
            ASGIBody.__init__(body, scope["headers"], receive, loop, self)
            extensions = scope.get("extensions")
            if extensions:
                if BODY_AWAITED in extensions:
                    body.tell_awaited(extensions[BODY_AWAITED])
                body.sends_dropped = extensions.get(SENDS_DROPPED)
        else:
            # NOTE: a WebSocket handshake has no body, and its receive() gives the socket's
            # messages, websocket.connect first, which accept() waits for: it is never read.
            body = ASGIBody([], _no_body, loop)
        body.limit = limit
        return body

    def _read_root_path(self) -> str:
        # NOTE: without a final "/", as under WSGI: "uvicorn --root-path /" gives "/".
        return str(self._raw.get("root_path", "")).rstrip("/")

    def _read_header_lines(self, limit: int) -> list[tuple[str, str]]:
        raw = self._raw["headers"]
        over = len(raw) > limit
        if over:
            raw = raw[: limit + 1]
        # NOTE: Uvicorn's httptools parser keeps the spaces and tabs that end a value, where
        # Waitress and h11 strip them (RFC 9112 5: they are not part of it): "Bearer t " would
        # not be "Bearer t" under that one server.
        # SPEC: ASGI HTTP 2.5, scope "headers": names "should be lowercased, but it is not
        # required". PERF: .lower() on names already decoded costs 0.05 us for 8 headers
        # (timeit, 2026-12-06), where a check of the raw names first cost 0.45.
        lines = [(k.decode("latin-1").lower(), v.decode("latin-1").strip(_OWS)) for k, v in raw]
        # PERF: the names counted in C, 0.3 us for 8 headers where a comprehension took 0.4:
        # these lines cost 1.85 -> 2.3 us (timeit, 2026-12-05). Past the limit, lines are
        # left as sent: its 431 keeps the first ones.
        if not over and countOf(map(_NAME, lines), "cookie") > 1:
            return _cookie_lines_joined(lines)
        return lines

    def _read_content_type(self) -> str | None:
        # NOTE: two Content-Type lines are joined, as Waitress joins them for WSGI: the same
        # malformed type under both interfaces, which json() and form() answer with 415, where
        # the first line alone had been parsed as if the second were not there.
        headers = self._raw["headers"]
        if not b"".join(map(_NAME, headers)).islower():
            # NOTE: names a server kept in the client's case (ASGI allows it) are lowered:
            # looked for again only when missing as sent, "Content-Type" beside a lower-case
            # line was not joined to it. PERF: the check takes as long as the loop below (8
            # names, timeit, 2026-12-06), where request.headers would build them all.
            headers = self._lower_scope_names()
        # PERF: one loop, no list: 0.23 us for five headers where a comprehension took 0.38.
        found = None
        for name, value in headers:
            if name == b"content-type":
                text = value.decode("latin-1").strip(_OWS)
                found = text if found is None else f"{found}, {text}"
        # NOTE: an empty line is no Content-Type, as under WSGI, where CGI's CONTENT_TYPE
        # cannot tell an empty header from none.
        return found or None

    def _lower_scope_names(self) -> list[tuple[bytes, bytes]]:
        """Read the scope's header names lowered from now on (the body source lowers its own:
        ``ASGIBody._lowered_names``); return them."""
        headers = [(name.lower(), value) for name, value in self._raw["headers"]]
        self._raw = {**self._raw, "headers": headers}
        return headers

    def _read_server(self) -> tuple[str, int | None] | None:
        server = self._raw.get("server")
        return (server[0], server[1]) if server else None

    def _read_client(self) -> Address | None:
        client = self._raw.get("client")
        return Address(client[0], client[1]) if client else None

    def _read_owes_host(self) -> bool:
        # SPEC: ASGI's WebSocket scope, "http_version": optional, "1.1" when missing (an HTTP
        # scope must give it).
        implied = "1.1" if self._raw.get("type") == "websocket" else ""
        return owes_host(self._raw.get("http_version", implied))


# SPEC: the ASGI extension "WebSocket Denial Response": a server that names it in the scope's
# extensions sends the HTTP response an app gives instead of accepting a handshake.
DENIAL_RESPONSE = "websocket.http.response"
# NOTE: named besides it by microweb serve's WebSocket protocol and the test client, which
# send such a response whole and quietly under any Uvicorn.
DENIAL_SENT_WHOLE = "microweb.denial_response"
# NOTE: Uvicorn's own protocols announce the extension, but before 0.55 its sans-I/O one
# logged "ASGI callable returned without completing handshake." for every refusal sent, and
# 0.51's sent two Content-Length lines, which clients refused as no HTTP response: there, a
# close (403). From 0.55 on, both of its websockets protocols send it whole and log nothing.
_UVICORN_SENDS_DENIAL = (0, 55)


def sends_refusal(request: Request, response: Response) -> bool:
    """Tell whether the client of a handshake refused with ``response`` gets that response.

    It does where the server announces the denial-response extension (but a Uvicorn before
    0.55, unless ``DENIAL_SENT_WHOLE`` says that microweb's protocol sends it), the body is
    whole bytes and the status has a name; else the refusal is a close before accept, which the
    server answers with 403.
    """
    if not isinstance(request, ASGIRequest) or response.chunks is not None:
        # NOTE: a stream is not sent: the server holds the whole body before it sends any
        # (Uvicorn does), so an endless one (an event stream) would grow without a bound.
        return False
    if response._status not in STATUS_LINES:
        # NOTE: Uvicorn's legacy websockets protocol (and its sans-I/O one in 0.51) looks the
        # status up in http.HTTPStatus: a 499 raised there, and the client got a 500.
        return False
    extensions = request._raw.get("extensions") or {}
    if DENIAL_RESPONSE not in extensions:
        return False
    return DENIAL_SENT_WHOLE in extensions or not _old_uvicorn()


def _old_uvicorn() -> bool:
    """Tell whether this process runs a Uvicorn that sends denial responses badly (< 0.55)."""
    # NOTE: the scope does not name its server; a process that serves under Uvicorn has it
    # imported, and a server of another kind that announces the extension is taken at its word.
    uvicorn = sys.modules.get("uvicorn")
    if uvicorn is None:
        return False
    try:
        major, minor = (int(part) for part in uvicorn.__version__.split(".")[:2])
    except (AttributeError, ValueError):
        return True
    return (major, minor) < _UVICORN_SENDS_DENIAL


# SPEC: RFC 9110 5.6.3, the optional whitespace around a field value.
_OWS = " \t"


async def _no_body() -> Message:
    """The one message of an empty body: a WebSocket handshake's."""
    return {"type": "http.request", "body": b"", "more_body": False}


_new = object.__new__
_PERCENT = ord("%")
# PERF: how a raw path starts when there is nothing to take out of it: "/", then any byte but
# another "/". One set lookup instead of an index, a slice and two compares: 540 instructions
# less an ASGI hello (valgrind, PYTHONHASHSEED=0, 2026-11-30).
_PLAIN_STARTS = frozenset([b"/", *(bytes([47, code]) for code in range(256) if code != 47)])


def request_of(app: AppLike, limits: Limits, scope: Scope, receive: Receive) -> ASGIRequest:
    """Build the request of an HTTP or WebSocket ``scope``: its path decoded now, the rest of
    its head read from the scope on first use."""
    method = scope.get("method", "GET")
    # SPEC: raw_path is optional (None if missing): _target() makes one from the path.
    raw_path = scope.get("raw_path") or b""
    path: str | None
    root_path = scope.get("root_path")
    try:
        plain = raw_path[:2] in _PLAIN_STARTS
    except TypeError:
        # NOTE: a server that sent a bytearray (the spec says bytes): the request keeps bytes.
        raw_path = bytes(raw_path)
        plain = raw_path[:2] in _PLAIN_STARTS
    if plain and _PERCENT not in raw_path and not root_path:
        # PERF: the usual path, with nothing to take out or percent-decode, checked inline:
        # _target() costs 0.30 us for the same path.
        try:
            path = raw_path.decode("utf-8")
        except UnicodeDecodeError:
            path = None
    else:
        path, raw_path = _target(scope, raw_path, method)
    headers = scope.get("headers")
    # PERF: the check costs 0.03 us; a copy of every scope with its headers a tuple, 0.35 us
    # for 8 headers (timeit, 2026-12-04).
    if type(headers) is not list and type(headers) is not tuple and headers is not None:
        scope = _with_header_tuple(scope, headers, limits.max_headers)
    return new_request(
        ASGIRequest,
        app,
        limits,
        method,
        path,
        scope.get("query_string", b""),
        scope.get("scheme", "http"),
        scope,
        # NOTE: the body may be made in the pool (a def handler); the loop is known here.
        (receive, asyncio.get_running_loop()),
        raw_path,
    )


_NAME = itemgetter(0)


def _cookie_lines_joined(lines: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``lines`` with those of ``Cookie`` joined by ``"; "`` into one, where the first was."""
    # SPEC: RFC 9113 8.2.3, an HTTP/2 request's cookies, one header line each, join with "; "
    # into one header; RFC 6265 5.4 sends one. A WSGI server gives one HTTP_COOKIE (microweb
    # serve's Waitress joins its lines so, as the test client does): headers.get("cookie")
    # read the first line alone under ASGI, all of them under WSGI.
    joined: str | None = "; ".join(value for name, value in lines if name == "cookie")
    kept: list[tuple[str, str]] = []
    for name, value in lines:
        if name != "cookie":
            kept.append((name, value))
        elif joined is not None:
            kept.append((name, joined))
            joined = None
    return kept


def _with_header_tuple(scope: Scope, headers: Iterable[Any], limit: int) -> Scope:
    """A copy of ``scope`` whose headers, any iterable of pairs, are a tuple that the request
    reads as often as it needs, of at most ``limit + 1`` pairs (one more makes the 431)."""
    # SPEC: ASGI's HTTP scope, "headers": "An iterable of [name, value] two-item iterables";
    # Uvicorn and Hypercorn give a list, which is read in place. A generator is read once,
    # and never past the limit.
    return {**scope, "headers": tuple(itertools.islice(headers, limit + 1))}


def _target(scope: Scope, raw_path: bytes | None, method: str) -> tuple[str | None, bytes]:
    """The path and the raw path of any other target (``None``: not a path, or not UTF-8)."""
    if not raw_path:
        # SPEC: raw_path is optional in ASGI; `path` is already percent-decoded text.
        raw_path = quote(scope["path"], safe="/*").encode("ascii")
    target: bytes | None = raw_path
    if raw_path[:1] != b"/" or raw_path[1:2] == b"/":
        # NOTE: h11 passes an absolute-form target whole, httptools only its path.
        target = target_path(raw_path, method)
    if target is None:
        return None, raw_path
    # NOTE: "/app/" is mounted where "/app" is: its path "/app/x" kept the root in it.
    root = scope.get("root_path", "").rstrip("/")
    if root:
        target = strip_root(target, quote(root, safe="/").encode("ascii"))
    return decode_raw_path(target), target
