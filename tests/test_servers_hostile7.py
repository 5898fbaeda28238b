"""Hostile requests, round seven: folded header lines, odd absolute-form targets, and what
else is sent at the three ways of ``microweb serve``.

Each test sends raw bytes to ``tests/hostile_app.py`` served the three ways (one start each
for the module: ``servers.hostile_server``) and reads the answer.
"""

from __future__ import annotations

import tracemalloc

import pytest
from servers import NEXT, ServedWay, assert_refused_alone, exchange, hostile_server, statuses

from microweb._target import authority_refusal

pytestmark = pytest.mark.servers


server = hostile_server()


@pytest.mark.parametrize(
    "head",
    [
        b"X-A: 1\r\n 2\r\n",
        b"X-A: 1\r\n\t2\r\n",
        b"X-A:\r\n 2\r\n",
        b"Cookie: a=1\r\n b=2\r\n",
        b"X-A: 1\r\n 2\r\n " + b"a" * 100 + b"\r\n",
    ],
    ids=["space", "tab", "empty-first", "cookie", "two-folds"],
)
def test_a_folded_header_line_is_400_under_every_server(server: ServedWay, head: bytes) -> None:
    # SPEC: RFC 9112 5.2, a server refuses obs-fold with 400 or replaces it with spaces.
    # NOTE: httptools answers 400; Waitress and h11 joined the lines (Waitress in time in
    # the square of the folded lines).
    assert_refused_alone(
        exchange(server, b"GET /url HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + NEXT)
    )


@pytest.mark.parametrize(
    "target",
    [
        b"http://[/url",
        b"http://]/url",
        b"http://[::1/url",
        b"http://[zz]/url",
        b"http://host:99999/url",
        b"http://host:abc/url",
        b"http://user@host/url",
        b"http://u:p@host/url",
        b"http://@host/url",
        b"http:///url",
        b"http://h#/url",
        b"http://h\\x/url",
        b"http://h{/url",
        b"http://h\xc3\xa9/url",
    ],
)
def test_an_absolute_form_target_of_a_bad_authority_is_400_under_every_server(
    server: ServedWay, target: bytes
) -> None:
    # SPEC: RFC 9112 3.2.2, absolute-form is an absolute-URI; RFC 3986 3.2, its authority;
    # RFC 9110 4.2.1, an empty host is refused; 4.2.4, userinfo is treated as an error.
    # NOTE: h11 served "http://[/url" as /url, where httptools answers 400; Waitress served
    # a port past 65535, or not digits, and userinfo, which httptools refuses in part.
    assert_refused_alone(
        exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    )


@pytest.mark.parametrize(
    "port", [b"0" * 5000, b"0" * 5000 + b"80", b"0" * 5000 + b"65536"], ids=["zeros", "80", "65536"]
)
def test_a_port_of_thousands_of_leading_zeros_is_read_under_every_server(
    server: ServedWay, port: bytes
) -> None:
    # NOTE: int() refuses a string of more than 4300 digits (CVE-2020-10735): a port of 5000
    # zeros raised ValueError in authority_refusal() under Waitress and h11, which closed
    # the connection with no answer and logged a traceback (attack383).
    target = b"http://h:" + port + b"/url"
    answer = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    if port.endswith(b"65536"):
        assert_refused_alone(answer)
    else:
        assert statuses(answer) == [b"200", b"200"], answer[-300:]


@pytest.mark.parametrize(
    "authority",
    [
        b"a" * 65536,
        b"a" * 65536 + b"%",
        b"%41" * 21845,
        b"%41" * 21845 + b"%4",
        b"a" * 65536 + b":",
    ],
    ids=["name", "name-bad-end", "escapes", "escapes-bad-end", "name-empty-port"],
)
def test_a_long_authority_is_read_in_bounded_memory(authority: bytes) -> None:
    # NOTE: the reg-name was "(?:[...]|%XX)+", whose repeat kept a backtracking point for each
    # byte it took: a 64 KiB host took 8.5 MB and 28 ms to read (90 ms refused), in each
    # request's head, under each server (attack383).
    tracemalloc.start()
    try:
        authority_refusal(b"http://" + authority + b"/url")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * len(authority)


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (b"HTTP://HOST/url", b"http://x/url"),
        (b"http://[::1]:8080/url?a=1", b"http://x/url?a=1"),
        (b"http://h:65535/url", b"http://x/url"),
        (b"http://h~_.-/url", b"http://x/url"),
        (b"http://a!$&'()*+,;=b/url", b"http://x/url"),
        (b"http://h%41/url", b"http://x/url"),
        (b"http://[v1.x]/url", b"http://x/url"),
        (b"//x/url", None),
    ],
)
def test_an_absolute_form_target_of_a_good_authority_is_served_alike(
    server: ServedWay, target: bytes, url: bytes | None
) -> None:
    # NOTE: httptools.parse_url(), which Uvicorn reads a target with, refused reg-names of
    # "~", "!" and the like, and IPvFuture, which RFC 3986 3.2.2 allows, where Waitress and
    # h11 served them.
    answer = exchange(
        server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    if url is None:
        # NOTE: a path of "//x/url", not an authority: its slashes collapse, a 404.
        assert statuses(answer) == [b"404"], answer[-300:]
    else:
        assert statuses(answer) == [b"200"], answer[-300:]
        assert answer.endswith(b"\r\n\r\n" + url), answer[-300:]


@pytest.mark.parametrize("end", [b" ", b"\t", b"  "], ids=["space", "tab", "spaces"])
def test_whitespace_after_the_version_is_400_under_every_server(
    server: ServedWay, end: bytes
) -> None:
    # SPEC: RFC 9112 3, request-line = method SP request-target SP HTTP-version, then CRLF.
    # NOTE: Waitress stripped it and served the request, where httptools and h11 answer 400.
    assert_refused_alone(
        exchange(server, b"GET /url HTTP/1.1" + end + b"\r\nHost: x\r\n\r\n" + NEXT)
    )


@pytest.mark.parametrize(
    "lead",
    [b" ", b"\t", b"\r\n ", b"\x0c", b"\r\n"],
    ids=["space", "tab", "crlf-space", "ff", "crlf"],
)
def test_whitespace_before_the_request_line_is_400_under_every_server(
    server: ServedWay, lead: bytes
) -> None:
    # SPEC: RFC 9112 2.2, a server SHOULD ignore an empty line (CRLF) before the request line;
    # nothing else may come before it. NOTE: Waitress stripped any whitespace before it and
    # served " GET /url", where httptools and h11 answer 400 (attack383).
    answer = exchange(server, lead + b"GET /url HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    if lead == b"\r\n":
        assert statuses(answer) == [b"200", b"200"], answer[-300:]
    else:
        assert_refused_alone(answer)


@pytest.mark.parametrize(
    "field",
    [
        b"Content-Length: 50",
        b"content-length: 0",
        b"Transfer-Encoding: chunked",
        b"TRANSFER-ENCODING: gzip",
    ],
    ids=["length", "length-0", "coding", "coding-upper"],
)
def test_a_framing_field_in_a_trailer_is_400_under_every_server(
    server: ServedWay, field: bytes
) -> None:
    # SPEC: RFC 9110 6.5.1, a field that frames the message can't be sent as a trailer field.
    # NOTE: httptools answers 400; Waitress and h11 served the body and read the request
    # after it, where a proxy that merges trailer fields into the head frames it otherwise.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert_refused_alone(exchange(server, head + b"2\r\nab\r\n0\r\n" + field + b"\r\n\r\n" + NEXT))


def test_other_trailer_fields_are_read_under_every_server(server: ServedWay) -> None:
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    trailer = b"X-A: 1\r\nContent-Type: a/b\r\nHost: y\r\n\r\n"
    answer = exchange(server, head + b"2\r\nab\r\n0\r\n" + trailer + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]
