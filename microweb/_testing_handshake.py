"""The WebSocket handshake as ``TestClient`` makes it: its headers, and the scope a server
gives the app for it."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx

from ._asgi_request import DENIAL_RESPONSE, DENIAL_SENT_WHOLE
from ._testing_sides import browsers_url
from ._testing_websocket import WebSocketRefused
from ._testing_wsgi import refused_request_head

# NOTE: the schemes websocket_connect() takes, and whether each is secure (wss for the app).
_WEBSOCKET_SECURE = {"http": False, "ws": False, "https": True, "wss": True}


def handshake_scope(
    handshake: httpx.Request,
    url: str,
    written: list[bytes] | None,
    root_path: str,
    client: tuple[str, int] | None,
    subprotocols: list[str],
    origin: str | bool = True,
) -> dict[str, Any]:
    """Return the scope a server gives the app for ``handshake``, the request httpx built.

    Args:
        handshake: The request httpx built for the URL (its headers, cookies included).
        url: The URL as the test gave it.
        written: The path as the test wrote it, where httpx would change it
            (``written_path()``).
        root_path: The client's ``root_path``.
        client: The peer address the app sees.
        subprotocols: The subprotocols offered, besides any in the handshake's headers.
        origin: The ``Origin`` sent where the handshake's headers have none (see
            ``with_origin()``).

    Raises:
        ValueError: For a URL of another scheme than http, https, ws or wss.
        WebSocketRefused: For a head a server's HTTP parser refuses (with its 400).
    """
    target = handshake.url
    if target.scheme not in _WEBSOCKET_SECURE:
        raise ValueError(
            f"websocket_connect() takes a path, or an http://, https://, ws:// or wss:// "
            f"URL, not {url!r}"
        )
    if target.username or target.password:
        # NOTE: as httpx authenticates a request to such a URL (base_url "http://u:pw@host"):
        # the handshake went without it.
        basic = httpx.BasicAuth(target.username, target.password)
        handshake = next(basic.sync_auth_flow(handshake))
    with_origin(handshake, origin)
    refused = refused_request_head(handshake)
    if refused is not None:
        # NOTE: a server's HTTP parser answers it before any WebSocket code runs.
        refused.request = handshake
        raise WebSocketRefused(refused)
    # NOTE: "wss://host/path", as a Starlette test writes it, gave the app the "ws" scheme.
    secure = _WEBSOCKET_SECURE[target.scheme]
    raw_path = written[0] if written else target.raw_path.partition(b"?")[0]
    head = handshake_headers(handshake.headers, subprotocols)
    # NOTE: as Uvicorn reads them, from every Sec-WebSocket-Protocol line: one given in
    # headers= reached ws.headers but not ws.subprotocols, and accept() refused it.
    offered = [
        token.strip()
        for name, value in head
        if name == b"sec-websocket-protocol"
        for token in value.decode("latin-1").split(",")
        if token.strip()
    ]
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "wss" if secure else "ws",
        "path": unquote(raw_path.decode("ascii")),
        "raw_path": raw_path,
        "query_string": target.query,
        "root_path": root_path,
        "headers": head,
        "client": client,
        "server": (target.raw_host.decode("ascii"), target.port or (443 if secure else 80)),
        "subprotocols": offered,
        # NOTE: as Uvicorn does: a flow's refusal reaches the client as that response.
        "extensions": {DENIAL_RESPONSE: {}, DENIAL_SENT_WHOLE: {}},
    }
    return scope


def with_origin(handshake: httpx.Request, origin: str | bool) -> None:
    """Give ``handshake`` an ``Origin`` where its headers have none: for ``True``, the origin
    of the app's own page (the ``http``/``https`` twin of the URL's scheme, its host and a
    port other than the default); a ``str`` as it is, a non-ASCII host in IDNA; none for
    ``False``.

    Raises:
        ValueError: For a non-ASCII ``str`` that is no ``scheme://host[:port]``.
        TypeError: For an ``origin`` that is neither a ``bool`` nor a ``str``.
    """
    if not isinstance(origin, (bool, str)):
        raise TypeError(
            f"websocket_connect() takes origin=True (the app's own), False (none) or a str, "
            f"not {type(origin).__name__}"
        )
    if origin is False or "origin" in handshake.headers:
        return
    if origin is True:
        # SPEC: RFC 6455 4.1 and Fetch: a browser always sends the origin of the page that
        # opens the socket; RFC 6454 6.2 serializes it, the host in ASCII (IDNA), IPv6
        # bracketed, the default port left out.
        target = handshake.url
        scheme = "https" if _WEBSOCKET_SECURE.get(target.scheme) else "http"
        host = target.raw_host.decode("ascii")
        host = f"[{host}]" if ":" in host else host
        port = f":{target.port}" if target.port is not None else ""
        origin = f"{scheme}://{host}{port}"
    elif not origin.isascii():
        origin = idna_origin(origin)
    handshake.headers["origin"] = origin


def idna_origin(origin: str) -> str:
    """Return ``origin`` with its host in IDNA, as a browser sends it (RFC 6454 6.2): mapped
    to ASCII first (UTS 46: fullwidth digits, letters and dots are ASCII ones), an IP address
    as a browser writes it.

    Raises:
        ValueError: For a ``str`` that is no ``scheme://host[:port]``, its port a number of
            ASCII digits up to 65535.
    """
    _, marks, authority = origin.partition("://")
    # NOTE: httpx took a port past 65535, "-1" and fullwidth digits (int() reads them), and a
    # trailing "/", "?" or "#", which were sent or dropped where a browser finds no origin.
    port = authority.rpartition("]")[2].partition(":")[2]
    well_formed = bool(marks) and not _NO_AUTHORITY.search(authority)
    well_formed = well_formed and (not port or (port.isascii() and port.isdigit()))
    try:
        url = browsers_url(origin) if well_formed else httpx.URL()
        host = url.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError):
        url, host = httpx.URL(), ""
    if not host or (url.port or 0) > 65535:
        raise ValueError(
            f"websocket_connect() takes origin= as scheme://host[:port], not {origin!r}"
        )
    host = f"[{host}]" if ":" in host else host
    return f"{url.scheme}://{host}{'' if url.port is None else f':{url.port}'}"


# NOTE: what an origin's host and port never hold: a path, a query, a fragment, credentials.
_NO_AUTHORITY = re.compile(r"[/?#@\\]")


# NOTE: the key is RFC 6455 1.3's sample nonce; the app never sees the accept hash anyway.
_UPGRADE = [
    (b"connection", b"upgrade"),
    (b"upgrade", b"websocket"),
    (b"sec-websocket-version", b"13"),
    (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
]


def handshake_headers(headers: httpx.Headers, subprotocols: list[str]) -> list[tuple[bytes, bytes]]:
    raw = [(name.lower(), value) for name, value in headers.raw if name.lower() != b"connection"]
    raw += _UPGRADE
    if subprotocols:
        raw.append((b"sec-websocket-protocol", ", ".join(subprotocols).encode("latin-1")))
    return raw
