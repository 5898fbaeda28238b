"""Hostile part heads: what a multipart part's header lines may hold, and what the app gets.

Each shape goes through ``form()`` / ``aform()`` and ``iter_parts()`` / ``aiter_parts()``, under
both interfaces: the two readers share one parser (``_parts``), so they refuse the same parts
with the same answer, and hand the app the same name and file name.
"""

from __future__ import annotations

import email.policy
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from conftest import MakeClient
from test_forms import multipart, part, post_multipart

from microweb import App, Limits, Request, UploadFile


def raw_part(*lines: bytes, body: bytes = b"v") -> bytes:
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def disposition(params: bytes) -> bytes:
    return raw_part(b"Content-Disposition: form-data; " + params)


def seen_app(colour: str, reader: str) -> App:
    """An app whose ``POST /`` answers ``[name, filename, text or size]`` for each part, read
    by ``reader``: ``"form"`` (``form()`` / ``aform()``) or ``"parts"`` (streamed parts)."""
    app = App()

    def of_form(items: list[tuple[str, Any]]) -> list[Any]:
        return [
            [name, value.filename, value.size]
            if isinstance(value, UploadFile)
            else [name, None, value]
            for name, value in items
        ]

    def sync_handler(request: Request) -> list[Any]:
        if reader == "form":
            return of_form(request.form().multi_items())
        return [
            [p.name, p.filename, p.text() if p.filename is None else len(b"".join(p.iter_bytes()))]
            for p in request.iter_parts()
        ]

    async def async_handler(request: Request) -> list[Any]:
        if reader == "form":
            return of_form((await request.aform()).multi_items())
        seen = []
        async for p in request.aiter_parts():
            if p.filename is None:
                seen.append([p.name, None, await p.atext()])
            else:
                seen.append([p.name, p.filename, len(b"".join([c async for c in p.aiter_bytes()]))])
        return seen

    app.post("/")(sync_handler if colour == "sync" else async_handler)
    return app


READERS = pytest.mark.parametrize("reader", ["form", "parts"])

CONTROL = "control character in segment header"

REFUSED = [
    # SPEC: RFC 9112 5.2 obsoletes line folding (obs-fold), and no browser or HTTP library folds
    # a part's header. A folded Content-Disposition or Content-Type was joined again, where a
    # proxy or a firewall that does not join it reads a part without a name (or a charset) and
    # a junk line: the app got a file "evil.php" that the firewall saw as no file at all.
    pytest.param(
        raw_part(b"Content-Disposition: form-data;", b' name="a"; filename="evil.php"'),
        "a part's Content-Disposition header is folded",
        id="folded-disposition",
    ),
    pytest.param(
        raw_part(b'Content-Disposition: form-data;\r\n\tname="a"'),
        "a part's Content-Disposition header is folded",
        id="folded-disposition-tab",
    ),
    pytest.param(
        raw_part(
            b'Content-Disposition: form-data; name="a"',
            b"Content-Type: text/plain;",
            b" charset=utf-16",
        ),
        "a part's Content-Type header is folded",
        id="folded-content-type",
    ),
    pytest.param(
        raw_part(
            b'content-disposition: form-data; name="a"',
            b"content-type: text/plain;",
            b" charset=utf-16",
        ),
        "a part's Content-Type header is folded",
        id="folded-content-type-lower-case",
    ),
    # SPEC: RFC 9112 5.1, no whitespace between a field name and its colon; a server must
    # refuse a request that has some. multipart stripped it, where a reader that takes the name
    # as it is read "Content-Disposition " as another header, and a part with no name.
    pytest.param(
        raw_part(b'Content-Disposition : form-data; name="a"'),
        "a part's header has whitespace before its colon",
        id="space-before-colon",
    ),
    pytest.param(
        raw_part(b'Content-Disposition\t: form-data; name="a"'),
        "a part's header has whitespace before its colon",
        id="tab-before-colon",
    ),
    pytest.param(
        raw_part(b'Content-Disposition: form-data; name="a"', b"X-Other : 1"),
        "a part's header has whitespace before its colon",
        id="space-before-colon-other-header",
    ),
    # SPEC: RFC 9110 5.5, a field value holding NUL is invalid: a recipient rejects it (or
    # replaces it). A raw NUL reached the app in a field name, or in a file name, where it
    # later makes open() raise ValueError ("embedded null byte"), a 500.
    pytest.param(disposition(b'name="a\x00b"'), CONTROL, id="nul-in-name"),
    pytest.param(disposition(b'name="a"; filename="x\x00.txt"'), CONTROL, id="nul-in-filename"),
    pytest.param(
        raw_part(b'Content-Disposition: form-data; name="a"', b"X-Other: 1\x00"),
        CONTROL,
        id="nul-in-other-header",
    ),
    # SPEC: RFC 9110 5.5, so is one holding any control character but HTAB: a request's
    # header with one is a 400 from every server microweb runs under. A part's header with
    # \x01 or DEL reached the app, in a field name or a file name.
    pytest.param(disposition(b'name="a"; filename="x\x01.txt"'), CONTROL, id="ctl-in-filename"),
    pytest.param(disposition(b'name="a"; filename="x\x7f.txt"'), CONTROL, id="del-in-filename"),
    pytest.param(disposition(b'name="a\x1bb"'), CONTROL, id="esc-in-name"),
    pytest.param(
        raw_part(b'Content-Disposition: form-data; name="a"', b"Content-Type: text/plain\x08"),
        CONTROL,
        id="ctl-in-content-type",
    ),
    pytest.param(
        raw_part(b'Content-Disposition: form-data; name="a"', b"X-Other: 1\x1f"),
        CONTROL,
        id="ctl-in-other-header",
    ),
    # NOTE: refused before (a line break inside a head's line), kept here beside the NUL.
    pytest.param(
        disposition(b'name="a"; filename="x\ry"'),
        "Invalid line break in segment header",
        id="raw-cr-in-filename",
    ),
]


@READERS
@pytest.mark.parametrize(("head", "reason"), REFUSED)
def test_a_hostile_part_head_is_400(
    make_client: MakeClient, colour: str, reader: str, head: bytes, reason: str
) -> None:
    body = multipart(part("first", "ok"), head)
    response = post_multipart(make_client(seen_app(colour, reader)), body)
    assert (response.status_code, response.text) == (400, f"invalid multipart body: {reason}")


FILENAME_STAR_REFUSED = "multipart part with an invalid filename* parameter"

SERVED = [
    # NOTE: a folded line of a header that microweb does not read is still joined (the limits
    # of a part's head count its lines: test_forms).
    pytest.param(
        raw_part(b'Content-Disposition: form-data; name="a"', b"X-Note: 1", b" 2"),
        [["a", None, "v"]],
        id="folded-other-header",
    ),
    # NOTE: %00 is no escape of HTML's form encoding: it stays as it is.
    pytest.param(disposition(b'name="a%00b"'), [["a%00b", None, "v"]], id="percent-00-in-name"),
    pytest.param(
        disposition(b'name="a"; filename="x%00.txt"'),
        [["a", "x%00.txt", 1]],
        id="percent-00-in-filename",
    ),
    # NOTE: HTML's form encoding writes CR, LF and '"' as %0D, %0A and %22 (docs/forms.md).
    pytest.param(disposition(b'name="a%0Ab"'), [["a\nb", None, "v"]], id="percent-0a-in-name"),
    pytest.param(
        disposition(b'name="a"; filename="x%0D%0Ay"'),
        [["a", "x\r\ny", 1]],
        id="percent-crlf-in-filename",
    ),
    # SPEC: RFC 9110 5.5, HTAB is the one control character a field value may hold.
    pytest.param(
        disposition(b'name="a"; filename="x\ty.txt"'), [["a", "x\ty.txt", 1]], id="tab-in-filename"
    ),
    # NOTE: a character past ASCII is no control byte, even U+0085 (a C1 control in UTF-8).
    pytest.param(
        disposition(b'name="a"; filename="x\xc2\x85y.txt"'),
        [["a", "x\x85y.txt", 1]],
        id="c1-in-filename",
    ),
    # NOTE: a control character that only decoding makes (a filename* escape, as %0D%0A in a
    # filename above) is the client's text, not the head's syntax; NUL alone is refused.
    pytest.param(
        disposition(b"name=\"a\"; filename*=UTF-8''x%01y.txt"),
        [["a", "x\x01y.txt", 1]],
        id="ext-percent-01",
    ),
    # NOTE: kept as sent: the app makes a name of it with safe_filename().
    pytest.param(
        disposition(b'name="a"; filename="../../etc/passwd"'),
        [["a", "../../etc/passwd", 1]],
        id="dot-dot-path",
    ),
    pytest.param(
        disposition(b'name="a"; filename="..\\..\\x.txt"'),
        [["a", "..\\..\\x.txt", 1]],
        id="dot-dot-backslash-path",
    ),
    # NOTE: multipart cuts a Windows path (an old Internet Explorer sent the full one).
    pytest.param(
        disposition(b'name="a"; filename="C:\\x\\y.txt"'), [["a", "y.txt", 1]], id="windows-path"
    ),
    pytest.param(
        disposition(b"name=\"a\"; filename*=ISO-8859-1''%E9.txt"),
        [["a", "\xe9.txt", 1]],
        id="ext-latin-1",
    ),
    # SPEC: RFC 8187 3.2.1, a filename* that does not decode is ignored beside a filename.
    pytest.param(
        disposition(b'name="a"; filename="p.txt"; filename*=UTF-8\'\'%ZZ.txt'),
        [["a", "p.txt", 1]],
        id="ext-bad-escape-beside-filename",
    ),
    pytest.param(
        disposition(b'name="a"; filename="p.txt"; filename*=UTF-8\'\'x%00.txt'),
        [["a", "p.txt", 1]],
        id="ext-nul-beside-filename",
    ),
    # NOTE: a token value ends at the ";"; what follows is no parameter and is skipped.
    pytest.param(disposition(b"name=a;b"), [["a", None, "v"]], id="unquoted-name-semicolon"),
    pytest.param(
        raw_part(
            b'Content-Disposition: form-data; name="a"',
            b"Content-Type: text/plain; charset=latin-1",
            body=b"\xe9",
        ),
        [["a", None, "\xe9"]],
        id="charset-latin-1",
    ),
]


@READERS
@pytest.mark.parametrize(("head", "seen"), SERVED)
def test_a_part_head_is_read_so(
    make_client: MakeClient, colour: str, reader: str, head: bytes, seen: list[Any]
) -> None:
    response = post_multipart(make_client(seen_app(colour, reader)), multipart(head))
    assert response.status_code == 200, response.text
    assert response.json() == seen


@READERS
@pytest.mark.parametrize(
    ("head", "status", "reason"),
    [
        # SPEC: RFC 8187 3.2.1, UTF-8 and ISO-8859-1 only; alone, a bad filename* is a 400.
        pytest.param(
            disposition(b"name=\"a\"; filename*=UTF-8''%ZZ.txt"),
            400,
            FILENAME_STAR_REFUSED,
            id="ext-bad-escape",
        ),
        pytest.param(
            disposition(b"name=\"a\"; filename*=KOI8-R''%E9.txt"),
            400,
            FILENAME_STAR_REFUSED,
            id="ext-koi8-r",
        ),
        # NOTE: a NUL is in no file's name on any system: a filename* that decodes to one is
        # as bad as one that does not decode (it reached the app, and open() raised).
        pytest.param(
            disposition(b"name=\"a\"; filename*=UTF-8''x%00.txt"),
            400,
            FILENAME_STAR_REFUSED,
            id="ext-nul",
        ),
        pytest.param(
            disposition(b'name=""'), 400, "multipart part without a name", id="empty-name"
        ),
        pytest.param(
            disposition(b'filename="x"'), 400, "multipart part without a name", id="no-name"
        ),
        pytest.param(
            raw_part(b'Content-Disposition: attachment; name="a"'),
            400,
            "invalid multipart body: Invalid Content-Disposition segment header: Wrong type",
            id="not-form-data",
        ),
        pytest.param(
            raw_part(b"Content-Type: text/plain"),
            400,
            "invalid multipart body: Missing Content-Disposition segment header",
            id="no-disposition",
        ),
        pytest.param(
            raw_part(
                b'Content-Disposition: form-data; name="a"',
                b"Content-Type: text/plain; charset=nope",
            ),
            400,
            "unsupported charset for form field 'a' (use utf-8)",
            id="charset-unknown",
        ),
        pytest.param(
            disposition(b'name="a"; name="b"'),
            400,
            "invalid multipart body: a part's Content-Disposition names a parameter twice",
            id="name-twice",
        ),
    ],
)
def test_a_part_head_is_answered_so(
    make_client: MakeClient, colour: str, reader: str, head: bytes, status: int, reason: str
) -> None:
    response = post_multipart(make_client(seen_app(colour, reader)), multipart(head))
    assert (response.status_code, response.text) == (status, reason)


@READERS
@pytest.mark.parametrize(
    ("parts", "filename", "status"),
    [(1000, None, 200), (1001, None, 413), (1000, "", 200), (101, "a", 413)],
    ids=["fields-at", "fields-over", "empty-file-inputs-at", "files-over"],
)
def test_many_empty_parts_meet_the_limits(
    make_client: MakeClient,
    colour: str,
    reader: str,
    parts: int,
    filename: str | None,
    status: int,
) -> None:
    body = multipart(*(part(f"f{n}", b"", filename=filename) for n in range(parts)))
    response = post_multipart(make_client(seen_app(colour, reader)), body)
    assert response.status_code == status, response.text
    if status == 200:
        assert len(response.json()) == parts


@READERS
@pytest.mark.parametrize(("extra", "status"), [(0, 200), (1, 413)], ids=["at", "over"])
def test_a_part_head_of_max_part_header_size(
    make_client: MakeClient, colour: str, reader: str, extra: int, status: int
) -> None:
    size = Limits().max_part_header_size + extra
    start = b'Content-Disposition: form-data; name="a"; x='
    head = raw_part(start + b"y" * (size - len(start)))
    response = post_multipart(make_client(seen_app(colour, reader)), multipart(head))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"X-Note 1 ", "Malformed segment header"),
        (b" 1", "Unexpected segment header continuation"),
    ],
    ids=["no-colon", "fold-of-nothing"],
)
def test_the_parsers_own_refusals_keep_their_words(
    make_client: MakeClient, colour: str, line: bytes, reason: str
) -> None:
    # NOTE: the checks of a fold and of the colon leave multipart's own ones as they were.
    head = raw_part(line, b'Content-Disposition: form-data; name="a"')
    response = post_multipart(make_client(seen_app(colour, "form")), multipart(head))
    assert (response.status_code, response.text) == (400, f"invalid multipart body: {reason}")


@READERS
def test_a_part_folded_by_the_email_package_is_400(
    make_client: MakeClient, colour: str, reader: str
) -> None:
    # NOTE: the email package folds a Content-Disposition past 78 characters (docs/forms.md):
    # refused with the fold's reason, where it was joined before.
    message = EmailMessage(policy=email.policy.HTTP.clone(max_line_length=78))
    message.add_header("Content-Disposition", "form-data", name="f", filename="y" * 40 + ".txt")
    head = message.as_bytes().rstrip(b"\r\n")
    assert b"\r\n filename=" in head
    response = post_multipart(make_client(seen_app(colour, reader)), multipart(raw_part(head)))
    reason = "invalid multipart body: a part's Content-Disposition header is folded"
    assert (response.status_code, response.text) == (400, reason)


def one_byte_at_a_time(body: bytes) -> Iterator[bytes]:
    return (body[at : at + 1] for at in range(len(body)))


@READERS
@pytest.mark.parametrize(("head", "reason"), REFUSED)
def test_a_hostile_part_head_a_byte_a_read_is_400(
    make_client: MakeClient, colour: str, reader: str, head: bytes, reason: str
) -> None:
    # NOTE: a fold is judged by the header before it, which came in an earlier read here.
    body = one_byte_at_a_time(multipart(part("first", "ok"), head))
    response = post_multipart(make_client(seen_app(colour, reader)), body)
    assert (response.status_code, response.text) == (400, f"invalid multipart body: {reason}")


@READERS
@pytest.mark.parametrize(("head", "seen"), SERVED)
def test_a_part_head_a_byte_a_read_is_read_so(
    make_client: MakeClient, colour: str, reader: str, head: bytes, seen: list[Any]
) -> None:
    response = post_multipart(
        make_client(seen_app(colour, reader)), one_byte_at_a_time(multipart(head))
    )
    assert response.status_code == 200, response.text
    assert response.json() == seen


CLIENT_FIELDS = [(f"f{n}", f"v{n}") for n in range(30)]


def built_by(client: str, filename: str) -> tuple[str, bytes]:
    """A form of ``CLIENT_FIELDS`` and a file ``file`` (``data``), as ``client`` writes it:
    its Content-Type and its body."""
    if client == "httpx":
        files = {"file": (filename, b"data", "text/plain")}
        request = httpx.Request("POST", "http://x/", data=dict(CLIENT_FIELDS), files=files)
        return request.headers["content-type"], request.read()
    if client == "requests":
        requests = pytest.importorskip("requests")
        files = {"file": (filename, b"data", "text/plain")}
        prepared = requests.Request("POST", "http://x/", data=CLIENT_FIELDS, files=files).prepare()
        return prepared.headers["Content-Type"], prepared.body
    if client == "urllib3":
        urllib3 = pytest.importorskip("urllib3")
        fields: list[Any] = [*CLIENT_FIELDS, ("file", (filename, b"data", "text/plain"))]
        body, content_type = urllib3.encode_multipart_formdata(fields)
        return content_type, body
    # NOTE: the email package under its HTTP policy (CRLF, no line length): no fold. Its
    # set_content() raises TypeError under that policy (it compares a length to None).
    message = EmailMessage(policy=email.policy.HTTP)
    message["Content-Type"] = "multipart/form-data"
    for name, value in [*CLIENT_FIELDS, ("file", "data")]:
        item = EmailMessage(policy=email.policy.HTTP)
        item.set_payload(value)
        extra = {"filename": filename} if name == "file" else {}
        item.add_header("Content-Disposition", "form-data", name=name, **extra)
        message.attach(item)
    raw = message.as_bytes()
    return message["Content-Type"], raw[raw.index(b"\r\n\r\n") + 4 :]


@READERS
@pytest.mark.parametrize("client", ["httpx", "requests", "urllib3", "email-http"])
@pytest.mark.parametrize(
    "filename",
    [
        "a" * 40 + ".txt",
        "b" * 100 + ".txt",
        "c" * 300 + ".txt",
        "é€ 日本語 ファイル.txt",
        "日" * 60 + ".txt",
        "with space.txt",
        'q"uote.txt',
        "semi;colon.txt",
        'a ;" é.txt',
    ],
    ids=["40", "100", "300", "non-ascii", "non-ascii-long", "space", "quote", "semicolon", "mix"],
)
def test_a_client_librarys_form_is_read_with_its_file_name(
    make_client: MakeClient, colour: str, reader: str, client: str, filename: str
) -> None:
    # NOTE: none of them folds a part's header, however long or non-ASCII the file name
    # (httpx, requests and urllib3 write it raw in UTF-8, the email package as filename*).
    content_type, body = built_by(client, filename)
    assert b"\r\n " not in body and b"\r\n\t" not in body
    response = make_client(seen_app(colour, reader)).post(
        "/", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    expected = [[name, None, value] for name, value in CLIENT_FIELDS]
    assert response.json() == [*expected, ["file", filename, 4]]


@READERS
def test_a_form_of_the_email_packages_default_policy_is_400(
    make_client: MakeClient, colour: str, reader: str
) -> None:
    # NOTE: docs/forms.md: its lines end with a bare LF, however short the part's head.
    message = EmailMessage()
    message["Content-Type"] = "multipart/form-data"
    item = EmailMessage()
    item.set_payload("v")
    item.add_header("Content-Disposition", "form-data", name="a")
    message.attach(item)
    raw = message.as_bytes()
    response = make_client(seen_app(colour, reader)).post(
        "/",
        content=raw[raw.index(b"\n\n") + 2 :],
        headers={"content-type": message["Content-Type"]},
    )
    reason = "invalid multipart body: Invalid line break after first boundary"
    assert (response.status_code, response.text) == (400, reason)


@READERS
@pytest.mark.parametrize(
    "params",
    [
        b'name="f"; a="' + b";" * 3_900,
        b'name="f"' + b"; b" * 1_300,
        b'name="f"; x y="' + b";" * 3_900 + b'"',
    ],
    ids=["quote-left-open", "no-values", "quoted-after-no-name"],
)
def test_semicolons_that_start_no_parameter_are_400_at_the_first_part(
    make_client: MakeClient, colour: str, reader: str, params: bytes
) -> None:
    # NOTE: each ";" outside a parameter was tried as the start of one by each of the three
    # readers of a part's header, in Python's re: 125 such parts (under max_form_header_size)
    # took 390 ms of CPU in one request, and were served (hostile7).
    head = disposition(params)
    response = post_multipart(make_client(seen_app(colour, reader)), multipart(*[head] * 125))
    assert response.status_code == 400, response.text
    assert "';' that start no parameter" in response.text


@READERS
def test_semicolons_inside_quoted_values_are_read(
    make_client: MakeClient, colour: str, reader: str
) -> None:
    # NOTE: browsers send a file name's semicolons raw, in its quoted value.
    name = "a" + ";" * 1_000 + ".txt"
    head = disposition(b'name="f"; filename="' + name.encode() + b'"')
    response = post_multipart(make_client(seen_app(colour, reader)), multipart(head))
    assert response.json() == [["f", name, 1]], response.text
