"""Paths built from a route's template, for ``url_for``: each value percent-encoded, and
refused where no request path could route back to it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any
from urllib.parse import quote, urlencode

from ._datastructures import MultiDict
from ._route_templates import DOT_SEGMENTS, Converter, Param
from ._routing import Route


def build_path(route: Route, converters: Mapping[str, Converter], params: Mapping[str, Any]) -> str:
    """Fill ``route``'s template with ``params``, percent-encoding each segment.

    A value is written with its converter's ``to_url``; where that is ``str``, an
    ``enum.Enum`` of ``str``, ``int`` or ``float`` is written as its value.

    The result never starts with ``//`` (a browser reads ``//evil.example/x`` as another host):
    a path value's leading ``/`` is encoded as ``%2F``, and a one-segment value may not be
    empty or hold a ``/``. No value may be, or hold as a segment, ``.`` or ``..``, which a
    client resolves away (``/files/../admin`` is ``/admin`` to it).

    Raises:
        TypeError: If a parameter is missing or unknown, or is ``None`` or ``bytes`` where
            its converter would write it with ``str()``, or a converter's ``to_url`` returns
            something other than a ``str`` or raises ``TypeError`` (the built-in ``float``'s
            for ``None``); the message names the route and the parameter.
        ValueError: If a one-segment parameter is empty or holds ``/``, a path parameter is
            empty (or, at the template's start, only slashes), a value is or holds a ``.`` or
            ``..`` segment, holds a lone surrogate (no UTF-8), or a built-in converter's
            ``to_python`` refuses the text its ``to_url`` made (no request would match it).
    """
    expected = set(route.param_names)
    if set(params) != expected:
        raise TypeError(
            f"url_for({route.name!r}) takes the parameters {sorted(expected)}, got "
            f"{sorted(params)}{_hint(expected, set(params))}"
        )
    parts = []
    for segment in route.segments:
        if isinstance(segment, str):
            parts.append(quote(segment, safe=""))
            continue
        converter = converters[segment.converter]
        text = _to_url(route, segment, converter, params[segment.name])
        _check_utf8(text, f"url_for({route.name!r}): parameter {segment.name!r}")
        _check_dots(route, segment, text)
        if segment.converter == "path":
            if not parts and not text.strip("/"):
                # NOTE: at the template's start, "/%2F" decodes to "//", whose leading slashes
                # collapse: the link was "/", a 404 or another route (review167).
                raise ValueError(
                    f"url_for({route.name!r}): parameter {segment.name!r} is {text!r}: at the "
                    "start of the template its leading slashes are lost on the way back, and "
                    "nothing is left"
                )
            # NOTE: "/files/%2Fetc" routes back to rest="/etc": the path decodes to "//etc".
            parts.append(
                ("%2F" + quote(text[1:], safe="/")) if text[:1] == "/" else quote(text, safe="/")
            )
        else:
            _check_segment(route, segment, converter, text)
            parts.append(quote(text, safe=""))
    return "/" + "/".join(parts)


def _hint(expected: set[str], given: set[str]) -> str:
    """Say what to do about parameters ``given`` where ``expected`` ones are due."""
    missing = sorted(expected - given)
    if missing:
        # NOTE: told to pass the others as a query, as below, url_for("static", filename=...)
        # (Flask's) then failed for the path it still lacked.
        return f"; it lacks {', '.join(map(repr, missing))}"
    extra = sorted(given - expected)
    if any(name.startswith("_") for name in extra):
        return ""
    # NOTE: Flask's url_for puts unknown keywords in the query string; here they say how.
    return f"; for a query string, pass _query={{{', '.join(f'{name!r}: ...' for name in extra)}}}"


QueryValue = str | int | float | None
Query = Mapping[str, QueryValue | Iterable[QueryValue]] | Iterable[tuple[str, QueryValue]]


def build_query(query: Query) -> str:
    """Return ``query`` as a query string, with its ``?``, or ``""`` when it has no pair.

    A mapping's list (or tuple) value repeats its name, and a ``MultiDict``
    (``request.query``) gives every pair it holds; ``None`` values are left out, as Werkzeug
    and Django leave them out. An ``enum.Enum`` of ``str``, ``int`` or ``float`` is written as
    its value, as in a path. Names and values are percent-encoded as UTF-8, a space as
    ``%20``.

    Raises:
        TypeError: If ``query`` is a ``str`` or ``bytes`` (not pairs), a name is not a
            ``str``, or a value is not a ``str``, ``int``, ``float`` or ``None``: ``bytes``,
            a ``bool``, or an object whose ``repr()``-like ``str()`` would land in the link.
        ValueError: If a name or value holds a lone surrogate (no UTF-8).
    """
    if isinstance(query, (str, bytes)):
        # NOTE: iterated, "a=b" gave "not enough values to unpack", a ValueError.
        raise TypeError(f"url_for: _query takes a dict or a list of pairs, not {query!r}")
    if isinstance(query, MultiDict):
        # NOTE: its items() see each name once: request.query given to keep a page's filters
        # lost "?tag=a&tag=b"'s second tag.
        pairs: Iterable[tuple[str, Any]] = query.multi_items()
    else:
        pairs = query.items() if isinstance(query, Mapping) else query
    flat: list[tuple[str, str]] = []
    for name, value in pairs:
        if not isinstance(name, str):
            # NOTE: a name of None went out as "None=", and bytes as their text.
            raise TypeError(f"url_for: query name {name!r} must be a str")
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if item is None:
                continue
            if isinstance(item, bool):
                # NOTE: an int to isinstance(), it went out as "a=True": no request reads that
                # back as a bool, and apps spell a flag "1", "true" or "on".
                raise TypeError(
                    f"url_for: query value for {name!r} is a bool, {item!r}: write the text the "
                    "app reads ('1', 'true', 'on'), or leave the pair out"
                )
            if not isinstance(item, (str, int, float)):
                raise TypeError(
                    f"url_for: query value for {name!r} must be a str, int or float, "
                    f"not {type(item).__name__}"
                )
            flat.append((name, _own_text(item)))
    for name, text in flat:
        _check_utf8(name, "url_for: a query name")
        _check_utf8(text, f"url_for: query value for {name!r}")
    return "?" + urlencode(flat, quote_via=quote, safe="") if flat else ""


def _check_utf8(text: str, where: str) -> None:
    """Refuse text that UTF-8 cannot encode (a lone surrogate), which no URL can carry."""
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        # NOTE: quote() raised its UnicodeEncodeError, which named no parameter.
        raise ValueError(
            f"{where} holds {text[exc.start : exc.end]!r}, a lone surrogate: UTF-8, and so a "
            "URL, cannot carry it"
        ) from None


_BINARY = (bytes, bytearray, memoryview)


def _own_text(value: Any) -> str:
    """Return ``str(value)``, or for an ``enum.Enum`` of ``str``, ``int`` or ``float``, the
    text of its value."""
    # NOTE: str() of `class Status(str, Enum)` is "Status.OPEN", a link to a value nobody gave;
    # of an IntEnum, "Level.HIGH" before Python 3.11 and "3" after. Other subclasses of str
    # keep their own __str__.
    if isinstance(value, Enum) and isinstance(value, (str, int, float)):
        return str(value.value)
    return str(value)


def _to_url(route: Route, segment: Param, converter: Converter, value: Any) -> str:
    """Return ``value`` as its converter writes it, refusing what ``str()`` would misspell."""
    if converter.to_url is str and (value is None or isinstance(value, _BINARY)):
        # NOTE: str() gave "/notes/None", "/notes/b'pen'" and "/notes/<memory at 0x...>": links
        # to values nobody gave.
        # Werkzeug refuses None too; build_query refuses both.
        raise TypeError(
            f"url_for({route.name!r}): parameter {segment.name!r} is {value!r}, not a value "
            "to put in a link"
        )
    try:
        text = _own_text(value) if converter.to_url is str else converter.to_url(value)
    except (TypeError, ValueError) as exc:
        # NOTE: named here: the converter's message alone said neither the route nor the
        # parameter (float() of None for {n:float}: "float() argument must be a string...").
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        raise kind(f"url_for({route.name!r}): parameter {segment.name!r}: {exc}") from exc
    if not isinstance(text, str):
        # NOTE: "lambda user: user.id" gave an AttributeError ("'int' object has no attribute
        # 'isascii'") that named neither the converter nor the parameter (review167).
        raise TypeError(
            f"url_for({route.name!r}): parameter {segment.name!r}: converter "
            f"{converter.name!r}'s to_url returned {type(text).__name__}, not a str"
        )
    return text


def _check_dots(route: Route, segment: Param, text: str) -> None:
    """Refuse a value that is empty where a path is due, or that a client would resolve."""
    where = f"url_for({route.name!r}): parameter {segment.name!r}"
    if not text and segment.converter == "path":
        # NOTE: "/files/" matches no {rest:path}, which takes one character at least.
        raise ValueError(f"{where} is empty")
    if DOT_SEGMENTS.intersection(text.split("/")):
        # NOTE: a browser, httpx or curl resolves "/files/a/../../admin" to "/admin": a link
        # built from a client's value would lead to another route (hunt60).
        raise ValueError(
            f"{where} is {text!r}: a '.' or '..' segment is resolved away by clients, so the "
            "link would lead elsewhere"
        )


# NOTE: only the built-in converters take their text back: a custom to_python may be costly
# (a database lookup) or have effects, and url_for must not run it.
_CHECKED = frozenset({"int", "float", "uuid"})


def _check_segment(route: Route, segment: Param, converter: Converter, text: str) -> None:
    """Refuse a one-segment value that no request path could match: a link built from it
    would answer 404."""
    where = f"url_for({route.name!r}): parameter {segment.name!r}"
    if not text:
        raise ValueError(f"{where} is empty")
    if "/" in text:
        # NOTE: a request's path is matched decoded, so "a%2Fb" is two segments: a link with
        # one would answer 404 (Starlette's str converter refuses "/" in the same way).
        raise ValueError(
            f"{where} is {text!r}: a '/' cannot be part of one segment; "
            f"use {{{segment.name}:path}} for values that hold it"
        )
    if segment.converter not in _CHECKED:
        return
    try:
        converter.to_python(text)
    except ValueError:
        raise ValueError(
            f"{where} is {text!r}, which {{{segment.name}:{segment.converter}}} does not match"
        ) from None
