"""The answers of ``TestClient``'s two sides, and the hooks that collect them.

A redirect whose ``Location`` is no URL httpx can build (``http:%5Cevil``, ``http://[::1``) is
handed back where it is not followed, and raises where it is, with httpx's public API alone:
an ``Answer`` has no ``has_redirect_location``, the property httpx reads before it builds the
next request (``next_request``) and as it follows.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any, cast
from urllib.parse import unquote

import httpx
import idna  # NOTE: httpx's own dependency, which reads its hosts.
from httpx._client import BaseClient

from ._errors import unhandled_errors
from ._port_hints import port_hint
from ._testing_cookie_order import in_browsers_order

# NOTE: in a request's extensions: whether its redirects are followed.
FOLLOWING = "microweb.following"

# NOTE: the request extension that carries the list a request's answers go to, each
# redirect's included (httpx gives a redirect the first request's extensions).
ANSWERS = "microweb.answers"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

# NOTE: in a request's extensions, which httpx gives its redirects: the Cookie header the test
# gave it, or its own cookies (a deprecated cookies=).
_GIVEN_COOKIE = "microweb.given_cookie"
_OWN_COOKIES = "microweb.own_cookies"


# NOTE: the schemes the WHATWG URL standard calls special ("file" aside, which httpx refuses).
_SPECIAL = frozenset({"http", "https", "ws", "wss", "ftp"})
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_DROPPED = re.compile(r"[\t\n\r]")
_C0_OR_SPACE = "".join(map(chr, range(33)))
_HEAD_AND_TAIL = re.compile(r"([^?#]*)(.*)", re.DOTALL)


def as_browsers_read(location: str, base: httpx.URL) -> str | None:
    """Return ``location``, a redirect's from a page at ``base``, as a browser reads it, or
    ``None`` where a browser finds no URL in it (an empty host: ``//``, ``https://``).

    SPEC: WHATWG URL: in an http(s) URL, or a reference from one, a backslash before the
    query is a slash, a tab or a newline is dropped anywhere, and any run of slashes before
    the host stands for two, as does none after another special scheme (``https:host`` from
    an http page); after the page's own scheme, none starts a path (``http:x`` is ``x``).
    httpx joined ``/\\evil.example/x`` as a path of this host, where a browser leaves for
    ``evil.example``, as for ``//evil.example/x``.
    """
    location = _DROPPED.sub("", location.strip(_C0_OR_SPACE))
    found = _SCHEME.match(location)
    scheme = found[1].lower() if found is not None else ""
    if scheme and scheme not in _SPECIAL:
        return location
    head, tail = cast(re.Match[str], _HEAD_AND_TAIL.match(location)).groups()
    head = head.replace("\\", "/")
    rest = head[len(scheme) + 1 :] if scheme else head
    if rest.startswith("//") or (scheme and scheme != base.scheme):
        authority = rest.lstrip("/").partition("/")[0]
        if not authority.rpartition("@")[2].partition(":")[0]:
            # NOTE: httpx read "//" as no host at all: the page itself, again and again.
            return None
        head = (f"{scheme}:" if scheme else "") + "//" + rest.lstrip("/")
    elif scheme:
        # NOTE: the page's own scheme without "//" ("http:x") is a reference to a path of the
        # page's host, where httpx found no URL in it.
        head = rest
    return head + tail


def redirect_target(response: httpx.Response) -> httpx.URL | None:
    """Return the URL ``response``'s ``Location`` leads to, or ``None`` if none can be built."""
    try:
        read = as_browsers_read(response.headers["location"], response.request.url)
        if read is None:
            return None
        url = httpx.URL(_with_ipv4_host(read))
        if url.scheme and not url.host:
            # NOTE: as httpx reads "http:/path": the request's host.
            url = url.copy_with(host=response.request.url.host)
        target = _with_ipv6_host(_with_decoded_host(response.request.url.join(url)))
        # NOTE: httpx reads the host of the URL it follows, as above: one that is no valid
        # punycode ("xn--a") is parsed, then raises idna's InvalidCodepoint (a UnicodeError).
        target.host  # noqa: B018
    except (httpx.InvalidURL, UnicodeError):
        return None
    if (target.port or 0) > _MAX_PORT:
        # NOTE: httpx takes a port past 65535 (":99999"), where a browser finds no URL.
        return None
    return _without_dot_segments(target)


_MAX_PORT = 65535
# NOTE: the host of a special URL (see as_browsers_read()), after any credentials.
_SPECIAL_HOST = re.compile(r"(?:(?:https?|wss?|ftp)://|//)(?:[^/?#]*@)?(?P<host>[^/?#:\[]*)", re.I)
# NOTE: a special URL's port, after its host (an IPv6 address in brackets), where it has one.
_PORT = re.compile(r"(?:\[[^\]/?#]*\])?:(?P<port>[^/?#]+)")
# SPEC: WHATWG URL, IPv4 number parser: hexadecimal after "0x" (none is 0), octal after a 0.
_IPV4_NUMBER = re.compile(r"0x(?P<hex>[0-9a-f]*)|0(?P<oct>[0-7]+)|(?P<dec>0|[1-9][0-9]*)")


def browsers_url(url: str) -> httpx.URL:
    """Return ``url``, an absolute http(s) URL, with its IP address host as a browser writes it
    (``http://127.1`` is ``http://127.0.0.1``).

    Raises:
        httpx.InvalidURL: If its host ends in a number and is no IPv4 address, or is an IPv6
            address with a zone.
    """
    return _with_ipv6_host(httpx.URL(_with_ipv4_host(url)))


def _with_ipv4_host(read: str) -> str:
    """Return ``read``, a ``Location`` as ``as_browsers_read()`` gives it, with a host that ends
    in a number written as the IPv4 address a browser reads in it.

    SPEC: WHATWG URL, host parser: such a host (percent-decoded, in lower case) is an IPv4
    address, of one to four numbers, each decimal, octal or hexadecimal, the last filling the
    bytes left ("127.1", "0x7f.1", "2130706433" are 127.0.0.1), or no host at all. httpx sent
    "Host: 127.1" to a host of that name, and refused "0177.0.0.1".

    A non-ASCII host is first mapped as a browser maps it (UTS 46): fullwidth digits, letters
    and dots are ASCII ones ("127.1" written in fullwidth is 127.0.0.1), upper case is lower.
    httpx refused such a host as no IDNA hostname, where a browser goes to the address (or
    the name).

    Raises:
        httpx.InvalidURL: If the host ends in a number and is no IPv4 address, or maps to
            one with a code point no domain may hold (a fullwidth colon is ":"), or for a
            port that is not ASCII digits.
    """
    found = _SPECIAL_HOST.match(read)
    if found is None:
        return read
    port = _PORT.match(read, found.end("host"))
    if port is not None and not (port["port"].isascii() and port["port"].isdigit()):
        # NOTE: httpx read fullwidth (or Arabic-Indic) digits as the number, and sent "Host:
        # testserver:8080" for a port a browser refuses. SPEC: WHATWG URL, port state: ASCII
        # digits alone, or none.
        raise httpx.InvalidURL(f"Invalid port: {port['port']!r}")
    host = unquote(found["host"])
    if not host.isascii():
        try:
            host = idna.uts46_remap(host, std3_rules=False, transitional=False)
        except idna.IDNAError:
            return read  # NOTE: a code point UTS 46 disallows: httpx refuses it by name.
        if _FORBIDDEN_IN_DOMAIN.search(host):
            raise httpx.InvalidURL(f"Invalid host: {found['host']!r}")
        read = read[: found.start("host")] + host + read[found.end("host") :]
        found = cast(re.Match[str], _SPECIAL_HOST.match(read))
    labels = host.lower().split(".")
    if len(labels) > 1 and not labels[-1]:
        labels.pop()  # NOTE: "127.0.0.1." is 127.0.0.1.
    last = labels[-1]
    if not ((last.isascii() and last.isdigit()) or _IPV4_NUMBER.fullmatch(last)):
        return read
    numbers = [_ipv4_number(label) for label in labels]
    *high, low = numbers
    if len(numbers) > 4 or any(number > 255 for number in high) or low >= 256 ** (5 - len(numbers)):
        raise httpx.InvalidURL(f"Invalid IPv4 address: {found['host']!r}")
    address = sum(number << 8 * (3 - index) for index, number in enumerate(high)) + low
    return (
        read[: found.start("host")]
        + str(ipaddress.IPv4Address(address))
        + read[found.end("host") :]
    )


def _ipv4_number(label: str) -> int:
    """Return the number ``label`` writes, or one past 32 bits where it writes none."""
    found = _IPV4_NUMBER.fullmatch(label)
    if found is None:
        return 1 << 32
    base, digits = next((base, found[name]) for base, name in _BASES if found[name] is not None)
    # NOTE: past 11 digits, leading zeros aside, no number fits in 32 bits (and int() refuses
    # a string of thousands of digits).
    digits = digits.lstrip("0") or "0"
    return int(digits, base) if len(digits) <= 11 else 1 << 32


_BASES = ((16, "hex"), (8, "oct"), (10, "dec"))
# SPEC: WHATWG URL, host parsing: a domain is percent-decoded, and one that then holds a
# forbidden domain code point is no host.
_FORBIDDEN_IN_DOMAIN = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|\x7f]")


def _with_ipv6_host(url: httpx.URL) -> httpx.URL:
    """Return ``url`` with an IPv6 host written as a browser writes it.

    SPEC: WHATWG URL, IPv6 serializer: hexadecimal in lower case without leading zeros, and
    the first longest run of two zero pieces or more as "::" (an embedded IPv4 address too:
    ``[::ffff:127.0.0.1]`` is ``[::ffff:7f00:1]``). httpx kept ``[0:0::1]`` as written: an
    origin other than ``[::1]``'s.

    Raises:
        httpx.InvalidURL: For an address with a zone (``%25eth0``), which a browser refuses.
    """
    if ":" not in url.host:
        return url
    try:
        address = ipaddress.IPv6Address(url.host)  # NOTE: httpx has checked it, but a zone.
    except ValueError:
        address = None
    if address is None or address.scope_id is not None:
        raise httpx.InvalidURL(f"Invalid IPv6 address: {url.host!r}")
    # NOTE: from its number: Python 3.13's exploded form writes an embedded IPv4 address in
    # dots ("...:ffff:127.0.0.1"), where earlier ones give eight hexadecimal pieces.
    number = int(address)
    pieces = [format(number >> shift & 0xFFFF, "x") for shift in range(112, -1, -16)]
    start, length = 0, 0
    for index in range(len(pieces)):
        run = next((n for n in range(index, len(pieces)) if pieces[n] != "0"), len(pieces))
        if run - index > length:
            start, length = index, run - index
    if length < 2:
        return url.copy_with(host=":".join(pieces))
    return url.copy_with(host=f"{':'.join(pieces[:start])}::{':'.join(pieces[start + length :])}")


def _with_decoded_host(url: httpx.URL) -> httpx.URL:
    """Return ``url`` with its host percent-decoded, as a browser reads it.

    Raises:
        httpx.InvalidURL: If the decoded host holds a code point no domain may hold.
    """
    raw = url.raw_host.decode("ascii")
    if "%" not in raw:
        return url
    # NOTE: httpx sent "http://%74estserver/x" to the host "%74estserver", and took "a b".
    host = unquote(raw)
    if _FORBIDDEN_IN_DOMAIN.search(host):
        raise httpx.InvalidURL(f"Invalid host: {raw!r}")
    return url.copy_with(host=host)


# SPEC: WHATWG URL, path state: "%2e" (any case) is a single-dot segment, and ".%2e", "%2e."
# and "%2e%2e" are double-dot ones.
_SINGLE_DOT = frozenset({".", "%2e"})
_DOUBLE_DOT = frozenset({"..", ".%2e", "%2e.", "%2e%2e"})
_DOTS = _SINGLE_DOT | _DOUBLE_DOT


def _without_dot_segments(url: httpx.URL) -> httpx.URL:
    """Return ``url`` with the dot segments of its path resolved, percent-encoded ones too.

    httpx resolves "." and ".." alone: a ``Location`` of ``/%2e%2e/c`` was followed to
    ``/%2e%2e/c``, where a browser goes to ``/c``.
    """
    path, mark, query = url.raw_path.decode("ascii").partition("?")
    segments = path.split("/")[1:]
    if not any(segment.lower() in _DOTS for segment in segments):
        return url
    kept: list[str] = []
    for index, segment in enumerate(segments):
        dots = segment.lower()
        if dots in _DOUBLE_DOT and kept:
            kept.pop()
        if dots in _DOTS:
            if index == len(segments) - 1:
                kept.append("")  # NOTE: "/a/b/.." is "/a/", as a browser reads it.
            continue
        kept.append(segment)
    return url.copy_with(raw_path=f"/{'/'.join(kept)}{mark}{query}".encode("ascii"))


class Answer(httpx.Response):
    """An app's answer, as a side's transport gives it to httpx.

    httpx built the request of a redirect even when it did not follow it (``next_request``):
    its ``InvalidURL`` (or ``RemoteProtocolError``) for a ``Location`` it can't build came out
    of the call, and the test never got the response, whose ``Location`` may be the very thing
    it checks.
    """

    @property
    def has_redirect_location(self) -> bool:
        """Whether the answer redirects to a URL that can be built, as httpx's docs define it."""
        # NOTE: httpx's own checks the status and that a Location is there, not that it is "a
        # properly formed URL redirection", as its docstring says.
        return super().has_redirect_location and redirect_target(self) is not None


def followed_url(request: httpx.Request, response: httpx.Response) -> httpx.URL:
    """Return the URL a followed redirect goes to, as a browser reads its ``Location``.

    Raises:
        httpx.RemoteProtocolError: If no URL can be built from it.
    """
    target = redirect_target(response)
    if target is None:
        raise httpx.RemoteProtocolError(
            f"Invalid URL in location header: {response.headers['location']!r}", request=request
        )
    if request.url.fragment and not target.fragment:
        # SPEC: RFC 9110 10.2.2: the fragment of the request is kept.
        target = target.copy_with(fragment=request.url.fragment)
    return target


def followed_method(request: httpx.Request, response: httpx.Response) -> str:
    """Return the method a followed redirect is sent with, as a browser sends it.

    SPEC: Fetch, HTTP-redirect fetch: a 301 or 302 turns a POST into a GET, a 303 anything
    but a GET or a HEAD; httpx turned a PUT or a DELETE into a GET on a 302 too.
    """
    method, status = request.method, response.status_code
    if (status in (301, 302) and method == "POST") or (
        status == 303 and method not in ("GET", "HEAD")
    ):
        return "GET"
    return method


# SPEC: Fetch's request-body-header names, which go with the body (httpx kept them).
_BODY_HEADERS = ("content-type", "content-encoding", "content-language", "content-location")


def without_body_headers(headers: httpx.Headers, request: httpx.Request, method: str) -> None:
    """Remove, in place, the headers about the body when a redirect drops it."""
    if method != request.method:
        for name in _BODY_HEADERS:
            headers.pop(name, None)


def without_credentials(headers: httpx.Headers, request: httpx.Request, url: httpx.URL) -> None:
    """Remove, in place, ``Authorization`` when a redirect leaves the request's origin.

    SPEC: Fetch, HTTP-redirect fetch: so does a browser, where httpx kept it from http to
    https on the same host.
    """
    if not same_origin(url, request.url):
        headers.pop("authorization", None)


def same_origin(url: httpx.URL, other: httpx.URL) -> bool:
    """Whether ``url`` and ``other`` have one scheme, host and port."""
    return (url.scheme, url.host, url.port) == (other.scheme, other.host, other.port)


# NOTE: _redirect_url, _redirect_method, _redirect_headers and _build_redirect_request are
# httpx's private steps of building a redirect's request, on its private BaseClient of both
# clients (the same in 0.28 and 0.29): the tests of a "/\\host" Location, of a 302 to a PUT, of
# its body's headers and of a redirect's cookie order fail if a release renames one.


class _BrowserSteps(BaseClient):
    """httpx's steps of following a redirect, made a browser's; both sides take them."""

    def _redirect_url(self, request: httpx.Request, response: httpx.Response) -> httpx.URL:
        return followed_url(request, response)

    def _redirect_method(self, request: httpx.Request, response: httpx.Response) -> str:
        return followed_method(request, response)

    def _redirect_headers(
        self, request: httpx.Request, url: httpx.URL, method: str
    ) -> httpx.Headers:
        headers = super()._redirect_headers(request, url, method)
        without_body_headers(headers, request, method)
        without_credentials(headers, request, url)
        return headers

    def build_request(self, method: str, url: httpx.URL | str, **kwargs: Any) -> httpx.Request:
        """Build the request as httpx does, with its cookies sent as a browser sends them and
        its own (a deprecated ``cookies=``) in place of the jar's of their names."""
        own = kwargs.pop("cookies", None)
        if isinstance(url, str) and _SPECIAL_HOST.match(url) and not url.startswith("/"):
            # NOTE: as a browser writes an IP address host (as base_url's and a Location's):
            # "Host: 127.1" went out, and the app's cookies went to that name.
            url = browsers_url(url)
        request = super().build_request(method, url, **kwargs)
        given = [v for k, v in httpx.Headers(kwargs.get("headers")).raw if k.lower() == b"cookie"]
        if given:
            # NOTE: a Cookie header given wins over the cookies, as in httpx.
            request.extensions[_GIVEN_COOKIE] = given
        else:
            request.extensions[_OWN_COOKIES] = None if own is None else httpx.Cookies(own)
            in_browsers_order(request, self.cookies.jar, request.extensions[_OWN_COOKIES])
        return request

    def _build_redirect_request(
        self, request: httpx.Request, response: httpx.Response
    ) -> httpx.Request:
        # NOTE: httpx drops a Cookie header given, and a request's own cookies, on every
        # redirect: the page the test's request was sent on to got the jar's cookies. They go
        # on within the origin, as Authorization does; the jar's go elsewhere.
        followed = super()._build_redirect_request(request, response)
        kept = same_origin(followed.url, request.url)
        given = request.extensions.get(_GIVEN_COOKIE)
        if kept and given:
            # NOTE: line by line, as sent: one header set from httpx's joined them with a comma.
            raw = [(k, v) for k, v in followed.headers.raw if k.lower() != b"cookie"]
            followed.headers = httpx.Headers(raw + [(b"cookie", line) for line in given])
        else:
            own = request.extensions.get(_OWN_COOKIES) if kept else None
            in_browsers_order(followed, self.cookies.jar, own)
        return followed


class Side(_BrowserSteps, httpx.Client):
    """The WSGI side's httpx client, which follows a redirect as a browser does."""


class AsyncSide(_BrowserSteps, httpx.AsyncClient):
    """The ASGI side's httpx client, which follows a redirect as a browser does."""


def record_answer(response: httpx.Response) -> None:
    """Add ``response`` to its request's answers, whose cookies ``TestClient`` keeps; raise, for
    a redirect that is followed, if its ``Location`` leads nowhere.

    Raises:
        httpx.RemoteProtocolError: If the redirect is followed and no URL can be built from its
            ``Location``: it can go nowhere, as httpx says of it.
    """
    request = response.request
    answers = request.extensions.get(ANSWERS)
    if answers is not None:
        answers.append(response)
    if (
        request.extensions.get(FOLLOWING, True)
        and response.status_code in _REDIRECTS
        and "location" in response.headers
        and not response.has_redirect_location
    ):
        # NOTE: after the answer is recorded: its cookies are kept, as a browser keeps them.
        raise httpx.RemoteProtocolError(
            f"Invalid URL in location header: {response.headers['location']!r}", request=request
        )


async def arecord_answer(response: httpx.Response) -> None:
    """``record_answer()`` as the ASGI side's httpx client calls it."""
    record_answer(response)


def stop_if_reported(request: httpx.Request) -> None:
    """Raise, before ``request`` is sent, the first error the app reported as unhandled while
    the request's ``TestClient`` call watches for them (``raise_server_exceptions=True``).

    Only a followed redirect finds one: the answer it follows had a failed after-response
    callback (a request's own call starts with none reported).
    """
    # NOTE: the redirect was followed first: the page it led to ran (a POST's 303 to a GET
    # that changes something) before the test saw the error of the request it had sent.
    reported = unhandled_errors.get()
    if reported:
        raise first_reported(reported)


async def astop_if_reported(request: httpx.Request) -> None:
    """``stop_if_reported()`` as the ASGI side's httpx client calls it."""
    stop_if_reported(request)


def assert_same(
    method: str, url: str, a: httpx.Response, b: httpx.Response, ignored: frozenset[str]
) -> None:
    """Raise ``AssertionError`` if the WSGI side's answer ``a`` and the ASGI side's ``b``
    differ in status, headers (but the ``ignored`` ones) or body."""

    def head(response: httpx.Response) -> list[tuple[str, str]]:
        return [(k, v) for k, v in response.headers.multi_items() if k not in ignored]

    where = f"{method} {url}"
    if a.status_code != b.status_code:
        raise AssertionError(f"{where}: status WSGI {a.status_code} != ASGI {b.status_code}")
    if head(a) != head(b):
        raise AssertionError(f"{where}: headers WSGI {head(a)} != ASGI {head(b)}")
    if a.content != b.content:
        raise AssertionError(f"{where}: body WSGI {a.content[:200]!r} != ASGI {b.content[:200]!r}")


def watching(raising: bool, send: Callable[[], httpx.Response]) -> httpx.Response:
    """Send, and raise the first error the app reported as unhandled, if ``raising``."""
    with reporting(raising) as reported:
        response = send()
    if reported:
        raise first_reported(reported)
    return response


def first_reported(reported: list[BaseException]) -> BaseException:
    """Return the first error of ``reported``, for the test to raise, with a note of what a
    port writes instead, where ``port_hint()`` knows (``request.form["x"]`` kept from Flask)."""
    error = reported[0]
    hint = port_hint(error) if isinstance(error, Exception) else ""
    # NOTE: once: an error object raised again (a module's constant) kept the first note.
    # NOTE: an error that refuses new attributes (attrs' frozen ones) or whose __notes__ is
    # no list: add_note() raised its own error into the test, in place of the app's.
    if hint and sys.version_info >= (3, 11):
        with contextlib.suppress(Exception):
            if hint not in getattr(error, "__notes__", ()):
                error.add_note(hint)
    return error


@contextlib.contextmanager
def reporting(raising: bool) -> Iterator[list[BaseException]]:
    """Collect, while open, the errors the app reports as unhandled, if ``raising``."""
    reported: list[BaseException] = []
    # NOTE: set in this thread before the app is called: the ASGI side's task, the app
    # loop and the thread pool each run in a copy of this context. Not raising, it is set
    # to none: inside a raising stream()'s with block, a call of a client that raises
    # nothing took the block's list, its app's 500 was raised at the block's exit, and its
    # next request raised it before it was sent (stop_if_reported()).
    token = unhandled_errors.set(reported if raising else None)
    try:
        yield reported
    finally:
        unhandled_errors.reset(token)
