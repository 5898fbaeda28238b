"""Limits on what a request may make the server hold (DESIGN.md section 3)."""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB
MAX_INT_DIGITS = 4300
"""The most digits of an integer read from a request (a JSON number, an ``{n:int}`` segment):
CPython's default ``int()`` limit, kept where the app or a Python before 3.10.7 lifts it, as
``int()`` takes time quadratic in the digits (0.29 s for 250,000)."""
MAX_JSON_DEPTH = 512
"""The default ``Limits.max_json_depth``: the most lists and objects a JSON body or WebSocket
message nests (deeper: 400, or 1007), the same on every Python and stack, and well within what
``json`` can write back."""


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on request bodies and forms; set per app and overridable per route.

    Args:
        max_body_size: Bytes of any request body, however it is read (413 past it).
        max_json_size: Bytes of a body read by ``json()``/``ajson()`` (413 past it; the
            smaller of it and ``max_body_size`` holds), and of a WebSocket message read by
            ``receive_json()`` (the connection closes with 1009).
        max_json_depth: Lists and objects nested in one another in a body read by
            ``json()``/``ajson()`` (400) or a message read by ``receive_json()`` (1007). Past
            about 900, the interpreter's stack may stop the parse first (the same 400), and
            ``json`` may fail to write such a value back.
        max_form_parts: Fields and files in one form (413).
        max_form_files: Files in one form (413): each one past ``spool_threshold`` holds a
            file descriptor until the request ends.
        max_field_size: Bytes of one text field held in memory (413).
        max_form_memory: Bytes of all text fields of one form together (413).
        max_part_header_size: Bytes of the headers of one multipart part (413).
        max_part_headers: Header lines of one multipart part (413).
        max_form_header_size: Bytes of the headers of all the parts of one multipart body
            together (413).
        spool_threshold: Bytes of a form's files held in memory together; past them, a file
            moves to a temporary file.
        max_query_params: Fields of a query string or urlencoded body (400).
        max_websocket_message: Bytes of one WebSocket message (the connection closes with 1009).
        max_headers: Header lines of a request, checked when ``request.headers`` (or what is
            read from them: the host, the cookies) is first read (431). The app's only: a
            route's is not used, and a route's mapping of limits may not name it.
    """

    max_body_size: int = 10 * MiB
    # NOTE: parsed JSON takes far more memory and time than its text: 10 MiB of "[[],[],...]"
    # took 0.85 s of CPU (the GIL, or an ASGI server's event loop, held throughout) and
    # 229 MB of RSS; of "[1.5,1.5,...]" 0.75 s (2-CPU VM, 2026-12-03). 1 MiB is Fastify's and
    # koa-bodyparser's default.
    max_json_size: int = 1 * MiB
    # NOTE: the interpreter's stack was the only bound: the depth a parse reached (974 to 9,991,
    # by the Python and the stack) was a 500 when the app sent the value back (review293).
    max_json_depth: int = MAX_JSON_DEPTH
    max_form_parts: int = 1000
    # NOTE: Django's DATA_UPLOAD_MAX_NUMBER_FILES is 100 too (CVE-2023-24580). With only
    # max_form_parts, one form of a 1 MiB file and 999 one-byte ones (1.1 MB) held 1,000 file
    # descriptors: a client that stopped there kept them, and Uvicorn, at the usual limit of
    # 1,024, could accept no connection until it timed out (memory131).
    max_form_files: int = 100
    max_field_size: int = 64 * KiB
    max_form_memory: int = 1 * MiB
    max_part_header_size: int = 4 * KiB
    max_part_headers: int = 8
    # NOTE: multipart parses a part's quoted values in Python, and one with a backslash in a
    # per-character loop: 999 parts of one 4 KB name full of '\";' (4 MB, each part under
    # max_part_header_size) took 250 ms of CPU, 63 ms a MB, in one request; 512 KiB of them
    # take 35 ms. A form of 1,000 fields with 200 bytes of headers each fits in 200 KB
    # (hostile140).
    max_form_header_size: int = 512 * KiB
    spool_threshold: int = 1 * MiB
    max_query_params: int = 1000
    max_websocket_message: int = 1 * MiB
    # NOTE: each header line becomes a tuple of two str: 50,000 lines (within the 256 KiB head
    # that microweb serve lets Uvicorn take) took 23 ms to read and 8.5 MB, on top of the
    # server's own list, kept while the request lasts, and each lookup scanned them (1 ms).
    # Browsers send 10 to 20; HTTP/2 may send each cookie on a line of its own (RFC 9113
    # 8.2.3), and a browser keeps up to 180 cookies a site (hostile140).
    max_headers: int = 1000

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"Limits.{field.name} must be a whole number >= 0, got {value!r}")

    def replace(self, **changes: int) -> Limits:
        """Return a copy with some limits changed.

        Raises:
            TypeError: If a name is not a limit.
            ValueError: If a value is negative or not a whole number, as at construction.
        """
        return dataclasses.replace(self, **changes)


RouteLimits = Limits | Mapping[str, int]


def check_route_limits(override: RouteLimits | None, path: str) -> None:
    """Refuse, at registration, a route's limits that ``resolve_limits`` could not apply.

    Args:
        override: The route's ``limits=``.
        path: The route's template, named in the error.

    Raises:
        TypeError: If it is neither a ``Limits`` nor a mapping, or a mapping names no limit.
        ValueError: If a mapping names ``max_headers`` or gives a value a ``Limits`` refuses.
    """
    if override is None or isinstance(override, Limits):
        return
    where = f"route {path!r}"
    if isinstance(override, type) and issubclass(override, Limits):
        raise TypeError(
            f"{where}: limits= takes a Limits or a dict, not the class Limits itself: call it, "
            "Limits(max_body_size=...), or pass a dict of the limits to change"
        )
    if not isinstance(override, Mapping):
        # NOTE: it was Python's "Limits.replace() argument after ** must be a mapping, not
        # int", at the app's registration, and a Router's at include() (review424).
        raise TypeError(
            f"{where}: limits= takes a Limits or a dict of limits to change, "
            f"not {type(override).__name__}"
        )
    if "max_headers" in override:
        raise ValueError(
            "max_headers is the app's limit, not a route's: the headers may be read before "
            "routing (by flows, as the plugins' are); set App(limits=Limits(max_headers=...))"
        )
    # NOTE: an unknown name was Python's "Limits.__init__() got an unexpected keyword
    # argument", from inside dataclasses.replace, naming no route (review424).
    for key in override:
        if key not in _ROUTE_LIMIT_NAMES:
            raise TypeError(f"{where}: limits= has no {key!r}{_near_limit(key)}")
    try:
        Limits(**override)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


_ROUTE_LIMIT_NAMES = tuple(f.name for f in dataclasses.fields(Limits) if f.name != "max_headers")


def _near_limit(key: object) -> str:
    """The tail of the error of an unknown route limit: a near name, and every name."""
    near = difflib.get_close_matches(key, _ROUTE_LIMIT_NAMES, n=1) if isinstance(key, str) else []
    guess = f" (did you mean {near[0]!r}?)" if near else ""
    return f"{guess}: a route's limits are {', '.join(_ROUTE_LIMIT_NAMES)}"


def resolve_limits(base: Limits, override: RouteLimits | None) -> Limits:
    """Combine the app's limits with a route's: a ``Limits`` replaces, a mapping amends.

    ``max_headers`` stays the app's.
    """
    if override is None:
        return base
    if isinstance(override, Limits):
        # NOTE: the headers are read with the limits current at their first read: a flow's
        # read, before routing, took the app's and a handler's the route's, so a route's
        # max_headers held only in an app with no flow that read them (review141).
        if override.max_headers == base.max_headers:
            return override
        return override.replace(max_headers=base.max_headers)
    return base.replace(**override)
