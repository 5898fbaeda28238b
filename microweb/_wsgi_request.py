"""The request as the WSGI driver builds it (``WSGIRequest``): its head read from the environ on
first use, the path as the client sent it (``RAW_URI``) or as PEP 3333 gives it."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from ._body import WSGIBody
from ._file_threads import ThreadHooks
from ._request import Request
from ._request_head import Address, owes_host
from ._target import strip_root, target_path
from ._types import Environ

# NOTE: each environ key met, with its header name ("" for a key that names no header); emptied
# when full, and a key longer than _NAMED_KEY_SIZE is not kept: a client names its headers.
_HEADER_NAMES: dict[str, str] = {}
_HEADER_NAMES_SIZE = 1024
_NAMED_KEY_SIZE = 64

# NOTE: an environ key a server may set (microweb serve's Waitress does): how many header lines
# the request came with, before the server joined those of one name into one value. Waitress
# served 1,500 Cookie lines, one joined Cookie to the app, where Uvicorn's app counted 1,500
# lines against Limits.max_headers and answered 431 (hostile8).
HEADER_LINES = "microweb.header_lines"


def _header_lines(environ: Environ) -> list[tuple[str, str]]:
    # NOTE: the server joined the lines of one name into one value (PEP 3333, CGI), so here
    # there is one line a name.
    # PERF: names looked up, not made from each key: 4.8 -> 2.2 us for an environ of Waitress's
    # with 7 headers (timeit, 2026-12-05).
    items = []
    names = _HEADER_NAMES
    for key, value in environ.items():
        name = names.get(key)
        if name is None:
            name = key[5:].replace("_", "-").lower() if key.startswith("HTTP_") else ""
            if len(key) <= _NAMED_KEY_SIZE:
                if len(names) >= _HEADER_NAMES_SIZE:
                    names.clear()
                names[key] = name
        if name:
            items.append((name, value))
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        value = environ.get(key)
        if value:
            items.append((name, value))
    return items


def native_bytes(text: str) -> bytes:
    """The bytes of a PEP 3333 native string (latin-1 text).

    A server that put characters past U+00FF in one has decoded the bytes as UTF-8 itself
    (PEP 3333 forbids it): encoded back as UTF-8, they are what the client sent. Encoded as
    latin-1, they raised out of the app, and the server answered its own 500 (review167).
    """
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _raw_path(environ: Environ) -> bytes:
    method = environ["REQUEST_METHOD"]
    uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not uri:
        path = native_bytes(environ.get("PATH_INFO", "")) or b"/"
        return quote(target_path(path, method) or path, safe="/*").encode("ascii")
    # NOTE: a fragment ("/a#b") is no part of a target (RFC 9112 3.2); Waitress keeps it in
    # RAW_URI (not in PATH_INFO), where Uvicorn's httptools drops it from raw_path.
    sent = native_bytes(str(uri).partition("?")[0].partition("#")[0])
    raw = target_path(sent, method)
    if raw is None:
        return sent  # NOTE: a target refused with 400; kept as sent, for logs.
    # NOTE: like ASGI's raw_path here, without the root path the app is mounted at; quoted
    # from its bytes, as text its latin-1 spelling of UTF-8 ("/cafÃ©") was encoded twice.
    root = native_bytes(environ.get("SCRIPT_NAME", "")).rstrip(b"/")
    return strip_root(raw, quote(root, safe="/").encode("ascii"))


class WSGIRequest(ThreadHooks, Request):
    """A request as the WSGI driver builds it: the head read from the environ on first use."""

    __slots__ = ()
    interface = "wsgi"
    may_block = True
    _raw: Environ

    def _read_raw_path(self) -> bytes:
        return _raw_path(self._raw)

    def _make_body(self, limit: Callable[[], int]) -> WSGIBody:
        return WSGIBody(self._raw)

    def _read_root_path(self) -> str:
        script_name = self._raw.get("SCRIPT_NAME")
        if not script_name:
            return ""
        # NOTE: without a final "/" (a SCRIPT_NAME of "/" is the root): root_path + path was
        # "//x", a host to a browser, in Static's redirect to a folder and a next= link.
        root: str = native_bytes(script_name).decode("utf-8", "replace")
        return root.rstrip("/")

    def _read_header_lines(self, limit: int) -> list[tuple[str, str]]:
        return _header_lines(self._raw)

    def _read_lines_sent(self) -> int:
        sent = self._raw.get(HEADER_LINES)
        return sent if type(sent) is int else 0

    def _read_content_type(self) -> str | None:
        environ = self._raw
        if "HTTP_CONTENT_TYPE" in environ:
            return str(environ["HTTP_CONTENT_TYPE"])
        return environ.get("CONTENT_TYPE") or None

    def _read_server(self) -> tuple[str, int | None] | None:
        port = self._raw.get("SERVER_PORT")
        name = self._raw.get("SERVER_NAME", "")
        if not name and not port:
            return None  # NOTE: as ASGI's server, none on a Unix socket (microweb serve).
        # NOTE: waitress-serve --unix-socket gives the socket's path as SERVER_PORT: int()
        # of it answered a request without Host with 500.
        return name, int(port) if port and port.isdigit() else None

    def _read_owes_host(self) -> bool:
        protocol: str = self._raw.get("SERVER_PROTOCOL", "")
        return protocol.startswith("HTTP/") and owes_host(protocol[5:])

    def _read_client(self) -> Address | None:
        environ = self._raw
        host = environ.get("REMOTE_ADDR")
        if not host:
            return None
        port = str(environ.get("REMOTE_PORT") or "0")
        return Address(host, int(port) if port.isdigit() else 0)
