"""The targets Uvicorn's httptools protocol (``BoundedHttpTools``) reads itself where
``httptools.parse_url()``, which Uvicorn reads them with, refuses them or reads them otherwise
than Waitress and h11 do: past 64 KiB, with escapes in the path, in absolute-form or
authority-form. Such a request is read with a stand-in target, and its scope gets the path and
the query read here.
"""

from __future__ import annotations

import re

import httptools

from ._percent import percent_decode_bytes

# NOTE: a target in absolute-form: a scheme, then "://" (RFC 3986 3.1).
ABSOLUTE_FORM = re.compile(rb"[A-Za-z][A-Za-z0-9+.-]*://")
# NOTE: the longest target httptools.parse_url() reads (its offsets are 16-bit).
MAX_PARSED_TARGET = 65535


def stand_in_target(
    target: bytes, escaped: bool, root_path: str
) -> tuple[str, bytes, bytes] | None:
    """Return the ``path``, ``raw_path`` and ``query_string`` of the scope of a request whose
    ``target`` Uvicorn cannot read as Waitress and h11 do (``escaped``: a path with escapes to
    decode), under ``root_path``; ``None`` for one Uvicorn reads itself."""
    # NOTE: a target neither in origin-form nor in absolute-form (a CONNECT's
    # authority-form, "x:443"), which httptools.parse_url() refuses: Uvicorn answered
    # 400 and closed, where Waitress and h11 hand it to the app (a 400: not a path).
    other_form = target[:1] != b"/" and not ABSOLUTE_FORM.match(target)
    # NOTE: httptools.parse_url() also refuses authorities RFC 3986 allows, that
    # Waitress and h11 serve ("h~", "a!b", "[v1.x]"): an absolute-form target is read
    # here, its authority checked before (authority_refusal()).
    absolute = target[:1] != b"/" and not other_form
    if not (len(target) > MAX_PARSED_TARGET or escaped or other_form or absolute):
        return None
    # NOTE: Uvicorn reads the target with httptools.parse_url(), which refuses one past
    # 64 KiB: the request was a 400, where Waitress and h11 serve it.
    path, query = (target, b"") if other_form else split_target(target)
    # NOTE: a target that is no path takes no root path before it (review338).
    root = "" if other_form else root_path
    return (root + decoded_path(path), root.encode("ascii") + path, query)


def with_path(target: bytes) -> bytes:
    """Return an absolute-form target without a path (``http://x?q=1``) as ``/?q=1``.

    Any other target is returned as it is.
    """
    # SPEC: RFC 9112 3.2.2, a server MUST accept the absolute-form; RFC 9110 4.2.3, its
    # empty path is "/". httptools gave no path for it, and Uvicorn answered 400.
    try:
        parsed = httptools.parse_url(target)
    except httptools.HttpParserInvalidURLError:
        return target
    if parsed.path is not None:
        return target
    return b"/?" + parsed.query if parsed.query else b"/"


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """Return the path and the query of ``target`` (origin-form or absolute-form), as
    ``httptools.parse_url()`` reads them, for a target too long for it; ``/`` for no path."""
    target = target.partition(b"#")[0]
    if target[:1] != b"/":
        # NOTE: absolute-form: the path starts after the authority, at its first "/" or "?".
        after = target.partition(b"://")[2]
        ends = [end for end in (after.find(b"/"), after.find(b"?")) if end >= 0]
        target = after[min(ends) :] if ends else b""
    path, _, query = target.partition(b"?")
    return path or b"/", query


def decoded_path(path: bytes) -> str:
    """Return ``path`` as Uvicorn gives it in the scope: ASCII, percent-decoded."""
    text = path.decode("ascii")  # NOTE: raised in httptools' callback, a 400 as in Uvicorn.
    # NOTE: urllib.parse.unquote(text), its escapes decoded in C (see
    # BoundedHttpTools.on_headers_complete).
    return percent_decode_bytes(path).decode("utf-8", "replace") if "%" in text else text
