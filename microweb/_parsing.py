"""Parsing of header values and small bodies: media types, ``Accept``, comma-separated lists
(``Connection``, ``Content-Encoding``) and text. The request's framing is ``_framing``'s, its
header, query and cookie mappings ``_fields``', JSON ``_strict_json``'s, percent-escapes
``_percent``'s."""

from __future__ import annotations

import itertools
import re
import sys

from ._charsets import decode, find_codec, sniffed
from ._datastructures import Headers
from ._errors import HTTPError

_JSON_TYPES = ("application/json",)


# NOTE: the parameters of a Content-Type read; the rest is ignored. A media type has one or
# two (charset, boundary).
# PERF: a request's 256 KiB Content-Type of ";;;..." (what Waitress and httptools let through)
# took 38 ms of CPU with the GIL held, in each json(), text(), form() or iter_parts() (a long
# one is not cached); ";a=b" repeated, 14 ms. Now 0.02-0.03 ms (timeit, 2026-12-03).
MAX_MEDIA_PARAMS = 64


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """Split a ``Content-Type`` value into the lower-cased type and its parameters (the first
    ``MAX_MEDIA_PARAMS`` of them)."""
    if not content_type:
        return "", {}
    if '"' in content_type:
        return _quoted_media_type(content_type)
    main, *rest = content_type.split(";", MAX_MEDIA_PARAMS + 1)
    params = {}
    for item in rest[:MAX_MEDIA_PARAMS]:
        key, _, value = item.partition("=")
        params[key.strip().lower()] = value.strip().strip('"')
    return main.strip().lower(), params


# NOTE: one parameter of a media type whose value may be a quoted string (RFC 9110 5.6.6),
# taken whole with the ";" it holds; a quote left open takes the rest of the value.
# PERF: only for a Content-Type that holds a quote: 'multipart/form-data; boundary="..."'
# in 1.8 us instead of 0.7 (timeit, 2026-12-05); 256 KiB of '";' in 0.5 ms.
# PERF: the quoted pairs are repeated possessively ("*+", Python 3.11+): re kept a
# backtracking point for each one, so a 256 KiB value of '"\a\a...' took 26 MB while it was
# read (100 bytes a byte), in each json(), text() or form(); now nothing a pair. Backtracking
# never changes what they match: each pair starts at a backslash, the end at a quote.
# Python 3.10's re has no possessive repeat: there the memory stays (hostile5).
POSSESSIVE = "+" if sys.version_info >= (3, 11) else ""
QUOTED_PAIRS = r'(?:\\.[^"\\]*)*' + POSSESSIVE
_MEDIA_PARAM = re.compile(r';[ \t]*([^;=]*)(?:=[ \t]*("[^"\\]*' + QUOTED_PAIRS + r'"?|[^;]*))?')


def _quoted_media_type(content_type: str) -> tuple[str, dict[str, str]]:
    # NOTE: split at every ";", a quoted value that held one gave its tail as a parameter:
    # 'multipart/form-data; boundary=real; x="; boundary=evil"' was parsed with the boundary
    # "evil", where a proxy or a firewall that reads the header by the RFC finds "real", and
    # so other parts in the same body (review179).
    main = content_type.partition(";")[0]
    params = {}
    for found in itertools.islice(_MEDIA_PARAM.finditer(content_type, len(main)), MAX_MEDIA_PARAMS):
        key, value = found.group(1), found.group(2) or ""
        if value.startswith('"'):
            # NOTE: a quoted pair ("\-") stays as it came, as before (test_request_hostile).
            value = value[1:-1] if len(value) > 1 and value.endswith('"') else value[1:]
        else:
            value = value.strip().strip('"')
        params[key.strip().lower()] = value
    return main.strip().lower(), params


def form_boundary(content_type: str | None, params: dict[str, str]) -> str | None:
    """Return the ``boundary`` of a multipart ``Content-Type``, whose ``media_type()`` gave
    ``params``.

    Raises:
        HTTPError: 400 if the header names the boundary twice.
    """
    if names_twice(content_type, "boundary"):
        raise HTTPError(400, "multipart Content-Type names its boundary twice")
    return params.get("boundary")


def names_twice(content_type: str | None, param: str) -> bool:
    """Tell whether a ``Content-Type`` names the parameter ``param`` (lower case) twice; in
    one of more than ``MAX_MEDIA_PARAMS`` parameters, a name in a quoted value counts too."""
    # SPEC: RFC 6838 4.3, a parameter given more than once is an error. media_type() keeps the
    # last one, where a proxy or a firewall may read the first, and so another form (or, of
    # a charset, other text).
    # NOTE: the names are read only when the name is written twice, which no client does.
    if content_type is None or content_type.lower().count(param) < 2:
        return False
    # PERF: read to the 64th parameter, as media_type() reads them: every one, a 256 KiB
    # Content-Type of ";a" that named the charset twice took 21 ms (39 ms with a quote in it)
    # in each text() or form() (hostile5). Past it, the names are looked for by re.
    if '"' in content_type:
        found = _MEDIA_PARAM.finditer(content_type, content_type.find(";"))
        names = [m.group(1) for m in itertools.islice(found, MAX_MEDIA_PARAMS + 1)]
    else:
        names = content_type.split(";", MAX_MEDIA_PARAMS + 1)[1:]
        names = [item.partition("=")[0] for item in names[: MAX_MEDIA_PARAMS + 1]]
    if len(names) > MAX_MEDIA_PARAMS:
        return _named_twice_past_read(content_type, param)
    # NOTE: RFC 2231's "boundary*" and "boundary*0" name it too, for a proxy that reads them
    # (review183).
    return [name.strip().lower().partition("*")[0] for name in names].count(param) > 1


def _named_twice_past_read(content_type: str, param: str) -> bool:
    """``names_twice()`` for a ``Content-Type`` of more than ``MAX_MEDIA_PARAMS`` parameters:
    the name after a ``;``, as ``names_twice()`` reads one, found twice by ``re``."""
    # NOTE: the name written twice anywhere was taken for it named twice: a browser's boundary
    # ("----WebKitFormBoundary...") holds "boundary", so its form of 65 parameters was a 400
    # (review357). Here one in a quoted value counts too ('x="; charset=y"'): a 400 still.
    # PERF: no repeated group (a whitespace run is one repeat), nothing kept a parameter:
    # 256 KiB of ";a" that named the charset twice in 3 to 6 ms, where a list of the names
    # took 21 ms (timeit, loaded machine, 2026-12-07); the copy lower() makes the memory.
    # The spaces after the name are taken whole ("(?=(\s*))\1", atomic on 3.10 too): given
    # back one by one, ";charset" and 256 KiB of them before an "x" took 12 ms, now 2.5.
    named = _NAMED.get(param) or _named(param)
    return len(list(itertools.islice(named.finditer(content_type.lower()), 2))) > 1


def _named(param: str) -> re.Pattern[str]:
    return re.compile(rf";\s*{re.escape(param)}(?:\*[^;=]*|(?=(\s*))\1)(?=[;=]|\Z)")


# NOTE: compiled once, for the two that names_twice() is asked about.
_NAMED = {param: _named(param) for param in ("charset", "boundary")}


# NOTE: bounded: a client sends any Content-Type it likes; the cache is emptied when full,
# and a value longer than _JSON_TYPE_CACHED_SIZE is not kept: 64 requests with Content-Types
# of 256 KiB each (what Waitress and httptools let through) left 16 MB in it for good.
_JSON_TYPE_CACHE: dict[str | None, bool] = {}
_JSON_TYPE_CACHE_SIZE = 64
_JSON_TYPE_CACHED_SIZE = 256


def is_json_type(content_type: str | None) -> bool:
    """Tell whether a ``Content-Type`` value is JSON (``application/json`` or ``+json``)."""
    # PERF: answered from a cache of the values seen: 0.04 us instead of 0.34 to parse it.
    known = _JSON_TYPE_CACHE.get(content_type)
    if known is not None:
        return known
    media, _ = media_type(content_type)
    answer = media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json"))
    if content_type is not None and len(content_type) > _JSON_TYPE_CACHED_SIZE:
        return answer
    if len(_JSON_TYPE_CACHE) >= _JSON_TYPE_CACHE_SIZE:
        _JSON_TYPE_CACHE.clear()
    _JSON_TYPE_CACHE[content_type] = answer
    return answer


_SPACES_AFTER_COMMA = re.compile(", +")
_FEW_SPACED_COMMAS = 64


def list_items(value: str) -> str:
    """Return a comma-separated list's value lower-cased, between commas, with each of its
    items stripped of spaces and tabs: ``" A ,b\tc,"`` gives ``",a,b c,,"``. An option that
    holds no space or tab is one of its items iff ``",option,"`` is in it (a run of spaces
    and tabs inside an item is left, or made one space).
    """
    # PERF: string methods and expressions only, all in C: split into items and each stripped
    # in Python, 256 KiB of "," (what Waitress and httptools let through in a head) took
    # 12 ms of CPU (about 50 ns a byte), in each request under Waitress for its Connection
    # (review359). Now 0.4 ms; the costliest, 256 KiB of " , " or of "  a" (runs of spaces),
    # 1.5 to 6 ms where the old reading took 8 (0.2 for the runs, one item), timeit on a
    # loaded machine where "," took the old one 13 ms (2026-12-07).
    text = "," + value.lower() + ","
    if " " not in text and "\t" not in text:
        return text
    text = text.replace("\t", " ")
    beside = text.count(", ") + text.count(" ,")
    if not beside:
        return text
    if beside <= _FEW_SPACED_COMMAS:
        # NOTE: the spaces after each comma, then, the value reversed, those before it.
        text = _SPACES_AFTER_COMMA.sub(",", text)
        return _SPACES_AFTER_COMMA.sub(",", text[::-1])[::-1]
    # PERF: many spaced commas, each a match of an expression, about 0.3 us: here each pass
    # halves each run of spaces (inside items too, which takes nothing from an option), till
    # one space is left beside a comma: 256 KiB of " , " in 2.5 ms.
    while "  " in text:
        text = text.replace("  ", " ")
    return text.replace(", ", ",").replace(" ,", ",")


def is_coded(content_encoding: str | None) -> bool:
    """Tell whether a ``Content-Encoding`` value names a coding other than ``identity``."""
    if not content_encoding:
        return False
    # NOTE: twice, as a run of them shares its fences: the first time takes every other one.
    rest = list_items(content_encoding).replace(",identity,", ",,").replace(",identity,", ",,")
    return rest.count(",") != len(rest)


def header_value(headers: Headers, name: str) -> str | None:
    """Return every line of the request header ``name`` joined with ``", "``, or ``None``.

    WSGI servers join the lines of a header into one variable, ASGI servers pass each line, so
    the first line alone would be read differently under the two interfaces. The same value as
    ``request.headers.get()``, for any ``Headers`` (the framework's reads take this one).
    """
    # SPEC: RFC 9110 5.3, lines of a field join with commas; for a field that is no list
    # (Origin, If-Modified-Since, Range), the joined value is as malformed as WSGI's.
    lines = headers.getlist(name)
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else ", ".join(lines)


def names_option(connection: str | None, option: str) -> bool:
    """Return whether a ``Connection`` value (its lines joined with commas) names ``option``
    (in lower case) among its options."""
    if connection is None or option not in connection.lower():
        return False
    return "," + option + "," in list_items(connection)


# NOTE: the longest Accept or Accept-Encoding value read; a longer one is treated as absent.
# Browsers send under 300 characters, and each item costs Python work: 256 KiB of commas (a
# head Waitress accepts) took 127 ms to read, 4 KiB takes 1 ms.
MAX_ACCEPT_SIZE = 4096


def quality(params: str) -> float:
    """Return the ``q`` weight among the parameters of one item of an ``Accept``-style header
    (1.0 when absent, 0.0 when not a number from 0 to 1)."""
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                return 0.0
            return q if 0.0 <= q <= 1.0 else 0.0
    return 1.0


def prefers_json(accept: str) -> bool:
    """Tell whether an ``Accept`` value asks for JSON (``application/json`` or ``+json``) with
    a weight above 0 and at least that of ``text/plain`` (by its most specific range).

    SPEC: RFC 9110 12.5.1: ``q=0`` means "not acceptable"; the most specific range applies.
    A value longer than ``MAX_ACCEPT_SIZE`` is not read (the same section lets a server
    disregard the header): the answer is then no.
    """
    if len(accept) > MAX_ACCEPT_SIZE:
        return False
    json_q = 0.0
    text = {"text/plain": -1.0, "text/*": -1.0, "*/*": -1.0}
    for item in accept.split(","):
        media, _, params = item.partition(";")
        media = media.strip().lower()
        if media in _JSON_TYPES or (media.startswith("application/") and media.endswith("+json")):
            json_q = max(json_q, quality(params))
        elif media in text:
            text[media] = quality(params)
    text_q = next((q for q in text.values() if q >= 0), 0.0)
    return json_q > 0 and json_q >= text_q


def find_text_codec(charset: str | None, what: str) -> str:
    """Return the codec for a client's ``charset`` label (UTF-8 when there is none).

    Raises:
        HTTPError: 400 for a label that is not on the allow-list (see ``_charsets``).
    """
    if charset is None:
        return "utf-8"
    codec = find_codec(charset)
    if codec is None:
        # NOTE: 400 rather than 415, as for every other malformed body (DESIGN.md section 3);
        # the client's label is not echoed back.
        raise HTTPError(400, f"unsupported charset for {what} (use utf-8)")
    return codec


def decode_with(data: bytes, codec: str, what: str) -> str:
    """Decode ``data`` with a codec from ``find_text_codec``.

    Raises:
        HTTPError: 400 for bytes that do not decode.
    """
    try:
        return decode(data, codec)
    except UnicodeDecodeError:
        used = sniffed(data, codec)[0]
        # NOTE: the codec that failed: a body labelled latin-1 that starts with FF FE was said
        # to be no valid latin-1, which it always is.
        marked = "" if used == codec else " (as its byte order mark says)"
        raise HTTPError(400, f"{what} is not valid {used}{marked}") from None


def decode_text(body: bytes, content_type: str | None) -> str:
    """Decode a body with the charset of its content type (UTF-8 when none is given).

    Raises:
        HTTPError: 400 for a charset that is not accepted, named twice, or bytes that do not
            decode.
    """
    if names_twice(content_type, "charset"):
        raise HTTPError(400, "the body's Content-Type names its charset twice")
    codec = find_text_codec(media_type(content_type)[1].get("charset"), "the body")
    return decode_with(body, codec, "the body")
