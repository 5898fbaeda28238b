"""Cookies: a linear ``Cookie`` header parser and the ``Set-Cookie`` formatter.

NOTE: ``http.cookies.SimpleCookie`` is quadratic on backslashes (CVE-2024-7592) and gives up on the
whole header at one bad pair; browsers send what they were given, so one bad pair is skipped here.

NOTE: values are percent-encoded (UTF-8) when set and percent-decoded when read, so every ``str``
comes back as it was set. SimpleCookie's octal escapes (``"Jos\\351"``) are not decoded by
browsers' scripts nor by most servers; percent-encoding is what ``encodeURIComponent`` and
JavaScript cookie libraries read and write. The price: a cookie set by other software with a
literal ``%`` followed by two hex digits is read decoded.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.cookies import Morsel
from typing import Literal
from urllib.parse import quote

from ._percent import percent_decode, percent_encode_uri

logger = logging.getLogger("microweb")
# SPEC: RFC 6265bis 5.7, a user agent ignores a cookie whose name and value together are longer
# than this many bytes.
MAX_COOKIE_PAIR = 4096
_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# NOTE: what a browser sends as a name: anything but a control character (";" and "=" end
# it). PHP's "a[b]" is no RFC token, and was skipped where Werkzeug and Starlette read it.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# NOTE: a host name (or an IPv4 address) and nothing else: a comma, a space or "=" in a Domain
# attribute went out as it was, and a client that splits Set-Cookie lines on commas (as many
# do, having joined them) read "Domain=a.example, admin=1" as a second cookie. An IPv6 address
# is taken in brackets only (_IPV6_DOMAIN), so that a ":" is never a port's.
_COOKIE_DOMAIN = re.compile(r"[A-Za-z0-9._-]+")
_IPV6_DOMAIN = re.compile(r"\[([0-9A-Fa-f:.]+)\]")
# SPEC: RFC 6265 section 4.1.1, a cookie-octet is visible ASCII but DQUOTE, comma, semicolon
# and backslash. ``quote`` always keeps letters, digits and ``_.-~``; "%" is a cookie-octet but is
# encoded too, so that a value holding it comes back unchanged.
_VALUE_SAFE = "!#$&'()*+/:<=>?@[]^`{|}"


def encode_cookie_value(value: str) -> str:
    """Return ``value`` as cookie-octets: other characters and ``%`` percent-encoded (UTF-8).

    Raises:
        TypeError: If ``value`` is no ``str`` (``bytes`` are taken as they were).
        ValueError: If ``value`` holds a lone surrogate, which has no UTF-8 form.
    """
    if not isinstance(value, (str, bytes)):
        # NOTE: quote() said "quote_from_bytes() expected bytes" for an int or None, no word
        # of the cookie.
        raise TypeError(f"a cookie value is a str, not {type(value).__name__}: give str(value)")
    try:
        return quote(value, safe=_VALUE_SAFE)
    except UnicodeEncodeError:
        raise ValueError("cookie value holds a lone surrogate (\\ud800-\\udfff)") from None


# NOTE: the pairs of a Cookie header read; the rest is ignored. RFC 6265 6.1 asks a browser
# to keep 50 cookies a domain and 3,000 in all (Chrome keeps 180 a domain). A 256 KiB header
# (what Waitress and httptools let through) of 52,000 short names ("a=;b=;...") took 32 ms
# and 8.4 MB (32 times its size) as a dict; 3,000 pairs take 2 ms and 0.5 MB.
MAX_COOKIE_PAIRS = 3000
# SPEC: RFC 6265bis 5.6, a browser trims spaces and tabs around a cookie's name and value, and
# nothing else. NOTE: str.strip() took Unicode spaces too: "\u2000__Host-id", a cookie that a
# sibling subdomain may set on the parent domain (the browser holds it to no prefix rule), was
# read as "__Host-id", and a planted session under that name was loaded as the user's.
_WHITESPACE = " \t"


def _pairs(header: str) -> list[str]:
    if not header.isascii():
        header = _as_utf8(header)
    pairs = header.split(";", MAX_COOKIE_PAIRS)
    if len(pairs) > MAX_COOKIE_PAIRS:
        pairs.pop()  # NOTE: the rest of the header, unread.
    return pairs


def parse_cookie_header(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header into a dict; the first value of a repeated name wins.

    Values are unquoted and percent-decoded (UTF-8; an invalid sequence becomes U+FFFD).
    A pair without ``=``, or whose name is empty or holds a control character, is skipped.
    Spaces and tabs around a name or a value are trimmed, no other whitespace. The header
    is text as servers give it (its bytes decoded as latin-1); bytes beyond ASCII are read as
    UTF-8, as the escapes are. Only the first ``MAX_COOKIE_PAIRS`` (3,000) pairs are read.
    """
    cookies: dict[str, str] = {}
    for pair in _pairs(header):
        name, sep, value = pair.partition("=")
        name = name.strip(_WHITESPACE)
        if not sep or not name or name in cookies or _CONTROL.search(name):
            continue
        cookies[name] = _decoded_value(value)
    return cookies


def cookie_values(header: str, name: str, *, as_sent: bool = False) -> list[str]:
    """Return every value the ``Cookie`` header gives ``name``, in the order sent.

    A browser sends one value per cookie of that name that matches the request: its own host
    and path's, and those a sibling subdomain set on the parent domain, or on a longer path
    (sent first). Pairs are read, and values decoded, as ``parse_cookie_header`` does; with
    ``as_sent``, values keep their quotes and escapes (for a value of one spelling: a signed
    one's).
    """
    values = []
    for pair in _pairs(header):
        found, sep, value = pair.partition("=")
        if sep and found.strip(_WHITESPACE) == name:
            values.append(value.strip(_WHITESPACE) if as_sent else _decoded_value(value))
    return values


def _decoded_value(value: str) -> str:
    value = value.strip(_WHITESPACE)
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return percent_decode(value) if "%" in value else value


def _as_utf8(header: str) -> str:
    # NOTE: a cookie set by a page's script (document.cookie = "name=José") comes back as raw
    # UTF-8 bytes; read as latin-1 it was "JosÃ©" under every server, where "Jos%C3%A9" was
    # "José". Text beyond latin-1 was not decoded from a request's bytes: kept as it is.
    try:
        raw = header.encode("latin-1")
    except UnicodeEncodeError:
        return header
    return raw.decode("utf-8", "replace")


SameSite = Literal["lax", "strict", "none"]


def _checked_path(path: str | None) -> str | None:
    """Return the cookie's path, ``""`` as ``/``.

    Raises:
        TypeError: For a path that is no ``str``.
        ValueError: For a path that does not start with ``/``.
    """
    if path is not None and not isinstance(path, str):
        # NOTE: b"/a" was refused as a path "that does not start with '/'" (review169).
        raise TypeError(f"a cookie path is a str, not {type(path).__name__}")
    if path == "":
        # NOTE: the root, as request.root_path is for an app at the root: with no Path sent, a
        # browser scoped the cookie to the request's folder ("/auth" for POST /auth/login),
        # and never sent it back to "/me".
        return "/"
    if path is not None and path[:1] != "/":
        # SPEC: RFC 6265 5.2.4, a browser takes such a Path for none, the request's folder.
        raise ValueError(
            f"cookie path {path!r} does not start with '/': browsers would scope the cookie "
            "to the request's folder instead"
        )
    return path


def format_set_cookie(
    key: str,
    value: str,
    *,
    max_age: int | timedelta | None,
    expires: str | datetime | None,
    path: str | None,
    domain: str | None,
    secure: bool,
    httponly: bool,
    samesite: SameSite | None,
    partitioned: bool = False,
) -> str:
    """Return the value of one ``Set-Cookie`` header.

    The value is percent-encoded (see ``encode_cookie_value``), and so is what a path cannot
    hold as it is (see ``percent_encode_uri``; ``;`` too).

    Raises:
        TypeError: As ``Response.set_cookie`` says, or for a ``key`` or ``samesite`` that is
            not a ``str``.
        ValueError: As ``Response.set_cookie`` says (see ``_check_kept``), or for a lone
            surrogate in the value or the path, or an ``expires`` with no UTC date (past 9999).
    """
    morsel: Morsel[str] = Morsel()
    _check_name(morsel, key)
    path = _checked_path(path)
    _check_kept(key, path, domain, secure, samesite, partitioned)
    morsel.set(key, value, encode_cookie_value(value))
    if len(key) + len(morsel.coded_value) > MAX_COOKIE_PAIR:
        # NOTE: logged, not raised: the page is still answered, and the app learns why the
        # cookie was never sent back (a session that grew past it: a login that never stuck).
        logger.warning(
            "cookie %r is %d bytes, name and value encoded; browsers drop one past %d",
            key,
            len(key) + len(morsel.coded_value),
            MAX_COOKIE_PAIR,
        )
    if path is not None:
        # NOTE: a browser matches it against the path it sends, encoded: "/café" never
        # matched "/caf%C3%A9", and the cookie was never sent back (hunt60). A path from the
        # client (request.path) may hold ";" or a line break: encoded, not a 500 (review62).
        morsel["path"] = percent_encode_uri(path).replace(";", "%3B")
    if domain is not None:
        _check_domain(domain)
        morsel["domain"] = domain
    if isinstance(expires, datetime):
        try:
            expires = http_date(expires)
        except OverflowError:
            # NOTE: datetime.max at a negative UTC offset is past year 9999 in UTC.
            raise ValueError(f"cookie expires {expires} has no UTC date") from None
    elif expires is not None and not isinstance(expires, str):
        raise TypeError(
            f"expires takes a datetime or an HTTP date str, not {type(expires).__name__}"
        )
    if expires is not None:
        # NOTE: "=" too: an HTTP date has none, and a client that splits joined Set-Cookie
        # lines on commas read "expires=Thu, 01 Jan 2037 00:00:00 GMT, admin=1" as two cookies.
        if any(c in expires for c in ";=\r\n"):
            raise ValueError(f"cookie expires contains a forbidden character: {expires!r}")
        morsel["expires"] = expires
    if max_age is not None:
        morsel["max-age"] = str(max_age_seconds(max_age))
    morsel["secure"] = secure
    morsel["httponly"] = httponly
    if samesite is not None:
        if samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError(f"samesite must be 'lax', 'strict' or 'none', got {samesite!r}")
        morsel["samesite"] = samesite.capitalize()
    # NOTE: Morsel knows Partitioned from Python 3.14 on only.
    return morsel.OutputString() + ("; Partitioned" if partitioned else "")


def max_age_seconds(max_age: float | timedelta, option: str = "max_age") -> int:
    """Return ``max_age`` as whole seconds for ``Max-Age``, a fraction rounded up; errors name
    the ``option`` it was given as.

    NOTE: truncated, a cookie meant to live half a second was sent with ``Max-Age=0``, which
    deletes it at once.

    Raises:
        TypeError: For a ``max_age`` that is no number (a ``str``, ``None``).
        ValueError: For an infinite or NaN ``max_age``.
    """
    if isinstance(max_age, bool):
        # NOTE: True went out as Max-Age=1, a cookie gone a second later (review169).
        raise TypeError(f"{option} takes a number of seconds or a timedelta, not bool")
    seconds = max_age.total_seconds() if isinstance(max_age, timedelta) else max_age
    try:
        # NOTE: an int is finite, and past a float's range isfinite() raised OverflowError for it.
        finite = isinstance(seconds, int) or math.isfinite(seconds)
    except TypeError:
        # NOTE: isfinite() said "must be real number, not str", with no word of max_age.
        raise TypeError(
            f"{option} takes a number of seconds or a timedelta, not {type(max_age).__name__}"
        ) from None
    if not finite:
        # NOTE: math.ceil() raised OverflowError or a ValueError about integers: no word of
        # max_age. A cookie that ends with the browser has no max_age at all (None).
        raise ValueError(f"{option} must be a finite number of seconds, got {max_age!r}")
    return math.ceil(seconds)


def http_date(moment: datetime) -> str:
    """Format ``moment`` as an HTTP date (``Wed, 02 Dec 2026 10:30:00 GMT``); naive is UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return format_datetime(moment.astimezone(timezone.utc), usegmt=True)


def _check_kept(
    key: str,
    path: str | None,
    domain: str | None,
    secure: bool,
    samesite: SameSite | None,
    partitioned: bool,
) -> None:
    # NOTE: browsers drop these cookies without a word (RFC 6265bis's prefixes and SameSite
    # rules, CHIPS for Partitioned): the app never learnt why its cookie was not kept. A
    # ValueError names what to change.
    if samesite is not None and not isinstance(samesite, str):
        # NOTE: samesite=True raised AttributeError ('bool' object has no attribute 'lower').
        raise TypeError(f"samesite takes 'lax', 'strict' or 'none', not {type(samesite).__name__}")
    prefix = key[:9].lower()
    needs_secure = None
    if samesite is not None and samesite.lower() == "none":
        needs_secure = "a cookie with samesite='none'"
    elif partitioned:
        needs_secure = "a cookie with partitioned=True"
    elif prefix.startswith(("__secure-", "__host-")):
        needs_secure = f"a cookie named {key!r}"
    if needs_secure is not None and not secure:
        raise ValueError(f"browsers drop {needs_secure} unless it is secure=True")
    if prefix.startswith("__host-") and (path != "/" or domain):
        raise ValueError(
            f"browsers drop a cookie named {key!r} unless its path is '/' and it has no domain"
        )


def _check_name(morsel: Morsel[str], key: str) -> None:
    if not isinstance(key, str):
        # NOTE: bytes met a str pattern, as a domain's did, and None or an int gave "expected
        # string or bytes-like object": no word of the cookie's name.
        raise TypeError(f"a cookie name is a str, not {type(key).__name__}")
    if not _COOKIE_NAME.fullmatch(key):
        raise ValueError(f"invalid cookie name: {key!r}")
    if morsel.isReservedKey(key):
        # NOTE: Morsel refuses "path", "expires" and the other attribute names with its own
        # CookieError, which is no ValueError: Sessions(cookie_name="path") escaped its check.
        raise ValueError(f"invalid cookie name: {key!r} is the name of a cookie attribute")


def _check_domain(domain: str) -> None:
    if not isinstance(domain, str):
        # NOTE: bytes met a str pattern: "cannot use a string pattern on a bytes-like object".
        raise TypeError(f"a cookie domain is a str, not {type(domain).__name__}")
    # NOTE: "" is no Domain attribute at all, as Morsel leaves an empty one out.
    # NOTE: an empty label ("a..example", ".", "..") passed the pattern; browsers drop such a
    # cookie with no word, so the app's mistake showed as a login that never stuck.
    if not domain or _is_ipv6_literal(domain):
        return
    if not _COOKIE_DOMAIN.fullmatch(domain) or ".." in domain or domain == ".":
        # NOTE: a port ("localhost:8000", what domain=request.host gives) was let through, and
        # browsers drop the cookie (RFC 6265 5.3 step 6: the host never domain-matches it).
        raise ValueError(
            "cookie domain must be a host name without a port (an international one in its "
            f"IDNA form, 'xn--...') or an IP address (IPv6 in brackets): {domain!r}"
        )


def _is_ipv6_literal(domain: str) -> bool:
    found = _IPV6_DOMAIN.fullmatch(domain)
    if found is None:
        return False
    try:
        ipaddress.IPv6Address(found.group(1))
    except ValueError:
        return False
    return True
