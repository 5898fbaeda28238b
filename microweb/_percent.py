"""Percent-encoding: escapes decoded in C, and a URL encoded for a ``Location`` header as a
browser would encode it (IDNA host, escaped path)."""

from __future__ import annotations

import binascii
import re
import unicodedata

# NOTE: unquote() and unquote_to_bytes() run a Python loop over the escapes: 0.6 us each, and
# a "%" that starts none cost a KeyError raised and caught. A form of 1 MiB of escapes took
# 200-650 ms of CPU, 256 KiB of query, Cookie header or path 50-200 ms. Here the escapes are
# decoded by binascii.a2b_qp(), quoted-printable's decoder, in C: "%41" written "=41", and a
# literal "=" written "=3D" first, so that every "=" it sees starts an escape. A "%" that
# starts no escape stays literal (a2b_qp keeps a "%"): each escape's "%" is turned into "="
# by adding 0x18 to it, where a mark of the escapes says so, as one big integer's sum.
# PERF: per MiB, "%41" in 12 ms instead of 199 (unquote_to_bytes), "%" in 25 instead of 493;
# "caf%C3%A9" in 2.0 us instead of 3.8 (timeit, a loaded 2-core machine, 2026-12-02).
# The escapes' "%" were turned into "=" by a regex sub, a match for each (0.2-0.4 us), or the
# lone ones into "%25": 1 MB of "%%41" (a form's field, within max_form_memory) took 61 ms
# of CPU, of "=%41%" 55 ms, of "%" alone 15 ms; with the sum, 7, 13 and 3 ms (hostile8).
LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")
HEX_DIGITS = b"0123456789ABCDEFabcdef"
# NOTE: every hex digit read as "h", and nothing else: "%hh" then counts the escapes.
_HEX_MARKS = bytes(
    ord("h") if code in HEX_DIGITS else code if code == ord("%") else ord(".")
    for code in range(256)
)
# NOTE: what to add to each byte: 0x18 where an escape starts ("%" + 0x18 is "="), else 0.
_TO_EQUALS = bytes(0x3D - 0x25 if code == ord("=") else 0 for code in range(256))


def percent_decode_bytes(data: bytes) -> bytes:
    """Return ``urllib.parse.unquote_to_bytes(data)``, decoded in C (no Python work per escape)."""
    if b"%" not in data:
        return data
    escapes = data.translate(_HEX_MARKS).count(b"%hh")
    if not escapes:
        return data  # NOTE: each "%" is literal.
    data = data.replace(b"=", b"=3D")
    if data.count(b"%") == escapes:
        return binascii.a2b_qp(data.replace(b"%", b"="))
    # NOTE: "%hh" marked "=hh", then "=" read as 0x18 and the rest as 0: the sum of the
    # data and the marks turns each escape's "%" into "=", and no byte carries into another.
    marks = data.translate(_HEX_MARKS).replace(b"%hh", b"=hh").translate(_TO_EQUALS)
    size = len(data)
    added = int.from_bytes(data, "big") + int.from_bytes(marks, "big")
    return binascii.a2b_qp(added.to_bytes(size, "big"))


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
# SPEC: WHATWG URL, "special authority ignore slashes state" and "authority state": before
# the host of a special URL (or of a reference from an http(s) page that starts with two
# slashes), a browser skips any run of "/" and "\"; the host ends at "/", "?", "#", or "\".
# Here: the scheme, the run, and the host.
_BROWSER_HOST = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.-]*):)?([/\\]*)[^/\\?#]*")
_HOSTNAME = re.compile(r"[A-Za-z0-9.-]+")
# NOTE: the characters known to IDNA 2003 (Python's "idna" codec, Unicode 3.2) that browsers
# (UTS 46, nontransitional) map otherwise: the deviations ("straße.de" would be strasse.de,
# another host than the browser's), Cherokee capitals (the codec lower-cases them, UTS 46 maps
# the small letters to them), fillers and inherent vowels that UTS 46 drops, and CJK
# compatibility ideographs whose decomposition Unicode has corrected since. Found by encoding
# each character both ways, with the idna package's UTS 46 as the browser.
_CHEROKEE_CAPITALS = "".join(map(chr, range(0x13A0, 0x13F5)))
# NOTE: and the 70 characters that UTS 46 disallows but the codec maps: to text with a full
# stop ("\u2488" is "1.", so "a\u2488b.example" went out as the host a1.b.example, where a
# browser given the app's URL goes nowhere), or to a letter (Georgian capitals, Palochka).
# Found by encoding each character up to U+10FFFF both ways, with Node's WHATWG URL (ada) as
# the browser: it refuses each host, and with these percent-encoded, every other is the same.
_FULL_STOPS = "\u2024\u2025\u2026\u33c2\u33c7\u33d8\ufe30\ufe52" + "".join(
    map(chr, range(0x2488, 0x249C))
)
_GEORGIAN_CAPITALS = "".join(map(chr, range(0x10A0, 0x10C6)))
_DEVIATIONS = frozenset(
    "\u00df\u03c2\u200c\u200d\u115f\u1160\u17b4\u17b5\u3164\uffa0"
    f"\U0002f868\U0002f874\U0002f91f\U0002f95f\U0002f9bf{_CHEROKEE_CAPITALS}"
    f"\u04c0\u1806\u2132\u2183{_FULL_STOPS}{_GEORGIAN_CAPITALS}"
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
    ``http(s)`` host before it applies IDNA itself. The ``\\`` that ends the host of such a URL
    (or of one that starts with two slashes) to a browser, as a ``/`` does, is written ``/``:
    escaped, it would not end it, and the browser would go to another host.

    Raises:
        UnicodeEncodeError: If ``url`` holds a lone surrogate.
    """
    host = _BROWSER_HOST.match(url)
    if host is not None and url[host.end() : host.end() + 1] == "\\":
        scheme, lead = host.groups()
        if scheme.lower() in _IDNA_SCHEMES if scheme else len(lead) > 1:
            # NOTE: escaped, "http://good.example\@evil.example" became
            # "http://good.example%5C@evil.example", whose host is evil.example.
            url = f"{url[: host.end()]}/{url[host.end() + 1 :]}"
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
