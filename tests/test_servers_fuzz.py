"""Random requests to one app under Waitress and Uvicorn (h11, httptools): one report for all.

``tests/fuzz_app.py`` answers with what it read of the request (path, query, cookies, host,
URL, the body as a form, JSON, bytes, streamed parts or streamed chunks, and any
``HTTPError`` on the way). Hypothesis writes requests that every server takes (valid HTTP/1.1
framing, with odd contents: percent-encoded bytes, empty and repeated query fields, bad hosts,
broken cookies, forms and JSON that are truncated, too large or not UTF-8, chunked or not),
sends each twice on one connection to the three servers, for a ``def`` and an ``async def``
handler, and asks for the same status and report from each, and never a 5xx: a difference is
an interface that reads the same bytes another way.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import serving_every_way
from test_servers_parity import Answer, Connection

pytestmark = pytest.mark.servers

APP = "fuzz_app:app"
# NOTE: FUZZ_EXAMPLES=5000 for a longer hunt.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "120")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Run the app under the three servers for the whole module."""
    with serving_every_way(APP, tmp_path_factory) as found:
        yield found


def exchange(port: int, request: bytes, method: str) -> list[Answer]:
    """Send ``request`` and read its answer; then, on a connection kept alive, send it again:
    a body left half read, or an answer framed wrong, spoils the second."""
    connection = Connection(port)
    answers = []
    try:
        for _ in range(2):
            try:
                connection.sock.sendall(request)
                answer = connection.read_answer(method)
            except (AssertionError, ConnectionResetError, BrokenPipeError):
                # NOTE: a server that refused the request before its body closed the
                # connection with the body unread: the kernel resets it, and the answer may
                # be lost (AssertionError: closed before a whole answer).
                break
            answers.append(answer)
            closing = (answer.header("connection") or "").lower() == "close"
            if closing or answer.status_line.startswith(b"HTTP/1.0"):
                break
    finally:
        connection.close()
    return answers


# -- what a request is made of -----------------------------------------------------------------

SEGMENT_PIECES = [
    *("a", "b0", "-", ".", "..", "_", "~", "!", "$", "&", "'", "(", ")", "*", "+", ",", ";"),
    *("=", ":", "@", "%20", "%2F", "%2f", "%25", "%00", "%C3%A9", "%e9", "%FF", "%2e", "%2E%2E"),
    *("%3F", "%23", "%0A", "%7E", "%", "%zz", "%E2%82%AC", "%ED%A0%80", "%C0%AF"),
    *("\u00c3\u00a9", "\u00e9", "\u00ff"),
]
QUERY_PIECES = [
    *("a=1", "a=2", "b=%20x", "c", "", "=v", "%ff=1", "x=%E2%82%AC", "+=+", "k=v;w=z", "%"),
    *("%zz=1", "d=%00", "e=%ED%A0%80", "f=a+b", "g==", "h=%2", "i=%C3%A9"),
]
HOSTS = [
    *("testserver", "testserver:8080", "Example.COM", "[::1]:80", "bad host", "a..b", "x:port"),
    *("", "h:99999", "h:", ":80", "[::1", "xn--caf-dma.example", "h_1.example", "1.2.3.4:0"),
]
COOKIE_PIECES = [
    *("a=1", 'b="q"', "c=%20", "bad", "=x", "d=", "e=1=2", " f = 2 ", 'g="', "h=a,b"),
    *("i=\\x", "j=\u00e9".encode().decode("latin-1"), "a=3", "k=;", "l=\u00e9"),
]
CONTENT_TYPES = [
    None,
    "application/x-www-form-urlencoded",
    "application/x-www-form-urlencoded; charset=latin-1",
    "application/x-www-form-urlencoded; charset=nope",
    "multipart/form-data; boundary=fz",
    'multipart/form-data; boundary="fz"',
    "multipart/form-data",
    "application/json",
    "application/json; charset=utf-16",
    "application/merge-patch+json",
    "text/plain",
    "APPLICATION/JSON",
]
JSON_BODIES = [
    b'{"a": 1}',
    b"[1, 2.5, null, true]",
    b'"\\ud800"',
    b"1e999",
    b"NaN",
    b"{",
    b"\xef\xbb\xbf{}",
    b"\xff",
    b'{"a": 1} x',
    b"",
    b"[" * 50 + b"]" * 50,
    b'{"a": "' + b"x" * 5000 + b'"}',
]
PART_PIECES = [
    b'--fz\r\nContent-Disposition: form-data; name="t"\r\n\r\nvalue\r\n',
    b'--fz\r\nContent-Disposition: form-data; name="f"; filename="a.txt"\r\n'
    b"Content-Type: text/plain\r\n\r\nfile data\r\n",
    b"--fz\r\nContent-Disposition: form-data; name=\"u\"; filename*=UTF-8''%E2%82%AC.txt\r\n"
    b"\r\nx\r\n",
    b'--fz\r\nContent-Disposition: form-data; name="big"\r\n\r\n' + b"y" * 3000 + b"\r\n",
    b"--fz\r\nContent-Disposition: form-data\r\n\r\nno name\r\n",
    b'--fz\r\nContent-Disposition: form-data; name="e"; filename=""\r\n\r\n\r\n',
    b'--fz\r\nContent-Disposition: form-data; name="c"\r\nContent-Type: text/plain; '
    b"charset=latin-1\r\n\r\ncaf\xe9\r\n",
    b"garbage\r\n",
    b'--fz\r\nContent-Disposition: form-data; name="q"; filename="a\\"b\\\\c.txt"\r\n\r\nq\r\n',
    b'--fz\r\nContent-Disposition: form-data; name="caf\xc3\xa9"\r\n\r\n\xc3\xa9\r\n',
    b'--fz\r\nContent-Disposition: form-data; name="t"\r\nX-Long: '
    + b"h" * 3000
    + b"\r\n\r\nv\r\n",
    b'--fz\r\nContent-Disposition: form-data; name="n"\r\nContent-Type: text/plain; charset=nope'
    b"\r\n\r\nv\r\n",
    b'--fz\r\nContent-Disposition: attachment; name="w"\r\n\r\nv\r\n',
    b'--fz\r\ncontent-disposition: FORM-DATA; NAME="upper"\r\n\r\nv\r\n',
]


@st.composite
def bodies(draw: st.DrawFn, content_type: str | None) -> bytes:
    media = (content_type or "").split(";")[0].lower()
    if media == "multipart/form-data":
        parts = draw(st.lists(st.sampled_from(PART_PIECES), max_size=6))
        end = draw(st.sampled_from([b"--fz--\r\n", b"--fz--", b"", b"--fz"]))
        return b"".join(parts) + end
    if media == "application/x-www-form-urlencoded":
        return "&".join(draw(st.lists(st.sampled_from(QUERY_PIECES), max_size=14))).encode()
    if "json" in media:
        return draw(st.sampled_from(JSON_BODIES))
    return draw(st.binary(max_size=64) | st.just(b"z" * 5000))


def _framed(body: bytes, chunks: list[int] | None) -> tuple[list[str], bytes]:
    """The framing header and the body as sent: with Content-Length, or chunked in pieces."""
    if chunks is None:
        return [f"Content-Length: {len(body)}"], body
    if chunks == [0]:  # NOTE: a length with leading zeros, which the grammar allows.
        return [f"Content-Length: 00{len(body)}"], body
    sent, rest = b"", body
    for size in chunks:
        piece, rest = rest[:size], rest[size:]
        if piece:
            sent += b"%x\r\n%s\r\n" % (len(piece), piece)
    if rest:
        sent += b"%x\r\n%s\r\n" % (len(rest), rest)
    return ["Transfer-Encoding: chunked"], sent + b"0\r\n\r\n"


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE"]))
    prefix = "/s/"  # NOTE: the test sends the same request to "/a/" too.
    segments = draw(
        st.lists(st.lists(st.sampled_from(SEGMENT_PIECES), max_size=3).map("".join), max_size=4)
    )
    target = prefix + "/".join(segments)
    query = draw(st.lists(st.sampled_from(QUERY_PIECES), max_size=14))
    if query or draw(st.booleans()):
        target += "?" + "&".join(query)
    lines = [f"Host: {draw(st.sampled_from(HOSTS))}"]
    cookies = draw(st.lists(st.sampled_from(COOKIE_PIECES), max_size=4))
    if cookies:
        lines.append("Cookie: " + "; ".join(cookies))
    values = st.sampled_from(["1", "", "a, b", "\u00e9", "\u00c3\u00a9", "a\tb", " pad "])
    lines += [f"X-Value: {v}" for v in draw(st.lists(values, max_size=3))]
    read = draw(st.sampled_from([None, None, "parts", "chunks"]))
    if read is not None:
        lines.append(f"X-Read: {read}")
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    body = draw(bodies(content_type))
    chunks = draw(st.none() | st.just([0]) | st.lists(st.integers(1, 700), min_size=1, max_size=4))
    framing, sent = _framed(body, chunks)
    if draw(st.booleans()):
        target = draw(st.sampled_from(["http://testserver", "http://other.example:81"])) + target
    if draw(st.integers(0, 5)) == 0:
        lines.append("Expect: 100-continue")
    version = draw(st.sampled_from(["HTTP/1.1", "HTTP/1.1", "HTTP/1.0"]))
    if version == "HTTP/1.0" and "chunked" in framing[0]:
        framing, sent = _framed(body, None)
    head = [f"{method} {target} {version}", *lines, *framing, "", ""]
    return "\r\n".join(head).encode("latin-1") + sent


Seen = tuple[int, str | None, bytes]


def _answers(ports: dict[str, int], request: bytes, suffix: str = "") -> dict[str, Seen]:
    """Each server's answer to ``request`` (none from a server that reset the connection);
    the second answer on a kept-alive connection must be the same as the first."""
    method = request.split(b" ", 1)[0].decode()
    found = {}
    for name, port in ports.items():
        answers = exchange(port, request, method)
        seen = [(a.status, a.header("content-type"), a.body) for a in answers]
        if seen:
            assert all(other == seen[0] for other in seen), (request, name, answers)
            found[name + suffix] = seen[0]
    return found


def _reports(request: bytes, answers: dict[str, Seen]) -> list[Any]:
    """The JSON reports of ``answers`` (none if one is not a report), as comparable values."""
    if not all(media == "application/json" for _, media, _ in answers.values()):
        return []
    reports = []
    for name, (_, _, body) in answers.items():
        report = json.loads(body)
        if b"\r\nHost: \r\n" in request:
            # NOTE: no host: each server names itself (Waitress its SERVER_NAME, Uvicorn its
            # address), with its own port.
            report.pop("host"), report.pop("url")
        if name.endswith(" async"):  # NOTE: the twin's path starts with /a/ where this has /s/.
            for key, pattern in (("path", r"^/a/"), ("url", r"^(\w+://[^/]*)/a/")):
                if isinstance(report.get(key), str):
                    report[key] = re.sub(
                        pattern, lambda m: (m.group(1) if m.groups() else "") + "/s/", report[key]
                    )
        reports.append(report)
    return reports


@FUZZ
@given(request=requests())
def test_every_server_reads_a_request_alike(ports: dict[str, int], request: bytes) -> None:
    line, _, rest = request.partition(b"\r\n")
    twin = line.replace(b"/s/", b"/a/", 1) + b"\r\n" + rest  # NOTE: the async def handler.
    answers = {**_answers(ports, request), **_answers(ports, twin, " async")}
    statuses = {name: status for name, (status, _, _) in answers.items()}
    assert all(status < 500 for status in statuses.values()), (request, answers)
    assert len(set(statuses.values())) == 1, (request, statuses)
    reports = _reports(request, answers)
    for name, report in zip(answers, reports, strict=False):
        assert report == reports[0], (request, name, report, reports[0])
