"""The one reading of a request's framing, shared by ``microweb serve``'s Waitress parser and
Uvicorn protocols and by the app's body reads: ``Transfer-Encoding`` lines (chunked, 400 or 501,
and why), chunk extensions, framing fields in a trailer, folded header lines, and a protocol
switch with a body."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import NamedTuple

from ._parsing import POSSESSIVE, list_items, names_option


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
