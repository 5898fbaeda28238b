"""Where the three ways of ``microweb serve`` still disagreed: chunk sizes, empty lines,
transfer codings, CONNECT, and Upgrade requests logged.

Each test sends raw bytes to ``tests/hostile_app.py`` served the three ways (one start each
for the module: ``servers.hostile_server``) and reads the answer.
"""

from __future__ import annotations

import socket
import time

import pytest
from servers import (
    HOST,
    NEXT,
    ServedWay,
    exchange,
    exchange_in_reads,
    hostile_server,
    read_log,
    statuses,
)

pytestmark = pytest.mark.servers

CHUNKED = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


server = hostile_server()


def _chunked(server: ServedWay, body: bytes) -> bytes:
    """Send a chunked POST of ``body`` (its chunks and trailers, as they are) and ``NEXT``
    after it in one write; read the answer to the close."""
    return exchange(server, CHUNKED + body + NEXT)


def _assert_refused_unread(answer: bytes) -> None:
    """The request was answered 400 alone, its body (``hello``) not served."""
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"hello" not in answer


def _assert_body_then_next(answer: bytes, body: bytes) -> None:
    """The request was served with ``body`` as it read it, then the request after it."""
    assert statuses(answer) == [b"200", b"200"], answer[-300:]
    assert b"\r\n\r\n" + body + b"HTTP/1.1 200 " in answer, answer[-300:]


@pytest.mark.parametrize(
    "size",
    [b"5 ", b"5\t", b"5  \t", b"5;a=b ", b"5;a=b\t"],
    ids=["space", "tab", "spaces", "extension-space", "extension-tab"],
)
def test_whitespace_at_the_end_of_a_chunk_line_is_400_under_every_server(
    server: ServedWay, size: bytes
) -> None:
    # SPEC: RFC 9112 7.1, chunk = chunk-size [ chunk-ext ] CRLF: no whitespace before the CRLF.
    # NOTE: h11 takes it (on purpose, for servers in the wild), where Waitress and httptools
    # answer 400: a proxy that reads the size otherwise frames the body otherwise.
    _assert_refused_unread(_chunked(server, size + b"\r\nhello\r\n0\r\n\r\n"))


@pytest.mark.parametrize(
    "before",
    [b"\n", b"\r\n\n", b"\n\r\n\n", b"\r\n" * 30_000],
    ids=["lf", "crlf-lf", "mixed", "many"],
)
def test_an_empty_line_of_a_bare_lf_before_a_request_line_is_skipped_under_every_server(
    server: ServedWay, before: bytes
) -> None:
    # SPEC: RFC 9112 2.2, a server SHOULD ignore an empty line before a request line, and MAY
    # take a bare LF as a line end. NOTE: Waitress and httptools skip it; h11 answered 400,
    # and the request was lost.
    answer = exchange(server, before + NEXT)
    assert statuses(answer) == [b"200"], answer[-300:]
    assert answer.endswith(b"\r\n\r\nhttp://next/url"), answer[-300:]


@pytest.mark.parametrize("codings", [b"identity", b"gzip", b"chunked, identity", b"chunked, gzip"])
@pytest.mark.parametrize("length", [True, False])
def test_a_transfer_encoding_not_ending_in_chunked_is_400_under_every_server(
    server: ServedWay, codings: bytes, length: bool
) -> None:
    # SPEC: RFC 9112 6.3, a request whose Transfer-Encoding does not end in chunked MUST be
    # answered 400, and the connection closed. NOTE: Waitress answered 501 (a coding it
    # does not know, RFC 9112 6.1), Uvicorn 400.
    sized = b"Content-Length: 5\r\n" if length else b""
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + codings + b"\r\n"
    answer = exchange(server, head + sized + b"\r\nhello" + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]


def test_a_coding_before_chunked_with_a_content_length_is_400_under_every_server(
    server: ServedWay,
) -> None:
    # SPEC: RFC 9112 6.3, a server MAY refuse a request with both, and MUST close after it.
    # NOTE: Waitress and h11 answered 501 for the coding, httptools 400 for the two framings.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n"
    answer = exchange(server, head + b"Content-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]


def test_a_coding_before_chunked_is_501_under_every_server(server: ServedWay) -> None:
    # SPEC: RFC 9112 6.1, a server that receives a transfer coding it does not understand
    # SHOULD answer 501. NOTE: with chunked last the body is framed; h11 refused it with 400.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    answer = exchange(server, head + b"5\r\nhello\r\n0\r\n\r\n" + NEXT)
    # NOTE: the body is framed, but every way closes after the 501 (test_servers_agree.py).
    assert statuses(answer) == [b"501"], answer[-300:]


def test_a_connect_with_a_body_is_400_and_not_called_an_upgrade(server: ServedWay) -> None:
    # NOTE: httptools takes CONNECT for a protocol switch, as it takes Upgrade: a body with one
    # was refused in the words of an Upgrade's.
    head = b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\nContent-Length: 5\r\nConnection: close\r\n"
    logged = len(read_log(server.log))
    answer = exchange(server, head + b"\r\nhello")
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"upgrade" not in answer.lower(), answer[-300:]
    assert "upgrade" not in read_log(server.log)[logged:].lower()


def test_upgrades_not_taken_are_logged_once_a_connection(server: ServedWay) -> None:
    # NOTE: Uvicorn logs each Upgrade it does not take: 2,000 h2c requests pipelined on one
    # connection were 2,000 lines of log (and 2,000 more without a WebSocket library).
    h2c = b"GET /url HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    before = read_log(server.log).count("Unsupported upgrade request.")
    for _ in range(2):
        answer = exchange(server, h2c * 50 + NEXT)
        assert statuses(answer) == [b"200"] * 51, answer[-300:]
    time.sleep(0.1)
    logged = read_log(server.log).count("Unsupported upgrade request.") - before
    assert logged == (0 if server.name == "waitress" else 2), read_log(server.log)[-2000:]


@pytest.mark.parametrize("size", [20 << 20, 64 << 20], ids=["20MiB", "64MiB"])
def test_a_body_refused_before_it_is_read_leaves_the_413_readable(
    server: ServedWay, size: int
) -> None:
    # SPEC: RFC 9112 9.6, a server closes in stages, so that the client reads the last
    # response. NOTE: a body over the cap (10 MiB here) is refused by its Content-Length
    # before it is read. Waitress then closed at once, with the body still coming: a client
    # that reads once it has sent the body (http.client, requests) got a reset and no 413.
    # Uvicorn reads the body on and drops it; Waitress now reads it (up to its lingering
    # close's end) and drops it.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % size
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(head)
        piece = b"x" * (1 << 20)
        for _ in range(size >> 20):
            sock.sendall(piece)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            assert chunk, received
            received += chunk
    assert statuses(received) == [b"413"], received[:300]


@pytest.mark.parametrize(
    "codings",
    [b",chunked", b"chunked,,", b"chunked, "],
    ids=["empty-first", "empty-last", "space-last"],
)
def test_empty_members_of_a_transfer_encoding_are_ignored_but_under_httptools(
    server: ServedWay, codings: bytes
) -> None:
    # SPEC: RFC 9110 5.6.1, a recipient MUST ignore a reasonable number of empty list members.
    # NOTE: Waitress did; h11 answered 501 (its own check takes only "chunked" on one line),
    # and the app 501 for ",chunked", which httptools frames as chunked. httptools (llhttp)
    # refuses the others itself, with 400: a refusal, and the connection closed.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + codings + b"\r\n"
    answer = exchange(server, head + b"\r\n5\r\nhello\r\n0\r\n\r\n" + NEXT)
    refused = server.name == "uvicorn-httptools" and codings != b",chunked"
    assert statuses(answer) == ([b"400"] if refused else [b"200", b"200"]), answer[-300:]
    if not refused:
        assert b"\r\n\r\nhello" in answer, answer[-300:]


@pytest.mark.parametrize(
    "lines",
    [
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding:",
        b"Transfer-Encoding:\r\nTransfer-Encoding: chunked",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: ,",
        b"Transfer-Encoding: \r\nContent-Length: 5",
    ],
    ids=["empty-after", "empty-before", "comma-after", "empty-alone"],
)
def test_a_transfer_encoding_line_without_a_coding_is_400_under_every_server(
    server: ServedWay, lines: bytes
) -> None:
    # NOTE: a proxy that reads the first line, or the last, finds no framing there. Waitress
    # answered 501 to an empty line after "chunked", and read the body as chunked after one
    # before it, as h11 did both ways; httptools answers 400 (review317).
    head = b"POST /text HTTP/1.1\r\nHost: x\r\n" + lines + b"\r\n\r\n"
    answer = exchange(server, head + b"5\r\nhello\r\n0\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"hello" not in answer and b"http://next" not in answer, answer[-300:]


@pytest.mark.parametrize(
    "framing",
    [
        b"Content-Length: 5\r\n\r\nhello",
        b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ],
    ids=["length", "chunked"],
)
@pytest.mark.parametrize("target", [b"/x", b"x:443"], ids=["path", "authority"])
def test_a_connect_with_a_body_is_400_and_closed_under_every_server(
    server: ServedWay, framing: bytes, target: bytes
) -> None:
    # SPEC: RFC 9110 9.3.6, a CONNECT request has no content: what follows its head is the
    # tunnel's. NOTE: httptools takes it so (400 under microweb serve), where Waitress and h11
    # read a body and then the next request: "CONNECT /x" was a 404, and the next answered.
    head = b"CONNECT " + target + b" HTTP/1.1\r\nHost: x\r\n"
    answer = exchange(server, head + framing + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"a body with a CONNECT request is not read" in answer, answer[-300:]
    assert b"http://next" not in answer, answer[-300:]


def test_a_connect_without_a_body_is_answered_by_the_app_under_every_server(
    server: ServedWay,
) -> None:
    answer = exchange(server, b"CONNECT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"404", b"200"], answer[-300:]


@pytest.mark.parametrize(
    "head",
    [
        b"GET /url HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET /url HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n",
        b"CONNECT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    ],
    ids=["bad-chunk", "control-byte", "connect-body"],
)
def test_a_400_before_the_app_has_a_content_length_under_every_server(
    server: ServedWay, head: bytes
) -> None:
    # NOTE: Uvicorn's h11 protocol sent its 400 chunked once a head was read (ended by the
    # close before one was), where Waitress and httptools send a Content-Length (review317).
    answer = exchange(server, head)
    assert statuses(answer) == [b"400"], answer
    fields, _, body = answer.partition(b"\r\n\r\n")
    assert b"transfer-encoding" not in fields.lower(), answer
    assert f"content-length: {len(body)}\r\n".encode() in fields.lower() + b"\r\n", answer


@pytest.mark.parametrize(
    ("folded", "body"),
    [
        (b"Content-Length: 34", b"GET /url HTTP/1.1\r\nHost: hidden\r\n\r\n"),
        (b"Transfer-Encoding: chunked", b"0\r\n\r\n"),
    ],
    ids=["length", "coding"],
)
@pytest.mark.parametrize("space", [b" ", b"\t"], ids=["space", "tab"])
def test_a_framing_line_folded_into_another_field_is_400_under_every_server(
    server: ServedWay, folded: bytes, body: bytes, space: bytes
) -> None:
    # SPEC: RFC 9112 5.2, obs-fold. NOTE: Waitress and h11 joined " Content-Length: 34" onto
    # X-A's value and read no body, so a proxy that knows no folding (and read the line as a
    # field) sent a body that was answered as a request of its own; httptools answers 400.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n" + space + folded + b"\r\n\r\n"
    answer = exchange(server, head + body + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"hidden" not in answer and b"next" not in answer


def test_a_bad_chunk_after_the_answer_closes_without_a_traceback(server: ServedWay) -> None:
    # NOTE: Uvicorn's h11 protocol tried to send its 400 after the app had answered (405,
    # before reading the body): h11 refused a second head, and asyncio logged the error.
    logged = len(read_log(server.log))
    head = b"POST /url HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    answer = exchange_in_reads(server, [head, b"zz\r\nbad\r\n0\r\n\r\n" + NEXT], 0.3)
    time.sleep(0.2)
    found = statuses(answer)
    assert found[:1] == [b"400" if server.name == "waitress" else b"405"], answer[-300:]
    assert b"200" not in found, answer[-300:]
    log = read_log(server.log)[logged:]
    assert "Traceback" not in log and "Fatal error" not in log, log


@pytest.mark.parametrize(
    "connection",
    [b"keep-alive, close", b"close, x", b"Upgrade, close", b"x\r\nConnection: close"],
    ids=["keep-alive-close", "close-first", "upgrade-close", "two-lines"],
)
def test_close_among_connection_options_ends_the_connection_under_every_server(
    server: ServedWay, connection: bytes
) -> None:
    # SPEC: RFC 9112 9.6, a server that receives the "close" option closes after its answer
    # and SHOULD NOT process further requests. NOTE: Waitress closed only for a value of
    # "close" alone, and answered the request pipelined after it; Uvicorn closes.
    head = b"GET /url HTTP/1.1\r\nHost: x\r\nConnection: " + connection + b"\r\n\r\n"
    answer = exchange(server, head + NEXT)
    assert statuses(answer) == [b"200"], answer[-300:]
    assert answer.endswith(b"http://x/url"), answer[-300:]


@pytest.mark.parametrize("value", [b"", b" ", b"\t"], ids=["empty", "space", "tab"])
def test_an_upgrade_field_naming_nothing_leaves_a_body_read_under_every_server(
    server: ServedWay, value: bytes
) -> None:
    # NOTE: an Upgrade field of no protocol asks for no switch: httptools reads the body and
    # serves the request, where Waitress and h11 refused it as an Upgrade with a body.
    head = b"POST /text HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade:" + value
    answer = exchange(server, head + b"\r\nContent-Length: 5\r\n\r\nhello" + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]
    assert b"\r\n\r\nhello" in answer and answer.endswith(b"http://next/url"), answer[-300:]


TRAILERS = {
    "bare-lf-ends-them": b"X-T: 1\n\nGET /url HTTP/1.1\r\nHost: smuggled\r\n\r\n",
    "bare-lf-line": b"X-T: 1\nY-T: 2\r\n\r\n",
    "bare-lf-alone": b"\n",
    "folded": b"X-T: 1\r\n more\r\n\r\n",
    "control": b"X-T: a\x01b\r\n\r\n",
}


@pytest.mark.parametrize("trailer", TRAILERS.values(), ids=TRAILERS.keys())
def test_a_trailer_section_with_a_bare_lf_a_fold_or_a_control_is_400_under_every_server(
    server: ServedWay, trailer: bytes
) -> None:
    # NOTE: h11 read trailer lines as it reads a head's: "X-T: 1\n\n" ended the section, and
    # the request after it was served, where Waitress and httptools answer 400 (review337).
    answer = _chunked(server, b"5\r\nhello\r\n0\r\n" + trailer)
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"smuggled" not in answer


CHUNKED_READS = {
    "leading-zeros-and-upper-case": [b"0005\r\nhello\r\n000A\r\n0123456789\r\n0\r\n\r\n"],
    "twenty-digits": [b"0" * 19 + b"5\r\nhello\r\n0\r\n\r\n"],
    "data-holding-a-last-chunk": [b"7\r\n\r\n0\r\n\r\n\r\n1\r\nx\r\n0\r\n\r\n"],
    "cut-before-the-crlf": [b"1\r\na\r\n2\r\nbc", b"\r\n1\r\nd\r\n0\r\n\r\n"],
    "cut-inside-the-crlf": [b"1\r\na\r\n2\r\nbc\r", b"\n1\r\nd\r\n0\r\n\r\n"],
    "cut-after-the-size": [b"1\r\na\r\n2\r\n", b"bc\r\n1\r\nd\r\n0\r\n\r\n"],
    "trailer-then-the-next-request": [b"1\r\na\r\n1\r\nb\r\n0\r\nX-T: 1\r\n\r\n"],
    "extension-then-plain": [b"1;a=b\r\na\r\n1\r\nb\r\n1;c\r\nc\r\n1\r\nd\r\n0\r\n\r\n"],
}
BODIES_READ = {
    "leading-zeros-and-upper-case": b"hello0123456789",
    "twenty-digits": b"hello",
    "data-holding-a-last-chunk": b"\r\n0\r\n\r\nx",
    "cut-before-the-crlf": b"abcd",
    "cut-inside-the-crlf": b"abcd",
    "cut-after-the-size": b"abcd",
    "trailer-then-the-next-request": b"ab",
    "extension-then-plain": b"abcd",
}


@pytest.mark.parametrize("name", CHUNKED_READS)
def test_plain_chunks_in_any_reads_frame_the_body_alike_under_every_server(
    server: ServedWay, name: str
) -> None:
    # NOTE: h11 reads the plain chunks a read holds whole itself (_h11_framing.take_whole_chunks()),
    # and the CRLF after a chunk: the body and the request after it must be the same bytes
    # under every server (review337).
    reads = list(CHUNKED_READS[name])
    reads[0] = CHUNKED + reads[0]
    reads[-1] += NEXT
    answer = exchange_in_reads(server, reads, 0.05)
    _assert_body_then_next(answer, BODIES_READ[name])
    assert answer.endswith(b"\r\n\r\nhttp://next/url"), answer[-300:]


def test_a_chunk_size_of_more_than_20_digits_is_read_but_under_h11(server: ServedWay) -> None:
    # NOTE: h11 reads 20 hex digits at most, leading zeros included (serving.md): a 400 and a
    # close, where Waitress and httptools read the size; no request is read from the body.
    answer = _chunked(server, b"0" * 20 + b"5\r\nhello\r\n0\r\n\r\n")
    if server.name == "uvicorn-h11":
        assert statuses(answer) == [b"400"], answer[-300:]
    else:
        _assert_body_then_next(answer, b"hello")


@pytest.mark.parametrize(
    "extension",
    [b";a\x00", b";a\rb", b";a=\x80", b";", b";a@b", b';a="\x01"'],
    ids=["nul", "bare-cr", "obs-text-token", "empty", "not-a-token", "control-in-quotes"],
)
def test_a_chunk_extension_that_is_no_name_and_value_is_400_under_every_server(
    server: ServedWay, extension: bytes
) -> None:
    # NOTE: h11 took anything after the ";" but a LF, where Waitress and httptools answer 400
    # (review337).
    _assert_refused_unread(_chunked(server, b"5" + extension + b"\r\nhello\r\n0\r\n\r\n"))


VALID_CHUNKED = {
    "token-characters": b"1;!#$%&'*+-.^_`|~09azAZ=!#$%&'*+-.^_`|~\r\na\r\n0\r\n\r\n",
    "quoted-escapes": b'1;a="x\\"y\\\\z";b\r\na\r\n0;c="\\\x80"\r\n\r\n',
    "quoted-obs-text-and-tab": b'1;a="\x80\xff\tb c";d=""\r\na\r\n0\r\n\r\n',
    "several-extensions": b'1;a=1;b;c="d"\r\na\r\n0;e=f;g\r\n\r\n',
    "trailer-obs-text-and-tab": b"1\r\na\r\n0\r\nX-T: \x80\xff\r\nY-T:\ta\tb \r\n\r\n",
    "trailer-empty-values": b"1\r\na\r\n0\r\nX-T:\r\nY-T: \r\n\r\n",
    "many-trailer-lines": b"1;a\r\na\r\n0\r\n"
    + b"".join(b"X-%d: v\x80\t%d\r\n" % (n, n) for n in range(100))
    + b"\r\n",
    # NOTE: near MAX_CHUNK_EXTENSIONS (16 KiB): what Waitress's pattern took 2.4 MB to check
    # in microweb's chunk reader, now its own (review359).
    "many-names": b"1" + b";a" * 8_000 + b"\r\na\r\n0\r\n\r\n",
    "long-quoted-pairs": b'1;a="' + b"\\b" * 8_000 + b'"\r\na\r\n0\r\n\r\n',
}


@pytest.mark.parametrize("name", VALID_CHUNKED)
@pytest.mark.parametrize("step", [None, 7], ids=["one-read", "small-reads"])
def test_extensions_and_trailers_the_grammar_allows_are_read_under_every_server(
    server: ServedWay, name: str, step: int | None
) -> None:
    # SPEC: RFC 9112 7.1.1 and 7.1.2, RFC 9110 5.5 and 5.6: what review337's checks under h11
    # must not refuse. NOTE: the head, ten reads of 7 bytes, then the rest.
    rest = VALID_CHUNKED[name] + NEXT
    reads = [CHUNKED + rest]
    if step is not None:
        reads = [CHUNKED] + [rest[at : at + step] for at in range(0, 10 * step, step)]
        reads.append(rest[10 * step :])
    answer = exchange_in_reads(server, reads, 0.01)
    _assert_body_then_next(answer, b"a")
    assert answer.endswith(b"\r\n\r\nhttp://next/url"), answer[-300:]


@pytest.mark.parametrize(
    "extension",
    [b" ;a", b"\t;a", b"; a", b";a =b", b";a= b", b";a\t=\tb"],
    ids=["space-before", "tab-before", "space-after", "space-before-eq", "space-after-eq", "tabs"],
)
def test_whitespace_around_a_chunk_extensions_separators_is_400_under_every_server(
    server: ServedWay, extension: bytes
) -> None:
    # SPEC: RFC 9112 7.1.1 allows BWS around ";" and "=". NOTE: Waitress and httptools answer
    # 400 to it, and so does microweb serve's h11 (serving.md): every server reads it alike.
    _assert_refused_unread(_chunked(server, b"5" + extension + b"\r\nhello\r\n0\r\n\r\n"))


@pytest.mark.parametrize(
    "extension",
    [b";=", b";a=", b";=b", b";a;;b"],
    ids=["no-name-or-value", "no-value", "no-name", "empty-between"],
)
def test_a_chunk_extension_with_an_empty_name_or_value_is_400_but_under_httptools(
    server: ServedWay, extension: bytes
) -> None:
    # SPEC: RFC 9112 7.1.1, a name is a token, and a value after "=" a token or a quoted
    # string: neither is empty. NOTE: httptools reads them (serving.md), Waitress and
    # microweb serve's h11 answer 400.
    answer = _chunked(server, b"5" + extension + b"\r\nhello\r\n0\r\n\r\n")
    if server.name == "uvicorn-httptools":
        _assert_body_then_next(answer, b"hello")
    else:
        _assert_refused_unread(answer)


FRAMING_TRAILERS = {
    "content-length": b"Content-Length: 1",
    "content-length-list": b"Content-Length: 1, 2",
    "transfer-encoding": b"Transfer-Encoding: gzip",
}


@pytest.mark.parametrize("name", FRAMING_TRAILERS)
def test_a_framing_field_in_a_trailer_is_400_without_a_traceback(
    server: ServedWay, name: str
) -> None:
    # SPEC: RFC 9110 6.5.1, a sender MUST NOT put in a trailer a field that its definition
    # does not allow there: Content-Length and Transfer-Encoding frame the message. NOTE: the
    # servers differed: Waitress dropped any such trailer, httptools answers 400 to every one,
    # h11 what it answered to the same value in a head (a coding: 501); now 400 under each
    # (test_servers_hostile7.py).
    answer = _chunked(server, b"5\r\nhello\r\n0\r\n" + FRAMING_TRAILERS[name] + b"\r\n\r\n")
    assert statuses(answer) == [b"400"], answer[-300:]
    assert "Traceback" not in read_log(server.log)


@pytest.mark.parametrize("target", [b"http://[/url", b"http://a]/url", b"http://[/%41"])
def test_a_target_with_a_lone_bracket_is_answered_without_a_traceback(
    server: ServedWay, target: bytes
) -> None:
    # NOTE: urlsplit() raises ValueError for a bracket of an IPv6 host left open or closed
    # alone: under Waitress it left the parser, was logged as an uncaptured exception with
    # its stack, and the connection closed unanswered (hostile6). Waitress and httptools
    # answer 400; h11 lets the app route the path (the Host header names the host).
    logged = len(read_log(server.log))
    answer = exchange(
        server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    found = statuses(answer)
    assert len(found) == 1, answer[-300:]
    if server.name == "waitress":
        assert found == [b"400"], answer[-300:]
    time.sleep(0.2)
    log = read_log(server.log)[logged:]
    assert "Traceback" not in log and "uncaptured" not in log, log
