"""What ``Headers`` and ``MultiDict`` share: the checks of a header an app sets, ``type=``
conversion, the index of a key's values, and the slots of a subclass that copies keep."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from types import MemberDescriptorType
from typing import Any, TypeVar

from ._limits import MAX_INT_DIGITS

V = TypeVar("V")

# NOTE: what a type= converter raises for a value it does not take: ValueError and TypeError,
# as Werkzeug catches, and ArithmeticError, which Decimal("x") raises (InvalidOperation) and
# int(float("inf")) too (OverflowError); a client's "?price=x" was a 500.
NOT_CONVERTED = (ValueError, TypeError, ArithmeticError)

# SPEC: RFC 9110 section 5.1, a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# SPEC: RFC 9110 section 5.5: no control character but HTAB in a field value. CR and LF would
# split the header; h11 refuses NUL, VT and FF, and Uvicorn's httptools side every other one,
# where Waitress sends them. Also refused: what latin-1 cannot carry, as both interfaces send
# header bytes as latin-1.
# PERF: one character class: 0.21 us a typical value with the strip check below, 0.52 us before.
_FORBIDDEN_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u0100-\U0010ffff]")
# NOTE: PEP 3333's hop-by-hop headers, which belong to the server's connection: Waitress answers
# a WSGI app that sets one with its own 500, while Uvicorn sends it as it is (Transfer-Encoding
# beside the framework's Content-Length, under httptools; Connection: close, and closes).
# Refused as CR and LF are, so both interfaces fail the same way. Upgrade is not among them:
# RFC 9110 15.5.22 has a 426 send it (the ASGI driver's own refusal of plain HTTP does).
_HOP_BY_HOP = frozenset(
    [
        *("connection", "keep-alive", "proxy-authenticate", "proxy-authorization"),
        *("te", "trailers", "transfer-encoding"),
    ]
)


def check_header(name: str, value: str) -> tuple[str, str]:
    """Return ``(name in lower case, value)`` for a header the app sets.

    Raises:
        ValueError: If the name is not a token or is a hop-by-hop header (``Connection``,
            ``Keep-Alive``, ``Transfer-Encoding``, ``TE``, ``Trailers``, ``Proxy-Authenticate``,
            ``Proxy-Authorization``), or the value holds a control character (CR, LF, NUL, ...;
            HTAB is allowed inside) or a character beyond latin-1, or starts or ends with a
            space or tab.
        TypeError: If the value is not a ``str``.
    """
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ValueError(f"invalid header name: {name!r}")
    key = name.lower()
    if key in _HOP_BY_HOP:
        raise ValueError(
            f"header {name!r} is hop-by-hop: the server sets it for the connection (framing and "
            "keep-alive), and a WSGI server refuses it from the app (PEP 3333)"
        )
    if not isinstance(value, str):
        raise TypeError(f"header {name!r} value must be str, not {type(value).__name__}")
    # NOTE: h11 refuses surrounding spaces and tabs inside send(), so Uvicorn's client would get
    # no answer at all while Waitress sends them (TRAPS.md 23); refused here like CR and LF.
    if _FORBIDDEN_VALUE.search(value) or value != value.strip(" \t"):
        raise ValueError(
            f"header {name!r} value contains a control character (CR, LF, NUL...) or a character "
            f"beyond latin-1, or starts or ends with a space or tab (strip it; percent-encode "
            f"URLs): {value!r}"
        )
    return key, value


def converted_one(value: V, type: Callable[[V], object], default: object) -> object:
    """Return ``type(value)``, or ``default`` when ``type`` does not take it (``NOT_CONVERTED``)."""
    try:
        return _convert(value, type)
    except NOT_CONVERTED:
        return default


def converted_all(values: list[V], type: Callable[[V], object]) -> list[Any]:
    """Return ``type`` of each value, leaving out those it does not take (``NOT_CONVERTED``)."""
    converted: list[Any] = []
    for value in values:
        try:
            converted.append(_convert(value, type))
        except NOT_CONVERTED:
            continue
    return converted


def _convert(value: V, type: Callable[[V], object]) -> object:
    # NOTE: int() takes time quadratic in the digits, bounded by Python's own limit only where
    # the app (or a Python before 3.10.7) has not lifted it: "?n=" and 1,000,000 digits took
    # 4.6 s. Past MAX_INT_DIGITS, type=int does not take a value, as with the limit in place.
    if type is int and isinstance(value, str) and len(value) > MAX_INT_DIGITS:
        raise ValueError(f"more than {MAX_INT_DIGITS} digits")
    converted = type(value)
    if type is float and isinstance(converted, float) and not math.isfinite(converted):
        # NOTE: float() takes "nan", "inf" and 400 nines (TRAPS.md 25): an app that sent the
        # number back in JSON, which has none of them, was a 500; {x:float} refuses them too.
        raise ValueError(f"{value!r} is not a finite number")
    return converted


# PERF: past this many pairs, a request's multidict or headers answer getlist() (and, for
# headers, get(), [] and "in") from an index of every key's values, made on the first such
# lookup; up to it, from a pass over the pairs, as before. Each key's pass went over the whole
# list: at the default 1,000 fields or lines, {k: form.getlist(k) for k in form} took 17 ms,
# now 0.3; dict(request.headers) 15 -> 0.6 ms, a getlist() or "in" for each name 17 -> 0.5
# and 0.3. Indexed, a fresh 33-line head's first lookup costs 4.4 us, where a pass over 32
# costs 0.9, and dict() of it 17 us, where passes over 32 cost 28. A 10-line lookup stays at
# 0.31 us, a 20-field query's build at 1.07 (best of 7, 2026-12-06). A multidict whose keys
# are all different (the usual query) needs no index: getlist() 0.58 -> 0.15 us.
INDEXED_FROM = 32


def indexed(pairs: Iterable[tuple[str, V]]) -> dict[str, list[V]]:
    """Return every key's values, in order, of ``pairs``."""
    index: dict[str, list[V]] = {}
    for key, value in pairs:
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)
    return index


def slot_names(cls: type) -> Iterator[str]:
    """The name of every slot of ``cls`` and its bases but microweb's own (``Headers``' lines,
    copied apart, and ``RequestHeaders``' index, made again for the copy's lines;
    ``MultiDict``'s pairs, pickled apart, and its index)."""
    # NOTE: read from each class's slot descriptors, as they were made, not from __slots__:
    # spent where a generator, and mangled but in a class named "_", whose slot was lost.
    for klass in cls.__mro__:
        own = vars(klass)
        if "__slots__" not in own or f"{klass.__module__}.".startswith("microweb."):
            # NOTE: by module, not name: a subclass's own _index slot is copied. And Headers'
            # module is "microweb" (its public one), whose _list was copied, then again apart.
            continue
        for name, value in own.items():
            if type(value) is MemberDescriptorType and value.__objclass__ is klass:
                yield name
