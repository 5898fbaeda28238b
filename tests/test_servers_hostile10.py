"""Hostile requests, round ten: an absolute-form target with an empty path (and port), many
small chunk lines in one read, and what follows a target that is no path, at the three ways
of ``microweb serve``.

``tests/hostile_app.py`` runs under Waitress, Uvicorn with httptools (``BoundedHttpTools``) and
Uvicorn with h11 (``BoundedH11``), one server start each for the module. Each test sends raw
bytes and reads the answer.
"""

from __future__ import annotations

import tracemalloc

import pytest
from servers import NEXT, ServedWay, assert_refused_alone, exchange, module_server, statuses
from test_httptools_chunks_fuzz import joined_chunks_read

from microweb._httptools_reads import (
    FOLLOWED_CHUNKS,
    FRESH_CHUNKS,
    IN_LINE,
    LONG_CHUNK_LINE,
    ChunkState,
    chunks_read,
)

pytestmark = pytest.mark.servers

server = module_server("hostile_app:app", ("waitress", "uvicorn-httptools", "uvicorn-h11"))


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (b"http://h:", b"http://x/"),
        (b"http://h", b"http://x/"),
        (b"http://h?q=1", b"http://x/?q=1"),
        (b"http://h:?q=1", b"http://x/?q=1"),
        (b"http://h:80", b"http://x/"),
        (b"HTTPS://h:443?q", b"http://x/?q"),
    ],
)
def test_an_absolute_form_target_with_an_empty_path_is_the_root_under_every_server(
    server: ServedWay, target: bytes, url: bytes
) -> None:
    # SPEC: RFC 9110 4.2.3, an empty path in an absolute-form target is "/" (the query
    # kept); RFC 3986 3.2.3, an empty port is the scheme's default. hostile_app answers "/"
    # with request.url: the 404 that review411 saw was that of an app without a "/" route.
    answer = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]
    first = answer.partition(b"HTTP/1.1 200 ")[2].partition(b"HTTP/1.1 ")[0]
    assert first.endswith(b"\r\n\r\n" + url), answer[-300:]


SPACED = b"GET  /url HTTP/1.1\r\nHost: x\r\n\r\n"


def small_chunks(count: int) -> bytes:
    """A chunked POST to /text of ``count`` one-byte chunks (an extension on every third),
    and a trailer field."""
    lines = (b"1;e=v\r\na\r\n" if index % 3 == 0 else b"1\r\na\r\n" for index in range(count))
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    return head + b"".join(lines) + b"0\r\nT: v\r\n\r\n"


@pytest.mark.parametrize("count", [1, 500, FOLLOWED_CHUNKS])
def test_a_read_of_many_small_chunk_lines_is_followed_to_the_request_after_it(
    server: ServedWay, count: int
) -> None:
    # NOTE: httptools' protocol follows a chunked body's lines itself (up to FOLLOWED_CHUNKS
    # of them) to check the request line after it: found in one read, each still is.
    answer = exchange(server, small_chunks(count) + SPACED + NEXT)
    assert statuses(answer) == [b"200", b"400"], answer[-300:]
    assert b"\r\n\r\n" + b"a" * count in answer, answer[-300:]
    assert b"next" not in answer
    answer = exchange(server, small_chunks(count) + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]


# NOTE: bodies, good and bad, with the bytes after them: CRs and LFs where lines may be cut.
BODIES = [
    b"1\r\na\r\n" * 40 + b"0\r\n\r\nGET",
    b"5;a=b\r\nhello\r\n011\r\nGET /url HTTP/1.1\r\n0\r\nT: v\r\nU: w\r\n\r\nGET /next",
    b"3;a=b\r\n\r\n\r\r\n00\r\nX: 1\r\nY: 2\r\n\r\n\r\n",
    b"0003\r\nab\n\r\n0\r\n\r\n0\r\n\r\n",
    b"2\r\r\n\r\nx\r\n0\r\n\n\r\n\r\n",
    b"zz\r\nGET",
    b"1\r\na\r\n" + b"f" * (LONG_CHUNK_LINE - 1) + b"\r\n0\r\n\r\n",
    b"1\r\na\r\n" + b"f" * (LONG_CHUNK_LINE + 1) + b"\r\n0\r\n\r\n",
    b"1" + b"\r" * 3 + b"\n\r\n0\r\n\r\r\n\r\n",
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_chunks_read_gives_what_the_joined_reading_gave_wherever_the_reads_are_cut(
    body: bytes,
) -> None:
    states: list[ChunkState | None] = [FRESH_CHUNKS, (IN_LINE, 0, b"", 3)]
    # NOTE: a long line is cut at every byte near where it ends, and at a few before.
    cuts = (
        range(len(body) + 1)
        if len(body) < 500
        else [*range(0, len(body) - 30, 101), *range(len(body) - 30, len(body) + 1)]
    )
    for first in states:
        for cut in cuts:
            for second in (cut, min(len(body), cut + 1), min(len(body), cut + 7)):
                reads = [body[:cut], body[cut:second], body[second:]]
                state, old = first, first
                for data in reads:
                    for start in {0, min(1, len(data))}:
                        got = chunks_read(state, data, start)
                        assert got == joined_chunks_read(old, data, start), (cut, second)
                    state, end = chunks_read(state, data, 0)
                    old = state
                    if end >= 0:
                        break


def test_a_read_of_many_chunk_lines_copies_no_rest_of_it_for_each() -> None:
    # PERF: each chunk line was found in a copy of the rest of the read, up to 64 KiB for
    # each of FOLLOWED_CHUNKS lines (review411): what is made while it is read stays small.
    data = b"1\r\na\r\n" * FOLLOWED_CHUNKS + b"0\r\n\r\n" + b"x" * 60_000
    tracemalloc.start()
    try:
        end = chunks_read(FRESH_CHUNKS, data, 0)[1]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert end == 6 * FOLLOWED_CHUNKS + 5
    assert peak < 32 * 1024, peak


@pytest.mark.parametrize("target", [b"T", b"x:80", b"@e/x", b"a%ZZ"])
@pytest.mark.parametrize("body", [b"\r\n", b"Content-Length: 3\r\n\r\nabc"], ids=["none", "body"])
def test_what_follows_a_target_that_is_no_path_is_answered_where_its_framing_is_read(
    server: ServedWay, target: bytes, body: bytes
) -> None:
    # SPEC: RFC 9112 3.2, a GET's target is a path or absolute-form: each is a 400. NOTE:
    # Waitress and h11 read the head (and its body) and hand it to the app, which refuses it;
    # the next request is answered. httptools refuses the target as it parses the request
    # line, before any header line: where the request ends (its Content-Length, its
    # Transfer-Encoding) is not known, so the connection is closed after the 400, and the
    # request after it goes unanswered (docs/serving.md; review411).
    answer = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n" + body + NEXT)
    if server.name == "uvicorn-httptools":
        assert_refused_alone(answer)
        assert b"connection: close" in answer.lower(), answer[-300:]
    else:
        assert statuses(answer) == [b"400", b"200"], answer[-300:]
        assert answer.endswith(b"http://next/url"), answer[-300:]


@pytest.mark.parametrize(("target", "kept_by"), [(b"?q=1", ("uvicorn-h11",)), (b"#f", ())])
def test_a_target_that_starts_with_a_query_or_a_fragment_is_400_and_closed_by_the_servers(
    server: ServedWay, target: bytes, kept_by: tuple[str, ...]
) -> None:
    # NOTE: Waitress refuses both itself ("request target is not a path") and closes, h11 a
    # fragment's "#"; h11 hands "?q=1" to the app, whose 400 keeps the connection.
    answer = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    if server.name in kept_by:
        assert statuses(answer) == [b"400", b"200"], answer[-300:]
    else:
        assert_refused_alone(answer)
