"""Hostile requests, round eight: the request line's spaces, an absolute-form target's scheme
and empty port, a head of many header lines, and HTTP/1.0 keep-alive, at the three ways of
``microweb serve``.

``tests/hostile_app.py`` runs under Waitress, Uvicorn with httptools (``BoundedHttpTools``) and
Uvicorn with h11 (``BoundedH11``), one server start each for the module. Each test sends raw
bytes and reads the answer. The pure tests below them check the sans-IO parts.
"""

from __future__ import annotations

import socket
import time
from urllib.parse import unquote_to_bytes

import pytest
from drive import wsgi_get
from servers import HOST, ServedWay, exchange, module_server, read_until_closed, statuses

from microweb import App, Limits, Request
from microweb._httptools_reads import chunks_end, target_end, target_end_after
from microweb._percent import percent_decode_bytes
from microweb._target import authority_refusal
from microweb._wsgi_request import HEADER_LINES

pytestmark = pytest.mark.servers

APP = "hostile_app:app"
SERVERS = ("waitress", "uvicorn-httptools", "uvicorn-h11")
NEXT = b"GET /url HTTP/1.1\r\nHost: next\r\nConnection: close\r\n\r\n"
GET = b"GET /url HTTP/1.1\r\nHost: x\r\n\r\n"
POST = b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\nGET  /url HTTP/1.1"
CHUNKED = (
    b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;a=b\r\nGET /\r\n011\r\nGET /url HTTP/1.1\r\n0\r\nX-A: GET /url HTTP/1.1\r\n\r\n"
)

server = module_server(APP, SERVERS)


@pytest.mark.parametrize(
    "line",
    [b"GET  /url HTTP/1.1", b"GET /url  HTTP/1.1", b"GET   /url   HTTP/1.1", b"GET /url\tHTTP/1.1"],
    ids=["before", "after", "both", "tab"],
)
@pytest.mark.parametrize(
    "before", [b"", GET, POST, CHUNKED], ids=["first", "after-get", "after-body", "after-chunks"]
)
def test_whitespace_doubled_in_the_request_line_is_400_under_every_server(
    server: ServedWay, line: bytes, before: bytes
) -> None:
    # SPEC: RFC 9112 3, request-line = method SP request-target SP HTTP-version.
    # NOTE: httptools skipped a run of spaces around the target and served the request, where
    # Waitress and h11 answer 400. A body that holds a line as it ought to be (POST) is not
    # taken for the request line after it.
    answer = exchange(server, before + line + b"\r\nHost: x\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"200"] * (before != b"") + [b"400"], answer[-300:]
    assert b"next" not in answer


def exchange_in_pieces(served: ServedWay, data: bytes, cuts: tuple[int, ...]) -> bytes:
    """Send ``data`` cut at ``cuts``, a piece a packet with a pause after each, so that the
    server reads the pieces apart; read until the server closes."""
    with socket.create_connection((HOST, served.port), timeout=5) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for start, end in zip((0, *cuts), (*cuts, len(data)), strict=True):
            sock.sendall(data[start:end])
            time.sleep(0.05)
        return read_until_closed(sock)


@pytest.mark.parametrize(
    ("line", "cut"),
    [
        (b"GET /url HTTP/1.1", 1),
        (b"GET /url HTTP/1.1", 3),
        (b"GET /url HTTP/1.1", 4),
        (b"GET /url HTTP/1.1", 6),
        (b"GET /url HTTP/1.1", 8),
        (b"GET /url HTTP/1.1", 9),
        (b"GET /url HTTP/1.1", 11),
        (b"GET  /url HTTP/1.1", 2),
        (b"GET  /url HTTP/1.1", 4),
        (b"GET  /url HTTP/1.1", 7),
        (b"GET  /url HTTP/1.1", 9),
        (b"GET /url  HTTP/1.1", 6),
        (b"GET /url  HTTP/1.1", 8),
        (b"GET /url  HTTP/1.1", 9),
        (b"GET /url  HTTP/1.1", 10),
    ],
)
def test_a_request_line_read_in_two_pieces_is_read_alike_under_every_server(
    server: ServedWay, line: bytes, cut: int
) -> None:
    # NOTE: microweb serve's httptools protocol looks for the line in each read, and in the
    # end of the read before: a line as it ought to be is served wherever it is cut, one
    # spaced wrong refused.
    answer = exchange_in_pieces(server, line + b"\r\nHost: x\r\nConnection: close\r\n\r\n", (cut,))
    expected = b"400" if b"  " in line else b"200"
    assert statuses(answer) == [expected], answer[-300:]


def test_a_request_line_as_it_ought_to_be_after_one_spaced_wrong_in_a_body_is_served(
    server: ServedWay,
) -> None:
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 18\r\n\r\n"
    answer = exchange(server, head + b"GET  /url HTTP/1.1" + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]
    assert answer.endswith(b"http://next/url"), answer[-300:]


@pytest.mark.parametrize(
    "scheme", [b"h2t", b"svn+ssh", b"a.b-c", b"ftp", b"ws", b"httpx"], ids=lambda s: s.decode()
)
def test_an_absolute_form_target_of_a_scheme_not_http_is_400_under_every_server(
    server: ServedWay, scheme: bytes
) -> None:
    # SPEC: RFC 9110 4.2, an origin server serves http and https URIs. NOTE: RFC 3986 3.1 lets
    # a scheme hold digits, "+", "." and "-": httptools refuses them as it parses the line,
    # where Waitress and h11 served "svn+ssh://h/url" as "http://x/url" (hostile8).
    answer = exchange(server, b"GET " + scheme + b"://h/url HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"next" not in answer


@pytest.mark.parametrize("target", [b"HTTPS://h/url", b"Http://h/url", b"https://h:/url"])
def test_an_absolute_form_target_of_http_or_https_is_served_under_every_server(
    server: ServedWay, target: bytes
) -> None:
    answer = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]


@pytest.mark.parametrize("target", [b"http://h:/url", b"http://h:/url?a=1", b"http://[::1]:/url"])
def test_an_absolute_form_target_of_an_empty_port_is_served_under_every_server(
    server: ServedWay, target: bytes
) -> None:
    # SPEC: RFC 3986 3.2.3, a port may be empty: the scheme's default (6.2.3).
    # NOTE: each server answered 400 (authority_refusal() wanted digits).
    head = b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = exchange(server, head)
    assert statuses(answer) == [b"200"], answer[-300:]
    query = b"?" + target.partition(b"?")[2] if b"?" in target else b""
    assert answer.endswith(b"\r\n\r\nhttp://x/url" + query), answer[-300:]


@pytest.mark.parametrize(
    ("lines", "status"), [(999, b"200"), (1000, b"431"), (1500, b"431")], ids=str
)
@pytest.mark.parametrize("name", [b"Cookie", b"X-A"])
def test_header_lines_past_max_headers_are_431_under_every_server(
    server: ServedWay, lines: int, status: bytes, name: bytes
) -> None:
    # NOTE: Waitress joins the lines of one name into one environ value: 1,500 Cookie lines
    # were one Cookie header to the app, which answered 200, where Uvicorn's app counts 1,500
    # lines past Limits.max_headers (1,000, Host one of them) and answers 431 (hostile8).
    fields = b"".join(b"%s: a%d=1\r\n" % (name, i) for i in range(lines))
    path = b"/cookie/get" if name == b"Cookie" else b"/url"
    answer = exchange(
        server, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n" + NEXT
    )
    assert statuses(answer) == [status, b"200"], answer[-300:]


@pytest.mark.parametrize(
    "connection",
    [b"Connection: keep-alive\r\n", b"Connection: Keep-Alive, x\r\n", b""],
    ids=["keep-alive", "keep-alive-listed", "none"],
)
def test_an_http_1_0_connection_closes_after_its_answer_under_every_server(
    server: ServedWay, connection: bytes
) -> None:
    # SPEC: RFC 9112 9.3, a server may close; C.2.2, HTTP/1.0's keep-alive is a leftover that
    # proxies mishandle. NOTE: Waitress kept a connection that asked for "keep-alive" and
    # answered the request after it, where Uvicorn (h11 and httptools) always closes.
    answer = exchange(server, b"GET /url HTTP/1.0\r\nHost: x\r\n" + connection + b"\r\n" + NEXT)
    assert statuses(answer) == [b"200"], answer[-300:]
    head = answer.partition(b"\r\n\r\n")[0].lower()
    assert b"\r\nconnection: close" in head, head
    assert b"keep-alive" not in head, head
    assert answer.endswith(b"\r\n\r\nhttp://x/url"), answer[-300:]


@pytest.mark.parametrize(
    ("data", "start", "end"),
    [
        (b"GET /x HTTP/1.1\r\n", 0, 6),
        (b"\r\n\r\nGET /x HTTP/1.1\r\n", 0, 10),
        (b"abcGET /x HTTP/1.1\r\n", 3, 9),
        (b"GET /x", 0, 6),
        (b"GET /x ", 0, 6),
        (b"T /x HTTP/1.1\r\n", 0, 4),
        (b" /x HTTP/1.1\r\n", 0, 3),
        (b"/x HTTP/1.1\r\n", 0, 2),
        (b"GET  /x HTTP/1.1\r\n", 0, -1),
        (b"GET /x  HTTP/1.1\r\n", 0, -1),
        (b"GET /x \r\n", 0, -1),
        (b"T  /x HTTP/1.1\r\n", 0, -1),
        (b"GET /x HTTP/1.1\r\nGET  /x HTTP/1.1\r\n", 17, -1),
        (b"GET /x HTTP/1.1GET  /x HTTP/1.1\r\n", 15, -1),
    ],
)
def test_the_target_of_a_request_line_is_found_where_one_space_puts_it(
    data: bytes, start: int, end: int
) -> None:
    assert target_end(data, start, b"GET", b"/x") == end


@pytest.mark.parametrize(
    ("data", "end"),
    [
        (b"0\r\n\r\nGET", 5),
        (b"3\r\nabc\r\n0\r\n\r\n", 13),
        (b"3;a=b\r\n\r\n\r\r\n00\r\nX: 1\r\nY: 2\r\n\r\nGET", 30),
        (b"0003\r\n0\r\n\r\n0\r\n\r\n", 16),
        (b"3\r\nabc\r\n", -1),
        (b"0\r\nX: 1\r\n", -1),
        (b"5\r\nab", -1),
    ],
)
def test_a_chunked_body_read_whole_ends_after_its_trailer(data: bytes, end: int) -> None:
    assert chunks_end(b"xx" + data, 2) == (end if end < 0 else end + 2)


@pytest.mark.parametrize(
    ("tail", "data", "end"),
    [
        (b"GE", b"T /x HTTP/1.1\r\n", 4),
        (b"xyzGET ", b"/x HTTP/1.1\r\n", 2),
        (b"xyzGET", b" /x", 3),
        (b"GET ", b"/x ", 2),
        (b"GET ", b" /x HTTP/1.1\r\n", -1),
        (b"GET", b"  /x HTTP/1.1\r\n", -1),
        (b"G", b"ET /x  HTTP/1.1\r\n", -1),
        (b"GET /x HTTP/1.1\r\n\r\nG", b"ET /y HTTP/1.1\r\n", -1),
    ],
)
def test_the_target_of_a_request_line_begun_in_an_earlier_read_is_found_after_its_end(
    tail: bytes, data: bytes, end: int
) -> None:
    assert target_end_after(tail[-16:], data, b"GET", b"/x") == end


@pytest.mark.parametrize(
    ("target", "refusal"),
    [
        (b"http://h:/x", None),
        (b"HTTPS://h:/x", None),
        (b"http://[::1]:", None),
        (b"svn+ssh://h/x", "absolute-form target of a scheme not served"),
        (b"h2t://h:/x", "absolute-form target of a scheme not served"),
        (b"http://h::/x", "absolute-form target with a malformed authority"),
    ],
)
def test_an_authority_is_read_with_its_scheme_and_an_empty_port(
    target: bytes, refusal: str | None
) -> None:
    assert authority_refusal(target) == refusal


@pytest.mark.parametrize(("sent", "status"), [(None, "200 OK"), (30, "200 OK"), (31, "431 ")])
def test_header_lines_a_wsgi_server_joined_count_as_it_says_they_came(
    sent: int | None, status: str
) -> None:
    app = App(limits=Limits(max_headers=30))

    @app.get("/c")
    def cookies(request: Request) -> dict[str, str]:
        return request.cookies

    extra = {} if sent is None else {HEADER_LINES: sent}
    answered, body = wsgi_get(app.as_wsgi(), "/c", HTTP_COOKIE="a=1; b=2", **extra)
    assert answered.startswith(status), (answered, body)
    if status == "431 ":
        assert body == b"more than 30 header lines"


@pytest.mark.parametrize(
    "data",
    [
        b"%" * 1000,
        b"%zz" * 300,
        b"%%41" * 300,
        b"=%41%" * 300,
        b"%41=%3D%3d==%" * 50,
        b"%%%41%4%4g%g4=\r\n%0A%0d" * 20,
    ],
    ids=["lone", "lone-letters", "lone-and-escapes", "equals", "equal-escapes", "lines"],
)
def test_percent_escapes_in_any_mix_decode_as_unquote_to_bytes_does(data: bytes) -> None:
    # NOTE: the escapes' "%" were turned into "=" by a regex sub, a match each: 1 MB of "%%41"
    # (one form field) took 61 ms of CPU; now they are added to as one integer (hostile8).
    assert percent_decode_bytes(data) == unquote_to_bytes(data)
