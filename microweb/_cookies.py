"""A linear ``Cookie`` header parser.

NOTE: ``http.cookies.SimpleCookie`` is quadratic on backslashes (CVE-2024-7592) and gives up on the
whole header at one bad pair; browsers send what they were given, so one bad pair is skipped here.
"""

from __future__ import annotations

import re
from http.cookies import Morsel, SimpleCookie
from typing import Literal

_COOKIE_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def parse_cookie_header(header: str) -> dict[str, str]:
    """Parse a ``Cookie`` header into a dict; the first value of a repeated name wins."""
    cookies: dict[str, str] = {}
    for pair in header.split(";"):
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not _COOKIE_NAME.fullmatch(name) or name in cookies:
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        cookies[name] = value
    return cookies


SameSite = Literal["lax", "strict", "none"]


def format_set_cookie(
    key: str,
    value: str,
    *,
    max_age: int | None,
    expires: str | None,
    path: str | None,
    domain: str | None,
    secure: bool,
    httponly: bool,
    samesite: SameSite | None,
) -> str:
    """Return the value of one ``Set-Cookie`` header.

    Raises:
        ValueError: If the name is not a token or an attribute holds a forbidden character.
    """
    if not _COOKIE_NAME.fullmatch(key):
        raise ValueError(f"invalid cookie name: {key!r}")
    morsel: Morsel[str] = Morsel()
    _, coded = SimpleCookie().value_encode(value)
    morsel.set(key, value, coded)
    # NOTE: Morsel quotes values that need it; attributes are checked for ';' and line breaks here.
    for attribute, setting in (("path", path), ("domain", domain), ("expires", expires)):
        if setting is not None:
            if any(c in setting for c in ";\r\n"):
                raise ValueError(f"cookie {attribute} contains a forbidden character: {setting!r}")
            morsel[attribute] = setting
    if max_age is not None:
        morsel["max-age"] = str(int(max_age))
    morsel["secure"] = secure
    morsel["httponly"] = httponly
    if samesite is not None:
        if samesite.lower() not in ("lax", "strict", "none"):
            raise ValueError(f"samesite must be 'lax', 'strict' or 'none', got {samesite!r}")
        morsel["samesite"] = samesite.capitalize()
    return morsel.OutputString()
