"""The request target and the Host header: what microweb accepts of them (RFC 9112 3.2)."""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from urllib.parse import quote, unquote_to_bytes

from ._errors import HTTPError
from ._percent import HEX_DIGITS

# SPEC: RFC 9112 3.2.2, absolute-form: a scheme, "://" and an authority, then the path.
_ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*")
# SPEC: RFC 9110 7.2, Host is uri-host [":" port]; of RFC 3986's hosts only a name of unreserved
# characters, an IPv4 address or a bracketed IPv6 address, so no userinfo, "/", "?", "#" or "%".
# A port has at most five digits and is at most 65535; RFC 3986 3.2.3 lets it be empty.
_HOST = re.compile(r"(?:[A-Za-z0-9._~-]+|\[([0-9A-Fa-f:.]+)\])(?::([0-9]{0,5}))?")


# SPEC: RFC 3986 3.3, a path segment's characters beside the unreserved ones (which quote()
# keeps): sub-delims, ":" and "@". request.url keeps them as the client sent them, as Werkzeug
# does; "?", "#", "%", spaces and non-ASCII are percent-encoded.
PATH_SAFE = "/!$&'()*+,;=:@"
# NOTE: what a query string in a URL keeps as it came: printable ASCII but "#", which would
# start a fragment, and the characters a URI cannot hold (RFC 3986 2, as Response.redirect
# encodes them): a raw ">" ended the "<url>" of a Link header built from request.url, and
# let the client add parameters after it. A raw non-ASCII byte (a client that sent "?q=é"
# unencoded) is percent-encoded: decoded as Latin-1, "é" in UTF-8 read as "Ã©", and a next=
# link built from it led elsewhere.
_QUERY_SAFE = bytes(c for c in range(0x21, 0x7F) if c not in b'#"<>\\^`{|}')
_QUERY_UNSAFE = re.compile(b"[^%s]" % re.escape(_QUERY_SAFE))


def query_text(query: bytes) -> str:
    """Return a raw query string as URL text, percent-encoding what a URL cannot hold."""
    if _QUERY_UNSAFE.search(query) is None:
        return query.decode("ascii")
    return quote(query, _QUERY_SAFE)


def target_path(target: bytes, method: str) -> bytes | None:
    """Return the path of a request target (RFC 9112 3.2), still percent-encoded.

    Origin-form (``/a/b``) is the path itself, its leading slashes collapsed into one;
    absolute-form (``http://host/a/b``) gives its path (``/`` when empty); asterisk-form (``*``)
    is kept for ``OPTIONS``. ``None`` for any other target, which routing answers with 400.
    """
    if target[:1] == b"/":
        # NOTE: "//evil.example" would read as a host in a relative redirect to request.path.
        return target if target[1:2] != b"/" else b"/" + target.lstrip(b"/")
    if target == b"*":
        return target if method == "OPTIONS" else None
    found = _ABSOLUTE_FORM.match(target)
    if found is None:
        return None
    return target_path(target[found.end() :] or b"/", method)


# NOTE: a target in absolute-form: a scheme, then "://" (RFC 3986 3.1); its authority runs to
# the first "/", "?" or "#".
_SCHEME = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")
# SPEC: RFC 3986 3.2.2 and 3.2.3, host [":" port] with no userinfo (RFC 9110 4.2.4): a
# reg-name of unreserved characters, sub-delims and escapes (not empty: RFC 9110 4.2.1), or a
# bracketed IPv6 address (checked by ipaddress) or IPvFuture; a port of digits, or empty (the
# scheme's default: RFC 3986 3.2.3).
# NOTE: each alternative starts with a byte of its own, so a match takes linear time. A
# reg-name's "%" is taken as one of its bytes, and its escapes checked apart (_BAD_ESCAPE):
# "(?:[...]|%XX)+" kept a backtracking point for each byte it repeated, a 64 KiB host took
# 8.5 MB and 28 ms to read (90 ms to refuse), in any request's head (attack383).
_AUTHORITY = re.compile(
    rb"(?:[A-Za-z0-9._~!$&'()*+,;=%-]+"
    rb"|\[([0-9A-Fa-f:.]+)\]"
    rb"|\[v[0-9A-Fa-f]+\.[A-Za-z0-9._~!$&'()*+,;=:-]+\])"
    rb"(?::([0-9]*))?"
)
# NOTE: the schemes whose targets are served: RFC 9110 4.2's, in any case (RFC 3986 3.1).
_SERVED_SCHEMES = (b"http://", b"https://")
# NOTE: a "%" that starts no escape of two hex digits.
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def authority_refusal(target: bytes) -> str | None:
    """Say why the authority of a request target in absolute-form is refused (a 400 under
    each way ``microweb serve`` runs); ``None`` for a good one, or a target in another form.

    The scheme is ``http`` or ``https``, in any case. The authority is ``host[:port]``
    (RFC 3986 3.2): no userinfo, a host not empty, a port of digits up to 65535, or empty; the
    path starts after it (a ``/``, a ``?`` or nothing, not ``#``).
    """
    # SPEC: RFC 9112 3.2.2, absolute-form = absolute-URI. NOTE: h11 read "http://[/url" as
    # the path /url, where httptools and Waitress answer 400; Waitress and h11 served a port
    # past 65535 or not digits, and userinfo, which httptools served (hostile7).
    scheme = _SCHEME.match(target)
    if scheme is None:
        return None
    start = scheme.end()
    if target[:start].lower() not in _SERVED_SCHEMES:
        # SPEC: RFC 9110 4.2, an origin server is authoritative for http and https URIs.
        # NOTE: RFC 3986 3.1 lets a scheme hold digits, "+", "." and "-", which httptools
        # refuses as it parses the request line (400); Waitress and h11 served "svn+ssh://h/"
        # as "http://h/" (hostile8). Each refuses any scheme but these two now.
        return "absolute-form target of a scheme not served"
    ends = [end for end in (target.find(b"/", start), target.find(b"?", start)) if end >= 0]
    end = min(ends) if ends else len(target)
    authority = target[start:end]
    if b"#" in authority:
        return "absolute-form target with a fragment before its path"
    if b"@" in authority:
        # SPEC: RFC 9110 4.2.4, a recipient SHOULD treat userinfo as an error (phishing).
        return "absolute-form target with userinfo"
    found = _AUTHORITY.fullmatch(authority)
    if found is None or (b"%" in authority and _BAD_ESCAPE.search(authority)):
        return "absolute-form target with a malformed authority"
    address, port = found.groups()
    if address is not None:
        try:
            ipaddress.IPv6Address(address.decode("ascii"))
        except ValueError:
            return "absolute-form target with a malformed IPv6 address"
    # NOTE: its leading zeros stripped first: int() refuses more than 4300 digits (a
    # ValueError, no answer under Waitress and h11, for "http://h:" and 5000 zeros).
    digits = b"" if port is None else port.lstrip(b"0")
    if len(digits) > 5 or int(digits or b"0") > 65535:
        return "absolute-form target with a port past 65535"
    return None


def strip_root(path: bytes, root: bytes) -> bytes:
    """Return ``path`` without the ``root`` the app is mounted at (both still percent-encoded).

    Servers differ on whether the path they pass includes the root path; both forms are taken.
    The root is compared decoded, as a path is routed and as a WSGI server compares its decoded
    ``PATH_INFO`` with ``SCRIPT_NAME`` (``/app%2Fx`` is under ``/app``), once the path's leading
    slashes, ``%2F`` included, collapse into one (``/%2Fapp/x`` is under it too). The mount
    point itself is the app's ``/``, and the leading slashes of what is left collapse into one,
    as they do in a path without a root.
    """
    if not root:
        return path
    sent = path
    if path[1:2] == b"/" or path[1:4] in _SLASH_ESCAPE:
        # NOTE: "/%2Fapp/x" is "//app/x" decoded, whose leading slashes collapse (as Waitress
        # collapses them before it takes its url_prefix out): Waitress served /x, and Uvicorn
        # answered 404 (review161).
        path = b"/" + path[leading_slashes(path) :]
    if path == root or path.startswith(root + b"/"):
        rest = path[len(root) :]
    elif b"%" not in root and b"%" not in path:
        return sent  # NOTE: with no escape on either side, there is no other way to write it.
    else:
        # NOTE: the same root written another way ("/caf%c3%a9" for "/caf%C3%A9", "/a!b" for
        # "/a%21b", "/app%2Fx" for "/app/x").
        below = _below_written_root(path, unquote_to_bytes(root))
        if below is None:
            return sent
        rest = below
    # NOTE: "/app//x" left "//x", which routed nowhere under ASGI while Waitress, which
    # collapses before it takes its url_prefix out, answered "/x".
    return b"/" + rest.lstrip(b"/") if rest[1:2] == b"/" or not rest else rest


_SLASH_ESCAPE = frozenset([b"%2F", b"%2f"])
# NOTE: the bytes a run of "/" and "%2F" can hold, each one way only: no repeated group.
_SLASHES_AND_ESCAPES = re.compile(rb"[/%2Ff]*")


def leading_slashes(path: bytes) -> int:
    """Return how many bytes of ``path`` are the ``/`` and ``%2F`` (``%2f``) it starts with."""
    # PERF: "(?:/|%2[Ff])+" kept a backtracking point for each one it repeated: a 256 KiB
    # target of "/%2F////..." took 38 MB while it was read (146 bytes a byte), in every request
    # to an app under a root path (hostile5). Here each escape is marked by one byte that can't
    # be in the run otherwise; what the marks and slashes start is the run.
    run = _SLASHES_AND_ESCAPES.match(path)
    marked = path[: run.end() if run else 0].replace(b"%2F", b"\0").replace(b"%2f", b"\0")
    slashes = len(marked) - len(marked.lstrip(b"/\0"))
    return slashes + 2 * marked.count(b"\0", 0, slashes)


def _below_written_root(path: bytes, root: bytes) -> bytes | None:
    """The part of ``path`` after its first segments when they decode to ``root``, else None."""
    decoded = bytearray()
    index = 0
    while len(decoded) < len(root) and index < len(path):
        escape = path[index : index + 3]
        if escape[:1] == b"%" and len(escape) == 3 and not escape[1:].translate(None, HEX_DIGITS):
            decoded.append(int(escape[1:], 16))
            index += 3
        else:
            decoded.append(path[index])
            index += 1
    if decoded != root:
        return None
    rest = path[index:]
    if not rest or rest[:1] == b"/":
        return rest
    return b"/" + rest[3:] if rest[:3] in _SLASH_ESCAPE else None


_PERCENT_ESCAPE = re.compile("%[0-9A-Fa-f]{2}")


def root_path_refused(root_path: str, option: str) -> str | None:
    """Say why ``root_path`` can't be the prefix an app is mounted at, naming it ``option``
    (``microweb serve --root-path``, ``TestClient(root_path=)``); ``None`` if it can."""
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in root_path):
        # NOTE: bytes of no UTF-8 come from the command line as surrogates, which no URL can
        # hold; a control character would be a path no client sends as it is. Not all that
        # isprintable() refuses: a no-break space, or the zero-width non-joiner that Persian
        # writes inside words, is text a browser sends (review307).
        return f"{option} must be printable UTF-8 text, got {root_path!r}"
    if "?" in root_path or "#" in root_path:
        # NOTE: the app was served where no request came: a client's "?" or "#" ends the path.
        return f"{option} must be a path alone, with no '?' or '#', got {root_path!r}"
    if _PERCENT_ESCAPE.search(root_path):
        # NOTE: both servers match the root with the decoded path, so no request came under
        # "/a%2Fb" ("/a%2Fb/x" is "/a/b/x" decoded), and "/caf%C3%A9" was not "/café".
        return (
            f"{option} is matched with the decoded path: write {root_path!r} decoded, "
            "with no %-escape"
        )
    if any(segment in (".", "..") for segment in root_path.split("/")):
        # NOTE: a client resolves dot segments before it sends a path (RFC 3986 5.2.4), so no
        # request ever came under "/a/../b", and url_for() wrote links that led out of the app.
        return (
            f"{option} must have no '.' or '..' segment, got {root_path!r}; write the "
            "path it stands for"
        )
    return None


def valid_host(host: str) -> bool:
    """Tell whether ``host`` is a ``name[:port]``, ``ipv4[:port]`` or ``[ipv6][:port]``."""
    match = _HOST.fullmatch(host)
    if match is None:
        return False
    ipv6, port = match.groups()
    if port and int(port) > 65535:
        return False
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            return False
    return True


def check_host(hosts: list[str]) -> str:
    """Return the one ``Host`` value of ``hosts`` when it is ``host[:port]``.

    Raises:
        HTTPError: 400 for more than one value, or one that is not ``host[:port]``.
    """
    # SPEC: RFC 9112 3.2, more than one Host or an invalid one is answered with 400.
    # NOTE: a WSGI server joins repeated headers with ", "; no valid host has a comma.
    if len(hosts) > 1 or "," in hosts[0]:
        raise HTTPError(400, "more than one Host header")
    if not valid_host(hosts[0]):
        raise HTTPError(400, "invalid Host header")
    return without_empty_port(hosts[0])


def without_empty_port(host: str) -> str:
    """Return a valid ``host[:port]`` without the ``:`` of an empty port (``example.com:``)."""
    # SPEC: RFC 3986 3.2.3 and 6.2.3, an empty port is the scheme's default one, and a URL is
    # normalised without its ":". NOTE: "example.com:" was kept, in request.url and absolute
    # links, where TrustedHosts compared "example.com".
    return host[:-1] if host.endswith(":") else host


# NOTE: a client-chosen header value quoted in a log line is cut to this many characters: a
# 64 KiB Host or Origin was logged whole, one line of 64 KiB per request (review96).
LOGGED_VALUE = 200


def clipped(value: str | None) -> str | None:
    """Return ``value`` cut to ``LOGGED_VALUE`` characters, marked with ``...`` when it was."""
    if value is None or len(value) <= LOGGED_VALUE:
        return value
    return value[:LOGGED_VALUE] + "..."
