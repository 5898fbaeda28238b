"""The parameters of a multipart part's ``Content-Disposition``: counted and checked in C before
``multipart`` reads them, and the RFC 8187 ``filename*`` it does not read."""

from __future__ import annotations

import re

from ._errors import HTTPError
from ._parsing import QUOTED_PAIRS
from ._percent import LONE_PERCENT, percent_decode_bytes

# SPEC: RFC 8187 3.2.1: an ext-value is charset "'" [ language ] "'" value-chars, where
# recipients must support UTF-8 and may support ISO-8859-1; no other charset is taken.
_EXT_CODECS = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}


def decode_ext_value(value: str) -> str | None:
    """Decode an RFC 8187 extended parameter value, such as ``UTF-8''%E2%82%AC.txt``.

    Returns:
        The text, or ``None`` for a value that is malformed, in another charset, whose bytes
        do not decode, or that holds a NUL.
    """
    # NOTE: some clients quote the value, which RFC 8187 does not allow; taken all the same.
    charset, first, rest = value.strip().strip('"').partition("'")
    _, second, encoded = rest.partition("'")
    codec = _EXT_CODECS.get(charset.lower())
    if not (first and second) or codec is None:
        return None
    try:
        # NOTE: a character sent as itself (no client does; RFC 8187 allows ASCII ones only)
        # stands for itself: taken as its UTF-8 bytes, an ISO-8859-1 value's "é" became "Ã©".
        data = encoded.encode(codec)
        # SPEC: RFC 8187 3.2.1, a "%" starts an escape of two hex digits: "%ZZ" was kept.
        if LONE_PERCENT.search(data):
            return None
        text = percent_decode_bytes(data).decode(codec)
    except UnicodeError:
        return None
    # NOTE: a NUL is in no file's name on any system; handed to the app, open() raised on it.
    return None if "\0" in text else text


# NOTE: multipart reads only ``filename``; this finds ``filename*`` where a header has one.
# Each match takes a whole parameter, quoted value included, so that a ';' inside a quoted
# value (a field named "a; filename*=...") is not taken for the start of one.
# PERF: the name taken whole by a look-ahead (which never backtracks), the quoted value by a
# loop over runs of plain characters: a 4 KB line of one long name without "=" took 69 us,
# one of a long quoted value 140 us; now 25 and 36 (timeit, 2026-12-03).
# PERF: the quoted pairs possessive, as _parsing's (hostile5): 4 KiB of them in a part's
# headers took 400 KB while they were read.
_DISPOSITION_PARAM = re.compile(
    r';\s*(?=([^\s=;"]+))\1\s*=\s*("[^"\\]*' + QUOTED_PAIRS + r'"|[^;\s]*)'
)


def count_header_params(value: str) -> int:
    """Return the number of ``; name=value`` parameters of a header, a quoted value taken whole.

    An upper bound of those ``multipart`` parses in Python (its pattern takes fewer names and
    values, and the same quoted strings, unless it reads inside one: ``misread_by_multipart()``),
    and of those ``part_filename()`` reads; counted in C.
    """
    return len(_DISPOSITION_PARAM.findall(value))


def stray_semicolons(value: str) -> tuple[int, int]:
    """Return the ``; name=value`` parameters of a header (as ``count_header_params()``
    reads them) and the semicolons that start none and are in no quoted value of one."""
    # NOTE: each ";" outside a parameter is tried as the start of one by each regular
    # expression that reads the header (here, in repeats_a_param(), misread_by_multipart()),
    # a fraction of a microsecond each: 125 parts of 3,900 of them (under
    # max_form_header_size) took 390 ms of CPU in one request (hostile7). Read once here.
    params = quoted = 0
    for found in _DISPOSITION_PARAM.finditer(value):
        params += 1
        if found.group(2)[:1] == '"':
            quoted += found.group(2).count(";")
    return params, value.count(";") - params - quoted


def repeats_a_param(value: str) -> bool:
    """Tell whether a header names one of its ``; name=value`` parameters twice (without case),
    a quoted value taken whole as in ``count_header_params()``."""
    names = [name.lower() for name, _ in _DISPOSITION_PARAM.findall(value)]
    return len(set(names)) < len(names)


# NOTE: multipart's own pattern of a parameter (its _re_option, private): a name of letters,
# digits, "-" and "_", spaces only around the "=", a token or a quoted string.
# PERF: its last quoted string, '"(?:\\.|[^\\"])*"', repeats a group for each character, and
# re kept a backtracking point for each: 4 KiB of a part's head took 290 KB (570 KB unclosed)
# while it was read. Here the same strings, plain characters in runs and the pairs as
# QUOTED_PAIRS (review359; on Python 3.10 a point for each pair).
_MULTIPART_PARAM = re.compile(
    r'; *[a-zA-Z0-9_-]+ *= *(?:"[^\\"]*"|[a-zA-Z0-9!#$%&\'*+.^_`|~-]+|"[^\\"]*'
    + QUOTED_PAIRS
    + r'")'
)


def misread_by_multipart(value: str) -> bool:
    """Tell whether ``multipart`` reads a parameter of a header inside a quoted value.

    It does where a parameter's name holds a character that its names may not (``x.y``):
    it skips that parameter, and reads its quoted value's ``; name=evil`` as one.
    """
    # NOTE: each of multipart's parameters starts where one of the RFC's reading does, unless
    # it is inside a quoted value of that reading: its pattern is that one's, narrowed.
    starts = {found.start() for found in _DISPOSITION_PARAM.finditer(value)}
    return any(found.start() not in starts for found in _MULTIPART_PARAM.finditer(value))


def _ext_filename(disposition: str) -> str | None:
    """Return the raw value of the ``filename*`` parameter of a ``Content-Disposition``."""
    for found in _DISPOSITION_PARAM.finditer(disposition):
        if found.group(1).lower() == "filename*":
            return found.group(2)
    return None


def part_filename(headers: list[tuple[str, str]], plain: str | None) -> str | None:
    """Return a multipart part's file name: its ``filename*`` if valid, else ``plain``.

    ``headers`` are the part's (names as ``multipart`` gives them), ``plain`` the
    ``filename`` parameter that ``multipart`` read (``None`` for a text field).

    Raises:
        HTTPError: 400 for a ``filename*`` that does not decode, with no ``filename`` beside it.
    """
    # SPEC: RFC 7578 4.2 says form-data must not use filename* (RFC 5987), yet some clients send
    # it, alone (a non-ASCII name) or beside filename, which it then wins over (RFC 6266 4.3).
    # NOTE: a part has one Content-Disposition line (a second is refused: _parts._Parser);
    # the loop takes the last, as multipart does.
    disposition = None
    for key, value in headers:
        if key == "Content-Disposition":
            disposition = value
    if disposition is not None and "*" in disposition:
        found = _ext_filename(disposition)
        decoded = decode_ext_value(found) if found is not None else None
        if decoded is not None:
            return decoded
        if found is not None and plain is None:
            raise HTTPError(400, "multipart part with an invalid filename* parameter")
    return plain
