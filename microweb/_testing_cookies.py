"""``TestClient``'s cookie jar, where the standard library's (which httpx uses) is no browser's.

Its jar names a host without a dot ``testserver.local`` and matches cookies to that name, so a
cookie whose ``Domain`` is such a host (``testserver``, ``localhost``) was never sent back to
it; Python 3.10's did not even keep it. A browser keeps and sends it (RFC 6265 5.3: the host
domain-matches itself).
"""

from __future__ import annotations

import copy
import http.cookiejar
import urllib.request
import weakref

import httpx

# NOTE: a side's copies of the cookies the test set, each to its original, which keep() puts
# back in the client's jar where the app left the copy as it was.
GivenCookies = weakref.WeakKeyDictionary[http.cookiejar.Cookie, http.cookiejar.Cookie]

# NOTE: the jar's own name for a host ("testserver.local" for "testserver"), which typeshed
# leaves out.
_effective_host = http.cookiejar.eff_request_host  # type: ignore[attr-defined]


def _hosts(base_url: httpx.URL) -> tuple[str, str]:
    """The host of ``base_url`` and the jar's name for it (with ``.local`` when it has no dot)."""
    hosts: tuple[str, str] = _effective_host(urllib.request.Request(str(base_url)))
    return hosts


def _is_dotless_host(domain: str, hosts: tuple[str, str]) -> bool:
    host, named = hosts
    return named != host and domain.removeprefix(".").lower() == host


class _Policy(http.cookiejar.DefaultCookiePolicy):
    """The standard policy, which also takes a ``Domain`` that is the host without a dot."""

    def set_ok_domain(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        # NOTE: Python 3.10's refuses it ("contains no embedded dot"), 3.11's takes it.
        if cookie.domain_specified and _is_dotless_host(cookie.domain, _effective_host(request)):
            return True
        return super().set_ok_domain(cookie, request)


def copied(cookies: httpx.Cookies) -> httpx.Cookies:
    """Return a copy of ``cookies`` whose jar takes a ``Set-Cookie`` as a browser does."""
    jar = http.cookiejar.CookieJar(_Policy())
    for cookie in cookies.jar:
        jar.set_cookie(cookie)
    return httpx.Cookies(jar)


def to_host(
    jar: http.cookiejar.CookieJar,
    base_url: httpx.URL,
    given: GivenCookies,
    *,
    dotless: bool = False,
) -> None:
    """Give the cookies that the test set for any host (no domain) to ``base_url``'s host.

    As a browser's cookie of that site: the app's ``Set-Cookie`` of that name replaces it, and
    its deletion removes it. Left for any host, it was kept beside the app's (and sent first),
    so that the app's changes to a session seemed lost. ``given`` maps each copy made for the
    host to the test's cookie. With ``dotless``, so are the cookies whose domain is the host,
    when it has no dot, which the jar would never send (for a request, not for its answers:
    the app's deletion of such a cookie names its domain).
    """
    hosts = _hosts(base_url)
    for cookie in list(jar):
        if cookie.domain and not (dotless and _is_dotless_host(cookie.domain, hosts)):
            continue
        jar.clear(cookie.domain, cookie.path, cookie.name)
        # NOTE: a copy: the side's jar shares its cookies with the client's until keep().
        for_host = copy.copy(cookie)
        for_host.domain, for_host.domain_specified, for_host.domain_initial_dot = (
            hosts[1],
            False,
            False,
        )
        jar.set_cookie(for_host)
        given[for_host] = cookie
