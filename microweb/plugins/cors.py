"""Cross-Origin Resource Sharing: answer preflight requests and label cross-origin responses.

SPEC: the Fetch standard, "CORS protocol" (https://fetch.spec.whatwg.org/#http-cors-protocol).
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable

from microweb import App, Request, Response
from microweb._parsing import header_value

from ._vary import add_vary
from .csrf import DEFAULT_PORTS, own_origin, parse_origin

DEFAULT_METHODS = ("GET", "HEAD", "POST")
# NOTE: browsers may send these without asking; content-type is listed so that JSON APIs work
# once the origin itself is allowed.
ALWAYS_ALLOWED_HEADERS = frozenset(
    {"accept", "accept-language", "content-language", "content-type"}
)
# SPEC: RFC 9110 5.6.2: methods and field names are tokens; an ASCII token stays one when
# upper- or lower-cased (other latin-1 text may not: "\xff".upper() is "\u0178").
TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# SPEC: RFC 6454 6.1: a serialized origin is ASCII (scheme, host in punycode, port) or "null".
ORIGIN = re.compile(r"[\x21-\x7e]+")
# NOTE: the longest Origin the app's allow_origin_regex is tried on; a longer one matches no
# regex (a listed one is still matched). A browser sends scheme://host[:port], and a host name
# has 253 characters at most (RFC 1035 2.3.4): room for the rest twice over. The regex is the
# app's, and Python's re may take quadratic time or worse: r"https://.*\..*\.example\.com"
# took 0.2 s of CPU on 16 KiB of "a." (a head Waitress and httptools let through is 256 KiB),
# 0.2 ms on 512 characters (timeit, 2026-12-07).
MAX_ORIGIN_SIZE = 512
# NOTE: the longest Access-Control-Request-Headers read; a longer one is refused. Browsers list
# the few headers a script set; each name costs Python work and is echoed: 256 KiB of names (a
# head Waitress accepts) took up to 120 ms and made a 1.7 MB refusal; 8 KiB takes 3 ms.
MAX_REQUEST_HEADERS_SIZE = 8192
# NOTE: a client's value quoted in a refusal is cut to this many characters: an Origin was
# quoted whole, up to the server's head limit.
SHOWN_VALUE = 100
# NOTE: and at most this many header names: 1,300 malformed names, each cut, made a 14 KB
# refusal, and the names refused as not allowed were quoted whole, up to 8 KiB.
SHOWN_NAMES = 3

Flow = Generator[Response | None, Response, None]


def _names(values: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(values, str):
        raise TypeError(f"{what} takes a list of strings, not one string: [{values!r}]")
    return tuple(values)


def _tokens(values: Iterable[str], what: str, kind: str) -> tuple[str, ...]:
    """The items of a list option, each a method or header name (or ``*``).

    Raises:
        TypeError: If ``values`` is one string, or holds something else than strings.
        ValueError: For an item that is not a token.
    """
    names = _names(values, what)
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"{what} takes a list of strings, not one holding {name!r}")
        # NOTE: "GET\n" or "x-b " never matched, "x-a\n" in expose_headers made every labelled
        # answer a 500 (a header value with a line break), "P\xc4TCH" went out as no token.
        if not TOKEN.fullmatch(name):
            raise ValueError(
                f"{what} takes {kind} names (letters, digits and !#$%&'*+-.^_`|~), not {name!r}"
            )
    return names


def _allowed_origins(values: Iterable[str]) -> frozenset[str]:
    """The allowed origins as browsers send them in ``Origin``.

    Raises:
        ValueError: For one no browser sends, which would never match: one with a path, a host
            with no scheme.
    """
    origins = set()
    for text in _names(values, "allow_origins"):
        if not isinstance(text, str):
            # NOTE: None (an unset setting) was an AttributeError.
            raise TypeError(f"allow_origins takes a list of strings, not one holding {text!r}")
        if text != "*":
            origins.add(_serialized(text))
    return frozenset(origins)


def _serialized(text: str) -> str:
    # NOTE: "https://app.example/" was always taken, an extension's origin as well.
    trimmed = text.removesuffix("/")
    scheme, separator, rest = trimmed.partition("://")
    if scheme.lower() in DEFAULT_PORTS:
        # NOTE: an IPv6 host as browsers write it (parse_origin: "[0:0::1]" is "[::1]");
        # a bracketed one that is no IPv6 address is none.
        origin = parse_origin(trimmed) if trimmed == trimmed.strip() else None
        if origin is not None:
            # NOTE: as a browser serializes it: lower case, and no default port (":443").
            default = origin.port == DEFAULT_PORTS[origin.scheme]
            return f"{origin.scheme}://{origin.host}" + ("" if default else f":{origin.port}")
    elif text == "null" or (separator and rest and "/" not in rest and ORIGIN.fullmatch(trimmed)):
        return trimmed.lower()  # NOTE: a browser extension's (chrome-extension://...), say.
    raise ValueError(
        f"allowed origin {text!r} is not one a browser sends: write scheme://host[:port], such "
        f"as 'https://app.example' (no path), 'null', or '*'{_hint(trimmed)}"
    )


def _hint(origin: str) -> str:
    if origin.strip() == "*":
        return "; write '*' with no spaces"
    name, _, port = origin.partition("://")[2].partition(":")
    if "*" in port:
        return "; for any port, give allow_origin_regex=r'https://app\\.example(:[0-9]+)?'"
    if "*" in name:
        return "; for subdomains, give allow_origin_regex=r'https://[a-z0-9-]+\\.example\\.com'"
    if not origin.isascii():
        # NOTE: a browser sends an internationalized host in its ASCII form.
        return "; write an internationalized host as its 'xn--' ASCII form"
    return ""


def _header_list(value: str) -> list[str] | None:
    """The names of an ``Access-Control-Request-Headers`` value, in lower case, each once (where
    first listed); ``None`` when it is too long."""
    if len(value) > MAX_REQUEST_HEADERS_SIZE:
        return None
    # NOTE: "X-A, x-a, X-A" was answered "x-a, x-a, x-a": one name, said three times.
    names = (item.strip().lower() for item in value.split(","))
    return list(dict.fromkeys(name for name in names if name))


# NOTE: response headers a page never reads (Set-Cookie), or that CORS itself sets.
_NOT_EXPOSED = frozenset(
    {
        "set-cookie",
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-expose-headers",
    }
)


class CORS:
    """Let browsers call the app from other origins, within the limits given here.

    A cross-origin request (one with an ``Origin`` header) from an allowed origin gets
    ``Access-Control-Allow-Origin`` (``*`` without credentials, which every request gets, with
    an ``Origin`` or not); a preflight request (``OPTIONS`` with
    ``Access-Control-Request-Method``) is answered with 204 by the plugin's flow, before routing,
    or refused with 400 when the origin, method or headers are not allowed (or malformed, or
    listed in more than 8192 characters, ``MAX_REQUEST_HEADERS_SIZE``). A
    WebSocket handshake from an origin that is neither allowed nor the app's own is refused
    (the client gets 403): browsers do not apply CORS to WebSockets, so the server must.

    Args:
        allow_origins: Origins allowed, such as ``["https://example.com"]``; ``["*"]`` allows
            every origin. By default every origin, unless ``allow_origin_regex`` is given.
        allow_origin_regex: A regular expression an allowed origin must match in full, such as
            ``r"https://[a-z0-9-]+\\.example\\.com"``; it never admits ``null``, which must be
            listed in ``allow_origins``, and is not tried on an origin longer than
            ``MAX_ORIGIN_SIZE`` (512) characters, which no browser sends.
        allow_methods: Methods a preflight may ask for; ``["*"]`` allows every method.
        allow_headers: Request headers a preflight may ask for (besides ``Accept``,
            ``Accept-Language``, ``Content-Language`` and ``Content-Type``); ``["*"]`` allows all.
        allow_credentials: Let browsers send cookies and ``Authorization``; the origin is then
            echoed, never ``*``.
        expose_headers: Response headers that scripts of the other origin may read.
        max_age: Seconds a browser may cache a preflight answer.

    Raises:
        TypeError: If a list argument is given as a single string or holds something else
            than strings, ``allow_origin_regex`` is not a ``str``, or ``max_age`` is not an
            ``int``.
        ValueError: If ``max_age`` is negative, an allowed origin is not one a browser sends
            (with a path, or with no scheme), ``allow_origin_regex`` is empty, or a method or
            header name is not a token.
    """

    name = "cors"

    def __init__(
        self,
        allow_origins: Iterable[str] | None = None,
        *,
        allow_origin_regex: str | None = None,
        allow_methods: Iterable[str] = DEFAULT_METHODS,
        allow_headers: Iterable[str] = (),
        allow_credentials: bool = False,
        expose_headers: Iterable[str] = (),
        max_age: int = 600,
    ) -> None:
        pattern = getattr(allow_origin_regex, "pattern", allow_origin_regex)
        if allow_origin_regex is not None and not isinstance(pattern, str):
            # NOTE: a bytes pattern was taken, and each request with an unlisted Origin was
            # a 500: it cannot match the str origin.
            raise TypeError(f"allow_origin_regex takes a str, not {allow_origin_regex!r}")
        if allow_origin_regex == "":
            # NOTE: taken for no regex, it allowed every origin ("*"): an unset setting, say.
            raise ValueError("allow_origin_regex is empty: give None to match by list only")
        if allow_origins is None:
            allow_origins = () if allow_origin_regex else ("*",)
        if not isinstance(max_age, int) or isinstance(max_age, bool):
            # SPEC: Fetch, Access-Control-Max-Age is a number of whole seconds: "1.5" and
            # "True" went out, which browsers ignore.
            raise TypeError(f"max_age takes an int of seconds, not {max_age!r}")
        if max_age < 0:
            raise ValueError(f"max_age must be 0 or more seconds, got {max_age}")
        origins = _names(allow_origins, "allow_origins")
        self.any_origin = "*" in origins
        self.origins = _allowed_origins(origins)
        self.origin_regex = re.compile(allow_origin_regex) if allow_origin_regex else None
        methods = {m.upper() for m in _tokens(allow_methods, "allow_methods", "method")}
        self.any_method = "*" in methods
        self.allowed_methods = tuple(sorted(methods - {"*"}))
        headers = {h.lower() for h in _tokens(allow_headers, "allow_headers", "header")}
        self.any_header = "*" in headers
        self.allowed_headers = frozenset(headers - {"*"}) | ALWAYS_ALLOWED_HEADERS
        self.allow_credentials = allow_credentials
        # NOTE: an item that lists several ("X-A, X-B") went out as written, and still does.
        # NOTE: an item that is no str goes to _tokens() as it is, which names it (stripped, it
        # was an AttributeError).
        exposed = [
            name.strip(" \t") if isinstance(name, str) else name
            for item in _names(expose_headers, "expose_headers")
            for name in (item.split(",") if isinstance(item, str) else [item])
            if not isinstance(name, str) or name.strip(" \t")
        ]
        self.expose_headers = ", ".join(_tokens(exposed, "expose_headers", "header"))
        # SPEC: Fetch, "CORS-unsafe response header names": with credentials, a "*" in
        # Access-Control-Expose-Headers is a header's name, no wildcard; such answers name
        # their own headers instead (label()).
        self._expose_each = allow_credentials and "*" in exposed
        self.max_age = max_age

    @property
    def varies(self) -> bool:
        """Whether answers depend on the ``Origin`` header (all but plain ``*``)."""
        return not self.any_origin or self.allow_credentials

    def setup(self, app: App) -> None:
        """Add the flow that answers preflights and labels responses."""
        app.middleware(self.flow)

    def flow(self, request: Request) -> Flow:
        """Answer a preflight request, or label the response of any other request.

        A WebSocket handshake (the inner stack's response has status 101) from an origin that
        is neither allowed nor the app's own is refused instead.
        """
        origin = header_value(request.headers, "origin")
        if origin is not None and _is_preflight(request):
            yield self.preflight(request, origin)
            return
        try:
            response = yield None
        except Exception:
            response = yield None  # NOTE: label the response the error becomes, 500s included.
        if response.status == 101 and origin is not None and not self._may_open(request, origin):
            yield Response.text(f"WebSocket origin {shown(origin)} is not allowed", status=403)
            return
        if self.varies:
            add_vary(response, "Origin")
        if origin is not None:
            self.label(response, origin)
        elif not self.varies:
            # SPEC: Fetch, "CORS protocol and HTTP caches": a "*" is sent to every request,
            # with an Origin or not, since no Vary says that the answer depends on it; else a
            # cache would hand the answer to a navigation, without the header, to a script.
            self.label(response, "*")

    def _may_open(self, request: Request, origin: str) -> bool:
        """Whether a page of ``origin`` may open the WebSocket: an allowed origin or the app's."""
        # NOTE: the app's own pages are no cross-origin caller: a list of partners' origins
        # refused the handshakes of the app's own pages (review92).
        if self.allowed_origin(origin) is not None:
            return True
        own = own_origin(request)
        return own is not None and parse_origin(origin) == own

    def allowed_origin(self, origin: str) -> str | None:
        """Return the ``Access-Control-Allow-Origin`` value for ``origin``, ``None`` if refused."""
        if self.any_origin and not self.allow_credentials:
            return "*"
        if not ORIGIN.fullmatch(origin):
            return None  # NOTE: an origin that is echoed must be fit for a header.
        if origin in self.origins:
            return origin
        if origin == "null":
            # NOTE: "null" (sandboxed pages, file: URLs, any site's sandboxed iframe) is echoed
            # only when listed: a regex such as ".*" echoed it, with credentials too.
            return None
        regex = self.origin_regex
        if regex is not None and len(origin) <= MAX_ORIGIN_SIZE and regex.fullmatch(origin):
            return origin
        return origin if self.any_origin else None

    def label(self, response: Response, origin: str) -> None:
        """Add the CORS headers of an actual (not preflight) request to ``response``."""
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return
        response.headers["access-control-allow-origin"] = allowed
        if self.allow_credentials:
            response.headers["access-control-allow-credentials"] = "true"
        if self._expose_each:
            # NOTE: "*" exposed nothing to a page that sent its cookies: browsers read it as a
            # header called "*" then. The answer's own names say what "*" meant.
            # NOTE: in lower case, as the answer's own are: "X-Total" listed went out with
            # "x-total" after it, one header named twice.
            named = [name.lower() for name in self.expose_headers.split(", ") if name != "*"]
            own = (name for name, _ in response.headers.items() if name not in _NOT_EXPOSED)
            exposed = ", ".join(dict.fromkeys([*named, *own]))
            if exposed:
                response.headers["access-control-expose-headers"] = exposed
        elif self.expose_headers:
            response.headers["access-control-expose-headers"] = self.expose_headers

    def preflight(self, request: Request, origin: str) -> Response:
        """Answer a preflight request: 204 with the permissions, or 400 naming what is refused."""
        allowed = self.allowed_origin(origin)
        method = (header_value(request.headers, "access-control-request-method") or "").strip()
        if allowed is None:
            return self._refuse(f"origin {shown(origin)} is not allowed")
        if not TOKEN.fullmatch(method):
            return self._refuse(f"method {shown(method)} is not a valid method name")
        # SPEC: Fetch, "CORS-preflight fetch": the method is matched case-sensitively. A
        # browser upper-cases only DELETE, GET, HEAD, OPTIONS, POST and PUT; it sends "patch" as
        # written, and an answer that allows "PATCH" fails the request in the browser.
        if not self.any_method and method not in self.allowed_methods:
            return self._refuse(f"method {shown(method)} is not allowed{self._case_hint(method)}")
        asked = _header_list(header_value(request.headers, "access-control-request-headers") or "")
        if asked is None:
            size = MAX_REQUEST_HEADERS_SIZE
            return self._refuse(f"Access-Control-Request-Headers is longer than {size} characters")
        malformed = [name for name in asked if not TOKEN.fullmatch(name)]
        if malformed:
            return self._refuse(
                _said_of(malformed, "is not a valid header name", "are not valid header names")
            )
        refused = [
            name for name in asked if not self.any_header and name not in self.allowed_headers
        ]
        if refused:
            return self._refuse(_said_of(refused, "is not allowed", "are not allowed"))
        response = Response(b"", 204)
        headers = response.headers
        headers["access-control-allow-origin"] = allowed
        headers["access-control-allow-methods"] = self._methods_value(method)
        if asked:
            headers["access-control-allow-headers"] = ", ".join(asked)
        if self.allow_credentials:
            headers["access-control-allow-credentials"] = "true"
        headers["access-control-max-age"] = str(self.max_age)
        if self.varies:
            add_vary(response, "Origin")
        return response

    def _case_hint(self, method: str) -> str:
        if method.upper() == method or method.upper() not in self.allowed_methods:
            return ""
        return f" (methods are case-sensitive: a page's fetch() must send {method.upper()!r})"

    def _methods_value(self, method: str) -> str:
        if not self.any_method:
            return ", ".join(self.allowed_methods)
        # SPEC: with credentials, "*" is a literal method name, so echo the one asked for.
        return method if self.allow_credentials else "*"

    def _refuse(self, reason: str) -> Response:
        response = Response.text(
            f"CORS preflight refused: {reason}",
            status=400,
            headers={"x-content-type-options": "nosniff"},
        )
        if self.varies:
            add_vary(response, "Origin")
        return response


def shown(value: str) -> str:
    """Return ``value`` quoted for a refusal's text: cut to ``SHOWN_VALUE`` characters (marked
    with ``...``), with control, non-ASCII and HTML-significant characters escaped."""
    text = ascii(value[:SHOWN_VALUE])
    for char in "<>&":
        text = text.replace(char, f"\\x{ord(char):02x}")
    return text + ("..." if len(value) > SHOWN_VALUE else "")


def _said_of(names: list[str], one: str, many: str) -> str:
    """Say of header ``names`` ``one`` (for one name) or ``many``: the first ``SHOWN_NAMES``,
    each ``shown()``, then how many more."""
    if len(names) == 1:
        return f"header {shown(names[0])} {one}"
    more = len(names) - SHOWN_NAMES
    listed = ", ".join(map(shown, names[:SHOWN_NAMES])) + (f" and {more} more" if more > 0 else "")
    return f"headers {listed} {many}"


def _is_preflight(request: Request) -> bool:
    return request.method == "OPTIONS" and "access-control-request-method" in request.headers
