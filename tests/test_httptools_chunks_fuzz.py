"""``chunks_read()`` against httptools itself: chunked bodies, good and bad, with a request
after them, cut into random reads; where ``chunks_read()`` says a body ends must be where
httptools ends it, wherever the reads are cut (review427).

A seeded loop, so that a failure is found again; each case is also read by ``chunks_read()``
as it was before review411 (``joined_chunks_read`` below), which must give the same.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

import httptools
import pytest

from microweb._httptools_reads import (
    FRESH_CHUNKS,
    IN_DATA,
    IN_LINE,
    IN_TRAILER,
    LONG_CHUNK_LINE,
    ChunkState,
    chunks_end,
    chunks_read,
)

Reader = Callable[[ChunkState | None, bytes, int], tuple[ChunkState | None, int]]
HEAD = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
AFTER = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n"
CASES = 4000


def joined_chunks_read(
    state: ChunkState | None, data: bytes, start: int
) -> tuple[ChunkState | None, int]:
    """``chunks_read()`` as it was at 39e83b4f, before review411: each line looked for in
    what was kept joined with the rest of the read."""
    size = len(data)
    while state is not None and start <= size:
        phase, left, kept, chunks = state
        if phase == IN_DATA:
            if left > size - start:
                return (IN_DATA, left - (size - start), b"", chunks), -1
            start, state = start + left, (IN_LINE, 0, b"", chunks)
        elif phase == IN_LINE:
            joined = kept + data[start:]
            end = joined.find(b"\r\n")
            if end < 0:
                too_long = len(joined) > LONG_CHUNK_LINE
                return None if too_long else (IN_LINE, 0, joined, chunks), -1
            found = re.compile(rb"[0-9A-Fa-f]+").match(joined, 0, end)
            chunk = -1 if found is None else int(found[0], 16)
            if chunk < 0 or (chunk and not chunks):
                return None, -1
            start += end + 2 - len(kept)
            state = (IN_DATA, chunk + 2, b"", chunks - 1) if chunk else (IN_TRAILER, 0, b"\n", 0)
        else:
            joined = kept + data[start:]
            end = joined.find(b"\n\r\n")
            if end < 0:
                return (IN_TRAILER, 0, joined[-2:], 0), -1
            return None, start + end + 3 - len(kept)
    return None, -1


class _Ends:
    """httptools' callbacks: where (in bytes fed) each message was complete."""

    def __init__(self) -> None:
        self.fed = 0
        self.ends: list[int] = []

    def on_message_complete(self) -> None:
        self.ends.append(self.fed)


def httptools_end(body: bytes) -> int | None:
    """Where httptools ends the chunked body ``body`` (with ``AFTER`` following it), fed a
    byte at a time so that the byte that completes it is known; None where it refuses the
    bytes before that end."""
    ends = _Ends()
    parser = httptools.HttpRequestParser(ends)
    data = HEAD + body + AFTER
    for at in range(len(data)):
        ends.fed = at + 1
        try:
            parser.feed_data(data[at : at + 1])
        except httptools.HttpParserError:
            break
        if ends.ends:
            return ends.ends[0] - len(HEAD)
    return None


def _size_line(rng: random.Random, size: int) -> bytes:
    digits = format(size, "x")
    digits = digits.upper() if rng.random() < 0.3 else digits
    line = b"0" * rng.choice([0, 0, 0, 1, 3]) + digits.encode()
    roll = rng.random()
    if roll < 0.1:
        # NOTE: a size line near LONG_CHUNK_LINE, in leading zeros or in an extension.
        pad = LONG_CHUNK_LINE + rng.randint(-12, 12) - len(line) - 2
        if rng.random() < 0.5:
            line = b"0" * max(0, pad) + line
        else:
            line += b";a=" + b"b" * max(0, pad - 3)
    elif roll < 0.4:
        line += rng.choice([b";a=b", b";a", b";a=b;c=d", b';a="q r"', b";x=1"])
    return line + b"\r\n"


def chunked_body(rng: random.Random) -> bytes:
    """A chunked body: chunks of random sizes (their data full of CR, LF and chunk-like
    bytes), the last chunk, a trailer; then, now and then, a byte changed, put in or left
    out where it matters most (a CR or an LF)."""
    parts = []
    for _ in range(rng.choice([0, 1, 1, 2, 3, 6])):
        size = rng.choice([1, 2, 3, 5, 16, 17, 40])
        data = bytes(rng.choice(b"\r\n0;aX: ") for _ in range(size))
        parts.append(_size_line(rng, size) + data + b"\r\n")
    last = _size_line(rng, 0)
    trailer = b"".join(
        rng.choice([b"T: v\r\n", b"X-Y:1\r\n", b"Z: \r\n"]) for _ in range(rng.choice([0, 0, 1, 2]))
    )
    body = b"".join(parts) + last + trailer + b"\r\n"
    for _ in range(rng.choice([0, 0, 0, 1, 2])):
        at = rng.randrange(len(body) + 1)
        crlf = [found.start() for found in re.finditer(rb"\r\n", body)]
        roll = rng.random()
        if roll < 0.3 and crlf:
            cut = rng.choice(crlf)
            body = body[:cut] + rng.choice([b"\n", b"\r", b"\r\r\n", b"\n\r\n"]) + body[cut + 2 :]
        elif roll < 0.6:
            body = body[:at] + bytes([rng.choice(b"\r\n \t;0f")]) + body[at:]
        else:
            body = body[:at] + body[at + 1 :]
    return body


def cut_into_reads(rng: random.Random, body: bytes) -> list[int]:
    """Where reads of ``body`` end: a few random cuts, cuts around a CR or an LF (between a
    CR and its LF most of all), and cuts a byte apart."""
    size = len(body)
    cuts = {rng.randrange(size + 1) for _ in range(rng.choice([0, 1, 2, 4, 8]))}
    ends = [at for at, byte in enumerate(body) if byte in b"\r\n"]
    for _ in range(rng.choice([0, 1, 3]) if ends else 0):
        cuts.add(min(size, max(0, rng.choice(ends) + rng.choice([1, 1, 1, 0, 2, -1]))))
    for at in list(cuts):
        if rng.random() < 0.5:
            cuts.add(min(size, at + 1))
    return sorted(cuts | {size})


def read_in_reads(
    body: bytes, cuts: list[int], reader: Reader
) -> tuple[int | None, list[ChunkState | None]]:
    """Read ``HEAD``, ``body`` and ``AFTER`` in reads ending at ``cuts`` (in ``body``),
    as the protocol does, with ``reader`` (``chunks_read`` or the old one): where it says
    the body ends (None: not known), and the state after each read."""
    whole = HEAD + body + AFTER
    # NOTE: the body starts a read, or the head is in the read it starts in.
    begin = len(HEAD) if len(cuts) % 2 else 0
    ends = [len(HEAD) + cut for cut in cuts] + [len(whole)]
    state: ChunkState | None = FRESH_CHUNKS
    states: list[ChunkState | None] = []
    read_from, start = begin, len(HEAD) - begin
    for read_to in ends:
        data = whole[read_from:read_to]
        state, end = reader(state, data, start)
        states.append(state)
        if end >= 0:
            return read_from + end - len(HEAD), states
        if state is None:
            return None, states
        read_from, start = read_to, 0
    return None, states


@pytest.mark.parametrize("seed", range(4))
def test_chunks_read_ends_a_body_where_httptools_ends_it_however_the_reads_are_cut(
    seed: int,
) -> None:
    rng = random.Random(f"review427-{seed}")
    accepted = unknown = 0
    for case in range(CASES // 4):
        body = chunked_body(rng)
        truth = httptools_end(body)
        cuts = cut_into_reads(rng, body)
        got, states = read_in_reads(body, cuts, chunks_read)
        old, old_states = read_in_reads(body, cuts, joined_chunks_read)
        assert (got, states) == (old, old_states), (case, body, cuts)
        for state in states:
            if state is not None:
                assert len(state[2]) <= (2 if state[0] == IN_TRAILER else LONG_CHUNK_LINE)
        whole = chunks_end(body + AFTER, 0)
        if truth is None:
            continue
        accepted += 1
        # NOTE: not known is allowed (the line after goes unchecked), only where a chunk
        # line is longer than chunks_read() keeps; a wrong end never.
        assert got in (truth, None), (case, body, cuts, truth, got)
        assert whole == truth, (case, body, truth, whole)
        if got is None:
            unknown += 1
            assert max(map(len, body.split(b"\r\n"))) >= LONG_CHUNK_LINE - 2, (case, body)
    assert accepted > CASES // 20, accepted
    assert unknown < accepted


CROSSING = [
    # NOTE: a CR ending one read, its LF the next, in a chunk line, after a chunk's data,
    # and in the trailer (after the last chunk line, and after a field).
    (b"5;a=b\r", b"\nhello\r\n0\r\n\r\n"),
    (b"5\r\nhello\r", b"\n0\r\n\r\n"),
    (b"5\r\nhello\r\n0\r", b"\n\r\n"),
    (b"5\r\nhello\r\n0\r\n\r", b"\n"),
    (b"0\r\nT: v\r", b"\n\r\n"),
    (b"0\r\nT: v\r\n\r", b"\n"),
    (b"0\r\nT: v\r\n", b"\r\n"),
    (b"0" * (LONG_CHUNK_LINE - 1) + b"\r", b"\n\r\n"),
]


@pytest.mark.parametrize(("first", "second"), CROSSING)
def test_a_crlf_cut_between_two_reads_ends_the_body_where_httptools_ends_it(
    first: bytes, second: bytes
) -> None:
    rest = second + AFTER
    truth = httptools_end(first + rest)
    assert truth is not None
    state, end = chunks_read(FRESH_CHUNKS, HEAD + first, len(HEAD))
    assert end == -1
    assert state is not None and state[0] in (IN_LINE, IN_DATA, IN_TRAILER)
    if state[0] == IN_LINE:
        assert state[2] == first[first.rfind(b"\n") + 1 :]
    elif state[0] == IN_TRAILER:
        assert state[2] == (b"\n" + first)[-2:]
    state, end = chunks_read(state, rest, 0)
    assert (state, end) == (None, truth - len(first))


@pytest.mark.parametrize("extra", [0, 1, 2, 40])
def test_a_chunk_line_longer_than_what_is_kept_is_not_known_never_ended_wrong(
    extra: int,
) -> None:
    # NOTE: httptools takes a chunk line of any length (leading zeros, an extension); one
    # found in one read is followed, one cut past LONG_CHUNK_LINE bytes is not known.
    for line in (
        b"0" * (LONG_CHUNK_LINE + extra) + b"5",
        b"5;a=" + b"b" * (LONG_CHUNK_LINE + extra),
    ):
        body = line + b"\r\nhello\r\n0\r\n\r\n"
        truth = httptools_end(body)
        assert truth == len(body)
        assert chunks_end(body + AFTER, 0) == truth
        for cut in range(len(line) - 3, len(line) + 3):
            got, states = read_in_reads(body, [cut, len(body)], chunks_read)
            assert got in (truth, None), cut
            assert got == truth or cut > LONG_CHUNK_LINE
            for state in states:
                assert state is None or len(state[2]) <= LONG_CHUNK_LINE


def test_bodies_httptools_takes_end_where_it_ends_them_read_a_byte_at_a_time() -> None:
    # NOTE: each read ends between any two bytes: all the state carried from read to read.
    rng = random.Random("review427-bytes")
    taken = 0
    while taken < 60:
        body = chunked_body(rng)
        truth = httptools_end(body)
        if truth is None or len(body) > 600:
            continue
        taken += 1
        got, states = read_in_reads(body, list(range(len(body) + 1)), chunks_read)
        assert got == truth, (body, truth, got)
        assert states == read_in_reads(body, list(range(len(body) + 1)), joined_chunks_read)[1]
