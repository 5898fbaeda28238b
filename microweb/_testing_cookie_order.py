"""The cookies ``TestClient`` sends, and their order: a browser's, where httpx's are its jar's.

The standard library's ``Cookie`` has no creation time, which a browser's order needs (RFC 6265
5.4 step 2): the client's jar gives each cookie one as it takes it. httpx sends from a copy of
the jar with the standard policy, which leaves out some that a browser sends (``_left_out()``).
"""

from __future__ import annotations

import http.cookiejar
import ipaddress
import itertools
import urllib.request
from collections.abc import Callable

import httpx

# NOTE: the jar's own name for a host ("testserver.local" for "testserver"), which typeshed
# leaves out.
effective_host = http.cookiejar.eff_request_host  # type: ignore[attr-defined]

# NOTE: each cookie's creation, as a number that grows: the standard library's Cookie has none.
_CREATION = "microweb_created"
_creations = itertools.count()


def _created(cookie: http.cookiejar.Cookie) -> int:
    created: int = getattr(cookie, _CREATION, -1)
    return created


def stamp(cookie: http.cookiejar.Cookie, replaced: http.cookiejar.Cookie | None) -> None:
    """Give ``cookie`` the creation of the one it replaces, or its own, or a new one."""
    for known in (replaced, cookie):
        if known is not None and hasattr(known, _CREATION):
            setattr(cookie, _CREATION, _created(known))
            return
    setattr(cookie, _CREATION, next(_creations))


def held(
    jar: http.cookiejar.CookieJar, domain: str, path: str, name: str
) -> http.cookiejar.Cookie | None:
    """Return the cookie ``jar`` holds of that domain, path and name, if any."""
    # NOTE: the jar's own dictionaries, by domain, path and name: it has no lookup of its own.
    cookies: dict[str, dict[str, dict[str, http.cookiejar.Cookie]]]
    cookies = jar._cookies  # type: ignore[attr-defined]
    return cookies.get(domain, {}).get(path, {}).get(name)


# NOTE: the schemes the standard library's jar sends a Secure cookie to (its policy's
# secure_protocols), where httpx's copy of the jar has the standard policy.
_SECURE_SCHEMES = frozenset({"https", "wss"})


def is_secure_origin(request: urllib.request.Request) -> bool:
    """Whether a browser keeps and sends a ``Secure`` cookie for ``request``'s URL.

    SPEC: RFC 6265bis (draft), "secure connection" as the user agent defines it, which Chrome
    and Firefox read as W3C Secure Contexts' potentially trustworthy origin: https and wss,
    and over plain http a loopback host (127.0.0.0/8, ::1, localhost and any name under
    .localhost). The client kept no Secure cookie from http://localhost, where a browser
    does: an app tested there lost its session.
    """
    if request.type in _SECURE_SCHEMES:
        return True
    host: str = effective_host(request)[0]
    host = host.removesuffix(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    # NOTE: of IPv6, ::1 alone: Python 3.13 calls ::ffff:127.0.0.1 loopback too.
    return address.is_loopback if address.version == 4 else address == ipaddress.ip_address("::1")


def jar_request(url: httpx.URL) -> urllib.request.Request:
    """Return a request for ``url`` as the standard library's jar reads one, without the URL's
    credentials: the jar reads ``user:pw@testserver`` as the host, so with a ``base_url`` that
    held them each cookie was kept for that name, and never sent where a browser sends it
    (to the host, whatever the credentials)."""
    return urllib.request.Request(str(url.copy_with(userinfo=b"")))


def path_matches(path: str, other: str) -> bool:
    """Whether a request's ``path`` path-matches a cookie's path ``other`` (RFC 6265 5.1.4)."""
    return path == other or (
        path.startswith(other) and (other.endswith("/") or path[len(other)] == "/")
    )


def _covering(url: httpx.URL) -> Callable[[http.cookiejar.Cookie], bool]:
    """Return whether a cookie's domain and path cover ``url`` (the jar's name of a host without
    a dot, ``testserver.local`` or ``[::1].local``, standing for it)."""
    host, named = effective_host(jar_request(url))
    path = url.raw_path.decode("ascii").partition("?")[0] or "/"

    def covers(cookie: http.cookiejar.Cookie) -> bool:
        domain = cookie.domain.removeprefix(".")
        covered = domain in ("", host, named) or (
            cookie.domain_specified and host.endswith("." + domain)
        )
        return covered and path_matches(path, cookie.path)

    return covers


def _strays(url: httpx.URL, jar: http.cookiejar.CookieJar) -> set[str]:
    """Return the pairs of the host-only cookies of a parent of ``url``'s host, which httpx's
    copy of the jar sends (by Netscape's rules) and a browser does not.

    SPEC: RFC 6265 5.4 step 1: a cookie set without ``Domain`` (and one the test set, which
    goes to the host of ``base_url``) goes to its host alone: a subdomain got the parent
    site's session.
    """
    host = effective_host(jar_request(url))[0]
    return {
        f"{cookie.name}={cookie.value}"
        for cookie in jar
        if not cookie.domain_specified
        and cookie.domain
        and host.endswith("." + cookie.domain.removeprefix("."))
    }


def in_browsers_order(
    request: httpx.Request, jar: http.cookiejar.CookieJar, own: httpx.Cookies | None = None
) -> None:
    """Put the cookies of ``request``'s ``Cookie`` header, which httpx made from ``jar``, in the
    order a browser sends them, in place, with the request's ``own`` cookies (its deprecated
    ``cookies=``) in place of the jar's of their names.

    httpx copies the jar into a standard one for each request, whose order is its own:
    Python 3.10's by name ("a=1; m=1; z=1" for "z", "a", "m"), later versions' by the domain
    first used ("id=own; id=parent" once the host had a cookie, where the parent's came
    first). SPEC: RFC 6265 5.4 step 2: longer paths first, then earlier creation times.
    """
    header = request.headers.get("cookie")
    pairs = header.split("; ") if header is not None else []
    covers = _covering(request.url)
    pairs += _left_out(request.url, jar, covers)
    order: dict[str, tuple[int, int]] = {}
    for cookie in jar:
        if not covers(cookie):
            # NOTE: a cookie of that name and value for another path or domain gave its place.
            continue
        key = (-len(cookie.path), _created(cookie))
        pair = f"{cookie.name}={cookie.value}"
        order[pair] = min(order.get(pair, key), key)
    strays = _strays(request.url, jar) - order.keys()
    pairs = [pair for pair in pairs if pair not in strays]
    if all(pair in order for pair in pairs):
        pairs.sort(key=order.__getitem__)
    if own is not None:
        pairs = _with_own(pairs, own, covers)
    if pairs:
        request.headers["cookie"] = "; ".join(pairs)
    else:
        request.headers.pop("cookie", None)


def _left_out(
    url: httpx.URL, jar: http.cookiejar.CookieJar, covers: Callable[[http.cookiejar.Cookie], bool]
) -> list[str]:
    """Return the cookies of ``jar`` for ``url`` that httpx's copy of the jar (with the standard
    policy, which reads ``url`` whole) leaves out: all of them for a URL with credentials, and
    the ``Secure`` ones over plain http to a secure origin."""
    secure_origin = is_secure_origin(jar_request(url))
    if url.userinfo:
        left_out = [cookie for cookie in jar if secure_origin or not cookie.secure]
    elif secure_origin and url.scheme not in _SECURE_SCHEMES:
        left_out = [cookie for cookie in jar if cookie.secure]
    else:
        return []
    return [
        f"{cookie.name}={cookie.value}"
        for cookie in left_out
        if covers(cookie) and not cookie.is_expired()
    ]


def _with_own(
    pairs: list[str], own: httpx.Cookies, covers: Callable[[http.cookiejar.Cookie], bool]
) -> list[str]:
    # NOTE: httpx puts a request's cookies in a copy of the client's jar, where they replace
    # those of their name, domain and path; the client's jar keeps its cookies for the host,
    # where the request's are for any host, so both went out, the jar's first.
    mine = {cookie.name: f"{cookie.name}={cookie.value}" for cookie in own.jar if covers(cookie)}
    kept: list[str] = []
    for pair in pairs:
        name = pair.partition("=")[0]
        if name not in mine:
            kept.append(pair)
        elif mine[name]:
            kept.append(mine[name])
            mine[name] = ""
    return kept + [pair for pair in mine.values() if pair]
