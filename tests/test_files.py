"""File responses: validators, conditional requests, byte ranges and downloads, under both
interfaces."""

from __future__ import annotations

import fcntl
import gzip
import mimetypes
import os
import subprocess
import sys
import time
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote
from wsgiref.util import FileWrapper

import pytest
from conftest import MakeClient, in_colour
from drive import wsgi_environ
from waitress.buffers import ReadOnlyFileBasedBuffer

import microweb._file_bodies
from microweb import App, Request, Response
from microweb._file_bodies import content_disposition
from microweb._files import (
    MAX_TAG_LIST_SIZE,
    FileInfo,
    HeldFile,
    parse_http_date,
    range_applies,
    stat_file,
)
from microweb.testing import TestClient

DATA = bytes(range(100))
MTIME = 1_700_000_000.0


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """A 100-byte file with a known modification time."""
    path = tmp_path / "data.txt"
    path.write_bytes(DATA)
    os.utime(path, (MTIME, MTIME))
    return path


def file_app(path: Path, **options: Any) -> App:
    app = App()

    @app.get("/file")
    def serve(request: Request) -> Response:
        return Response.file(path, **options)

    return app


@pytest.fixture
def client(make_client: MakeClient, data_file: Path) -> TestClient:
    return make_client(file_app(data_file))


def get(client: TestClient, **headers: str) -> Any:
    return client.get("/file", headers={k.replace("_", "-"): v for k, v in headers.items()})


# -- whole files and validators ----------------------------------------------------------------


def test_whole_file_and_validators(client: TestClient) -> None:
    response = get(client)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-length"] == "100"
    assert response.headers["last-modified"] == formatdate(MTIME, usegmt=True)
    assert response.headers["accept-ranges"] == "bytes"
    etag = response.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert "content-range" not in response.headers


def test_etag_changes_with_the_file(client: TestClient, data_file: Path) -> None:
    first = get(client).headers["etag"]
    assert get(client).headers["etag"] == first
    os.utime(data_file, (MTIME + 10, MTIME + 10))
    assert get(client).headers["etag"] != first


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("page.html", "text/html"),
        ("image.png", "image/png"),
        ("data.json", "application/json"),
        ("archive.unknownext", "application/octet-stream"),
        ("noextension", "application/octet-stream"),
        # NOTE: a compressed file is the archive, whatever it holds.
        ("data.json.gz", "application/gzip"),
        ("logs.tar.gz", "application/gzip"),
        ("page.html.bz2", "application/x-bzip2"),
        ("dump.sql.xz", "application/x-xz"),
        ("script.js.br", "application/octet-stream"),
    ],
)
def test_content_type_guessed(
    make_client: MakeClient, tmp_path: Path, name: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_bytes(b"content")
    response = make_client(file_app(path)).get("/file")
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] == expected
    assert response.content == b"content"


def test_a_file_named_by_bytes_is_sent(make_client: MakeClient, tmp_path: Path) -> None:
    # NOTE: as Static and Templates take a bytes folder (os.listdir() of bytes gives such
    # names): Response.file() took the bytes, then its type guess raised TypeError, a 500.
    path = tmp_path / "notes.txt"
    path.write_bytes(b"content")
    response = make_client(file_app(os.fsencode(path))).get("/file")
    assert (response.status_code, response.content) == (200, b"content")
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("photo.webp", "image/webp"),
        ("photo.avif", "image/avif"),
        ("font.woff", "font/woff"),
        ("font.woff2", "font/woff2"),
        ("font.ttf", "font/ttf"),
        ("font.otf", "font/otf"),
        ("app.js.map", "application/json"),
    ],
)
def test_web_file_types_do_not_depend_on_the_hosts_mime_types_file(
    make_client: MakeClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    expected: str,
) -> None:
    # NOTE: mimetypes knows these from /etc/mime.types only, which slim container images
    # lack: there an image opened in a tab was downloaded as application/octet-stream, and
    # a font left uncompressed by GZip, where the developer's machine named them.
    monkeypatch.setattr(microweb._file_bodies, "mimetypes", mimetypes.MimeTypes())
    path = tmp_path / name
    path.write_bytes(b"content")
    response = make_client(file_app(path)).get("/file")
    assert response.headers["content-type"] == expected


SVG = b'<svg xmlns="http://www.w3.org/2000/svg"/>'


@pytest.mark.parametrize("name", ["icon.svgz", "ICON.SVGZ"])
def test_svgz_is_an_svg_sent_gzip_encoded(
    make_client: MakeClient, tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(SVG))
    client = make_client(file_app(path))
    response = client.get("/file")
    # NOTE: httpx, like a browser, unpacks the gzip encoding: the image, not the archive.
    assert response.headers["content-type"] == "image/svg+xml"
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == SVG
    ranged = client.get("/file", headers={"range": "bytes=0-1"})
    # SPEC: RFC 9110 14.1.2: a range of an encoded file is a range of its encoded bytes.
    size = path.stat().st_size
    assert (ranged.status_code, ranged.headers["content-range"]) == (206, f"bytes 0-1/{size}")
    assert ranged.headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    "options",
    [
        {"filename": "icon.svgz"},
        {"media_type": "application/gzip"},
        # NOTE: given in the headers, they went out beside Content-Encoding: gzip, which made
        # clients unpack the archive (review82).
        {"headers": {"Content-Type": "application/gzip"}},
        {"headers": {"Content-Disposition": 'attachment; filename="icon.svgz"'}},
    ],
)
def test_svgz_download_or_own_type_is_the_archive(
    make_client: MakeClient, tmp_path: Path, options: dict[str, Any]
) -> None:
    path = tmp_path / "icon.svgz"
    path.write_bytes(gzip.compress(SVG))
    response = make_client(file_app(path, **options)).get("/file")
    assert response.headers["content-type"] == "application/gzip"
    assert "content-encoding" not in response.headers
    assert response.content == path.read_bytes()


def test_explicit_media_type_and_headers(make_client: MakeClient, data_file: Path) -> None:
    app = file_app(data_file, media_type="application/x-custom", headers={"x-extra": "1"})
    response = make_client(app).get("/file")
    assert response.headers["content-type"] == "application/x-custom"
    assert response.headers["x-extra"] == "1"
    assert response.content == DATA


def test_path_as_str(make_client: MakeClient, data_file: Path) -> None:
    app = App()

    @app.get("/file")
    def serve(request: Request) -> Response:
        return Response.file(str(data_file))

    assert make_client(app).get("/file").content == DATA


def test_empty_file(make_client: MakeClient, tmp_path: Path) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    response = make_client(file_app(path)).get("/file")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == "0"


@pytest.mark.parametrize(
    ("header", "status"),
    [
        # SPEC: RFC 9110 14.1.1, on an empty file a suffix range of non-zero length is the one
        # satisfiable range-spec: it was a 416; no byte range can express it, so it is ignored.
        ("bytes=-5", 200),
        ("bytes=-1", 200),
        ("bytes=0-", 416),
        ("bytes=0-0", 416),
        ("bytes=-0", 416),
    ],
)
def test_a_range_of_an_empty_file(
    make_client: MakeClient, tmp_path: Path, header: str, status: int
) -> None:
    path = tmp_path / "empty.bin"
    path.write_bytes(b"")
    response = make_client(file_app(path)).get("/file", headers={"range": header})
    assert (response.status_code, response.content) == (status, b"")
    assert response.headers["content-length"] == "0"
    assert response.headers.get("content-range") == ("bytes */0" if status == 416 else None)


def test_large_file_intact(make_client: MakeClient, tmp_path: Path) -> None:
    data = os.urandom(1024 * 1024 + 123)
    path = tmp_path / "large.bin"
    path.write_bytes(data)
    client = make_client(file_app(path))
    response = client.get("/file")
    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(data))
    assert response.content == data
    ranged = client.get("/file", headers={"range": "bytes=65000-200000"})
    assert ranged.status_code == 206
    assert ranged.content == data[65000:200001]
    assert ranged.headers["content-range"] == f"bytes 65000-200000/{len(data)}"


# -- conditional requests ----------------------------------------------------------------------


def assert_not_modified(response: Any, etag: str) -> None:
    assert response.status_code == 304
    assert response.content == b""
    assert "content-length" not in response.headers
    assert response.headers["etag"] == etag


def test_if_none_match_exact(client: TestClient) -> None:
    etag = get(client).headers["etag"]
    assert_not_modified(get(client, if_none_match=etag), etag)


def test_if_none_match_weak(client: TestClient) -> None:
    etag = get(client).headers["etag"]
    assert_not_modified(get(client, if_none_match=f"W/{etag}"), etag)


def test_if_none_match_list(client: TestClient) -> None:
    etag = get(client).headers["etag"]
    response = get(client, if_none_match=f'"other", W/"another",{etag} ')
    assert_not_modified(response, etag)


def test_if_none_match_star(client: TestClient) -> None:
    etag = get(client).headers["etag"]
    assert_not_modified(get(client, if_none_match="*"), etag)


def test_if_none_match_other_etag(client: TestClient) -> None:
    response = get(client, if_none_match='"something-else", W/"and-this"')
    assert response.status_code == 200
    assert response.content == DATA


def test_if_modified_since(client: TestClient) -> None:
    first = get(client)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    assert_not_modified(get(client, if_modified_since=last_modified), etag)
    later = formatdate(MTIME + 3600, usegmt=True)
    assert_not_modified(get(client, if_modified_since=later), etag)


def test_if_modified_since_older_date(client: TestClient) -> None:
    older = formatdate(MTIME - 3600, usegmt=True)
    response = get(client, if_modified_since=older)
    assert response.status_code == 200
    assert response.content == DATA


def test_if_modified_since_invalid_date(client: TestClient) -> None:
    response = get(client, if_modified_since="not a date")
    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.parametrize(
    "since",
    [
        # NOTE: a list of dates, or one with an offset, is no HTTP-date (RFC 9110 13.1.3):
        # email.utils read the first date, and answered 304 to a header to ignore.
        formatdate(MTIME + 3600, usegmt=True) + ", " + formatdate(MTIME - 3600, usegmt=True),
        formatdate(MTIME + 3600, usegmt=True) + ", garbage",
        formatdate(MTIME + 3600, localtime=False).replace("-0000", "+0000"),
        "Tue, 14 Nov 2023 22:13:20 UTC",
    ],
)
def test_if_modified_since_that_is_no_http_date_is_ignored(client: TestClient, since: str) -> None:
    response = get(client, if_modified_since=since)
    assert response.status_code == 200
    assert response.content == DATA


@pytest.mark.parametrize(
    "since",
    [
        formatdate(MTIME - 3600, usegmt=True) + ", " + formatdate(MTIME + 3600, usegmt=True),
        formatdate(MTIME - 3600, localtime=False).replace("-0000", "+0000"),
    ],
)
def test_if_unmodified_since_that_is_no_http_date_is_ignored(
    client: TestClient, since: str
) -> None:
    # SPEC: RFC 9110 13.1.4: email.utils read the earlier date first, a 412 to a header to ignore.
    response = get(client, range="bytes=0-9", if_unmodified_since=since)
    assert (response.status_code, response.content) == (206, DATA[:10])


def test_if_modified_since_in_the_old_forms_is_gmt_whatever_the_server_zone(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: asctime's form has no zone; email.utils gave a naive datetime, which timestamp()
    # read in the server's zone: eight hours off in Los Angeles.
    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        moment = time.gmtime(MTIME)
        asctime = time.strftime("%a %b %d %H:%M:%S %Y", moment)
        rfc850 = time.strftime("%A, %d-%b-%y %H:%M:%S GMT", moment)
        earlier = time.strftime("%a %b %d %H:%M:%S %Y", time.gmtime(MTIME - 60))
        etag = get(client).headers["etag"]
        assert_not_modified(get(client, if_modified_since=asctime), etag)
        assert_not_modified(get(client, if_modified_since=rfc850), etag)
        assert get(client, if_modified_since=earlier).status_code == 200
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sun, 06 Nov 1994 08:49:37 GMT", 784111777),
        ("Sunday, 06-Nov-94 08:49:37 GMT", 784111777),
        ("Sun Nov  6 08:49:37 1994", 784111777),
        (" Sun, 06 Nov 1994 08:49:37 GMT ", 784111777),
        ("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 08:49:37 +0000", None),
        ("06 Nov 1994 08:49:37 GMT", None),
        ("Sun, 31 Feb 1994 08:49:37 GMT", None),
        ("Sun, 06 Nov 1994 24:49:37 GMT", None),
        ("Sun, 06 Nov 0000 08:49:37 GMT", None),
        ("sun, 06 nov 1994 08:49:37 gmt", None),
        ("", None),
    ],
)
def test_parse_http_date_takes_the_three_forms_only(value: str, expected: int | None) -> None:
    assert parse_http_date(value) == expected


def test_if_none_match_takes_precedence(client: TestClient) -> None:
    # SPEC: RFC 9110 13.1.3, If-Modified-Since is ignored when If-None-Match is present.
    last_modified = get(client).headers["last-modified"]
    response = get(client, if_none_match='"other"', if_modified_since=last_modified)
    assert response.status_code == 200
    assert response.content == DATA


def test_if_match_and_if_unmodified_since_refuse_another_version_with_412(
    client: TestClient,
) -> None:
    # SPEC: RFC 9110 13.1.1 and 13.1.4: a download resumed or checked against a version the
    # client had gets 412 once the file is another one, not the other one's bytes.
    first = get(client)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    for headers in ({"if_match": etag}, {"if_unmodified_since": last_modified}):
        again = get(client, range="bytes=0-9", **headers)
        assert (again.status_code, again.content) == (206, DATA[:10])
    earlier = formatdate(MTIME - 3600, usegmt=True)
    for headers in (
        {"if_match": '"other"'},
        {"if_match": f"W/{etag}"},
        {"if_unmodified_since": earlier},
    ):
        refused = get(client, range="bytes=0-9", **headers)
        assert (refused.status_code, refused.content) == (412, b"")
        assert refused.headers["content-type"] == "text/plain; charset=utf-8"
        assert "content-range" not in refused.headers
    head = client.head("/file", headers={"if-match": '"other"'})
    assert (head.status_code, head.content) == (412, b"")


def test_an_over_long_tag_list_lists_no_tag(client: TestClient) -> None:
    # NOTE: a longer If-None-Match lists nothing, so the file is sent, and If-Modified-Since is
    # still ignored; a longer If-Match matches nothing, so the answer is 412 rather than bytes
    # of a version the client did not ask for (RFC 9110 13.1.1).
    first = get(client)
    etag, last_modified = first.headers["etag"], first.headers["last-modified"]
    longest = etag + "," * (MAX_TAG_LIST_SIZE - len(etag))
    assert get(client, if_none_match=longest).status_code == 304
    assert get(client, if_match=longest, range="bytes=0-9").status_code == 206
    for over in (longest + ",", f"{etag}, " + '"' * 262_144):
        sent = get(client, if_none_match=over, if_modified_since=last_modified)
        assert (sent.status_code, sent.content) == (200, DATA)
        ranged = get(client, if_none_match=over, range="bytes=0-9")
        assert (ranged.status_code, ranged.content) == (206, DATA[:10])
        refused = get(client, if_match=over, range="bytes=0-9")
        assert (refused.status_code, refused.content) == (412, b"")


@pytest.mark.parametrize("tag", ['"v1"', 'W/"v1"'])
def test_conditions_compare_the_etag_the_app_set(
    data_file: Path, make_client: MakeClient, tag: str
) -> None:
    # NOTE: the app's ETag is the one sent (its headers are kept), but the conditions were
    # compared with the file's own: a client sending back the ETag it was given got 412 from
    # If-Match every time, never a 304 from If-None-Match, never a range from If-Range.
    app = App()

    @app.get("/file")
    def file(request: Request) -> Response:
        return Response.file(data_file, headers={"etag": tag})

    client = make_client(app)
    assert client.get("/file").headers["etag"] == tag
    file_etag = stat_file(data_file).etag
    strong = not tag.startswith("W/")
    # SPEC: RFC 9110 13.1.1 and 13.1.5: If-Match and If-Range compare strongly: a weak ETag
    # never matches; 13.1.2: If-None-Match compares weakly.
    for headers, status in (
        ({"if-match": tag}, 206 if strong else 412),
        ({"if-match": file_etag}, 412),
        ({"if-none-match": tag}, 304),
        ({"if-none-match": 'W/"v1"'}, 304),
        ({"if-none-match": file_etag}, 206),
        ({"if-range": tag}, 206 if strong else 200),
        ({"if-range": file_etag}, 200),
    ):
        response = client.get("/file", headers={"range": "bytes=0-9", **headers})
        assert (headers, response.status_code) == (headers, status)
        assert response.headers["etag"] == tag


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"if-none-match": '"v1,2"'}, 304),
        ({"if-none-match": '"other", W/"v1,2"'}, 304),
        ({"if-none-match": '"v1'}, 200),
        ({"if-none-match": '2"'}, 200),
        ({"if-match": '"v1,2"'}, 200),
        ({"if-match": '"other" , "v1,2"'}, 200),
        ({"if-match": '"v1'}, 412),
    ],
)
def test_an_etag_with_a_comma_is_one_tag_of_a_list(
    data_file: Path, make_client: MakeClient, headers: dict[str, str], status: int
) -> None:
    # SPEC: RFC 9110 8.8.3, an entity-tag's quoted characters may be commas: the lists were
    # split at every comma, and the app's ETag "v1,2" matched neither If-None-Match nor If-Match.
    app = App()

    @app.get("/file")
    def file(request: Request) -> Response:
        return Response.file(data_file, headers={"etag": '"v1,2"'})

    assert make_client(app).get("/file", headers=headers).status_code == status


def test_conditional_on_head(client: TestClient) -> None:
    etag = get(client).headers["etag"]
    response = client.head("/file", headers={"if-none-match": etag})
    assert response.status_code == 304
    assert response.content == b""


# -- ranges ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=0-9", 0, 9),
        ("bytes=10-", 10, 99),
        ("bytes=-5", 95, 99),
        ("bytes=90-200", 90, 99),
        ("bytes=99-99", 99, 99),
        ("bytes=0-0", 0, 0),
        ("bytes=-100", 0, 99),
        ("bytes=-500", 0, 99),
        ("bytes=0-99", 0, 99),
    ],
)
def test_single_range(client: TestClient, header: str, start: int, end: int) -> None:
    response = get(client, range=header)
    assert response.status_code == 206
    assert response.content == DATA[start : end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/100"
    assert response.headers["content-length"] == str(end - start + 1)
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("header", ["bytes=500-", "bytes=100-", "bytes=100-200", "bytes=-0"])
def test_unsatisfiable_range(client: TestClient, header: str) -> None:
    response = get(client, range=header)
    assert response.status_code == 416
    assert response.headers["content-range"] == "bytes */100"
    assert DATA not in response.content


@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-1,5-6",
        "bytes=0-1, 50-",
        "bytes=abc",
        "bytes=5-2",
        "bytes=-",
        "bytes=",
        "bytes=1-2-3",
        "bytes=+1-2",
        "items=0-5",
        "0-5",
    ],
)
def test_ignored_range_sends_whole_file(client: TestClient, header: str) -> None:
    response = get(client, range=header)
    assert response.status_code == 200
    assert response.content == DATA
    assert "content-range" not in response.headers


@pytest.mark.parametrize("accept_ranges", ["none", "None", "items"])
@pytest.mark.parametrize("header", ["bytes=0-9", "bytes=500-"])
def test_a_file_whose_app_accepts_no_byte_ranges_is_sent_whole(
    make_client: MakeClient, data_file: Path, accept_ranges: str, header: str
) -> None:
    # NOTE: the app's Accept-Ranges is kept, and was sent on a 206 (and a 416) that it denied.
    client = make_client(file_app(data_file, headers={"accept-ranges": accept_ranges}))
    response = get(client, range=header)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["accept-ranges"] == accept_ranges
    assert "content-range" not in response.headers


def test_a_file_whose_app_lists_byte_ranges_among_others_serves_them(
    make_client: MakeClient, data_file: Path
) -> None:
    client = make_client(file_app(data_file, headers={"accept-ranges": "items, Bytes"}))
    response = get(client, range="bytes=0-9")
    assert (response.status_code, response.content) == (206, DATA[:10])


@pytest.mark.parametrize("raw", [b"bytes=\xb9-\xb2", b"bytes=\xb2-", b"bytes=-\xb3"])
def test_non_ascii_digits_in_range_ignored(client: TestClient, raw: bytes) -> None:
    # NOTE: latin-1 superscripts pass str.isdigit() but not int(); RFC 9110 digits are ASCII.
    response = client.get("/file", headers={"range": raw})
    assert response.status_code == 200
    assert response.content == DATA


def test_if_range_matching_etag(client: TestClient) -> None:
    etag = get(client).headers["etag"]
    response = get(client, range="bytes=0-9", if_range=etag)
    assert response.status_code == 206
    assert response.content == DATA[:10]


def test_if_range_matching_date(client: TestClient) -> None:
    last_modified = get(client).headers["last-modified"]
    response = get(client, range="bytes=0-9", if_range=last_modified)
    assert response.status_code == 206
    assert response.content == DATA[:10]


def test_if_range_matching_date_in_an_obsolete_form(client: TestClient) -> None:
    # SPEC: RFC 9110 5.6.7: a recipient reads the RFC 850 and asctime forms of a date too.
    moment = time.gmtime(MTIME)
    for form in ("%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"):
        if_range = time.strftime(form, moment)
        response = get(client, range="bytes=0-9", if_range=if_range)
        assert (response.status_code, response.content) == (206, DATA[:10]), if_range


@pytest.mark.parametrize(
    "if_range",
    ['"stale-etag"', "W/{etag}", formatdate(MTIME - 60, usegmt=True)],
)
def test_if_range_not_matching(client: TestClient, if_range: str) -> None:
    etag = get(client).headers["etag"]
    response = get(client, range="bytes=0-9", if_range=if_range.format(etag=etag))
    assert response.status_code == 200
    assert response.content == DATA


def test_range_on_head(client: TestClient) -> None:
    response = client.head("/file", headers={"range": "bytes=0-9"})
    assert response.status_code == 206
    assert response.content == b""
    assert response.headers["content-range"] == "bytes 0-9/100"
    assert response.headers["content-length"] == "10"


# -- HEAD, downloads, missing files ------------------------------------------------------------


def test_head_sends_headers_only(client: TestClient) -> None:
    whole = get(client)
    response = client.head("/file")
    assert response.status_code == 200
    assert response.content == b""
    for name in ("content-length", "content-type", "etag", "last-modified", "accept-ranges"):
        assert response.headers[name] == whole.headers[name]


@pytest.mark.parametrize(
    ("filename", "ascii_name"),
    [
        ("report.pdf", "report.pdf"),
        ("résumé été.pdf", "r_sum_ _t_.pdf"),
        ('quote"and\\backslash.txt', "quote_and_backslash.txt"),
        ("evil\r\nSet-Cookie: a=b.txt", "evil__Set-Cookie: a=b.txt"),
        ("日本語.txt", "___.txt"),
        # NOTE: Chromium percent-decodes a plain filename="..." (RFC 6266 appendix D): this one
        # was saved as "100 sure.pdf". filename*, which browsers prefer, gives it as it is.
        ("100%20sure.pdf", "100_20sure.pdf"),
        ("50%.txt", "50_.txt"),
    ],
)
def test_filename_content_disposition(
    make_client: MakeClient, data_file: Path, filename: str, ascii_name: str
) -> None:
    response = make_client(file_app(data_file, filename=filename)).get("/file")
    assert response.status_code == 200
    assert response.content == DATA
    assert "set-cookie" not in response.headers
    value = response.headers["content-disposition"]
    assert "\r" not in value and "\n" not in value
    params = [item.strip() for item in value.split(";")]
    assert params[0] == "attachment"
    assert f'filename="{ascii_name}"' in value
    if ascii_name == filename:
        assert "filename*" not in value
    else:
        star = value.split("filename*=", 1)[1]
        assert star.startswith("UTF-8''")
        assert unquote(star.removeprefix("UTF-8''"), encoding="utf-8") == filename
        assert all(c.isascii() and c not in ' ";\\' for c in star)


def test_a_filename_read_from_disk_that_is_not_utf8_is_offered_not_a_500(
    make_client: MakeClient, tmp_path: Path
) -> None:
    # NOTE: os.listdir() gives a name that is not UTF-8 on disk (Latin-1 "café") with a lone
    # surrogate; passed as filename=, it was a UnicodeEncodeError, a 500.
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))
    (name,) = os.listdir(tmp_path)
    assert name == "caf\udce9.txt"
    response = make_client(file_app(tmp_path / name, filename=name)).get("/file")
    assert response.status_code == 200
    value = response.headers["content-disposition"]
    assert value == "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%EF%BF%BD.txt"
    # NOTE: and one from JSON ("\ud800"), which has no byte on disk to stand for.
    assert content_disposition("a\ud800.txt").endswith("; filename*=UTF-8''a%EF%BF%BD.txt")


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Response.file(tmp_path / "missing.txt")


def test_directory_is_not_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Response.file(tmp_path)


def test_missing_file_in_handler_is_500(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("ERROR", logger="microweb"):
        response = make_client(file_app(tmp_path / "missing.txt")).get("/file")
    assert response.status_code == 500
    assert str(tmp_path) not in response.text


def test_thousands_of_digits_in_range_are_positions_past_the_end(
    make_client: MakeClient, tmp_path: Path
) -> None:
    # NOTE: int() refuses more than 4,300 digits (a 500), and is slow before that: a position
    # of more than 18 digits is told past any file's end without it.
    target = tmp_path / "f.txt"
    target.write_bytes(b"0123456789")
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        return Response.file(target)

    client = make_client(app)
    response = client.get("/f", headers={"range": "bytes=" + "1" * 5000 + "-"})
    assert (response.status_code, response.headers["content-range"]) == (416, "bytes */10")
    response = client.get("/f", headers={"range": "bytes=2-" + "1" * 5000})
    assert (response.status_code, response.content) == (206, b"23456789")
    assert response.headers["content-range"] == "bytes 2-9/10"


def test_a_file_that_grew_is_not_sent_past_its_length_under_wsgi(tmp_path: Path) -> None:
    target = tmp_path / "grows.txt"
    target.write_bytes(b"0123456789")
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        response = Response.file(target)
        target.write_bytes(b"0123456789 and more")
        return response

    headers: list[Any] = []
    environ = wsgi_environ("GET", "/f", **{"wsgi.file_wrapper": FileWrapper})
    result = app.as_wsgi()(environ, lambda s, h, e=None: headers.extend(h))
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    assert dict(headers)["content-length"] == "10"
    assert body == b"0123456789"


def test_a_file_that_shrank_is_an_error_not_a_short_body(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target = tmp_path / "shrinks.bin"
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        target.write_bytes(bytes(200_000))
        response = Response.file(target)
        target.write_bytes(bytes(1000))
        return response

    # NOTE: its Content-Length (200000) is out; a body that ends short would be a length that
    # lies. The error reaches the server, which cuts the connection (a real server would).
    with caplog.at_level("ERROR", logger="microweb"), pytest.raises(OSError, match="shrank"):
        make_client(app).get("/f")
    assert [record.getMessage() for record in caplog.records] == ["error while streaming GET /f"]


def test_a_server_file_wrapper_gets_an_error_when_the_file_shrinks(tmp_path: Path) -> None:
    target = tmp_path / "shrinks.bin"
    target.write_bytes(bytes(200_000))
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        return Response.file(target)

    # NOTE: Waitress's own wrapper, driven as its main loop drives it: a read of what is left
    # that came back empty was retried until Waitress's channel_timeout, with the client waiting.
    environ = wsgi_environ("GET", "/f", **{"wsgi.file_wrapper": ReadOnlyFileBasedBuffer})
    wrapped = app.as_wsgi()(environ, lambda s, h, e=None: None)
    assert isinstance(wrapped, ReadOnlyFileBasedBuffer)
    assert wrapped.prepare(200_000) == 200_000
    assert len(wrapped.get(65536)) == 65536
    wrapped.skip(65536, True)
    target.write_bytes(bytes(1000))
    with pytest.raises(OSError, match="shrank"):
        wrapped.get(65536)
    wrapped.close()


@pytest.mark.parametrize(
    ("header", "start", "end"), [("bytes=10-19", 10, 20), ("bytes=-5", 95, 100)]
)
def test_a_range_goes_to_the_server_file_wrapper_as_its_span(
    data_file: Path, header: str, start: int, end: int
) -> None:
    # NOTE: a range was streamed by the server's thread, as the wrapper took whole files only:
    # a client that stopped reading a video it had seeked in held one of Waitress's threads
    # (4 by default) until the stall timeout, and a few such clients held the whole server.
    environ = wsgi_environ(
        "GET", "/file", HTTP_RANGE=header, **{"wsgi.file_wrapper": ReadOnlyFileBasedBuffer}
    )
    headers: list[Any] = []
    wrapped = file_app(data_file).as_wsgi()(environ, lambda s, h, e=None: headers.extend(h))
    assert isinstance(wrapped, ReadOnlyFileBasedBuffer)
    assert dict(headers)["content-range"] == f"bytes {start}-{end - 1}/100"
    # NOTE: as Waitress's main loop sends it: from the file's position, Content-Length bytes.
    assert wrapped.prepare(int(dict(headers)["content-length"])) == end - start
    assert wrapped.get(65536, skip=True) == DATA[start:end]
    assert wrapped.get(65536, skip=True) == b""
    wrapped.close()
    # NOTE: wsgiref's wrapper reads from the file's position until read() gives nothing.
    environ["wsgi.file_wrapper"] = FileWrapper
    wrapped = file_app(data_file).as_wsgi()(environ, lambda s, h, e=None: None)
    assert isinstance(wrapped, FileWrapper)
    assert b"".join(wrapped) == DATA[start:end]
    wrapped.close()


class WholeFileWrapper(FileWrapper):
    """A server's file wrapper that sends the whole file from byte 0, by its descriptor, as
    uWSGI's does."""

    def __init__(self, filelike: Any, blksize: int = 8192) -> None:
        whole = os.fdopen(os.dup(filelike.fileno()), "rb")
        whole.seek(0)
        super().__init__(whole, blksize)
        self.close = lambda: (whole.close(), filelike.close())  # NOTE: FileWrapper sets one.


@pytest.mark.parametrize(("header", "wrapped"), [(None, True), ("bytes=10-19", False)])
def test_a_range_stays_a_stream_for_a_file_wrapper_not_known_to_start_at_its_position(
    data_file: Path, header: str | None, wrapped: bool
) -> None:
    # NOTE: uWSGI's wrapper sends the whole file, whatever its position and Content-Length:
    # handed a range, it would send 100 bytes under a Content-Length of 10.
    extra = {"wsgi.file_wrapper": WholeFileWrapper} | ({"HTTP_RANGE": header} if header else {})
    environ = wsgi_environ("GET", "/file", **extra)
    body = file_app(data_file).as_wsgi()(environ, lambda s, h, e=None: None)
    assert b"".join(body) == (DATA[10:20] if header else DATA)
    assert isinstance(body, WholeFileWrapper) is wrapped
    getattr(body, "close", lambda: None)()


def test_a_server_file_wrapper_stops_at_the_length_of_a_file_that_grew(tmp_path: Path) -> None:
    target = tmp_path / "grows.bin"
    target.write_bytes(b"0123456789")
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        return Response.file(target)

    environ = wsgi_environ("GET", "/f", **{"wsgi.file_wrapper": FileWrapper})
    headers: list[Any] = []
    wrapped = app.as_wsgi()(environ, lambda s, h, e=None: headers.extend(h))
    with target.open("ab") as grows:
        grows.write(b" and more, past its Content-Length")
    # NOTE: wsgiref's wrapper reads to the end of the file: it sent the bytes added.
    assert (dict(headers)["content-length"], b"".join(wrapped)) == ("10", b"0123456789")
    getattr(wrapped, "close", lambda: None)()


# -- what the file system holds ----------------------------------------------------------------


def test_a_file_renamed_over_before_it_is_opened_is_an_error_not_its_bytes(
    make_client: MakeClient, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    target, new = tmp_path / "report.txt", tmp_path / "report.txt.new"
    target.write_bytes(b"old version")
    new.write_bytes(b"NEW VERSION")  # NOTE: the same size: only the inode tells them apart
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        response = Response.file(target)
        os.replace(new, target)  # NOTE: the safe way to publish a new version, done meanwhile
        return response

    # NOTE: the headers (ETag, and Content-Range for a range) are the old file's: the new
    # file's bytes under them would pass for the old file, whole.
    with caplog.at_level("ERROR", logger="microweb"), pytest.raises(OSError, match="replaced"):
        make_client(app).get("/f")
    assert [record.getMessage() for record in caplog.records] == ["error while streaming GET /f"]


@pytest.mark.timeout(30)
def test_a_named_pipe_put_in_a_files_place_does_not_block_its_response(
    make_client: MakeClient, tmp_path: Path
) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(bytes(100))
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        response = Response.file(target)
        target.unlink()
        os.mkfifo(target)  # NOTE: nobody writes to it: open() for reading waited for ever
        return response

    with pytest.raises(OSError, match="replaced"):
        make_client(app).get("/f")


LEASE_HOLDER = """
import fcntl, os, signal, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
try:
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK)
except OSError:
    print("unsupported", flush=True)
    sys.exit()
def release(signum, frame):
    fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK)
    sys.exit()
signal.signal(signal.SIGIO, release)
print("held", flush=True)
time.sleep(60)
"""


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(fcntl, "F_SETLEASE"), reason="needs Linux's file leases")
def test_a_file_under_another_process_lease_is_sent_once_it_is_released(tmp_path: Path) -> None:
    target = tmp_path / "shared.txt"
    target.write_bytes(DATA)
    command = [sys.executable, "-c", LEASE_HOLDER, str(target)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as holder:
        try:
            state = holder.stdout.readline().strip() if holder.stdout else ""
            if state != "held":
                pytest.skip(f"no write lease on this file system ({state})")
            # NOTE: as Samba holds one for a client's oplock: the holder is told to let go.
            assert b"".join(Response.file(target).chunks) == DATA
        finally:
            holder.kill()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_raises_before_any_header(tmp_path: Path) -> None:
    target = tmp_path / "private.txt"
    target.write_text("private")
    target.chmod(0)
    with pytest.raises(PermissionError):
        Response.file(target)


def test_a_modification_time_in_the_future_is_sent_as_now(
    make_client: MakeClient, data_file: Path
) -> None:
    year_2100 = 4_102_444_800
    os.utime(data_file, (year_2100, year_2100))
    before = int(time.time())
    response = make_client(file_app(data_file)).get("/file")
    sent = parsedate_to_datetime(response.headers["last-modified"]).timestamp()
    # SPEC: RFC 9110 8.8.2.1: a client that revalidated with If-Modified-Since: 2100 would
    # get 304 for every later version of the file, until 2100.
    assert before <= sent <= time.time()


@pytest.mark.parametrize("mtime", [1e15, -1e15])
def test_any_modification_time_is_an_http_date(mtime: float) -> None:
    # NOTE: tmpfs, btrfs and XFS keep a time past the year 9999: formatdate raised ValueError.
    sent = parsedate_to_datetime(FileInfo("f", 1, mtime, 0, 1).last_modified).timestamp()
    assert 0 <= sent <= time.time()


def test_a_date_before_1970_validates_no_version_of_the_file(
    make_client: MakeClient, data_file: Path
) -> None:
    os.utime(data_file, (-100, -100))
    client = make_client(file_app(data_file))
    sent = get(client).headers["last-modified"]  # NOTE: 1970, as for every version before it
    data_file.write_bytes(DATA[::-1])
    os.utime(data_file, (-200, -200))
    changed = get(client, if_modified_since=sent)
    assert changed.status_code == 200
    assert changed.content == DATA[::-1]
    # NOTE: a 206 here was the new version's bytes, to be spliced onto the old version's.
    resumed = get(client, range="bytes=50-", if_range=sent)
    assert resumed.status_code == 200
    assert resumed.content == DATA[::-1]


def test_a_date_sent_for_a_future_modification_time_does_not_validate_a_range() -> None:
    year_2100 = 4_102_444_800.0
    later = FileInfo("f", 100, year_2100, 0, 100)
    # NOTE: sent as now, the date was also that of any version written in the same second.
    assert not range_applies(later.last_modified, later, later.etag)
    assert range_applies(later.etag, later, later.etag)


@pytest.mark.skipif(not os.path.isfile("/proc/self/status"), reason="needs Linux's /proc")
def test_a_proc_file_under_waitress_file_wrapper_is_not_a_500(tmp_path: Path) -> None:
    app = App()

    @app.get("/f")
    def file(request: Request) -> Response:
        return Response.file("/proc/self/status")  # NOTE: st_size 0, and it can't seek to its end

    environ = wsgi_environ("GET", "/f", **{"wsgi.file_wrapper": ReadOnlyFileBasedBuffer})
    wrapped = app.as_wsgi()(environ, lambda s, h, e=None: None)
    assert isinstance(wrapped, ReadOnlyFileBasedBuffer)
    # NOTE: Waitress seeks to the end to learn the size: EINVAL, and Waitress's own 500.
    assert wrapped.prepare(0) == 0
    wrapped.close()


@pytest.mark.parametrize("flows", [False, True])
def test_a_kept_file_response_is_sent_whole_each_time(
    make_client: MakeClient, data_file: Path, flows: bool
) -> None:
    kept = Response.file(data_file)
    app = App()
    app.get("/file")(lambda request: kept)
    if flows:

        @app.middleware
        def tag(request: Request) -> Any:
            response = yield
            response.headers["x-tag"] = "on"

    client = make_client(app)
    etag = get(client).headers["etag"]
    assert get(client, range="bytes=0-9").content == DATA[:10]
    assert get(client, if_none_match=etag).status_code == 304
    for _ in range(2):
        whole = get(client)
        assert (whole.status_code, whole.content) == (200, DATA)
        assert "content-range" not in whole.headers
    assert (kept.status, kept.file_info, "content-range" in kept.headers) == (
        200,
        stat_file(data_file),
        False,
    )


@pytest.mark.parametrize("source", ["error handler", "error handler tuple", "flow"])
def test_a_kept_file_page_of_an_error_handler_or_a_flow_is_sent_whole_each_time(
    make_client: MakeClient, data_file: Path, colour: str, source: str
) -> None:
    # NOTE: a module's error page; sent empty under its Content-Length the second time, its one
    # read spent (ASGI; WSGI too where the file streams, with after-response work).
    kept = Response.file(data_file, status=503 if source == "flow" else 404)
    app = App()

    @app.middleware
    def maintenance(request: Request) -> Any:
        request.after_response(lambda: None)
        if source == "flow":
            yield kept
            return
        yield

    def missing(request: Request, exc: Exception) -> Any:
        return (kept, 404) if source == "error handler tuple" else kept

    app.error_handler(404)(in_colour(colour, missing))
    client = make_client(app)
    for _ in range(3):
        answer = client.get("/nowhere")
        assert (answer.status_code, answer.content) == (kept.status, DATA)


def _upper(chunks: Any) -> Any:
    for chunk in chunks:
        yield chunk.upper()


@pytest.mark.parametrize("where", ["flow", "handler", "kept"])
def test_chunks_put_in_place_of_a_files_are_what_is_sent(
    make_client: MakeClient, data_file: Path, colour: str, where: str
) -> None:
    # NOTE: under WSGI a flow's chunks went unsent (the server's file wrapper sent the file);
    # under both, a handler's were dropped for a fresh read of the file.
    kept = Response.file(data_file)
    kept.chunks = _upper(kept.chunks)
    app = App()

    def serve(request: Request) -> Response:
        if where == "kept":
            return kept
        response = Response.file(data_file)
        if where == "handler":
            response.chunks = _upper(response.chunks)
        return response

    app.get("/file")(in_colour(colour, serve))
    if where == "flow":

        @app.middleware
        def upper(request: Request) -> Any:
            response = yield
            response.chunks = _upper(response.chunks)

    client = make_client(app)
    response = get(client, range="bytes=0-9")
    assert (response.status_code, response.content) == (
        (206, DATA[:10].upper()) if where == "flow" else (200, DATA.upper())
    )
    if where != "kept":  # NOTE: a stream of its own is read once, as any stream is.
        response = get(client)
        assert (response.status_code, response.content) == (200, DATA.upper())


def test_a_held_file_taken_from_two_threads_at_once_goes_to_one_and_raises_in_neither(
    tmp_path: Path,
) -> None:
    # NOTE: take() looked whether the file was there, then popped it: a thread that looked
    # as another popped it (a Static file's read in the pool as the request that left is
    # ended on the loop) raised IndexError: out of the read, or out of the request's close(),
    # which then closed none of the cleanups after it (an upload's file on disk).
    path = tmp_path / "a.txt"
    path.write_bytes(b"x")
    taken_meanwhile: list[Any] = []

    class TakenBetween(list[Any]):
        def __bool__(self) -> bool:
            taken_meanwhile.append(list.pop(self))  # NOTE: the other thread's take().
            return True

    with path.open("rb") as opened:
        held = HeldFile(opened)
        held._files = TakenBetween(held._files)
        taken = held.take()
        assert [file for file in (taken, *taken_meanwhile) if file is not None] == [opened]
        held.discard()
        assert held.take() is None
