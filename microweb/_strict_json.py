"""Strict JSON parsing, the one parser for request bodies and WebSocket messages: no ``NaN``
or ``Infinity``, no number beyond a float's range, no lone surrogate escape."""

from __future__ import annotations

import json
import math
import re
import sys
from itertools import accumulate
from json.scanner import make_scanner
from typing import Any

from ._errors import HTTPError
from ._limits import MAX_INT_DIGITS, MAX_JSON_DEPTH

_BOM = b"\xef\xbb\xbf"


_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# NOTE: a high surrogate escape not followed by a low one, or a low one not preceded by a high
# one; the low's look-behind is written after it so that each match starts with a "\u".
_LONE_SURROGATE = re.compile(
    r"\\u[dD](?:[89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F])"
    r"|[c-fC-F](?<!\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F]))"
)


def _has_lone_surrogate(text: str) -> bool:
    # PERF: read from the text, not the parsed value: walking the value in Python cost 1.10 s
    # for 10 MB of JSON numbers behind one surrogate pair (the parse took 0.32 s), blocking the
    # event loop under ASGI; this search takes 0.014 s (process_time, 2026-12-03).
    # SPEC: RFC 8259 7, in valid JSON each backslash begins an escape, and a run of them pairs
    # from its left. With the pairs (escaped backslashes) replaced by "--", each backslash left
    # begins an escape, and a pair between two surrogate escapes still keeps them apart.
    return _LONE_SURROGATE.search(text.replace("\\\\", "--")) is not None


# NOTE: the bytes kept to read how deep JSON nests: the quotes (with the escaped ones gone)
# and the brackets, each "{" and "}" read as "[" and "]".
_NOT_MARKS = bytes(sorted(set(range(256)).difference(b'"[]{}')))
_SQUARE = bytes.maketrans(b"{}", b"[]")
_RUN = re.compile(rb"\[+|\]+")
_TOO_DEEP = "is nested too deeply"


def _nests_too_deep(text: str, max_depth: int) -> bool:
    """Tell whether ``text``, valid JSON, nests lists and objects past ``max_depth``."""
    data = text.encode("utf-8", "surrogatepass")
    # PERF: a value nested that deep takes as many brackets (those in strings counted too): a
    # text with fewer is not read again. Counted in the marks below, not in the text (two
    # str.count passes): on a 147 KB array of 2,000 records, which has more, the check took
    # 358 -> 256 us (with non-ASCII names 445 -> 364), on 100 KB of words 65 -> 41; a 1.3 MB
    # string of escaped quotes, whose marks are a third of it, 873 -> 987 (best of 25,
    # process_time, 2026-12-07).
    marks = data.translate(_SQUARE, _NOT_MARKS)
    if marks.count(b"[") <= max_depth:
        return False
    # NOTE: as in _has_lone_surrogate(), in valid JSON a run of backslashes pairs from its
    # left: with the pairs gone, a backslash left before a quote escapes it. Then each string
    # is two quotes, with what brackets it holds between them.
    if b"\\" in data:
        data = data.replace(b"\\\\", b"").replace(b'\\"', b"")
        marks = data.translate(_SQUARE, _NOT_MARKS)
    # PERF: bytes dropped and quotes paired in C: a split into the strings took 40 ns each.
    # Two quotes side by side are a string or the gap between two, with no bracket in it.
    marks = marks.replace(b'""', b"")
    if b'"' in marks:
        marks = b"".join(marks.split(b'"')[::2])
    # PERF: each pass drops the innermost pairs, one level off every branch, while that takes
    # a quarter of what is left (4 times its length at most, all told); the rest is walked a
    # run of "[" or of "]" at a time.
    depth = 0
    while marks and len(shorter := marks.replace(b"[]", b"")) <= len(marks) * 3 // 4:
        marks, depth = shorter, depth + 1
    steps = (len(run) if run[0] == ord("[") else -len(run) for run in _RUN.findall(marks))
    return depth + max(accumulate(steps), default=0) > max_depth


def reject_constant(name: str) -> Any:
    """Refuse ``NaN`` and ``Infinity``, which ``json.loads`` accepts by default (TRAPS.md 16)."""
    raise ValueError(f"{name} is not valid JSON")


class RefusedJSON(ValueError):
    """Well-formed JSON that the framework refuses; the message says why."""


def finite_float(text: str) -> float:
    """Parse a JSON number as a float, refusing one out of range (``1e999``, TRAPS.md 25).

    Raises:
        RefusedJSON: If the number does not fit a finite float.
    """
    value = float(text)
    if not math.isfinite(value):
        raise RefusedJSON("holds a number beyond the range of a float")
    return value


def bounded_int(text: str) -> int:
    """Parse a JSON integer of at most ``MAX_INT_DIGITS`` digits, whatever the interpreter allows.

    Raises:
        RefusedJSON: For a longer one, whose ``int()`` would take time quadratic in its length.
    """
    if len(text) > MAX_INT_DIGITS and len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise RefusedJSON(_TOO_MANY_DIGITS)
    return int(text)


_TOO_MANY_DIGITS = f"holds an integer of more than {MAX_INT_DIGITS} digits"

# PERF: one scanner, built once; json.loads() with these options builds one per call (0.9 us).
# The scanner called directly, not through JSONDecoder.decode() (two Python calls and two
# regex matches): the echo cell's 1 KB parsed in 8.35 us instead of 8.9.
# NOTE: the float hook costs ~0.08 us per float (0.9 us for the echo cell's 11), less than any
# scan of the text for a risky number that we measured (translate and search: 1.9 us per KB).
# NOTE: typeshed types make_scanner's argument as a scanner; it takes any decoder's options.
_scan = make_scanner(
    json.JSONDecoder(parse_constant=reject_constant, parse_float=finite_float)  # type: ignore[arg-type]
)
# NOTE: the integer hook costs 2.5 us on the echo cell's 1 KB (11.8 -> 14.3 us, timeit,
# 2026-12-05), so it parses only where the interpreter's own limit does not bound int() as
# tightly: an app that called sys.set_int_max_str_digits(0) for its own big numbers, or a
# Python 3.10 before 3.10.7, where one 10 MB integer took hours.
_bounded_scan = make_scanner(
    json.JSONDecoder(  # type: ignore[arg-type]
        parse_constant=reject_constant, parse_float=finite_float, parse_int=bounded_int
    )
)
_int_limit = getattr(sys, "get_int_max_str_digits", lambda: 0)
_SPACE = " \t\n\r"


def loads_json(text: str, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON text strictly: no ``NaN``/``Infinity``, no number beyond a float's range,
    no lone surrogate escape and no lists and objects nested more than ``max_depth`` deep
    (``Limits.max_json_depth``); the one parser for request bodies and WebSocket messages.

    Raises:
        ValueError: For invalid JSON (``RefusedJSON`` for valid JSON that is refused, nested
            past ``max_depth`` included, or past what the interpreter's stack lets it parse).
    """
    # PERF: the scan here, not in a function of its own (it had no other caller): valgrind
    # instructions per request, ASGI echo 315,521 -> 315,268 (bench/icount.sh, PYTHONHASHSEED=0,
    # 2026-12-06).
    # NOTE: what JSONDecoder.decode() does: one value, whitespace around it and nothing else.
    start = 0 if text[:1] not in _SPACE else len(text) - len(text.lstrip(_SPACE))
    scan = _scan if 0 < _int_limit() <= MAX_INT_DIGITS else _bounded_scan
    try:
        value, end = scan(text, start)
    except StopIteration:
        raise ValueError("expecting a value") from None
    except RecursionError:
        raise RefusedJSON(_TOO_DEEP) from None
    except ValueError as exc:
        if str(exc).startswith("Exceeds the limit"):
            # NOTE: int()'s own limit, which the fast scanner relies on (an app may set it
            # lower than ours): the same answer, with its number.
            raise RefusedJSON(f"holds an integer of more than {_int_limit()} digits") from None
        raise
    if end != len(text) and text[end:].strip(_SPACE):
        raise ValueError("extra data after the value")
    # PERF: a backslash looked for first (one memchr), the pattern only where there is one:
    # 0.33 -> 0.03 us for the echo cell's 1 KB, which has none (timeit, 2026-11-30).
    if "\\" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(text):
        raise RefusedJSON("holds a lone surrogate (\\ud800-\\udfff)")
    # NOTE: the interpreter's stack was the only limit: a body nested as deep as it let the
    # parser go (974 to 9,991 deep, by the Python and the stack) was a 500 when the app sent
    # it back, the encoder's RecursionError, on every Python.
    # PERF: a value nested that deep takes twice as many characters: the echo cell's 949 are
    # not read again (0.03 us).
    if len(text) > 2 * max_depth and _nests_too_deep(text, max_depth):
        raise RefusedJSON(_TOO_DEEP)
    return value


def parse_json(body: bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse a JSON request body (whose ``Content-Type`` the caller checked: ``is_json_type``).

    Raises:
        HTTPError: 400 for invalid, non-UTF-8 or too deep JSON (past ``max_depth``).
    """
    try:
        # SPEC: RFC 8259 8.1, a parser may ignore a byte order mark; some clients send one.
        # PERF: the BOM cut off here: the utf-8-sig codec is Python code, 0.55 us for 1 KB
        # where utf-8 takes 0.09.
        return loads_json((body[3:] if body[:3] == _BOM else body).decode("utf-8"), max_depth)
    except UnicodeDecodeError:
        raise HTTPError(400, "JSON body is not valid UTF-8") from None
    except RefusedJSON as exc:
        raise HTTPError(400, f"JSON body {exc}") from None
    except ValueError:
        raise HTTPError(400, "invalid JSON body") from None
