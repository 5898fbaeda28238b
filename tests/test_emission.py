"""Conditional and range requests as tables, against the pure functions of ``_files`` and
``_emission``, and what ``outgoing`` sends; no driver, no client.

The behaviour through both interfaces is in test_files.py.
"""

from __future__ import annotations

import os
import threading
import time
from email.utils import formatdate
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import traced_lines
from hypothesis import given, settings
from hypothesis import strategies as st

from microweb import Headers, Response
from microweb._emission import LengthHeaders, head_list, negotiate_file, outgoing, plain_answer
from microweb._files import (
    MAX_TAG_LIST_SIZE,
    FileInfo,
    etag_listed,
    etag_matched,
    not_modified_since,
    parse_range,
    range_applies,
    stat_file,
    unmodified_since,
)
from microweb._results import to_response

MTIME = 1_700_000_000.0
SIZE = 100
ETAG = FileInfo("f", SIZE, MTIME, 0, SIZE).etag
DATE = formatdate(MTIME, usegmt=True)
EARLIER = formatdate(MTIME - 3600, usegmt=True)
LATER = formatdate(MTIME + 3600, usegmt=True)
# NOTE: the same second as DATE in RFC 9110's two obsolete forms, which recipients accept.
DATE_RFC850 = "Tuesday, 14-Nov-23 22:13:20 GMT"
DATE_ASCTIME = "Tue Nov 14 22:13:20 2023"
EARLIER_SECOND = formatdate(MTIME - 1, usegmt=True)
# NOTE: the longest tag lists read, one listing ETAG and one "*".
LONGEST_LIST = ETAG + "," * (MAX_TAG_LIST_SIZE - len(ETAG))
LONGEST_STAR = "*" + " " * (MAX_TAG_LIST_SIZE - 1)


def file_of(tmp_path: Path, size: int) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(size)))
    os.utime(path, (MTIME, MTIME))
    return path


def negotiated(path: Path, method: str, headers: dict[str, str]) -> Response:
    # NOTE: negotiate_file reads only the method and the headers of the request.
    request: Any = SimpleNamespace(method=method, headers=Headers(headers))
    return negotiate_file(Response.file(path), request)


# (request headers) -> (status, Content-Range, length sent), for a 100-byte file.
TABLE: list[tuple[dict[str, str], tuple[int, str | None, int]]] = [
    ({}, (200, None, 100)),
    # If-None-Match: weak comparison, lists, "*"
    ({"if-none-match": ETAG}, (304, None, 0)),
    ({"if-none-match": f"W/{ETAG}"}, (304, None, 0)),
    ({"if-none-match": f'"other", {ETAG}'}, (304, None, 0)),
    ({"if-none-match": "*"}, (304, None, 0)),
    ({"if-none-match": '"other"'}, (200, None, 100)),
    # If-Modified-Since: only without If-None-Match; a bad date is ignored
    ({"if-modified-since": DATE}, (304, None, 0)),
    ({"if-modified-since": LATER}, (304, None, 0)),
    ({"if-modified-since": EARLIER}, (200, None, 100)),
    ({"if-modified-since": "yesterday"}, (200, None, 100)),
    ({"if-modified-since": "Mon, 99 Foo 2023 25:61:61 GMT"}, (200, None, 100)),
    ({"if-none-match": '"other"', "if-modified-since": DATE}, (200, None, 100)),
    # single ranges
    ({"range": "bytes=0-9"}, (206, "bytes 0-9/100", 10)),
    ({"range": "bytes=90-"}, (206, "bytes 90-99/100", 10)),
    ({"range": "bytes=-10"}, (206, "bytes 90-99/100", 10)),
    ({"range": "bytes=-500"}, (206, "bytes 0-99/100", 100)),
    ({"range": "bytes=95-200"}, (206, "bytes 95-99/100", 5)),
    ({"range": "bytes=99-99"}, (206, "bytes 99-99/100", 1)),
    ({"range": "bytes = 0-9"}, (206, "bytes 0-9/100", 10)),
    ({"range": "bytes=100-"}, (416, "bytes */100", 0)),
    ({"range": "bytes=-0"}, (416, "bytes */100", 0)),
    # ignored: the whole file is sent
    ({"range": "bytes=0-9,20-29"}, (200, None, 100)),
    ({"range": "bytes=9-0"}, (200, None, 100)),
    ({"range": "items=0-9"}, (200, None, 100)),
    ({"range": "bytes=a-b"}, (200, None, 100)),
    ({"range": "bytes=-"}, (200, None, 100)),
    ({"range": "bytes=0-" + "9" * 19}, (206, "bytes 0-99/100", 100)),
    # If-Range: a strong match, by ETag or by the exact date
    ({"range": "bytes=0-9", "if-range": ETAG}, (206, "bytes 0-9/100", 10)),
    ({"range": "bytes=0-9", "if-range": DATE}, (206, "bytes 0-9/100", 10)),
    ({"range": "bytes=0-9", "if-range": f"W/{ETAG}"}, (200, None, 100)),
    ({"range": "bytes=0-9", "if-range": LATER}, (200, None, 100)),
    ({"range": "bytes=0-9", "if-range": '"other"'}, (200, None, 100)),
    # conditionals come first
    ({"range": "bytes=0-9", "if-none-match": ETAG}, (304, None, 0)),
    ({"range": "bytes=100-", "if-modified-since": DATE}, (304, None, 0)),
    # If-Match: strong comparison, lists, "*"; 412 when it fails, before everything else
    ({"if-match": ETAG}, (200, None, 100)),
    ({"if-match": f'"other", {ETAG}'}, (200, None, 100)),
    ({"if-match": "*"}, (200, None, 100)),
    ({"if-match": f"W/{ETAG}"}, (412, None, 0)),
    ({"if-match": '"other"'}, (412, None, 0)),
    ({"if-match": '"other"', "if-none-match": ETAG}, (412, None, 0)),
    ({"if-match": '"other"', "range": "bytes=0-9"}, (412, None, 0)),
    ({"if-match": ETAG, "range": "bytes=0-9"}, (206, "bytes 0-9/100", 10)),
    ({"if-match": ETAG, "if-none-match": ETAG}, (304, None, 0)),
    # If-Unmodified-Since: only without If-Match; a bad date is ignored
    ({"if-unmodified-since": DATE}, (200, None, 100)),
    ({"if-unmodified-since": LATER}, (200, None, 100)),
    ({"if-unmodified-since": EARLIER}, (412, None, 0)),
    ({"if-unmodified-since": "yesterday"}, (200, None, 100)),
    ({"if-match": ETAG, "if-unmodified-since": EARLIER}, (200, None, 100)),
    ({"if-unmodified-since": EARLIER, "if-none-match": ETAG}, (412, None, 0)),
    ({"if-unmodified-since": DATE, "range": "bytes=90-"}, (206, "bytes 90-99/100", 10)),
]


@pytest.mark.parametrize(("headers", "expected"), TABLE)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_conditional_and_range_table(
    tmp_path: Path,
    method: str,
    headers: dict[str, str],
    expected: tuple[int, str | None, int],
) -> None:
    response = negotiated(file_of(tmp_path, SIZE), method, headers)
    length = response.length if response.chunks is not None else len(response.body)
    assert (response.status, response.headers.get("content-range"), length) == expected
    if response.status == 206:
        assert response.file_info is not None
        assert b"".join(response.chunks) == bytes(range(SIZE))[response.file_info.start :][:length]
    if response.status in (304, 412, 416):
        assert response.file_info is None and response.chunks is None
    if response.status == 412:
        assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, (200, None, 0)),
        ({"range": "bytes=0-"}, (416, "bytes */0", 0)),
        # SPEC: RFC 9110 14.1.1, the one range-spec it satisfies, which no Content-Range can
        # give: ignored (it was a 416, which says no range is satisfiable).
        ({"range": "bytes=-5"}, (200, None, 0)),
        ({"range": "bytes=0-0"}, (416, "bytes */0", 0)),
    ],
)
def test_a_zero_length_file_satisfies_only_a_suffix_range(
    tmp_path: Path, headers: dict[str, str], expected: tuple[int, str | None, int]
) -> None:
    response = negotiated(file_of(tmp_path, 0), "GET", headers)
    length = response.length if response.chunks is not None else len(response.body)
    assert (response.status, response.headers.get("content-range"), length) == expected


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_only_get_and_head_are_negotiated(tmp_path: Path, method: str) -> None:
    headers = {"if-none-match": "*", "range": "bytes=0-9"}
    response = negotiated(file_of(tmp_path, SIZE), method, headers)
    assert (response.status, response.length) == (200, SIZE)
    assert "etag" not in response.headers


def test_validators_are_set_on_the_answer(tmp_path: Path) -> None:
    response = negotiated(file_of(tmp_path, SIZE), "GET", {})
    assert response.headers["etag"] == ETAG
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["last-modified"] == DATE


# -- the pure functions of _files, one table each ---------------------------------------------


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=90-", 100, (90, 10)),
        ("bytes=-10", 100, (90, 10)),
        ("bytes=-500", 100, (0, 100)),
        ("bytes=95-500", 100, (95, 5)),
        ("BYTES=0-0", 100, (0, 1)),
        ("bytes=100-", 100, False),
        ("bytes=100-200", 100, False),
        ("bytes=-0", 100, False),
        ("bytes=0-", 0, False),
        ("bytes=-1", 0, None),
        ("bytes=0-9,20-29", 100, None),
        ("bytes=9-0", 100, None),
        ("bytes=-", 100, None),
        ("bytes=", 100, None),
        ("bytes=5", 100, None),
        ("bytes=+1-2", 100, None),
        ("bytes=\u00b9-\u00b2", 100, None),
        ("bytes=" + "1" * 19 + "-", 100, False),
        ("bytes=" + "1" * 18 + "-", 100, False),
        # NOTE: "the rest, whatever its size", as download managers ask: it was ignored (200).
        ("bytes=0-18446744073709551615", 100, (0, 100)),
        ("bytes=90-" + "9" * 4000, 100, (90, 10)),
        ("bytes=-" + "9" * 30, 100, (0, 100)),
        ("bytes=" + "0" * 30 + "5-" + "0" * 30 + "9", 100, (5, 5)),
        ("bytes=" + "9" * 20 + "-" + "9" * 19, 100, None),
        ("bytes=" + "9" * 20 + "-" + "9" * 20, 100, False),
        ("lines=0-9", 100, None),
    ],
)
def test_parse_range(header: str, size: int, expected: tuple[int, int] | bool | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "listed"),
    [
        (ETAG, True),
        (f"W/{ETAG}", True),
        (f' "a" , {ETAG} ', True),
        ("*", True),
        ('"a", *', True),
        ('"a"', False),
        ("", False),
        (ETAG.strip('"'), False),
        (LONGEST_LIST, True),
        (LONGEST_STAR, True),
        # NOTE: a longer list lists nothing: the file is sent whole.
        (LONGEST_LIST + ",", False),
        (LONGEST_STAR + " ", False),
    ],
)
def test_etag_listed(header: str, listed: bool) -> None:
    assert etag_listed(header, ETAG) is listed


@pytest.mark.parametrize(
    ("header", "matched"),
    [
        (ETAG, True),
        (f' "a" , {ETAG} ', True),
        ("*", True),
        (f"W/{ETAG}", False),
        ('"a"', False),
        ("", False),
        (LONGEST_LIST, True),
        (LONGEST_STAR, True),
        # NOTE: a longer list matches nothing: 412, never the file.
        (LONGEST_LIST + ",", False),
        (LONGEST_STAR + " ", False),
    ],
)
def test_etag_matched(header: str, matched: bool) -> None:
    assert etag_matched(header, ETAG) is matched


@pytest.mark.parametrize("shape", ['"', ",", '",', " ", 'W/""'])
def test_a_tag_list_as_long_as_a_head_costs_no_python_work_per_tag(shape: str) -> None:
    # NOTE: 256 KiB of quote marks, a head Waitress and httptools let through, was 131,072
    # tags read one by one: 40 ms of CPU for each If-Match or If-None-Match.
    header = shape * (262_144 // len(shape))
    for condition in (etag_listed, etag_matched):
        lines, answer = traced_lines(lambda c=condition: c(header, ETAG))
        assert (lines < 20, answer) == (True, False)


@pytest.mark.parametrize(
    ("header", "mtime", "allowed"),
    [
        (DATE, MTIME, True),
        (LATER, MTIME, True),
        (EARLIER, MTIME, False),
        ("not a date", MTIME, True),
        ("", MTIME, True),
        # NOTE: a bounded Last-Modified (before 1970, or in the future) vouches for no version.
        (formatdate(0, usegmt=True), -100.0, False),
        (LATER, 4_102_444_800.0, False),
    ],
)
def test_unmodified_since(header: str, mtime: float, allowed: bool) -> None:
    assert unmodified_since(header, FileInfo("f", SIZE, mtime, 0, SIZE)) is allowed


@pytest.mark.parametrize(
    ("header", "unchanged"),
    [
        (DATE, True),
        (LATER, True),
        (EARLIER, False),
        ("", False),
        ("not a date", False),
        ("Mon, 99 Foo 2023 25:61:61 GMT", False),
        ("Tue, 14 Nov 2023 22:13:20 +9999", False),
    ],
)
def test_not_modified_since(header: str, unchanged: bool) -> None:
    assert not_modified_since(header, MTIME + 0.5) is unchanged


@pytest.mark.parametrize(
    ("if_range", "applies"),
    [
        (None, True),
        (ETAG, True),
        (f" {ETAG} ", True),
        (DATE, True),
        (DATE_RFC850, True),
        (DATE_ASCTIME, True),
        (f" {DATE} ", True),
        (f"W/{ETAG}", False),
        (EARLIER, False),
        (f"{DATE}, {DATE}", False),
        ("Tue, 14 Nov 2023 22:13:20 +0000", False),
        (LATER, False),
        ('"other"', False),
        ("", False),
    ],
)
def test_range_applies(if_range: str | None, applies: bool) -> None:
    file = FileInfo("f", SIZE, MTIME, 0, SIZE)
    assert range_applies(if_range, file, file.etag) is applies


def test_a_date_is_no_validator_of_a_file_changed_in_this_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SPEC: RFC 9110 8.8.2.2: another change in the same second would keep the date.
    clock = SimpleNamespace(time=lambda: MTIME + 0.9, gmtime=time.gmtime)
    monkeypatch.setattr("microweb._files.time", clock)
    fresh = FileInfo("f", SIZE, MTIME + 0.5, 0, SIZE)
    assert not range_applies(DATE, fresh, fresh.etag)
    older = FileInfo("f", SIZE, MTIME - 0.5, 0, SIZE)
    assert range_applies(EARLIER_SECOND, older, older.etag)


def test_stat_file_describes_the_whole_file(tmp_path: Path) -> None:
    info = stat_file(file_of(tmp_path, SIZE))
    assert (info.size, info.mtime, info.start, info.length, info.whole) == (
        SIZE,
        MTIME,
        0,
        SIZE,
        True,
    )
    assert info.etag == ETAG and info.last_modified == DATE


# -- what goes out --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "sent"),
    [
        ("GET", 200, b"hello"),
        ("HEAD", 200, None),
        ("GET", 204, None),
        ("GET", 304, None),
        ("GET", 205, None),
        ("HEAD", 205, None),
        ("GET", 101, None),
        ("GET", 404, b"hello"),
    ],
)
def test_outgoing_sends_a_body_or_nothing(method: str, status: int, sent: bytes | None) -> None:
    response = Response(b"hello", media_type="text/plain")
    # NOTE: past the status check, which refuses a 1xx from an app: 101 is the handshake's own.
    response._status = status
    headers, body = outgoing(response, method)
    assert body == sent
    names = [name for name, _ in headers]
    if status in (101, 204, 304):
        assert "content-length" not in names and "content-type" not in names
    elif status == 205:
        assert ("content-length", "0") in headers  # NOTE: no content in a 205, RFC 9110 15.3.6
    else:
        assert ("content-length", "5") in headers  # NOTE: a HEAD answer has the GET length


# NOTE: header lists as an app leaves them: with or without a type, with a length of its own
# (wrong or right), with the same name twice; outgoing()'s shortcuts must send what head_list()
# makes of them.
_HEADER_SHAPES = [
    [],
    [("content-type", "text/plain")],
    [("x-a", "1")],
    [("content-type", "text/plain"), ("x-a", "1")],
    [("x-a", "1"), ("content-type", "text/html"), ("set-cookie", "a=b"), ("set-cookie", "c=d")],
    [("content-type", "text/plain"), ("content-length", "99")],
    [("content-length", "5"), ("content-type", "text/plain"), ("vary", "Accept")],
    [("location", "/next"), ("content-length", "0")],
]


@pytest.mark.parametrize("items", _HEADER_SHAPES, ids=range(len(_HEADER_SHAPES)))
@pytest.mark.parametrize("status", [200, 201, 204, 205, 302, 304, 404, 500])
@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize("body", [b"", b"hello"])
def test_outgoing_sends_the_headers_head_list_makes(
    items: list[tuple[str, str]], status: int, method: str, body: bytes
) -> None:
    response = Response(body, status)
    response._headers._list[:] = items
    expected = head_list(response)
    headers, _ = outgoing(response, method)
    assert headers == expected


# NOTE: names as a plugin may leave them in the list (upper case too), values a length or a
# type may have; every status the drivers send, 1xx included.
_NAMES = st.sampled_from(
    ["content-type", "content-length", "Content-Type", "Content-Length", "x-a", "vary", ""]
)
_ITEMS = st.lists(st.tuples(_NAMES, st.sampled_from(["0", "5", "text/plain", ""])), max_size=5)


@settings(max_examples=300, deadline=None, database=None)
@given(
    items=_ITEMS,
    status=st.sampled_from([100, 101, 199, 200, 204, 205, 206, 304, 399, 404, 500, 599]),
    method=st.sampled_from(["GET", "HEAD", "POST"]),
    body=st.sampled_from([b"", b"hello"]),
)
def test_outgoing_sends_what_head_list_makes_for_any_header_list(
    items: list[tuple[str, str]], status: int, method: str, body: bytes
) -> None:
    # NOTE: outgoing()'s shortcuts skip head_list() for the shapes they know; any list, any
    # status, must still go out as head_list() makes it, with a body only where one is due.
    response = Response(body)
    response._status = status
    response._headers._list[:] = items
    expected = head_list(response)
    headers, sent = outgoing(response, method)
    assert headers == expected
    silent = method == "HEAD" or status < 200 or status in (204, 205, 304)
    assert sent == (None if silent else body)


# -- plain answers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "result", ["héllo", "", {"message": "hi", "n": [1, 2.5, None]}, {}, [1, "two"], []]
)
def test_a_plain_answer_is_what_outgoing_sends_for_its_response(result: Any) -> None:
    plain = plain_answer(result, "GET")
    headers, body = outgoing(to_response(result), "GET")
    assert plain is not None
    content, media_type = plain
    assert (content, [("content-type", media_type), ("content-length", str(len(content)))]) == (
        body,
        headers,
    )


@pytest.mark.parametrize(
    ("result", "method"),
    [
        ("hi", "HEAD"),  # NOTE: no body: outgoing() decides.
        (b"bytes", "GET"),
        (None, "GET"),
        (("text", 201), "GET"),
        (Response("made"), "GET"),
        ({"not json": object()}, "GET"),  # NOTE: to_response() raises the error.
        ("\ud800", "GET"),  # NOTE: a lone surrogate does not encode: the same.
    ],
)
def test_other_results_need_a_response(result: Any, method: str) -> None:
    assert plain_answer(result, method) is None


def test_length_headers_are_made_once_for_the_first_sizes_and_always_right() -> None:
    made: list[int] = []

    def make(size: int) -> tuple[str, str]:
        made.append(size)
        return ("content-length", str(size))

    lengths = LengthHeaders(make)
    assert lengths[16] == ("content-length", "16")
    assert lengths[16] is lengths[16] and made == [16]  # NOTE: made once, then looked up.
    for size in range(2000):
        assert lengths[size] == ("content-length", str(size))
    assert len(lengths) == 1024  # NOTE: bounded: a size past the first 1,024 is made each time.
    assert lengths[1999] == ("content-length", "1999") and made.count(1999) == 2


def test_length_headers_are_right_from_many_threads_at_once() -> None:
    lengths = LengthHeaders(lambda size: ("content-length", str(size)))
    wrong: list[int] = []
    start = threading.Barrier(8)

    def look_up(step: int) -> None:
        start.wait()
        for size in range(0, 3000, step):
            if lengths[size] != ("content-length", str(size)):
                wrong.append(size)

    threads = [threading.Thread(target=look_up, args=(step,)) for step in range(1, 9)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert wrong == []
    assert 1024 <= len(lengths) < 1024 + 8  # NOTE: a race may keep one more a thread, no more.
