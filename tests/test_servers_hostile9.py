"""Hostile requests, round nine: the request line's spaces checked after an upgrade not taken
and after a chunked body, and good requests served wherever their reads are cut, at the three
ways of ``microweb serve``.

``tests/hostile_app.py`` runs under Waitress, Uvicorn with httptools (``BoundedHttpTools``) and
Uvicorn with h11 (``BoundedH11``), one server start each for the module. Each test sends raw
bytes and reads the answer.
"""

from __future__ import annotations

import socket
import time

import pytest
from servers import HOST, NEXT, ServedWay, exchange, module_server, read_until_closed, statuses

from microweb._httptools_reads import FOLLOWED_CHUNKS, FRESH_CHUNKS, chunks_read

pytestmark = pytest.mark.servers

server = module_server("hostile_app:app", ("waitress", "uvicorn-httptools", "uvicorn-h11"))

H2C = (
    b"GET /url HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
    b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
)
CHUNKED = (
    b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n"
)
# NOTE: requests a client may send one after another, each served (200, or 204 for OPTIONS).
GOOD = (
    b"GET /url HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\r\n\r\nHEAD /url HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nGET  ",
    b"POST /text HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    CHUNKED,
    H2C,
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET HTTP://h:/url?" + b"q" * 1500 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"MKCALENDAR /url HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
)
# NOTE: their answers, and NEXT's (a 100 Continue apart: Waitress sends none for a body read
# with its head).
EXPECTED = [b"200", b"200", b"200", b"200", b"200", b"200", b"204", b"200", b"405", b"200"]
SPACED = b"GET  /url HTTP/1.1\r\nHost: x\r\n\r\n"


def exchange_in_pieces(served: ServedWay, data: bytes, cuts: list[int], pause: float) -> bytes:
    """Send ``data`` cut at ``cuts``, a piece a packet with ``pause`` after each, so that the
    server reads the pieces apart; read until the server closes."""
    with socket.create_connection((HOST, served.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True):
            sock.sendall(data[start:end])
            time.sleep(pause)
        return read_until_closed(sock)


def served(answer: bytes) -> list[bytes]:
    """The status codes of the final responses in ``answer``, in order."""
    return [status for status in statuses(answer) if status != b"100"]


def test_a_request_line_spaced_wrong_after_an_upgrade_not_taken_is_400(
    server: ServedWay,
) -> None:
    # SPEC: RFC 9112 3, request-line = method SP request-target SP HTTP-version. NOTE:
    # httptools ends an h2c request at its head, and the rest of the read is parsed again:
    # the line after it was not looked at, and "GET  /url" served (review406).
    answer = exchange(server, H2C + SPACED + NEXT)
    assert statuses(answer) == [b"200", b"400"], answer[-300:]
    assert b"next" not in answer


@pytest.mark.parametrize("cut", [0, 10, len(H2C) - 1, len(H2C), len(H2C) + 2, len(H2C) + 4])
def test_a_request_after_an_upgrade_not_taken_is_served_wherever_it_is_cut(
    server: ServedWay, cut: int
) -> None:
    data = H2C + GOOD[0] + NEXT
    answer = exchange_in_pieces(server, data, [cut] if cut else [], 0.05)
    assert statuses(answer) == [b"200"] * 3, answer[-300:]


@pytest.mark.parametrize("cut", [60, 64, 70, 75, 80, len(CHUNKED) - 1])
def test_a_request_line_spaced_wrong_after_a_chunked_body_read_apart_is_400(
    server: ServedWay, cut: int
) -> None:
    # NOTE: microweb serve's httptools protocol found where a chunked body ended only in the
    # read its head came in: after one begun in an earlier read, "GET  /url" was served
    # (review406). It reads the chunk lines on from where the read before left them.
    answer = exchange_in_pieces(server, CHUNKED + SPACED + NEXT, [cut], 0.05)
    assert statuses(answer) == [b"200", b"400"], answer[-300:]
    assert b"next" not in answer


@pytest.mark.parametrize("cut", [60, 64, 70, 75, 80, len(CHUNKED) - 1, len(CHUNKED) + 1])
def test_a_request_after_a_chunked_body_read_apart_is_served(server: ServedWay, cut: int) -> None:
    answer = exchange_in_pieces(server, CHUNKED + GOOD[0] + NEXT, [cut], 0.05)
    assert statuses(answer) == [b"200"] * 3, answer[-300:]


def test_chunks_read_in_two_pieces_end_where_they_end_read_whole() -> None:
    body = b"5;a=b\r\nhello\r\n011\r\nGET /url HTTP/1.1\r\n0\r\nT: v\r\n\r\n"
    data = body + b"GET /next"
    for cut in range(len(data) + 1):
        state, end = chunks_read(FRESH_CHUNKS, data[:cut], 0)
        if end < 0:
            state, end = chunks_read(state, data[cut:], 0)
            end += cut
        assert end == len(body), cut


def test_the_chunks_of_a_body_are_followed_up_to_a_bound() -> None:
    # PERF: each chunk line followed costs Python work: a body of many small chunks is
    # followed to FOLLOWED_CHUNKS of them, and its end is then not known (-1).
    body = b"1\r\na\r\n" * FOLLOWED_CHUNKS + b"0\r\n\r\n"
    assert chunks_read(FRESH_CHUNKS, body + b"GET", 0)[1] == len(body)
    assert chunks_read(FRESH_CHUNKS, b"1\r\na\r\n" + body + b"GET", 0) == (None, -1)
    assert chunks_read(FRESH_CHUNKS, b"zz\r\n", 0) == (None, -1)
    assert chunks_read(FRESH_CHUNKS, b"5" * 5000, 0) == (None, -1)


def test_good_requests_one_after_another_are_served_in_reads_of_one_byte(
    server: ServedWay,
) -> None:
    # NOTE: microweb serve's httptools protocol looks for each request line in the read that
    # holds it, and the end of the read before: every good one is served however it is cut.
    data = b"".join(GOOD) + NEXT
    answer = exchange_in_pieces(server, data, list(range(1, len(data))), 0.0005)
    assert served(answer) == EXPECTED, answer[-300:]


@pytest.mark.parametrize("seed", range(6))
def test_good_requests_one_after_another_are_served_cut_anywhere(
    server: ServedWay, seed: int
) -> None:
    data = b"".join(GOOD) + NEXT
    cuts = sorted({(seed * 7919 + step * 104729) % (len(data) - 1) + 1 for step in range(12)})
    answer = exchange_in_pieces(server, data, cuts, 0.02)
    assert served(answer) == EXPECTED, answer[-300:]
