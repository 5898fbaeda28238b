"""The chunked request bodies that ``microweb serve``'s h11 protocol reads (``_h11.py``).

h11 makes an event of each chunk, and Uvicorn's protocol handles each event on its own: the
cost of a body of small chunks is per chunk, not per byte. These feed ``FramedConnection``
directly and count its events; they check that it reads what plain h11 reads, however the
reads split the body.
"""

from __future__ import annotations

import random

import h11
import pytest

from microweb._h11 import FramedConnection

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
