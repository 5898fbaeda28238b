"""The chunked request bodies that ``microweb serve``'s h11 protocol reads (``_h11_framing.py``).

h11 makes an event of each chunk, and Uvicorn's protocol handles each event on its own: the
cost of a body of small chunks is per chunk, not per byte. These feed ``FramedConnection``
directly and count its events; they check that it reads what plain h11 reads, however the
reads split the body.
"""

from __future__ import annotations

import random
import re
import sys
import tracemalloc
from collections.abc import Callable

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from microweb._framing import CHUNK_EXTENSIONS
from microweb._h11_connection import FramedConnection
from microweb._h11_framing import empty_lines

HEAD = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def _events(conn: h11.Connection, reads: list[bytes]) -> list[object]:
    """Feed ``reads`` to ``conn`` one at a time; return the events of its request."""
    events: list[object] = []
    for data in reads:
        conn.receive_data(data)
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                break
            events.append(event)
            if isinstance(event, h11.EndOfMessage):
                return events
    return events


def _body(events: list[object]) -> bytes:
    return b"".join(bytes(event.data) for event in events if isinstance(event, h11.Data))


def _ends(events: list[object]) -> list[h11.EndOfMessage]:
    return [event for event in events if isinstance(event, h11.EndOfMessage)]


def test_small_chunks_in_one_read_are_one_event() -> None:
    # NOTE: 200,000 1-byte chunks (1.2 MB) cost 1.3 s of CPU under microweb serve's h11, in
    # its event loop, 10.4 s a 10 MiB body of them (httptools 0.5 s, Waitress 1.1 s).
    chunks = b"".join(b"%x\r\n%s\r\n" % (n % 3 + 1, b"abc"[: n % 3 + 1]) for n in range(1000))
    events = _events(FramedConnection(h11.SERVER), [HEAD + chunks + b"0\r\n\r\n"])
    assert len(events) <= 3
    assert _body(events) == b"".join(b"abc"[: n % 3 + 1] for n in range(1000))
    assert len(_ends(events)) == 1


@pytest.mark.parametrize("step", [1000, 1001, 1003, 1004, 1005])
def test_the_events_of_small_chunks_are_a_few_a_read(step: int) -> None:
    # NOTE: reads that end inside a chunk (its size line, its data, its CRLF): h11's reader
    # takes that chunk, and the ones after it are one event again.
    whole = b"1\r\na\r\n" * 10_000 + b"0\r\n\r\n"
    reads = [HEAD] + [whole[at : at + step] for at in range(0, len(whole), step)]
    events = _events(FramedConnection(h11.SERVER), reads)
    assert len(events) <= 3 * len(reads)
    assert _body(events) == b"a" * 10_000


BODIES = [
    b"5\r\nhello\r\n0\r\n\r\n",
    b"1\r\na\r\n" * 50 + b"0\r\n\r\n",
    b"000A\r\n0123456789\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
    b"1;a=b\r\na\r\n1\r\nb\r\n2;x\r\ncd\r\n0\r\n\r\n",
    b"1\r\na\r\n" * 10 + b"1000\r\n" + b"z" * 4096 + b"\r\n" + b"2\r\nyy\r\n0\r\n\r\n",
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
@pytest.mark.parametrize("seed", range(8))
def test_chunks_read_as_plain_h11_reads_them_however_the_reads_split(
    body: bytes, seed: int
) -> None:
    whole = HEAD + body
    shuffle = random.Random(seed)
    cuts = sorted(shuffle.sample(range(1, len(whole)), min(seed * 3, len(whole) - 1)))
    reads = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    plain = _events(h11.Connection(h11.SERVER), reads)
    ours = _events(FramedConnection(h11.SERVER), reads)
    assert _body(ours) == _body(plain)
    assert [end.headers for end in _ends(ours)] == [end.headers for end in _ends(plain)]
    assert len(_ends(ours)) == 1


BAD = [
    b"1\r\nab\r\n0\r\n\r\n",  # NOTE: data longer than its size
    b"1 \r\na\r\n0\r\n\r\n",  # NOTE: whitespace after the size (refused by microweb)
    b"1\r\na\r\nzz\r\nb\r\n0\r\n\r\n",  # NOTE: a size that is not hex
    b"1\r\na\r\n" * 3 + b"1\r\nb\n\r\n0\r\n\r\n",  # NOTE: a bare LF after the data
    b"1\r\na\r\n" + b"1" * 30 + b"\r\nb\r\n0\r\n\r\n",  # NOTE: a size too long for h11
    b"1\r\na\r\n" + b"0" * 29 + b"1\r\nb\r\n0\r\n\r\n",  # NOTE: that too, of leading zeros
    b"1\r\na\r\n1\r\nbXY0\r\n\r\n",  # NOTE: no CRLF after the data, then the last chunk
]


@pytest.mark.parametrize("body", BAD, ids=range(len(BAD)))
def test_a_bad_chunk_after_good_ones_is_refused(body: bytes) -> None:
    conn = FramedConnection(h11.SERVER)
    with pytest.raises(h11.RemoteProtocolError):
        _events(conn, [HEAD + body])


def test_chunk_extensions_are_read_up_to_16_kib_a_body() -> None:
    # NOTE: each chunk with an extension is h11's own event: "1;a" chunks cost 6.8 us each,
    # 8.8 s of CPU a 10 MiB body of them. Refused past 16 KiB, as under Waitress.
    body = b"1;a\r\nx\r\n" * 8192 + b"0\r\n\r\n"
    events = _events(FramedConnection(h11.SERVER), [HEAD + body])
    assert _body(events) == b"x" * 8192
    conn = FramedConnection(h11.SERVER)
    with pytest.raises(h11.RemoteProtocolError) as refused:
        _events(conn, [HEAD + b"1;a\r\nx\r\n" * 8193 + b"0\r\n\r\n"])
    assert refused.value.error_status_hint == 400
    with pytest.raises(h11.RemoteProtocolError):
        _events(FramedConnection(h11.SERVER), [HEAD + b"1;" + b"a" * 16_384 + b"\r\nx\r\n"])


def test_chunk_extensions_are_counted_afresh_for_each_body() -> None:
    conn = FramedConnection(h11.SERVER)
    for _ in range(3):
        events = _events(conn, [HEAD + b"1;a\r\nx\r\n" * 6000 + b"0\r\n\r\n"])
        assert _body(events) == b"x" * 6000
        conn.send(h11.Response(status_code=204, headers=[]))
        conn.send(h11.EndOfMessage())
        conn.start_next_cycle()


@pytest.mark.parametrize("seed", range(20))
def test_random_chunks_in_random_reads_read_as_plain_h11_reads_them(seed: int) -> None:
    draw = random.Random(seed)
    pieces = []
    for _ in range(draw.randrange(1, 60)):
        data = bytes(draw.randrange(256) for _ in range(draw.randrange(1, 40)))
        size = b"%x" % len(data)
        size = size.upper() if draw.random() < 0.3 else b"0" * draw.randrange(3) + size
        extension = b";k=v" if draw.random() < 0.2 else b""
        pieces.append(size + extension + b"\r\n" + data + b"\r\n")
    whole = HEAD + b"".join(pieces) + b"0\r\n" + (b"X-T: 1\r\n" if seed % 2 else b"") + b"\r\n"
    cuts = sorted(draw.sample(range(1, len(whole)), draw.randrange(0, 40)))
    reads = [whole[a:b] for a, b in zip([0, *cuts], [*cuts, len(whole)], strict=True)]
    plain = _events(h11.Connection(h11.SERVER), reads)
    ours = _events(FramedConnection(h11.SERVER), reads)
    assert _body(ours) == _body(plain)
    assert [end.headers for end in _ends(ours)] == [end.headers for end in _ends(plain)]
    assert len(_ends(ours)) == 1


TRAILERS = {
    "bare-lf-ends-them": b"X-T: 1\n\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
    "bare-lf-line": b"X-T: 1\nY: 2\r\n\r\n",
    "bare-lf-alone": b"\n",
    "folded": b"X-T: 1\r\n  more\r\n\r\n",
    "control": b"X-T: a\x01b\r\n\r\n",
    "control-del": b"X-T: a\x7f\r\n\r\n",
}


@pytest.mark.parametrize("trailer", TRAILERS.values(), ids=TRAILERS.keys())
def test_a_trailer_section_waitress_and_httptools_refuse_is_refused(trailer: bytes) -> None:
    # NOTE: h11 reads trailer lines as it reads a head's: a bare LF ended a line (and
    # "\n\n" the section: the bytes after it were the next request), a line folded onto the
    # next one, a control character in a value, where Waitress and httptools answer 400: a
    # proxy that reads them otherwise frames the next request otherwise (a smuggling).
    conn = FramedConnection(h11.SERVER)
    with pytest.raises(h11.RemoteProtocolError) as refused:
        _events(conn, [HEAD + b"1\r\na\r\n0\r\n" + trailer])
    assert refused.value.error_status_hint == 400


@pytest.mark.parametrize("step", [1, 2, 3, 7])
def test_a_trailer_section_in_small_reads_reads_as_in_one(step: int) -> None:
    whole = HEAD + b"1\r\na\r\n0\r\nX-T: 1\r\nY-T: a\tb\r\n\r\n"
    reads = [whole[: len(HEAD)]] + [
        whole[at : at + step] for at in range(len(HEAD), len(whole), step)
    ]
    events = _events(FramedConnection(h11.SERVER), reads)
    assert _body(events) == b"a"
    assert [end.headers for end in _ends(events)] == [[(b"x-t", b"1"), (b"y-t", b"a\tb")]]


GOOD_EXTENSIONS = [b";a", b";a=b", b';a="b;c"', b';a="x\\"y"', b";a=b;c=d", b';a="\x80 \t"']
BAD_EXTENSIONS = {
    "nul": b";a\x00",
    "control": b";a\x01b",
    "bare-cr": b";a\rb",
    "obs-text-token": b";a=\x80",
    "empty": b";",
    "space-before-name": b"; a=b",
    "not-a-token": b";a@b",
    "control-in-quotes": b';a="\x01"',
    "unclosed-quote": b';a="b',
}


@pytest.mark.parametrize("extension", GOOD_EXTENSIONS)
def test_chunk_extensions_of_tokens_and_quoted_strings_are_read(extension: bytes) -> None:
    body = b"1" + extension + b"\r\na\r\n0" + extension + b"\r\n\r\n"
    assert _body(_events(FramedConnection(h11.SERVER), [HEAD + body])) == b"a"


@pytest.mark.parametrize("extension", BAD_EXTENSIONS.values(), ids=BAD_EXTENSIONS.keys())
@pytest.mark.parametrize("last", [False, True])
def test_a_chunk_extension_that_is_no_name_and_value_is_refused(
    extension: bytes, last: bool
) -> None:
    # SPEC: RFC 9112 7.1.1, chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
    # chunk-ext-val ] ), a name a token, a value a token or a quoted string. NOTE: h11 read
    # anything after the ";" but a LF (a bare CR, a NUL), where Waitress and httptools answer
    # 400: a proxy that ends the line at the CR frames the body otherwise (review337).
    body = b"1\r\na\r\n0" + extension if last else b"1" + extension + b"\r\na\r\n0"
    with pytest.raises(h11.RemoteProtocolError) as refused:
        _events(FramedConnection(h11.SERVER), [HEAD + body + b"\r\n\r\n"])
    assert refused.value.error_status_hint == 400


# NOTE: RFC 9110 5.6.2 tchar, 5.6.4 qdtext and quoted-pair, 5.5 field-vchar (obs-text too).
_TCHARS = "!#$%&'*+-.^_`|~0123456789azAZ"
_QDTEXT = [9, 32, 0x21, *range(0x23, 0x5C), *range(0x5D, 0x7F), *range(0x80, 0x100)]
_PAIRED = [9, 32, *range(0x21, 0x7F), *range(0x80, 0x100)]
_TOKENS = st.text(alphabet=_TCHARS, min_size=1, max_size=6).map(str.encode)
_QUOTED = st.lists(
    st.one_of(
        st.sampled_from(_QDTEXT).map(lambda byte: bytes([byte])),
        st.sampled_from(_PAIRED).map(lambda byte: b"\\" + bytes([byte])),
    ),
    max_size=6,
).map(lambda parts: b'"' + b"".join(parts) + b'"')
_EXTENSION = st.tuples(_TOKENS, st.one_of(st.none(), _TOKENS, _QUOTED)).map(
    lambda pair: b";" + pair[0] + (b"" if pair[1] is None else b"=" + pair[1])
)
_EXTENSIONS = st.lists(_EXTENSION, max_size=4).map(b"".join)
_VALUE = st.lists(st.sampled_from(_PAIRED), max_size=8).map(bytes)
_FIELD = st.tuples(_TOKENS, st.sampled_from([b"", b" ", b"\t", b" \t"]), _VALUE).map(
    lambda field: field[0] + b":" + field[1] + field[2] + b"\r\n"
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    chunks=st.lists(st.tuples(st.binary(min_size=1, max_size=5), _EXTENSIONS), max_size=4),
    last=_EXTENSIONS,
    fields=st.lists(_FIELD, max_size=8),
    step=st.integers(1, 9),
)
def test_chunk_extensions_and_trailers_the_grammar_allows_read_as_plain_h11_reads_them(
    chunks: list[tuple[bytes, bytes]], last: bytes, fields: list[bytes], step: int
) -> None:
    # SPEC: RFC 9112 7.1.1 (chunk-ext, with no BWS: see the test below) and 7.1.2 (field
    # lines): quoted strings with escapes and obs-text, every tchar, empty values and tabs in
    # them, in reads of a few bytes. NOTE: microweb's checks of review337 must refuse none.
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(data), ext, data) for data, ext in chunks)
    whole = HEAD + body + b"0" + last + b"\r\n" + b"".join(fields) + b"\r\n"
    reads = [whole[at : at + step] for at in range(0, len(whole), step)]
    plain = _events(h11.Connection(h11.SERVER), reads)
    ours = _events(FramedConnection(h11.SERVER), reads)
    assert _body(ours) == b"".join(data for data, _ in chunks)
    assert [end.headers for end in _ends(ours)] == [end.headers for end in _ends(plain)]
    assert len(_ends(ours)) == 1


@pytest.mark.parametrize(
    "extension",
    [b" ;a", b"\t;a", b"; a", b";a =b", b";a= b", b";a\t=\tb", b";a=b ;c"],
)
def test_whitespace_around_a_chunk_extensions_separators_is_refused(extension: bytes) -> None:
    # SPEC: RFC 9112 7.1.1 allows BWS around ";" and "=". NOTE: Waitress and httptools answer
    # 400 to it (test_servers_hostile4.py), and so does microweb serve's h11: one reading.
    with pytest.raises(h11.RemoteProtocolError) as refused:
        _events(FramedConnection(h11.SERVER), [HEAD + b"1" + extension + b"\r\na\r\n0\r\n\r\n"])
    assert refused.value.error_status_hint == 400


def test_many_trailer_lines_in_one_byte_reads_are_read() -> None:
    trailer = b"".join(b"X-%d: v\x80%d\t \r\n" % (n, n) for n in range(200)) + b"\r\n"
    whole = HEAD + b'1;a="\\""\r\nb\r\n0\r\n' + trailer
    events = _events(FramedConnection(h11.SERVER), [whole[at : at + 1] for at in range(len(whole))])
    assert _body(events) == b"b"
    assert len(_ends(events)[0].headers) == 200


ADVERSARIAL_EXTENSIONS = {
    "open-quote-of-escaped-quotes": lambda n: b';a="' + b'\\"' * (n // 2),
    "open-quote-of-backslashes": lambda n: b';a="' + b"\\" * n,
    "names-then-a-nul": lambda n: b";a" * (n // 2) + b"\x00",
    "a-long-value-then-not-a-token": lambda n: b";a=" + b"b" * n + b"@",
    "extensions-then-a-semicolon": lambda n: b";a=b" * (n // 4) + b";",
    "empty-quotes-then-one-more": lambda n: b';a=""' * (n // 5) + b'"',
}


@pytest.mark.parametrize("build", ADVERSARIAL_EXTENSIONS.values(), ids=ADVERSARIAL_EXTENSIONS)
def test_the_chunk_extension_pattern_refuses_adversarial_extensions(
    build: Callable[[int], bytes],
) -> None:
    # PERF: measured, not asserted (no timing in unit tests): 16 KiB (MAX_CHUNK_EXTENSIONS)
    # of each of these takes 12 to 16 times as long as 1 KiB, linear; one that backtracked in
    # the square of the length would take some 256 times as long (review343, 2026-12-07).
    for size in (1024, 16 * 1024):
        assert CHUNK_EXTENSIONS.fullmatch(build(size)) is None


# -- empty lines before a request line (hostile5) ----------------------------------------------


def test_a_read_of_empty_lines_is_skipped_with_no_memory_per_line() -> None:
    # NOTE: "(?:\r?\n)*" kept a backtracking point for each line it repeated: a read of 256 KiB
    # of CRLFs took 17 MB (64 bytes a byte) to skip, read after read.
    data = b"\r\n" * 131_072 + b"GET / HTTP/1.1\r\n"
    tracemalloc.start()
    try:
        end = empty_lines(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert end == 262_144
    assert peak < 64 * 1024


def test_empty_lines_end_where_the_regex_ended_them() -> None:
    # NOTE: the old reading, "(?:\r?\n)*" matched at the start, on every short run of these.
    old = re.compile(rb"(?:\r?\n)*")
    chosen = random.Random(5)
    for _ in range(3_000):
        data = b"".join(chosen.choice([b"\r", b"\n", b"\r\n", b"G"]) for _ in range(8))
        found = old.match(data)
        assert found is not None
        assert empty_lines(data) == found.end(), data


# -- chunk extensions, within MAX_CHUNK_EXTENSIONS (hostile5) ---------------------------------

MANY_EXTENSIONS = {
    "names": b";a" * 8_000,
    "a-quoted-value": b';a="' + b"b" * 16_000 + b'"',
    "quoted-pairs": b';a="' + b"\\b" * 8_000 + b'"',
}


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10's re has no possessive repeat (*+)"
)
@pytest.mark.parametrize("extensions", MANY_EXTENSIONS.values(), ids=MANY_EXTENSIONS)
def test_chunk_extensions_are_checked_with_no_memory_per_byte(extensions: bytes) -> None:
    # NOTE: a group repeated for each extension, and for each byte of a quoted value, kept a
    # backtracking point each: 16 KiB took 1.1 to 2.5 MB while it was checked.
    tracemalloc.start()
    try:
        found = CHUNK_EXTENSIONS.fullmatch(extensions)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert found is not None
    assert peak < 16 * 1024


@pytest.mark.parametrize(
    "extensions",
    [b";a", b";a=b", b';a="b"', b';a="\\""', b";a;b=c", b';a="b;c";d', b';a=""'],
)
def test_chunk_extensions_that_were_taken_still_are(extensions: bytes) -> None:
    assert CHUNK_EXTENSIONS.fullmatch(extensions) is not None
