"""``TestClient``'s cookie jar, where the standard library's (which httpx uses) is no browser's.

Its jar names a host without a dot ``testserver.local`` and matches cookies to that name, so a
cookie whose ``Domain`` is such a host (``testserver``, ``localhost``) was never sent back to
it; Python 3.10's did not even keep it. A browser keeps and sends it (RFC 6265 5.3: the host
domain-matches itself). And it reads ``Set-Cookie`` by RFC 2965's rules, where browsers follow
RFC 6265's: see ``_as_browsers_read()``.
"""

from __future__ import annotations

import copy
import email.message
import http.client
import http.cookiejar
import ipaddress
import re
import time
import urllib.request
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import cast

import httpx

from ._cookies import MAX_COOKIE_PAIR
from ._testing_cookie_order import (
    effective_host,
    held,
    is_secure_origin,
    jar_request,
    path_matches,
    stamp,
)

# NOTE: a side's copies of the cookies the test set, each to its original, which keep() puts
# back in the client's jar where the app left the copy as it was.
GivenCookies = weakref.WeakKeyDictionary[http.cookiejar.Cookie, http.cookiejar.Cookie]

# NOTE: the cookies a test may give the client, as httpx's own client takes them.
GivenJar = (
    Mapping[str, str] | Iterable[Sequence[str]] | httpx.Cookies | http.cookiejar.CookieJar | None
)

# NOTE: the path of a request, as the jar reads it, which typeshed leaves out.
_request_path = http.cookiejar.request_path  # type: ignore[attr-defined]
# NOTE: the date of an Expires, as the jar reads it, which typeshed leaves out too.
_http2time = http.cookiejar.http2time  # type: ignore[attr-defined]


def _hosts(base_url: httpx.URL) -> tuple[str, str]:
    """The host of ``base_url`` and the jar's name for it (with ``.local`` when it has no dot)."""
    hosts: tuple[str, str] = effective_host(jar_request(base_url))
    return hosts


def _is_dotless_host(domain: str, hosts: tuple[str, str]) -> bool:
    host, named = hosts
    return named != host and domain.removeprefix(".").lower() == host


# NOTE: what a cookie's name and value may hold to be sent back: printable ASCII and tabs.
_SENDABLE = re.compile(r"[\t\x20-\x7e]*")


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def _domain_matches(domain: str, other: str) -> bool:
    return domain == other or domain.endswith("." + other)


class _Policy(http.cookiejar.DefaultCookiePolicy):
    """The standard policy, but a host without a dot takes a ``Domain`` of itself only, and a
    ``Set-Cookie`` without a name, or that can't be sent back, is ignored."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        if cookie.value is None:
            # NOTE: "Set-Cookie: bad" (no "=") was kept as a cookie "bad" with no value: the
            # next request sent "Cookie: bad", and dict(client.cookies) raised KeyError. SPEC:
            # RFC 6265 5.2 step 2 ignores the line (the jar already ignores "=bad", an empty
            # name, as step 5 does); the 6265bis draft keeps it as a cookie with no name.
            return False
        if not _SENDABLE.fullmatch(cookie.name + cookie.value):
            # NOTE: httpx writes the Cookie header in ASCII: "a=café" made every later request
            # of the client raise UnicodeEncodeError. SPEC: the 6265bis draft (5.6) ignores a
            # line whose name or value holds a control character; a browser keeps one with
            # other bytes, and sends them back as they came.
            return False
        return super().set_ok(cookie, request)

    def set_ok_domain(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        hosts = effective_host(request)
        if cookie.domain_specified and _is_ip_address(hosts[0]):
            # NOTE: the jar took "Domain=0.0.1" from 10.0.0.1, and sent it to 20.0.0.1. SPEC:
            # RFC 6265 5.1.3: an IP address domain-matches itself alone.
            return bool(cookie.domain.removeprefix(".").lower() == hosts[0])
        if cookie.domain_specified and hosts[0] != hosts[1]:
            # NOTE: Python 3.10's refuses the host itself ("contains no embedded dot"), 3.11's
            # takes it; both took Domain=local (or testserver.local) from testserver, for the
            # jar's name of it, and sent it to every host without a dot. SPEC: RFC 6265 5.3
            # step 6: only the host itself domain-matches a host without a dot.
            return _is_dotless_host(cookie.domain, hosts)
        return super().set_ok_domain(cookie, request)


# NOTE: RFC 2965's attributes, which RFC 6265 does not know: a browser ignores them, where the
# standard library's jar reads them (Version=1 changed the default path, Port=80 kept the cookie
# from any other port, a Version or Port it could not read dropped the cookie).
_UNKNOWN = frozenset({"version", "port", "comment", "commenturl", "discard"})
_DELTA_SECONDS = re.compile(r"-?[0-9]+")
# SPEC: RFC 6265bis (draft), 5.6: an attribute value past 1024 bytes is ignored, and a Max-Age
# or an Expires is cut to 400 days (the jar's float of a 400-digit Max-Age overflowed: the
# cookie was dropped).
_MAX_ATTRIBUTE = 1024
# SPEC: RFC 6265 5.2.5 and 5.2.6: attributes whose value, if any, is ignored.
_FLAGS = frozenset({"secure", "httponly"})
_MAX_AGE = 400 * 24 * 3600


def _as_browsers_read(line: str) -> tuple[str, dict[str, str]]:
    """Return a ``Set-Cookie`` line's name and value, and its attributes a browser reads, each
    by its name in lower case.

    SPEC: RFC 6265 5.2: a ``Max-Age`` that is not a number, an empty ``Domain`` and a ``Path``
    that does not start with ``/`` are ignored, and the cookie kept (with its default path);
    the standard library's jar dropped the whole cookie for the first two, and never sent it
    for the third (its path "relative"). Of two attributes of a name, the last is kept.
    """
    pair, *attributes = line.split(";")
    kept: dict[str, str] = {}
    for attribute in attributes:
        name, _, value = attribute.partition("=")
        name, value = name.strip().lower(), value.strip()
        if (
            name in _UNKNOWN
            or len(value) > _MAX_ATTRIBUTE
            or (name == "max-age" and not _DELTA_SECONDS.fullmatch(value))
            or (name == "domain" and not value.removeprefix("."))
            or (name == "path" and not value.startswith("/"))
        ):
            continue
        if name == "max-age" and int(value) > _MAX_AGE:
            attribute = f"Max-Age={_MAX_AGE}"
        elif name in _FLAGS:
            # NOTE: the jar kept "Secure=false" as cookie.secure == "false", no bool.
            attribute = attribute.partition("=")[0].strip()
        # NOTE: the last of a name counts (RFC 6265 5.3), where the jar took the first.
        kept.pop(name, None)
        kept[name] = attribute
    if "max-age" not in kept and _expires_past_cap(_value(kept, "expires")):
        # NOTE: an Expires in 9999 was kept to then, past the 400 days a Max-Age gets.
        kept["max-age"] = f"Max-Age={_MAX_AGE}"
    return pair, kept


def _expires_past_cap(expires: str) -> bool:
    when: float | None = _http2time(expires) if expires else None
    return when is not None and when > time.time() + _MAX_AGE


def _value(attributes: dict[str, str], name: str) -> str:
    return attributes.get(name, "").partition("=")[2].strip()


def _ignored(pair: str, attributes: dict[str, str], secure_scheme: bool) -> bool:
    """Whether a browser ignores a ``Set-Cookie``, deletion included, for its ``Secure`` flag or
    its name's prefix.

    SPEC: RFC 6265bis (draft), storage model: a cookie with the secure-only flag from a scheme
    that is not secure is ignored; so is one whose name starts with ``__Secure-`` (in any
    case) without it, and one whose name starts with ``__Host-`` without it, with a
    ``Domain`` or without a ``Path`` attribute of ``/``; one whose ``SameSite`` is ``None``
    without it; and one whose name and value pass ``MAX_COOKIE_PAIR`` bytes (a session grown
    that large passed its tests).
    """
    name, _, value = (part.strip() for part in pair.partition("="))
    name = name.lower()
    secure = "secure" in attributes
    if (
        len(name) + len(value) > MAX_COOKIE_PAIR
        or (secure and not secure_scheme)
        or (name.startswith("__secure-") and not secure)
        or (_value(attributes, "samesite").lower() == "none" and not secure)
    ):
        return True
    path = _value(attributes, "path")
    return name.startswith("__host-") and (not secure or "domain" in attributes or path != "/")


def _outside(attributes: dict[str, str], host: str) -> bool:
    """Whether a ``Set-Cookie``'s ``Domain`` is one that ``host`` is not in.

    SPEC: RFC 6265 5.3 step 6: a browser ignores such a line. The standard library's jar
    deleted the cookie that an expired one names, its Domain unchecked: evil.example's
    "s=; Max-Age=0; Domain=shop.example" deleted shop.example's session.
    """
    domain = _value(attributes, "domain").removeprefix(".").lower()
    inside = host.endswith("." + domain) and not _is_ip_address(host)
    return bool(domain) and host != domain and not inside


class _AsBrowsersRead:
    """A response, as a cookie jar reads it, with one ``Set-Cookie`` line read as a browser
    reads it (and no ``Set-Cookie2`` line, which browsers ignore)."""

    def __init__(self, pair: str, attributes: dict[str, str]) -> None:
        self._line = ";".join([pair, *attributes.values()])

    def info(self) -> email.message.Message:
        info = email.message.Message()
        info["Set-Cookie"] = self._line
        return info


class _Jar(http.cookiejar.CookieJar):
    """The standard library's jar, with the ``Set-Cookie`` lines read as a browser reads them."""

    # NOTE: the host of the answer being read, and the jar's name for it; None meanwhile.
    _answering: tuple[str, str] | None = None

    def extract_cookies(
        self, response: http.client.HTTPResponse, request: urllib.request.Request
    ) -> None:
        # NOTE: one line after the other, as a browser takes them (RFC 6265 5.3): the jar made
        # the cookies of every line, deleting as it went, before it set any, so "flash=saved"
        # then "flash=; Max-Age=0" (set_cookie() then delete_cookie()) kept the cookie.
        # NOTE: the jar reads only info() of a response (httpx gives it a stand-in too).
        request = jar_request(httpx.URL(request.get_full_url()))
        with self._cookies_lock:  # type: ignore[attr-defined]
            self._answering = effective_host(request)
            try:
                secure_scheme = is_secure_origin(request)
                for line in response.info().get_all("Set-Cookie", []):
                    pair, attributes = _as_browsers_read(str(line))
                    if (
                        _ignored(pair, attributes, secure_scheme)
                        or _outside(attributes, self._answering[0])
                        or (not secure_scheme and self._shadows_secure(pair, attributes, request))
                    ):
                        # NOTE: before the jar reads it: it deletes an expired cookie before
                        # its policy has a say.
                        continue
                    one = cast(http.client.HTTPResponse, _AsBrowsersRead(pair, attributes))
                    super().extract_cookies(one, request)
            finally:
                self._answering = None

    def _shadows_secure(
        self, pair: str, attributes: dict[str, str], request: urllib.request.Request
    ) -> bool:
        """Whether a ``Set-Cookie`` from a scheme that is not secure would replace (or delete, or
        come before) a ``Secure`` cookie, which a browser does not let it do.

        SPEC: RFC 6265bis (draft), storage model: a cookie without the secure-only flag, from
        such a scheme, is ignored if a Secure cookie of its name has a domain that
        domain-matches its own (or the other way round) and a path that its path
        path-matches. "s=2" over http replaced the "s=1; Secure" of an https answer.
        """
        if "secure" in attributes:
            return False  # NOTE: ignored already, as Secure from such a scheme.
        host, named = cast(tuple[str, str], self._answering)
        name = pair.partition("=")[0].strip()
        domain = _value(attributes, "domain").removeprefix(".").lower() or host
        path = _value(attributes, "path")
        if not path:
            request_path: str = _request_path(request)
            path = request_path[: request_path.rfind("/")] or "/"
        for cookie in self:
            kept = cookie.domain.removeprefix(".")
            kept = host if kept == named else kept
            if (
                cookie.secure
                and cookie.name == name
                and (_domain_matches(kept, domain) or _domain_matches(domain, kept))
                and path_matches(path, cookie.path)
            ):
                return True
        return False

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        if cookie.domain_specified and self._names_answering_host(cookie.domain):
            cookie = _for_host(cookie, cast(tuple[str, str], self._answering)[1])
        # NOTE: a replaced cookie's creation counts, as in a browser (RFC 6265 5.3 step 11).
        # SPEC: RFC 6265bis (draft), storage model: the one replaced has the same host-only
        # flag too, as the jar keys them (".host" apart from "host"), and as Chrome and Firefox
        # keep them: "a; Domain=host" and a later "a" are two cookies, both sent.
        stamp(cookie, held(self, cookie.domain, cookie.path, cookie.name))
        super().set_cookie(cookie)

    def clear(
        self, domain: str | None = None, path: str | None = None, name: str | None = None
    ) -> None:
        if domain is not None and self._names_answering_host(domain):
            domain = cast(tuple[str, str], self._answering)[1]
        super().clear(domain, path, name)

    def _names_answering_host(self, domain: str) -> bool:
        """Whether ``domain`` is the answering host, one with no domain to share a cookie in.

        NOTE: a host without a dot, or an IP address: Chrome and Firefox keep a cookie whose
        Domain is such a host as a host-only cookie (which "a" without Domain replaces, and
        the other way round); kept apart, both were sent.
        """
        return self._answering is not None and _has_no_domain(domain, self._answering[0])


def clients_jar(cookies: GivenJar) -> httpx.Cookies:
    """Return a jar for the client with a copy of ``cookies``, which gives each cookie the test
    sets its creation as it is set (in the order of a mapping or of pairs).

    The standard library's jar, as httpx makes it, left the test's cookies without one until a
    request's copy took them, in the order it walks them: by name on Python 3.10, a domain
    after the other on later versions (not the order the test set them in).

    Raises:
        TypeError: For ``cookies`` in no form httpx's own client takes.
    """
    jar = httpx.Cookies(_Jar(_Policy()))
    if isinstance(cookies, httpx.Cookies):
        cookies = cookies.jar
    if isinstance(cookies, http.cookiejar.CookieJar):
        for cookie in cookies:
            jar.jar.set_cookie(copy.copy(cookie))
    elif cookies is not None:
        for name, value in _pairs(cookies):
            jar.set(name, value)
    return jar


def _pairs(cookies: object) -> list[tuple[str, str]]:
    """The names and values of ``cookies``, a mapping or pairs, all checked before any is set."""
    # NOTE: httpx's client takes pairs too ([("a", "1")]); they failed here with "'list'
    # object has no attribute 'items'". A string is no list of pairs, though iterable.
    # A pair is any sequence of two strings, a list as well as a tuple ([["a", "1"]], as httpx
    # takes it), but no string: httpx would read "ab" as the name a with the value b.
    items = cookies.items() if isinstance(cookies, Mapping) else cookies
    given = list(items) if isinstance(items, Iterable) and not isinstance(items, str) else None
    if given is None or not all(
        isinstance(pair, Sequence)
        and not isinstance(pair, (str, bytes, bytearray))
        and len(pair) == 2
        and all(isinstance(part, str) for part in pair)
        for pair in given
    ):
        raise TypeError(
            "cookies must be a mapping of names to values or (name, value) pairs, all "
            f"strings, an httpx.Cookies or a CookieJar, not {cookies!r}"
        )
    return [(name, value) for name, value in given]


def copied(cookies: httpx.Cookies) -> httpx.Cookies:
    """Return a copy of ``cookies`` whose jar takes a ``Set-Cookie`` as a browser does."""
    jar = _Jar(_Policy())
    for cookie in cookies.jar:
        jar.set_cookie(cookie)
    return httpx.Cookies(jar)


def _for_host(cookie: http.cookiejar.Cookie, host: str) -> http.cookiejar.Cookie:
    # NOTE: a copy: the side's jar shares its cookies with the client's until keep().
    for_host = copy.copy(cookie)
    for_host.domain, for_host.domain_specified, for_host.domain_initial_dot = host, False, False
    return for_host


class _SideJar(_Jar):
    """A side's jar for one request (its redirects included), which sends a cookie whose
    domain is a host without a dot: such a cookie is kept there for the jar's name of that
    host, ``.testserver.local`` for ``Domain=testserver``."""

    def set_cookie(self, cookie: http.cookiejar.Cookie) -> None:
        own = self._names_answering_host(cookie.domain)  # NOTE: made host-only, as kept.
        if cookie.domain_specified and _is_dotless(cookie.domain) and not own:
            stamp(cookie, None)  # NOTE: the test's own, so that each side's copy has its time.
            # NOTE: a copy, which stays apart from the host-only cookie of its name
            # ("testserver.local"), as the client's jar keeps them: made host-only, it replaced
            # it in the request. Of any such host, not base_url's alone: a redirect to
            # otherhost did not carry its Domain=otherhost cookie there.
            cookie = copy.copy(cookie)
            cookie.domain = _as_sent(cookie.domain)
        super().set_cookie(cookie)

    def clear(
        self, domain: str | None = None, path: str | None = None, name: str | None = None
    ) -> None:
        if domain is not None and _is_dotless(domain) and not self._names_answering_host(domain):
            # NOTE: an answer's deletion names the domain (".testserver"), where this jar keeps
            # the cookie for the jar's name of the host: a redirect's deletion was not done, and
            # the request it led to still sent the cookie (the page after a sign-out, signed in).
            domain = _as_sent(domain)
        super().clear(domain, path, name)


def _is_dotless(domain: str) -> bool:
    bare = domain.removeprefix(".")
    return bool(bare) and "." not in bare


def _as_sent(domain: str) -> str:
    """The domain that the standard library's jar sends to ``domain``, a host without a dot."""
    return f".{domain.removeprefix('.').lower()}.local"


def side_jar(cookies: httpx.Cookies, base_url: httpx.URL, given: GivenCookies) -> httpx.Cookies:
    """Return the jar a side sends a request with: ``cookies`` as ``to_host()`` leaves them,
    and those whose domain is the host without a dot (for a request, not for its answers,
    which ``keep()`` reads on the client's jar: the app's deletion of such a cookie names its
    domain)."""
    # NOTE: to_host() first, on a plain jar: the test's domain="testserver" cookie is then
    # host-only, as an app's Domain=testserver is, and the side's jar keeps them as one.
    plain = http.cookiejar.CookieJar()
    for cookie in cookies.jar:
        plain.set_cookie(cookie)
    to_host(plain, base_url, given)
    jar = _SideJar(_Policy())
    for cookie in plain:
        jar.set_cookie(cookie)
    return httpx.Cookies(jar)


def to_host(jar: http.cookiejar.CookieJar, base_url: httpx.URL, given: GivenCookies) -> None:
    """Give the cookies that the test set for any host (no domain) to ``base_url``'s host, as
    those it set for a host without a dot or an IP address (``domain="testserver"``), which a
    browser keeps host-only.

    As a browser's cookie of that site: the app's ``Set-Cookie`` of that name replaces it, and
    its deletion removes it. Left for any host, it was kept beside the app's (and sent first),
    so that the app's changes to a session seemed lost. ``given`` maps each copy made for the
    host to the test's cookie.
    """
    hosts = _hosts(base_url)
    for cookie in list(jar):
        if not cookie.domain:
            for_host = _for_host(cookie, hosts[1])
        elif cookie.domain_specified and _has_no_domain(cookie.domain, hosts[0]):
            # NOTE: as the jar keeps an app's Domain=testserver: kept as "testserver", the
            # test's was kept beside the app's (httpx.CookieConflict), and its deletion left it.
            for_host = _for_host(cookie, hosts[1])
        else:
            continue
        jar.clear(cookie.domain, cookie.path, cookie.name)
        jar.set_cookie(for_host)
        given[for_host] = cookie


def _has_no_domain(domain: str, host: str) -> bool:
    """Whether ``domain`` is ``host``, a host with no domain to share a cookie in (one without
    a dot, or an IP address), of which a browser keeps a cookie host-only."""
    return domain.removeprefix(".").lower() == host and ("." not in host or _is_ip_address(host))


def keep_answers(
    cookies: httpx.Cookies, answers: list[httpx.Response], base_url: httpx.URL, given: GivenCookies
) -> None:
    """Put the cookies that ``answers`` set in ``cookies``, in place, as a browser's jar takes
    them; a cookie the test set, which the app left alone, goes back as the test set it."""
    # NOTE: the answers' Set-Cookie lines, on the jar as it is now: the side's jar copied
    # back lost the cookies of answers that came meanwhile in other threads (a third of
    # them, four threads), as another request had given the side a new copy.
    # NOTE: in place, so that a test's reference to client.cookies stays live.
    # NOTE: a cookie the test set, which the app left alone, goes back as the test set it
    # (for any host): set again by the test, it replaces itself, where its copy for the host
    # stayed beside it (httpx.CookieConflict on reading it); and it follows base_url.
    kept = copied(cookies)
    to_host(kept.jar, base_url, given)
    for answer in answers:
        kept.extract_cookies(answer)
    jar = cookies.jar
    jar.clear()
    for cookie in kept.jar:
        jar.set_cookie(given.get(cookie, cookie))
