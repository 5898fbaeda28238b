"""Parsing of header values and small bodies: media types, JSON, text and urlencoded fields."""

from __future__ import annotations

import binascii
import itertools
import json
import math
import re
import unicodedata
from collections.abc import Iterable
from json.scanner import make_scanner
from typing import Any, TypeVar

from ._charsets import decode, find_codec, sniffed
from ._datastructures import Headers, MultiDict
from ._errors import HTTPError

V = TypeVar("V")

_JSON_TYPES = ("application/json",)
_BOM = b"\xef\xbb\xbf"


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
_MEDIA_PARAM = re.compile(r';[ \t]*([^;=]*)(?:=[ \t]*("[^"\\]*(?:\\.[^"\\]*)*"?|[^;]*))?')


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
    """Tell whether a ``Content-Type`` names the parameter ``param`` (lower case) twice."""
    # SPEC: RFC 6838 4.3, a parameter given more than once is an error. media_type() keeps the
    # last one, where a proxy or a firewall may read the first, and so another form (or, of
    # a charset, other text).
    # PERF: the names are read only when the name is written twice, which no client does.
    if content_type is None or content_type.lower().count(param) < 2:
        return False
    if '"' in content_type:
        names = [m.group(1) for m in _MEDIA_PARAM.finditer(content_type, content_type.find(";"))]
    else:
        names = [item.partition("=")[0] for item in content_type.split(";")[1:]]
    # NOTE: RFC 2231's "boundary*" and "boundary*0" name it too, for a proxy that reads them
    # (review183).
    return [name.strip().lower().partition("*")[0] for name in names].count(param) > 1


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


# PERF: one scanner, built once; json.loads() with these options builds one per call (0.9 us).
# The scanner called directly, not through JSONDecoder.decode() (two Python calls and two
# regex matches): the echo cell's 1 KB parsed in 8.35 us instead of 8.9.
# NOTE: the float hook costs ~0.08 us per float (0.9 us for the echo cell's 11), less than any
# scan of the text for a risky number that we measured (translate and search: 1.9 us per KB).
# NOTE: typeshed types make_scanner's argument as a scanner; it takes any decoder's options.
_scan = make_scanner(
    json.JSONDecoder(parse_constant=reject_constant, parse_float=finite_float)  # type: ignore[arg-type]
)
_SPACE = " \t\n\r"


def _scan_json(text: str) -> Any:
    # NOTE: what JSONDecoder.decode() does: one value, whitespace around it and nothing else.
    start = 0 if text[:1] not in _SPACE else len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration:
        raise ValueError("expecting a value") from None
    if end != len(text) and text[end:].strip(_SPACE):
        raise ValueError("extra data after the value")
    return value


def loads_json(text: str) -> Any:
    """Parse JSON text strictly: no ``NaN``/``Infinity``, no number beyond a float's range and
    no lone surrogate escape; the one parser for request bodies and WebSocket messages.

    Raises:
        ValueError: For invalid JSON (``RefusedJSON`` for valid JSON that is refused).
        RecursionError: For JSON nested too deeply.
    """
    value = _scan_json(text)
    # PERF: a backslash looked for first (one memchr), the pattern only where there is one:
    # 0.33 -> 0.03 us for the echo cell's 1 KB, which has none (timeit, 2026-11-30).
    if "\\" in text and _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(text):
        raise RefusedJSON("holds a lone surrogate (\\ud800-\\udfff)")
    return value


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


def is_coded(content_encoding: str | None) -> bool:
    """Tell whether a ``Content-Encoding`` value names a coding other than ``identity``."""
    if not content_encoding:
        return False
    return any(
        coding.strip(" \t").lower() not in ("", "identity")
        for coding in content_encoding.split(",")
    )


def header_value(headers: Headers, name: str) -> str | None:
    """Return every line of the request header ``name`` joined with ``", "``, or ``None``.

    The framework reads a header with this, never ``headers.get()``: WSGI servers join the
    lines of a header into one variable, ASGI servers pass each line, so the first line alone
    would be read differently under the two interfaces.
    """
    # SPEC: RFC 9110 5.3, lines of a field join with commas; for a field that is no list
    # (Origin, If-Modified-Since, Range), the joined value is as malformed as WSGI's.
    lines = headers.getlist(name)
    if not lines:
        return None
    return lines[0] if len(lines) == 1 else ", ".join(lines)


# NOTE: the header fields that frame a request's body.
FRAMING_FIELDS = (b"transfer-encoding", b"content-length")


def folded_framing(lines: Iterable[bytes | bytearray]) -> bytes | None:
    """Return the name of a framing field of a request head folded onto its next line
    (obs-fold), or ``None``; ``lines`` are the head's lines, without their CRLF.

    For the servers that join such lines (Waitress, h11) to refuse the head.
    """
    # SPEC: RFC 9112 5.2, a server either refuses obs-fold with 400 or replaces it with
    # spaces. NOTE: Waitress and h11 joined "Transfer-Encoding:" and a next line " chunked" and
    # read a chunked body, where httptools answers 400; a proxy that knows no folding took the
    # line as no framing (or refused it), and the chunks as the next request.
    name = b""
    for line in lines:
        if line[:1] not in (b" ", b"\t"):
            name = bytes(line.partition(b":")[0]).lower()
        elif name in FRAMING_FIELDS:
            return name
    return None


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


def parse_json(body: bytes) -> Any:
    """Parse a JSON request body (whose ``Content-Type`` the caller checked: ``is_json_type``).

    Raises:
        HTTPError: 400 for invalid, non-UTF-8 or too deep JSON.
    """
    try:
        # SPEC: RFC 8259 8.1, a parser may ignore a byte order mark; some clients send one.
        # PERF: the BOM cut off here: the utf-8-sig codec is Python code, 0.55 us for 1 KB
        # where utf-8 takes 0.09.
        return loads_json((body[3:] if body[:3] == _BOM else body).decode("utf-8"))
    except UnicodeDecodeError:
        raise HTTPError(400, "JSON body is not valid UTF-8") from None
    except RecursionError:
        raise HTTPError(400, "JSON body is nested too deeply") from None
    except RefusedJSON as exc:
        raise HTTPError(400, f"JSON body {exc}") from None
    except ValueError:
        raise HTTPError(400, "invalid JSON body") from None


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


class MissingField(HTTPError, KeyError):
    """A query parameter, form field or header the request lacks: a ``KeyError`` that answers
    400. Its ``args`` are a ``KeyError``'s, ``(key,)``, so ``except KeyError as exc`` code that
    reads ``exc.args[0]`` gets the key."""

    def __init__(self, what: str, key: str) -> None:
        super().__init__(400, f"missing {what} {key!r}")
        self.what = what
        self.args = (key,)

    def __reduce__(self) -> tuple[Any, ...]:
        # NOTE: copy and pickle rebuild an exception as cls(*args), and these args are (key,).
        return (type(self), (self.what, self.args[0]), self.__dict__)


class RequestFields(MultiDict[V]):
    """The multidict of a request's query or form: ``fields[name]`` missing is the client's 400.

    As Werkzeug's ``BadRequestKeyError``: a required field the client left out is bad input,
    not a server error, and ``except KeyError`` still catches it.
    """

    __slots__ = ()
    what = "query parameter"

    def __getitem__(self, key: str) -> V:
        try:
            return self._first[key]
        except KeyError:
            raise MissingField(self.what, key) from None


class RequestCookies(dict[str, str]):
    """The cookies a client sent, a ``dict``: ``cookies[name]`` missing is the client's 400,
    as for ``RequestFields``."""

    __slots__ = ()

    def __missing__(self, key: str) -> str:
        raise MissingField("cookie", key)


class RequestHeaders(Headers):
    """The headers a client sent: ``headers[name]`` missing is the client's 400, as for
    ``RequestFields`` (and Werkzeug's ``request.headers``)."""

    __slots__ = ()

    def _missing(self, name: str) -> KeyError:
        return MissingField("header", name)


def parse_fields(data: bytes, max_fields: int) -> list[tuple[str, str]]:
    """Parse a query string or urlencoded body into ``(name, value)`` pairs.

    The same pairs as ``urllib.parse.parse_qsl`` with blank values kept: fields split on
    ``&``, empty ones skipped, ``+`` a space, percent-escapes decoded strictly as UTF-8.

    Raises:
        HTTPError: 400 for invalid UTF-8 or more than ``max_fields`` fields.
    """
    if not data:
        return []
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPError(400, "query or form data is not valid UTF-8") from None
    # NOTE: counted as parse_qsl counts them, empty fields included.
    if text.count("&") >= max_fields:
        raise HTTPError(400, f"more than {max_fields} query or form fields")
    # PERF: nothing to decode, the common case, costs no unquoting: 4.4 us for 20 fields
    # instead of 14.3 with parse_qsl. A plain loop, with no generator inside a comprehension:
    # 3.2 -> 2.7 us for the same 20 (timeit, 2026-11-30).
    escaped = "%" in text or "+" in text
    pairs = []
    try:
        for field in text.split("&"):
            if field:
                name, _, value = field.partition("=")
                pairs.append(
                    (_unquote_field(name), _unquote_field(value)) if escaped else (name, value)
                )
    except UnicodeDecodeError:
        raise HTTPError(400, "query or form data is not valid UTF-8") from None
    return pairs


def _unquote_field(text: str) -> str:
    if "%" in text:
        return percent_decode(text.replace("+", " "), "strict")
    return text.replace("+", " ") if "+" in text else text


# NOTE: unquote() and unquote_to_bytes() run a Python loop over the escapes: 0.6 us each, and
# a "%" that starts none cost a KeyError raised and caught. A form of 1 MiB of escapes took
# 200-650 ms of CPU, 256 KiB of query, Cookie header or path 50-200 ms. Here the escapes are
# decoded by binascii.a2b_qp(), quoted-printable's decoder, in C: "%41" written "=41", and a
# literal "=" written "=3D" first, so that every "=" it sees starts an escape. A "%" that
# starts no escape must stay literal: with fewer of those than escapes, each is written "%25";
# else each escape's "%" is turned into "=" one by one. Each of those is a regex match, in C
# (0.2-0.4 us), for the fewer of the two kinds; no escape costs Python work.
# PERF: per MiB, "%41" in 12 ms instead of 199 (unquote_to_bytes), "%" in 25 instead of 493,
# and the worst shape, as many lone "%" as escapes ("%%41"), in 138 instead of 337; "caf%C3%A9"
# in 2.0 us instead of 3.8 (timeit, a loaded 2-core machine, 2026-12-02).
_ESCAPE_START = re.compile(rb"%(?=[0-9A-Fa-f]{2})")
_LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_HEX_DIGITS = b"0123456789ABCDEFabcdef"
# NOTE: every hex digit read as "h", and nothing else: "%hh" then counts the escapes.
_HEX_MARKS = bytes(
    ord("h") if code in _HEX_DIGITS else code if code == ord("%") else ord(".")
    for code in range(256)
)


def percent_decode_bytes(data: bytes) -> bytes:
    """Return ``urllib.parse.unquote_to_bytes(data)``, decoded in C (no Python work per escape)."""
    if b"%" not in data:
        return data
    data = data.replace(b"=", b"=3D")
    escapes = data.translate(_HEX_MARKS).count(b"%hh")
    lone = data.count(b"%") - escapes
    if not lone:
        data = data.replace(b"%", b"=")
    elif lone <= escapes:
        data = _LONE_PERCENT.sub(b"%25", data).replace(b"%", b"=")
    else:
        data = _ESCAPE_START.sub(b"=", data)
    return binascii.a2b_qp(data)


# NOTE: what a URI reference cannot hold but a URL written by hand often does (RFC 3986
# section 2, as browsers encode a typed URL): a space, ", <, >, \, ^, `, {, |, } and non-ASCII.
# "%" stays: the URL may be encoded already. Control characters are encoded too: a redirect
# to a client's "?next=" holding CR LF was a 500 (the header check refused it), and a browser
# drops a tab, CR or LF from a URL ("/\t/evil.test" is "//evil.test", another site).
_NOT_IN_URI = re.compile(r'[\x00-\x20"<>\\^`{|}\x7f-\U0010ffff]')
# NOTE: the escape of each of those characters, and of every byte of a UTF-8 sequence (the
# text's UTF-8 bytes read as latin-1 are code points 0x80-0xff).
_URI_ESCAPES = {
    code: f"%{code:02X}" for code in [*range(0x21), *b'"<>\\^`{|}', *range(0x7F, 0x100)]
}


def percent_encode_uri(text: str) -> str:
    """Percent-encode (as UTF-8) what a URI cannot hold, as a browser does a typed URL.

    Raises:
        UnicodeEncodeError: If ``text`` holds a lone surrogate.
    """
    # PERF: one translate() in C, not quote() called on each run of such characters: a
    # redirect to a client's 256 KiB "?next=" of 'a"a"...' (what Waitress and httptools
    # let through) took 116 ms of CPU, now 12; "/caf\u00e9" 2.1 -> 1.3 us, a URL with
    # nothing to encode the same 0.7 us (timeit, 2026-12-03).
    if _NOT_IN_URI.search(text) is None:
        return text
    if not text.isascii():
        text = text.encode("utf-8").decode("latin-1")
    return text.translate(_URI_ESCAPES)


# NOTE: an absolute or scheme-relative URL's scheme and authority, up to the path, query or
# fragment.
_AUTHORITY = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]*):)?//([^/?#\\]*)")
# SPEC: WHATWG URL, "special scheme": browsers apply IDNA to these schemes' hosts only; any
# other's (myapp://callback) is an opaque host, which they percent-encode.
_IDNA_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]+")
# NOTE: the characters known to IDNA 2003 (Python's "idna" codec, Unicode 3.2) that browsers
# (UTS 46, nontransitional) map otherwise: the deviations ("straße.de" would be strasse.de,
# another host than the browser's), Cherokee capitals (the codec lower-cases them, UTS 46 maps
# the small letters to them), fillers and inherent vowels that UTS 46 drops, and CJK
# compatibility ideographs whose decomposition Unicode has corrected since. Found by encoding
# each character both ways, with the idna package's UTS 46 as the browser.
_CHEROKEE_CAPITALS = "".join(map(chr, range(0x13A0, 0x13F5)))
_DEVIATIONS = frozenset(
    "\u00df\u03c2\u200c\u200d\u115f\u1160\u17b4\u17b5\u3164\uffa0"
    f"\U0002f868\U0002f874\U0002f91f\U0002f95f\U0002f9bf{_CHEROKEE_CAPITALS}"
)
# SPEC: RFC 1035 2.3.4, a name is 255 octets at most (253 characters as text); a host's IDNA
# form is no shorter than its Unicode one but for characters that IDNA maps to nothing.
# PERF: the "idna" codec is Python code, about 8 us a label: a redirect to a client's URL
# whose host was 40,000 labels of "\u00e9." (a 256 KiB query) took 440 ms of CPU. A longer
# host is percent-encoded as the rest, and a browser applies IDNA to it itself.
MAX_IDNA_HOST = 253


def encode_location(url: str) -> str:
    """Return ``url`` as a ``Location`` value: a non-ASCII host in IDNA form (``xn--``), the
    rest percent-encoded where a URI cannot hold it (``percent_encode_uri``).

    A host the codec can't encode as a browser would, and the host of a scheme browsers apply
    no IDNA to, are percent-encoded as the rest; a browser decodes the escapes of an
    ``http(s)`` host before it applies IDNA itself.

    Raises:
        UnicodeEncodeError: If ``url`` holds a lone surrogate.
    """
    match = _AUTHORITY.match(url)
    if match is not None and not match.group(2).isascii():
        scheme = match.group(1)
        if scheme is None or scheme.lower() in _IDNA_SCHEMES:
            start, end = match.span(2)
            url = url[:start] + _ascii_authority(match.group(2)) + url[end:]
    return percent_encode_uri(url)


def _ascii_authority(authority: str) -> str:
    userinfo, at, host_port = authority.rpartition("@")
    host, colon, port = host_port.partition(":")
    if (
        host.isascii()
        or len(host) > MAX_IDNA_HOST
        or not all(_encoded_as_browsers_do(char) for char in host)
    ):
        return authority
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return authority
    if not _HOSTNAME.fullmatch(ascii_host):
        return authority  # NOTE: a space, say: no host either way; percent-encoded as it was.
    return f"{userinfo}{at}{ascii_host}{colon}{port}"


def _encoded_as_browsers_do(char: str) -> bool:
    # NOTE: a character added to Unicode after 3.2 passes the codec unmapped, or lower-cased
    # by today's tables, where UTS 46 maps it: "\u1e9e" (capital sharp s) became "ss", not ß.
    return char.isascii() or (
        char not in _DEVIATIONS and unicodedata.ucd_3_2_0.category(char) != "Cn"
    )


def percent_decode(text: str, errors: str = "replace") -> str:
    """Return ``urllib.parse.unquote(text, errors=errors)`` (UTF-8), decoded in C.

    Raises:
        UnicodeDecodeError: For escapes that are not UTF-8, when ``errors`` is ``"strict"``.
    """
    if "%" not in text:
        return text
    # NOTE: unquote() decodes each stretch of ASCII characters at once and keeps the others;
    # decoding the whole text as UTF-8 gives the same, as a non-ASCII character starts with a
    # lead byte, which ends any sequence the escapes before it started. A lone surrogate,
    # which no text decoded from a request holds, is the one difference.
    return percent_decode_bytes(text.encode("utf-8", "surrogatepass")).decode("utf-8", errors)


# SPEC: RFC 8187 3.2.1: an ext-value is charset "'" [ language ] "'" value-chars, where
# recipients must support UTF-8 and may support ISO-8859-1; no other charset is taken.
_EXT_CODECS = {"utf-8": "utf-8", "iso-8859-1": "latin-1"}


def decode_ext_value(value: str) -> str | None:
    """Decode an RFC 8187 extended parameter value, such as ``UTF-8''%E2%82%AC.txt``.

    Returns:
        The text, or ``None`` for a value that is malformed, in another charset, or whose
        bytes do not decode.
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
        if _LONE_PERCENT.search(data):
            return None
        return percent_decode_bytes(data).decode(codec)
    except UnicodeError:
        return None


# NOTE: multipart reads only ``filename``; this finds ``filename*`` where a header has one.
# Each match takes a whole parameter, quoted value included, so that a ';' inside a quoted
# value (a field named "a; filename*=...") is not taken for the start of one.
# PERF: the name taken whole by a look-ahead (which never backtracks), the quoted value by a
# loop over runs of plain characters: a 4 KB line of one long name without "=" took 69 us,
# one of a long quoted value 140 us; now 25 and 36 (timeit, 2026-12-03).
_DISPOSITION_PARAM = re.compile(r';\s*(?=([^\s=;"]+))\1\s*=\s*("[^"\\]*(?:\\.[^"\\]*)*"|[^;\s]*)')


def count_header_params(value: str) -> int:
    """Return the number of ``; name=value`` parameters of a header, a quoted value taken whole.

    An upper bound of those ``multipart`` parses in Python (its pattern takes fewer names and
    values, and the same quoted strings, unless it reads inside one: ``misread_by_multipart()``),
    and of those ``part_filename()`` reads; counted in C.
    """
    return len(_DISPOSITION_PARAM.findall(value))


def repeats_a_param(value: str) -> bool:
    """Tell whether a header names one of its ``; name=value`` parameters twice (without case),
    a quoted value taken whole as in ``count_header_params()``."""
    names = [name.lower() for name, _ in _DISPOSITION_PARAM.findall(value)]
    return len(set(names)) < len(names)


# NOTE: multipart's own pattern of a parameter (its _re_option, private): a name of letters,
# digits, "-" and "_", spaces only around the "=", a token or a quoted string.
_MULTIPART_PARAM = re.compile(
    r'; *[a-zA-Z0-9_-]+ *= *(?:"[^\\"]*"|[a-zA-Z0-9!#$%&\'*+.^_`|~-]+|"(?:\\.|[^\\"])*")'
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
