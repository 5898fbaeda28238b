"""The route template language: ``{name:converter}`` segments, and the converters.

A template is split once, at registration, into static segments and ``Param``s; a converter
turns one path segment into a value (or refuses it) and a value back into a segment.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ._limits import MAX_INT_DIGITS

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_][A-Za-z0-9_]*))?\}")
# NOTE: Falcon's converters take arguments ({day:dt("%Y-%m-%d")}, {n:int(min=1)}); ours do not.
_WITH_ARGUMENTS = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*):[A-Za-z_][A-Za-z0-9_]*\(.*\)\}")
_FLASK_PARAM = re.compile(r"<(?:([A-Za-z_][A-Za-z0-9_]*)(\([^>]*\))?:)?([A-Za-z_][A-Za-z0-9_]*)>")
# NOTE: Flask's converters of one segment, any text but '/': our {name} with no converter.
# (Werkzeug's int, float, uuid and path, and a custom one, keep their names here.)
PLAIN_SEGMENT_NAMES = frozenset({"string", "default", "str"})
_FLOAT = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class Converter:
    """Turns one path segment into a value and back.

    ``to_python`` raises ``ValueError`` when the segment does not fit, and the template
    does not match.
    """

    name: str
    to_python: Callable[[str], Any]
    to_url: Callable[[Any], str] = str


def _to_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > MAX_INT_DIGITS:
        raise ValueError(text)
    return int(text)


def _to_float(text: str) -> float:
    if not _FLOAT.fullmatch(text):
        raise ValueError(text)
    value = float(text)
    # NOTE: 400 nines make float("inf") (TRAPS.md 25); only finite values match, and the
    # pattern has no sign, so +inf is the one value to refuse.
    if value == float("inf"):
        raise ValueError(text)
    return value


def _float_to_url(value: float) -> str:
    # NOTE: repr() writes 1e+20 and 1e-07, which {x:float} does not match; the decimal form
    # of the same shortest digits does ("100000000000000000000", "0.0000001").
    try:
        number = float(value)
    except OverflowError:
        # NOTE: an int past a float's range (10**400) is one no request could carry back, as
        # inf is: a ValueError, as for inf, not an OverflowError url_for does not document.
        raise ValueError(f"an {type(value).__name__} beyond a float's range") from None
    return format(Decimal(repr(number)), "f")


def _to_uuid(text: str) -> uuid.UUID:
    if not _UUID.fullmatch(text):
        raise ValueError(text)
    return uuid.UUID(text)


# NOTE: a client resolves a "." or ".." segment away before it asks (RFC 3986 5.2.4); one that
# comes as it is ("curl --path-as-is", "%2E%2E") is no value of a route: url_for refuses to
# write it, so a handler that built its own link from one failed with a 500, and a {...:path}
# value such as "a/../../etc" reached code that may join it to a folder.
def _to_str(text: str) -> str:
    # NOTE: one test of the first character for most values (never empty here).
    if text[0] == "." and (text == "." or text == ".."):
        raise ValueError(text)
    return text


def _to_path(text: str) -> str:
    # NOTE: a segment "." or ".." is one between two "/" of the value with a "/" at each end.
    # PERF: split at every "/", a value of 255 KB of "a./" (a head Waitress and httptools let
    # through) made 85,000 strings, 5 MB, in 7 ms; searched, it is one copy in 0.1 ms (fuzz3).
    if "." in text:
        bounded = f"/{text}/"
        if "/./" in bounded or "/../" in bounded:
            raise ValueError(text)
    return text


# SPEC: WHATWG URL, "double-dot path segment": browsers take ".%2e", "%2e." and "%2e%2e" for
# ".." as well, so no encoding of a dot segment survives them (a path is matched decoded).
DOT_SEGMENTS = frozenset({".", ".."})


BUILTIN_CONVERTERS: Mapping[str, Converter] = {
    "str": Converter("str", _to_str),
    "int": Converter("int", _to_int),
    "float": Converter("float", _to_float, _float_to_url),
    "uuid": Converter("uuid", _to_uuid),
    "path": Converter("path", _to_path),
}


@dataclass(frozen=True, slots=True)
class Param:
    """A ``{name:converter}`` segment of a template."""

    name: str
    converter: str


Segment = str | Param
# NOTE: the keywords of url_for() that are options (the query string; an absolute URL from
# request.url_for), not path parameters.
URL_FOR_OPTIONS = frozenset({"_query", "_external"})


def _literal(template: str, part: str) -> str:
    """Return ``part``, a literal segment of ``template``, or raise what is wrong with it."""
    if part in (".", ".."):
        raise ValueError(
            f"route template {template!r} has a '.' or '..' segment: clients resolve "
            "it away before they ask, so no request could reach the route"
        )
    arguments = _WITH_ARGUMENTS.fullmatch(part)
    if arguments is not None:
        raise ValueError(
            f"route template {template!r}: segment {part!r} gives its converter "
            "arguments, which converters do not take; register one with "
            "app.add_converter(name, to_python) that parses or checks the segment, "
            f"and write {{{arguments.group(1)}:name}}"
        )
    if "{" in part or "}" in part:
        raise ValueError(
            f"route template {template!r}: segment {part!r} is not a parameter; a "
            "parameter fills a whole segment, written {name} or {name:converter}"
        )
    flask = _FLASK_PARAM.search(part)
    if flask is not None:
        # NOTE: a literal '<int:id>' matched only a client's '%3Cint:id%3E' (review140).
        raise ValueError(f"route template {template!r}: {_flask_advice(part, flask)}")
    return part


def _flask_advice(part: str, flask: re.Match[str]) -> str:
    """Say how to write the Flask parameter that ``flask`` found in the segment ``part``."""
    converter, arguments, name = flask.groups()
    if arguments:
        return (
            f"segment {part!r} is Flask's spelling of a parameter with converter arguments, "
            "which converters do not take; register one with app.add_converter(name, "
            f"to_python) that parses or checks the segment, and write {{{name}:name}}"
        )
    plain = converter is None or converter in PLAIN_SEGMENT_NAMES
    written = f"{{{name}}}" if plain else f"{{{name}:{converter}}}"
    if flask.group(0) != part:
        return (
            f"segment {part!r} holds Flask's spelling of a parameter, {flask.group(0)!r}; "
            f"a parameter fills a whole segment, written {written}"
        )
    return (
        f"segment {part!r} is Flask's spelling of a parameter, which would match only that "
        f"text; write {written}"
    )


def parse_template(template: str) -> tuple[Segment, ...]:
    """Split a route template into static segments and parameters.

    Raises:
        ValueError: If the template is malformed; the message says how to write it.
    """
    if not template.startswith("/"):
        raise ValueError(f"route template {template!r} must start with '/'")
    if template.startswith("//"):
        # NOTE: a request's leading slashes collapse into one, so no request reached such a
        # route, and url_for() built "//evil.example/x", a link to another host (review167).
        raise ValueError(
            f"route template {template!r} starts with '//': the leading slashes of a request's "
            "path collapse into one, so no request could reach the route"
        )
    segments: list[Segment] = []
    names: set[str] = set()
    for index, part in enumerate(template[1:].split("/")):
        match = _PARAM.fullmatch(part)
        if match is None:
            segments.append(_literal(template, part))
            continue
        name, converter = match.group(1), match.group(2) or "str"
        if name in names:
            raise ValueError(f"route template {template!r} names parameter {name!r} twice")
        if name in URL_FOR_OPTIONS:
            # NOTE: url_for(name, _query=...) takes it: no link to the route could be built.
            raise ValueError(
                f"route template {template!r}: {{{name}}} is an argument of url_for, "
                "give the parameter another name"
            )
        if converter == "path" and index != template.count("/") - 1:
            raise ValueError(
                f"route template {template!r}: {{{name}:path}} must be the last segment"
            )
        names.add(name)
        segments.append(Param(name, converter))
    return tuple(segments)
