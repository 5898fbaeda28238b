"""Parsing of header values and small bodies: media types, ``Accept``, text and urlencoded
fields, and the request's header, query and cookie mappings. JSON is ``_strict_json``'s,
percent-escapes ``_percent``'s."""

from __future__ import annotations

import itertools
import re
import sys
from collections.abc import Iterable
from typing import Any, NamedTuple, TypeVar

from ._charsets import decode, find_codec, sniffed
from ._datastructures import INDEXED_FROM, Headers, MultiDict
from ._errors import HTTPError
from ._percent import percent_decode

V = TypeVar("V")
T = TypeVar("T")

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


def has_folded_line(lines: Iterable[bytes | bytearray]) -> bool:
    """Return whether a line of a request head (``lines``, without their CRLF) is folded onto
    the one before (obs-fold: it starts with a space or a tab).

    For the servers that join such lines (Waitress, h11) to refuse the head, as httptools does.
    """
    # SPEC: RFC 9112 5.2, a server either refuses obs-fold with 400 or replaces it with
    # spaces. NOTE: httptools answers 400 to any. Waitress and h11 joined the lines: a
    # folded "Transfer-Encoding:" and " chunked" framed a chunked body, and " Content-Length:
    # 5" after "X-A: 1" framed none, where a proxy that knows no folding read them otherwise;
    # and Waitress joined each folded line onto the ones before, copying them: a head of
    # 2,000 folded lines (256 KiB) took 21 ms of CPU, in the one thread that reads every
    # connection, where one of 2,000 plain lines takes 7 ms (hostile7). No browser or HTTP
    # library folds a line.
    return any(line[:1] in (b" ", b"\t") for line in lines)


# NOTE: the header fields that frame a request's body (lowercase).
FRAMING_FIELDS = (b"transfer-encoding", b"content-length")


def frames_in_trailer(lines: Iterable[bytes | bytearray]) -> bool:
    """Return whether a trailer section's ``lines`` name a field that frames a body."""
    # SPEC: RFC 9110 6.5.1, a field needed to frame the message is no trailer field.
    # NOTE: httptools answers 400 to Content-Length or Transfer-Encoding there; Waitress and
    # h11 read the body and the request after it, where a proxy that merges trailer fields
    # into the head (RFC 9110 6.5.1 lets it, for fields it knows) frames it otherwise.
    return any(bytes(line.partition(b":")[0]).lower() in FRAMING_FIELDS for line in lines)


# NOTE: the reason of the 400 for a folded header line.
FOLDED_LINE = "folded header line (obs-fold)"


class CodingRefusal(NamedTuple):
    """Why a request's ``Transfer-Encoding`` is refused: the status (400 or 501) and reason."""

    status: int
    reason: str


# NOTE: the reason of the 501 for a transfer coding before chunked, which no server reads.
UNSUPPORTED_CODING = "unsupported Transfer-Encoding (only chunked is)"

# SPEC: RFC 9112 7.1.1, a server ought to limit the total length of the chunk extensions of a
# request and answer 4xx past it. No client sends any. Waitress checks them with a regular
# expression, in its one thread that reads every connection, up to its body cap: one size line
# of 1 MB of ";a" took 117 ms of CPU, of 11 MB (the cap under the default limits) 4.7 s,
# more than linear; 11 MB of them in 1 KB lines 0.5 s (hostile140). Also the longest size
# line held. PERF: 16 KiB of the costliest ones take under 1 ms. Under h11, each chunk with an
# extension is an event of its own: 1.3 million "1;a" chunks (10 MiB) took 8.8 s of CPU in
# the event loop (2026-12-07).
MAX_CHUNK_EXTENSIONS = 16 * 1024

# SPEC: RFC 9112 7.1.1, chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] ),
# a name a token (RFC 9110 5.6.2), a value a token or a quoted string (5.6.4): here with no
# BWS, as Waitress and httptools read them. PERF: each byte is read one way only (a token
# holds no '"', ";" or "="; a quoted string's "\" starts a pair): linear in the length.
# PERF: the plain characters of a quoted value in runs, and the extensions and the quoted
# pairs repeated possessively (Python 3.11+, as QUOTED_PAIRS): a group repeated for each one
# kept a backtracking point each, 1.1 to 2.5 MB while 16 KiB of them were checked (hostile5).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QDTEXT = rb"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]*"
_QUOTED = (
    rb'"'
    + _QDTEXT
    + rb"(?:\\[\t \x21-\x7e\x80-\xff]"
    + _QDTEXT
    + rb")*"
    + POSSESSIVE.encode()
    + rb'"'
)
CHUNK_EXTENSIONS = re.compile(
    rb"(?:;" + _TOKEN + rb"(?:=(?:" + _TOKEN + rb"|" + _QUOTED + rb"))?)*" + POSSESSIVE.encode()
)


_COMMAS = re.compile(",*")


def _without_empty_tail(items: str) -> str:
    """Return ``list_items()``'s value without the commas it ends with."""
    if not items.endswith(",,"):
        return items[:-1]
    # PERF: rstrip(",") looks each character up in its argument: 256 KiB of "," took 3 ms.
    return items[: len(items) - _COMMAS.match(items[::-1]).end()]  # type: ignore[union-attr]


def transfer_coding_refusal(values: Iterable[str], length: bool = False) -> CodingRefusal | None:
    """Return why a request's ``Transfer-Encoding`` is refused, or ``None`` for ``chunked``.

    ``values`` are its field lines' values, one a line (at least one), and ``length`` tells
    whether the request has a ``Content-Length`` too. The one reading of the codings that
    Waitress, Uvicorn with h11 (under ``microweb serve``) and the app share.
    """
    # PERF: each line's items read by list_items(), in C, not one by one in Python (review359).
    blank_line = many = twice = False
    last = ""
    chunked = 0
    for value in values:
        items = list_items(value)
        # SPEC: RFC 9110 5.6.1, a recipient MUST ignore empty list members (",chunked",
        # "chunked,,"): httptools frames ",chunked" as chunked, and Waitress serves "chunked,,".
        before, _, item = _without_empty_tail(items).rpartition(",")
        blank_line = blank_line or not item
        many = many or bool(last) or before.count(",") != len(before)
        # NOTE: two side by side share a fence, which count() takes once.
        found = items.count(",chunked,")
        chunked += found
        twice = twice or (found > 0 and ",chunked,chunked," in items)
        last = item
    if blank_line:
        # NOTE: a line that names no coding: a proxy that reads the first line, or the last,
        # finds no framing, and reads the body as the next request. httptools answers 400 to
        # one beside a "chunked" line; Waitress answered 501 to one after it, and read the body
        # as chunked after one before it, as h11 did both ways (review317).
        return CodingRefusal(400, "Transfer-Encoding line without a coding")
    if last != "chunked":
        # SPEC: RFC 9112 6.3, a request whose Transfer-Encoding does not end in chunked MUST
        # be answered 400, and the connection closed (RFC 9112 6.1's 501 is for a coding not
        # understood before chunked, which frames the body).
        return CodingRefusal(400, "Transfer-Encoding without chunked last")
    if length:
        # SPEC: RFC 9112 6.3, a server MAY refuse a request with both, and MUST close after
        # it: a proxy that read the Content-Length reads the next request otherwise.
        return CodingRefusal(400, "Transfer-Encoding with Content-Length")
    if twice or chunked > 1:
        # SPEC: RFC 9112 7, chunked is applied once.
        return CodingRefusal(400, "Transfer-Encoding names chunked more than once")
    if many:
        # SPEC: RFC 9112 6.1, a server that receives a transfer coding it does not understand
        # SHOULD answer 501. NOTE: Uvicorn with httptools hands the body on with chunked
        # undone only, so "gzip, chunked" would reach the app gzipped.
        return CodingRefusal(501, UNSUPPORTED_CODING)
    return None


def has_body(headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Return whether a request head's ``headers`` (names in lower case) frame a body: a
    ``Transfer-Encoding``, or a ``Content-Length`` other than 0."""
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value.strip(b"0 \t")):
            return True
    return False


def names_option(connection: str | None, option: str) -> bool:
    """Return whether a ``Connection`` value (its lines joined with commas) names ``option``
    (in lower case) among its options."""
    if connection is None or option not in connection.lower():
        return False
    return "," + option + "," in list_items(connection)


# NOTE: the reasons of switch_refusal(), which microweb serve's httptools protocol answers too.
CONNECT_BODY = "a body with a CONNECT request is not read"
UPGRADE_BODY = "a body with an Upgrade request is not read"


def switch_refusal(method: str, connection: str | None, upgrade: bool, body: bool) -> str | None:
    """Return why a request with a body (``body``) that asks to switch protocols is refused
    (400), or ``None``: a ``CONNECT``, or an ``upgrade`` (an ``Upgrade`` field that names a
    protocol: an empty one asks for no switch, and httptools reads the body) that its
    ``Connection`` value names. ``microweb serve`` switches only to a WebSocket, whose
    handshake has no body."""
    if not body:
        return None
    if method == "CONNECT":
        # SPEC: RFC 9110 9.3.6, a CONNECT request has no content; what follows its head is
        # the tunnel's. NOTE: httptools takes it so (and microweb serve answers 400), where
        # Waitress and h11 read it as a body, and then the next request (review317).
        return CONNECT_BODY
    if upgrade and names_option(connection, "upgrade"):
        # SPEC: RFC 9110 7.8, a server MAY ignore Upgrade and read the body. NOTE: httptools
        # ends the request at its head, the body being the new protocol's, so microweb serve
        # answers 400 there; Waitress and h11 served it (review317).
        return UPGRADE_BODY
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
    ``RequestFields`` (and Werkzeug's ``request.headers``); ``headers[name]`` and ``get()``
    give every line of the name joined with ``", "``, as a WSGI server gives it."""

    __slots__ = ()

    def _missing(self, name: str) -> KeyError:
        return MissingField("header", name)

    def _value(self, key: str) -> str | None:
        # NOTE: a WSGI server joins the lines of a header into one variable (PEP 3333), an
        # ASGI server passes each: the first line alone was the value under ASGI, so an app
        # read "a" of "X-Forwarded-For: a" and "X-Forwarded-For: b" where WSGI gave "a, b".
        # SPEC: RFC 9110 5.3, the lines of a field are one value joined with commas.
        # PERF: the lines are joined once: added one onto the next, 1,000 lines of 256 bytes
        # (a 256 KiB head, within the default max_headers) cost 14 ms a lookup, 85 us joined;
        # a lookup in a 10-line head 0.36 us (timeit, 2026-12-05).
        items = self._list
        if len(items) > INDEXED_FROM:
            found_lines = self._lines().get(key)
            if found_lines is None:
                return None
            return found_lines[0] if len(found_lines) == 1 else ", ".join(found_lines)
        found: str | None = None
        lines: list[str] | None = None
        for item_name, value in items:
            if item_name != key:
                continue
            if found is None:
                found = value
            elif lines is None:
                lines = [found, value]
            else:
                lines.append(value)
        return found if lines is None else ", ".join(lines)


def too_many_fields(max_fields: int) -> HTTPError:
    """The 400 for a query or urlencoded form of more than ``max_fields`` fields."""
    return HTTPError(400, f"more than {max_fields} query or form fields")


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
        raise too_many_fields(max_fields)
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
