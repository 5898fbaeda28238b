"""Cross-site request forgery protection without tokens: browsers say where a request comes from.

A browser labels every request with ``Sec-Fetch-Site`` (where the page that sent it comes from,
compared with the target) and every unsafe one with ``Origin``; a page cannot set either. So a
form on another site that posts to the app with the user's cookie is told apart from the app's
own forms by its headers alone, with no token in the form and no template change.

SPEC: Fetch Metadata Request Headers (https://w3c.github.io/webappsec-fetch-metadata/),
RFC 6454 (the ``Origin`` header and how origins compare).
"""

from __future__ import annotations

import functools
import inspect
import ipaddress
import logging
import re
from collections.abc import Callable, Generator, Iterable
from typing import Any, NamedTuple

from microweb import App, HTTPError, Request, Response, Route
from microweb._parsing import header_value
from microweb._request import logged_method, logged_path
from microweb._target import clipped

logger = logging.getLogger("microweb.csrf")

Flow = Generator[Response | None, Response, None]
Handler = Callable[..., Any]

# NOTE: RFC 9110 9.2.1 calls TRACE safe too; it is checked like any other method, as Go's
# CrossOriginProtection does: browsers never send it, and a route for it does what it likes.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# SPEC: Fetch Metadata 2.1: "same-origin" from the app's own pages, "none" from the user (a
# typed URL, a bookmark); "same-site" and "cross-site" come from other origins' pages.
TRUSTED_SITES = frozenset({"same-origin", "none"})
DEFAULT_PORTS = {"http": 80, "https": 443}
# NOTE: the scheme of the origin a WebSocket handshake's page would have.
PAGE_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
# SPEC: RFC 6454 6.1 and RFC 3986 3.2.2: scheme "://" host [":" port], the host a name (in
# punycode) or an IPv4 address, or an IPv6 address in brackets; nothing after it.
_ORIGIN = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*)://([A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?"
)
_HOST = re.compile(r"([A-Za-z0-9._~-]+|\[[0-9A-Fa-f:.]+\])(?::([0-9]{1,5}))?")


class Origin(NamedTuple):
    """An origin as compared: scheme and host lower-cased, the port always given."""

    scheme: str
    host: str
    port: int


def parse_origin(text: str) -> Origin | None:
    """Parse ``scheme://host[:port]`` (an ``Origin`` value); ``None`` if it is not one.

    Only ``http`` and ``https`` origins are parsed: ``null`` and the origins of other schemes
    (browser extensions, ``file:``) are never this app's, nor trusted.
    """
    found = _ORIGIN.fullmatch(text.strip())
    if found is None:
        return None
    scheme, host, port = found[1].lower(), found[2].lower(), found[3]
    if scheme not in DEFAULT_PORTS:
        return None
    return _origin(scheme, host, port)


def _origin(scheme: str, host: str, port: str | None) -> Origin | None:
    number = DEFAULT_PORTS[scheme] if port is None else int(port)
    if number > 65535:
        return None
    if host.startswith("["):
        # NOTE: a trusted "http://[0:0::1]:8000" was kept as written, and never matched the
        # "[::1]" a browser sends (review194 found it in CORS).
        bracketed = _browser_ipv6(host)
        if bracketed is None:
            return None
        host = bracketed
    # NOTE: an explicit default port is the same origin (browsers never send one).
    return Origin(scheme, host, number)


def _browser_ipv6(host: str) -> str | None:
    """A bracketed IPv6 ``host`` as a browser writes it in an origin (compressed, lower
    case); ``None`` if it is no IPv6 address (``[1.2.3.4]``, ``[::1::2]``)."""
    try:
        address = ipaddress.IPv6Address(host[1:-1])
    except ValueError:
        return None
    if address.ipv4_mapped is not None:
        # NOTE: browsers write it in hex ("[::ffff:102:304]"); Python 3.13 writes the IPv4
        # address in it ("[::ffff:1.2.3.4]").
        low = int(address) & 0xFFFFFFFF
        return f"[::ffff:{low >> 16:x}:{low & 0xFFFF:x}]"
    return f"[{address.compressed}]"


def own_origin(request: Request) -> Origin | None:
    """The origin of the app's own pages: ``request.scheme`` and ``request.host``.

    A WebSocket handshake (``ws``/``wss``) has the origin of the ``http``/``https`` page.
    ``None`` when the host is not ``host[:port]`` (then only trusted origins match).
    """
    scheme = PAGE_SCHEMES.get(request.scheme)
    found = _HOST.fullmatch(request.host)
    if scheme is None or found is None:
        return None
    return _origin(scheme, found[1].lower(), found[2])


def _trusted(origins: Iterable[str]) -> frozenset[Origin]:
    if isinstance(origins, str):
        raise TypeError(f"trusted_origins takes a list of origins, not one string: [{origins!r}]")
    parsed = set()
    for text in origins:
        # NOTE: one "/" after it (an address bar's URL) is dropped, as CORS's allow_origins
        # does: "https://admin.example.com/" was refused here and taken there.
        listed = text.removesuffix("/") if isinstance(text, str) else ""
        origin = parse_origin(listed) if listed and listed == listed.strip() else None
        if origin is None:
            raise ValueError(
                f"trusted origin {text!r} is not scheme://host[:port], such as "
                "'https://admin.example.com' (http or https, no path)"
            )
        parsed.add(origin)
    return frozenset(parsed)


def _takes_as(wrapper: Handler, handler: Handler) -> Handler:
    """Give ``wrapper``, which passes on what it is given, the signature of ``handler``.

    NOTE: the startup check reads a wrapper of ``(request, **params)`` as one that may supply
    arguments of its own, and so checks the handler it wraps only in part: a handler that wants
    a parameter no route gives started, and each of its requests was a 500. Given the
    handler's own signature (not the one it wraps: a decorator of the app's may supply some),
    the wrapper is checked as the handler is without the plugin.
    """
    try:
        signature = inspect.signature(handler, follow_wrapped=False)
    except (TypeError, ValueError):
        return wrapper  # NOTE: no signature to read (a builtin): nothing to check either.
    wrapper.__signature__ = signature  # type: ignore[attr-defined]
    return wrapper


class CSRF:
    """Refuse unsafe requests that a browser sends from another site's page.

    An unsafe request (any method but ``GET``, ``HEAD`` and ``OPTIONS``) passes when its
    ``Sec-Fetch-Site`` is ``same-origin`` or ``none``. Any other ``Sec-Fetch-Site`` is refused,
    unless the ``Origin`` is trusted. Without ``Sec-Fetch-Site`` (older browsers), an ``Origin``
    must be the app's own (``request.scheme`` and ``request.host``) or trusted; ``null`` never
    is. A request with neither header does not come from a browser and passes. A refused
    request gets 403 (an ``HTTPError``, which error handlers may answer) and an INFO line on
    the ``microweb.csrf`` logger.

    HTTP requests are checked right before the route's handler, by the wrapper ``apply`` puts
    around every handler of a route with an unsafe method: a route exempts itself with
    ``skip=["csrf"]``. WebSocket handshakes are checked by the plugin's flow, with the same
    rules (a browser opens a WebSocket from any page, with the user's cookies); a handshake is
    routed before the flows run, so a WebSocket route's ``skip=["csrf"]`` leaves the flow out.

    Args:
        trusted_origins: Origins of other sites whose pages may send unsafe requests, such as
            ``["https://admin.example.com"]``: scheme, host and port, compared exactly (host
            and scheme in any case; ``:443`` for https and ``:80`` for http may be left out;
            one ``/`` after it is dropped, as ``CORS`` drops it).

    Raises:
        TypeError: If ``trusted_origins`` is one string instead of a list.
        ValueError: If a trusted origin is not ``scheme://host[:port]`` with an ``http`` or
            ``https`` scheme.
    """

    name = "csrf"

    def __init__(self, trusted_origins: Iterable[str] = ()) -> None:
        self.trusted_origins = _trusted(trusted_origins)

    def setup(self, app: App) -> None:
        """Add the flow that checks WebSocket handshakes."""
        app.middleware(self.flow)

    def flow(self, request: Request) -> Flow:
        """Refuse a WebSocket handshake from another site's page; let all else through."""
        if request.scheme in ("ws", "wss"):
            self.check(request)
        yield None

    def apply(self, handler: Handler, route: Route) -> Handler:
        """Wrap ``handler`` to check unsafe requests before it runs.

        NOTE: the check is here, not in the flow, because app flows run before routing: only
        here is the route known, so that ``skip=["csrf"]`` can exempt it.
        """
        if route.methods <= SAFE_METHODS:
            # NOTE: a route of safe methods only keeps its handler: no wrapper to call.
            return handler
        check = self.check
        if route.is_async:

            @functools.wraps(handler)
            async def checked_async(request: Request, **params: Any) -> Any:
                if request.method not in SAFE_METHODS:
                    check(request)
                return await handler(request, **params)

            return _takes_as(checked_async, handler)

        @functools.wraps(handler)
        def checked(request: Request, **params: Any) -> Any:
            if request.method not in SAFE_METHODS:
                check(request)
            return handler(request, **params)

        return _takes_as(checked, handler)

    def check(self, request: Request) -> None:
        """Refuse ``request`` if a browser sent it from another site's page.

        Raises:
            HTTPError: 403, with the reason, logged on the ``microweb.csrf`` logger.
        """
        reason = self.refusal(request)
        if reason is None:
            return
        origin = header_value(request.headers, "origin")
        # NOTE: the path encoded again: decoded, "/a%0D%0A..." started a forged log line.
        path = logged_path(request, whole=True)
        origin = clipped(origin)
        logger.info(
            "refused %s %s from origin %r: %s", logged_method(request), path, origin, reason
        )
        raise HTTPError(403, f"Cross-site request refused: {reason}")

    def refusal(self, request: Request) -> str | None:
        """Return why ``request`` must be refused, ``None`` if it may pass."""
        site = (header_value(request.headers, "sec-fetch-site") or "").strip().lower()
        if site in TRUSTED_SITES:
            return None
        origin = header_value(request.headers, "origin")
        if origin is not None and parse_origin(origin) in self.trusted_origins:
            return None
        if site:
            # NOTE: a browser's word ("same-site", "cross-site", or one it may add later) is
            # taken over the Origin: the app's own host may be one an attacker can reach.
            return "it comes from another site's page"
        if origin is None:
            return None  # NOTE: no browser sent it (curl, another server): not a forgery.
        if origin.strip() == "null":
            return "its Origin is null (a sandboxed or file: page)"
        own = own_origin(request)
        if own is not None and parse_origin(origin) == own:
            return None
        return "its Origin is not this site's"
