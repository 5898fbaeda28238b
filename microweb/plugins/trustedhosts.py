"""The Host allow-list: a request for a host name the app does not serve is answered with 400.

``request.host`` (hence ``request.url``) is whatever the client sent; absolute links, redirects
and cache keys built from it would follow a forged ``Host``. ``TrustedHosts`` refuses those
requests before any other flow (``ProxyHeaders``' aside) or route sees them; an error handler
for 400 may answer the refusal.

SPEC: RFC 9110 7.2 (Host: uri-host and an optional port), RFC 1034 3.1 (a name ending in a dot
is absolute: ``example.com.`` is ``example.com``).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Generator, Iterable
from urllib.parse import quote, quote_from_bytes

from microweb import App, HTTPError, Request, Response
from microweb._request import logged_method, logged_path
from microweb._target import PATH_SAFE, clipped, query_text, valid_host

logger = logging.getLogger("microweb.trustedhosts")

Flow = Generator[Response | None, Response, None]

ANY_HOST = "*"
WILDCARD = "*."


def _ipv6(text: str) -> str | None:
    """``[address]`` in its normal form (``[::1]`` for ``[0:0::1]``); ``None`` if not IPv6."""
    try:
        return f"[{ipaddress.IPv6Address(text).compressed}]"
    except ValueError:
        return None


def host_name(host: str) -> str | None:
    """Return the name of a ``host[:port]`` value as patterns are compared with it.

    Lower-cased, without the port and one trailing dot; an IPv6 address keeps its brackets and
    takes its normal form. ``None`` for a value that is no ``host[:port]``, one the core refuses
    in a ``Host`` header: ``""``, a URL's netloc with userinfo, a path, a space, a bad port.
    """
    # NOTE: only a bracketed value that was no IPv6 address was None: "example.com:80@evil
    # .example" was named "example.com", "evil.com/x" and "" were names.
    return _name_of(host) if valid_host(host) else None


def _name_of(host: str) -> str:
    """``host_name()`` of a value known to be ``host[:port]``: ``request.host``, which the core
    checked (``ProxyHeaders`` checks the host it sets), or ``""`` where the request has none."""
    if host.startswith("["):
        address = host[1 : host.index("]")]
        return f"[{ipaddress.IPv6Address(address).compressed}]"
    name = host.partition(":")[0].lower()
    return name[:-1] if name.endswith(".") else name


def _refuse(pattern: str, why: str) -> ValueError:
    return ValueError(f"trusted host {pattern!r}: {why}")


def _name(pattern: str, given: str) -> str:
    """Check ``pattern`` (``given`` without its ``*.``) and return its name as ``host_name``
    gives names.

    Raises:
        ValueError: If it is not a host name, an IPv4 address or an IPv6 address.
    """
    if not pattern:
        raise _refuse(given, "empty")
    if "://" in pattern or "/" in pattern:
        raise _refuse(given, "give a host name, not a URL")
    if "*" in pattern:
        raise _refuse(given, "a * may only start a pattern, as '*.' followed by a domain")
    if not pattern.isascii():
        raise _refuse(given, "write an internationalized name in its ASCII form (xn--...)")
    if ":" in pattern and not pattern.startswith("["):
        bare_ipv6 = _ipv6(pattern)  # NOTE: "::1" is taken for "[::1]".
        if bare_ipv6 is not None:
            return bare_ipv6
    if not valid_host(pattern):
        raise _refuse(given, "not a host name or an IP address")
    if ":" in pattern.rpartition("]")[2]:
        raise _refuse(given, "ports are not compared: give the host alone")
    name = _name_of(pattern)
    if not name or "" in name.split("."):
        hint = ' (Django\'s ".example.com" is "example.com", "*.example.com" here)'
        raise _refuse(given, "a host name has no empty label" + hint * pattern.startswith("."))
    return name


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _host(request: Request) -> str:
    """Return ``request.host``; log its refusal of a ``Host`` that is no host, or two."""
    try:
        return request.host
    except HTTPError as exc:
        # NOTE: refused outside AccessLog's flow too: without this line, no log had it.
        logger.info(
            "refused %s %s: %s",
            logged_method(request),
            logged_path(request, whole=True),
            exc.detail,
        )
        raise


def _patterns(hosts: Iterable[str]) -> tuple[bool, frozenset[str], tuple[str, ...]]:
    """Split ``hosts`` into "any host", exact names and wildcard suffixes (``.example.com``).

    Raises:
        TypeError: If ``hosts`` is one string, or holds something else than a string.
        ValueError: If it is empty, or a pattern is not a host name, an address, ``*.domain``
            or ``*``.
    """
    if isinstance(hosts, str):
        raise TypeError(f"TrustedHosts takes a list of hosts, not one string: [{hosts!r}]")
    given = list(hosts)
    for pattern in given:
        if not isinstance(pattern, str):
            # NOTE: [os.environ.get("HOST")] gave None, and an AttributeError from strip().
            raise TypeError(f"TrustedHosts takes host names as str, not {pattern!r}")
    patterns = [pattern.strip() for pattern in given]
    if not patterns:
        raise ValueError("TrustedHosts needs at least one host (['*'] allows every host)")
    names: set[str] = set()
    suffixes: set[str] = set()
    for pattern in patterns:
        if pattern == ANY_HOST:
            continue
        if not pattern.startswith(WILDCARD):
            names.add(_name(pattern, pattern))
            continue
        domain = _name(pattern[len(WILDCARD) :], pattern)
        if _is_address(domain):
            raise _refuse(pattern, "an IP address has no subdomains")
        suffixes.add("." + domain)
    return ANY_HOST in patterns, frozenset(names), tuple(sorted(suffixes))


class TrustedHosts:
    """Answer 400 to a request whose host is not one of ``hosts``, before anything else runs.

    The host checked is ``request.host``: the ``Host`` header, or the server's address when
    the request has none, or the host ``ProxyHeaders`` took from a trusted proxy. Names are
    compared without case, port and one trailing dot. A refused request raises
    ``HTTPError(400, "host not allowed")`` in the plugin's flow, which runs outside every
    other flow but ``ProxyHeaders``' (whatever the install order), so routes, 404s, 405s,
    ``OPTIONS``, CORS preflights and WebSocket handshakes are all checked (a handshake gets
    the same 400, or a 403 from a server that can only refuse it).

    Args:
        hosts: The host names the app serves: ``"example.com"``, ``"*.example.com"`` (any
            subdomain, at any depth, but not ``example.com`` itself), ``"localhost"``,
            ``"127.0.0.1"``, ``"[::1]"``; ``"*"`` allows every host.
        www_redirect: Redirect (307) a refused ``example.com`` to ``www.example.com`` when
            that host is allowed, keeping the port, path and query.

    Raises:
        TypeError: If ``hosts`` is one string, or holds something else than a string.
        ValueError: If ``hosts`` is empty or a pattern is malformed: empty, with a port, a
            URL, or with a ``*`` elsewhere than a leading ``*.``.
    """

    name = "trusted_hosts"

    def __init__(self, hosts: Iterable[str], *, www_redirect: bool = False) -> None:
        self.any_host, self.names, self.suffixes = _patterns(hosts)
        self.www_redirect = www_redirect

    def setup(self, app: App) -> None:
        """Add the flow outside every flow registered so far (``ProxyHeaders``' aside)."""
        app.middleware(self.flow, outermost=True)

    def allows(self, host: str) -> bool:
        """Tell whether ``host`` (a ``host[:port]`` value, as ``request.host``) is allowed.

        A value that is no ``host[:port]`` is not, unless every host is: a URL's netloc with
        userinfo (``"example.com:80@evil.example"``), or one with a path or a space.
        """
        # NOTE: only the name before a ":" or after a "[" was compared: "example.com:80@evil
        # .example", the netloc of a link to evil.example, was allowed, and so a redirect that
        # checked its target with allows() went there.
        if self.any_host:
            return True
        name = host_name(host)
        return name is not None and self._serves(name)

    def _serves(self, name: str) -> bool:
        """Tell whether ``name`` (as ``host_name()`` gives it) is listed, or below a wildcard."""
        return name in self.names or any(self._below(name, suffix) for suffix in self.suffixes)

    @staticmethod
    def _below(name: str, suffix: str) -> bool:
        # NOTE: "a.b" of "a.b.example.com" must be labels: ".example.com" and "a..example.com"
        # are no subdomains.
        return name.endswith(suffix) and "" not in name[: -len(suffix)].split(".")

    def flow(self, request: Request) -> Flow:
        """Refuse a request for a host that is not allowed (or redirect it to ``www.``)."""
        host = _host(request)
        # PERF: the core checked request.host: its name is read without valid_host() again,
        # 0.3-0.5 us a request, 2-3 us for an IPv6 host.
        if not (self.any_host or self._serves(_name_of(host))):
            redirect = self._www_redirect(request, host)
            if redirect is None:
                # NOTE: the refusal happens outside AccessLog's flow: this is its only trace.
                path = logged_path(request, whole=True)
                logger.info(
                    "refused %s %s for host %r", logged_method(request), path, clipped(host)
                )
                raise HTTPError(400, "host not allowed")
            yield redirect
            return
        yield None

    def _www_redirect(self, request: Request, host: str) -> Response | None:
        """The redirect to ``www.`` + ``host``, if asked for and that host is allowed."""
        # NOTE: "*" or a target that is no path: after the host, it would change the host. No
        # host (none sent, no server address): "www." alone is no host to send the client to.
        if (
            not (self.www_redirect and host)
            or request.scheme in ("ws", "wss")
            or request.raw_path[:1] != b"/"
        ):
            return None
        www = "www." + host
        if not self.allows(www):
            return None  # NOTE: "www.[::1]" is no host, and is not allowed.
        # NOTE: the path as the client sent it (request.url has it decoded and encoded again,
        # "/a%2Fb" as "/a/b", another route), its escapes kept and anything else escaped.
        path = quote(request.root_path, safe=PATH_SAFE) + quote_from_bytes(
            request.raw_path, safe=PATH_SAFE + "%"
        )
        query = query_text(request.query_string)
        # NOTE: 307, as Starlette's: it keeps the method, and a browser does not keep it for
        # good, as it would a 308 sent by mistake (a host left out of the list).
        return Response.redirect(f"{request.scheme}://{www}{path}" + (f"?{query}" if query else ""))
