"""Heads that ``microweb serve``'s Waitress parser rewrites before Waitress reads them.

Past ``MANY_SPACES`` blanks or ``MANY_LINES`` lines, Waitress is handed one line a name with
``!`` for the blanks inside the values (``headers_joined()``): what reaches the app, and how
the request is framed, must be what it is for the same head under those bounds.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from waitress import parser as waitress_parser
from waitress.adjustments import Adjustments

from microweb import _waitress_parser
from microweb._waitress_parser import MANY_LINES, MANY_SPACES, OrderlyParser

NAMES = [
    b"Host",
    b"X-A",
    b"x-a",
    b"X_A",
    b"Cookie",
    b"Content-Length",
    b"Transfer-Encoding",
    b"Connection",
    b"Expect",
    b"Upgrade",
]
WORDS = [b" ", b"\t", b"!", b"a", b",", b"5", b"\xe9", b"chunked", b"close"]
WORDS += [b"keep-alive", b"100-continue", b"b=1", b";", b"h2c"]
VALUES = st.lists(st.sampled_from(WORDS), max_size=6).map(b"".join)
LINE = st.tuples(st.sampled_from(NAMES), VALUES, st.none() | VALUES).map(
    lambda parts: parts[0] + b":" + parts[1] + (b"" if parts[2] is None else b"\r\n " + parts[2])
)
# NOTE: a body, the end of a chunked one, and a next request: where each request ends.
NEXT = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
REST = b"5\r\nhello\r\n0\r\n\r\n" + NEXT


def outcome(data: bytes) -> dict[str, Any]:
    """What the app and the connection get from ``data``: a head, its body and what follows."""
    parser = OrderlyParser(Adjustments())
    while data and not parser.completed:
        taken = parser.received(data)
        if not taken:
            break
        data = data[taken:]
    error = parser.error
    return {
        "error": None if error is None else (error.code, error.body),
        "headers": None if error is not None else dict(parser.headers),
        "order": None if error is not None else list(parser.headers),
        "chunked": parser.chunked,
        "content_length": parser.content_length,
        "close": parser.connection_close,
        "expect": parser.expect_continue,
        "body": None if error is not None else parser.get_body_stream().read(),
        "left": data if parser.completed else None,
    }


def padded(head: bytes, spaces: int, lines: int) -> bytes:
    """``head`` with lines Waitress drops (a ``_`` in the name) after its request line."""
    first, _, rest = head.partition(b"\r\n")
    pad = [b"X_Pad:" + b" p" * spaces] if spaces else []
    pad += [b"X_Line: p"] * lines
    return b"\r\n".join([first, *pad, rest])


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.sampled_from([b"GET", b"POST"]),
    st.sampled_from([b"HTTP/1.0", b"HTTP/1.1"]),
    st.lists(LINE, max_size=12),
    st.sampled_from([(MANY_SPACES, 0), (0, MANY_LINES), (MANY_SPACES, MANY_LINES)]),
)
def test_a_rewritten_head_reads_as_the_head_unrewritten(
    method: bytes, version: bytes, lines: list[bytes], padding: tuple[int, int]
) -> None:
    head = method + b" /p?q " + version + b"\r\n" + b"".join(line + b"\r\n" for line in lines)
    assert head.count(b" ") + head.count(b"\t") <= MANY_SPACES
    assert head.count(b"\n") <= MANY_LINES
    plain = outcome(head + b"\r\n" + REST)
    assert outcome(padded(head, *padding) + b"\r\n" + REST) == plain
    if plain["error"] is None:
        # NOTE: and as plain Waitress reads it, but for the Cookie lines joined with "; ".
        theirs = waitress_parser.HTTPRequestParser(Adjustments())
        theirs.received(head + b"\r\n")
        assert theirs.error is None
        assert {**theirs.headers, "COOKIE": None} == {**plain["headers"], "COOKIE": None}
        assert list(theirs.headers) == plain["order"]
        assert (theirs.chunked, theirs.connection_close, theirs.expect_continue) == (
            plain["chunked"],
            plain["close"],
            plain["expect"],
        )


@pytest.mark.parametrize("spaces", [MANY_SPACES - 1, MANY_SPACES, MANY_SPACES + 1])
@pytest.mark.parametrize("lines", [MANY_LINES - 1, MANY_LINES, MANY_LINES + 1])
def test_the_heads_at_the_bounds_read_as_waitress_reads_them(
    monkeypatch: pytest.MonkeyPatch, spaces: int, lines: int
) -> None:
    joined: list[bytes] = []
    join = _waitress_parser.headers_joined

    def spy(head: bytes) -> Any:
        joined.append(head)
        return join(head)

    monkeypatch.setattr(_waitress_parser, "headers_joined", spy)
    fixed = [
        b"Host: x",
        b"X-A: one  two!",
        b"x-a:\tthree\t",
        b"Cookie: a=1",
        b"Expect: 100-continue",
    ]
    fixed += [b"Content-Length: 5", b"Connection: keep-alive"]
    first = b"POST / HTTP/1.1\r\n" + b"\r\n".join(fixed)
    # NOTE: counted as Waitress gets them, the whitespace around the values taken out.
    plain = _waitress_parser.plain_head(first + b"\r\n\r\n")
    fill = spaces - plain.count(b" ") - plain.count(b"\t")
    body = [b"X-B:b" + b" b" * fill] + [b"X-C:c"] * (lines - len(fixed) - 1)
    head = first + b"\r\n" + b"\r\n".join(body) + b"\r\n\r\n"
    plain = _waitress_parser.plain_head(head)
    assert plain.count(b" ") + plain.count(b"\t") == spaces
    assert head.rstrip(b"\r\n").count(b"\n") == lines
    ours = outcome(head + b"hello" + NEXT)
    theirs = waitress_parser.HTTPRequestParser(Adjustments())
    theirs.received(head)
    assert ours["error"] is None and ours["headers"] == theirs.headers
    assert ours["body"] == b"hello" and ours["left"] == NEXT
    assert ours["expect"] and not ours["close"]
    assert len(joined) == (spaces > MANY_SPACES or lines > MANY_LINES)


@pytest.mark.parametrize(
    "head",
    [
        # NOTE: spaces after the request line's version, the third way here, are a 400 now
        # (test_servers_hostile7.py).
        b"GET / HTTP/1.1\r\nX_A:" + b" a" * 300 + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X_A: a\r\n" * 101 + b"\r\n",
    ],
    ids=["dropped-value", "dropped-lines"],
)
def test_a_head_of_no_header_waitress_keeps_is_served(head: bytes) -> None:
    # NOTE: headers_joined() handed Waitress the request line without its CRLF when no header
    # was left (each name had a "_"): "HTTP message header invalid", 400, where Waitress
    # served it (review374).
    ours = outcome(head + NEXT)
    assert ours["error"] is None and ours["headers"] == {} and ours["left"] == NEXT
