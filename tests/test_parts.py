"""Streamed multipart parts: ``request.iter_parts()`` and ``request.aiter_parts()``.

Behaviour tests run under both interfaces and both handler colours (``def`` handlers stream with
``iter_parts()``/``part.iter_bytes()``, ``async def`` handlers with ``aiter_parts()``/
``part.aiter_bytes()``); some drive the WSGI and ASGI callables by hand, a byte at a time; pure
tests pull parts from ``_parts.PartStream`` with chunks cut at random points.
"""

from __future__ import annotations

import asyncio
import gc
import json
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MakeClient, load_example, traced_lines
from drive import ShortReads, chunked, http_scope, requests_left_in_cycles, wsgi_post
from hypothesis import given, settings
from hypothesis import strategies as st
from test_forms import (
    BOUNDARY,
    MULTIPART,
    MULTIPART_LIMIT_CASES,
    SAMPLE_BODY,
    SAMPLE_FILE,
    form_app,
    multipart,
    part,
    split_at,
)

from microweb import App, HTTPError, Limits, Part, Request, UploadFile, _forms
from microweb._parts import MultipartEvents, PartStream
from microweb._streamed_parts import AsyncParts, SyncParts
from microweb.testing import TestClient

Entry = dict[str, Any]
LARGE = bytes(range(256)) * 40

EXPECTED_SAMPLE: list[Entry] = [
    {"name": "title", "filename": None, "type": "text/plain", "data": "Hello, World"},
    {"name": "tag", "filename": None, "type": "text/plain", "data": "a"},
    {"name": "tag", "filename": None, "type": "text/plain", "data": "b"},
    {"name": "note", "filename": None, "type": "text/plain", "data": "héllo ünïcode"},
    {"name": "empty", "filename": None, "type": "text/plain", "data": ""},
    {
        "name": "upload",
        "filename": "report.bin",
        "type": "application/x-test",
        "data": SAMPLE_FILE.decode("latin-1"),
    },
    {"name": "tag", "filename": None, "type": "text/plain", "data": "c"},
]


# -- apps --------------------------------------------------------------------------------------


def _entry(part: Part) -> Entry:
    return {"name": part.name, "filename": part.filename, "type": part.content_type}


def _data(part: Part, data: bytes) -> str:
    return data.decode("utf-8") if part.filename is None else data.decode("latin-1")


def read_parts_sync(request: Request, skip: tuple[str, ...] = (), stop: str | None = None) -> Any:
    """Describe every part, reading the data of those not in ``skip``; break after ``stop``."""
    out = []
    for item in request.iter_parts():
        entry = _entry(item)
        if item.name not in skip:
            entry["data"] = _data(item, b"".join(item.iter_bytes()))
        out.append(entry)
        if item.name == stop:
            break
    return out


async def read_parts_async(
    request: Request, skip: tuple[str, ...] = (), stop: str | None = None
) -> Any:
    """The async twin of ``read_parts_sync``."""
    out = []
    async for item in request.aiter_parts():
        entry = _entry(item)
        if item.name not in skip:
            entry["data"] = _data(item, b"".join([c async for c in item.aiter_bytes()]))
        out.append(entry)
        if item.name == stop:
            break
    return out


def parts_app(colour: str, limits: Limits | None = None, **policy: Any) -> App:
    """An app whose ``POST /`` streams the parts in ``colour`` and describes them."""
    app = App(limits=limits)
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            return read_parts_sync(request, **policy)

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            return await read_parts_async(request, **policy)

    return app


def post(client: TestClient, body: bytes | Any, content_type: str = MULTIPART) -> Any:
    return client.post("/", content=body, headers={"content-type": content_type})


def expected(skip: tuple[str, ...] = ()) -> list[Entry]:
    return [
        {k: v for k, v in e.items() if k != "data" or e["name"] not in skip}
        for e in EXPECTED_SAMPLE
    ]


# -- driving the callables by hand -------------------------------------------------------------


def dribbled_post(app: App, body: bytes, size: int) -> tuple[str, bytes, int]:
    """POST ``body`` to ``/`` through ``as_wsgi()``, ``size`` bytes per read; return the status,
    the response body and how many body bytes the app read."""
    dribble = ShortReads(body, size)
    status, answer = wsgi_post(app, dribble, MULTIPART, len(body))
    return status, answer, dribble.tell()


async def asgi_post(
    app: App, body: bytes, size: int, pause: bool = False
) -> tuple[int, bytes, int]:
    """POST ``body`` through ``as_asgi()``, one ``http.request`` message per ``size`` bytes;
    return the status, the response body and how many body bytes the app received.

    With ``pause``, each message comes after a turn of the event loop, as a server's do.
    """
    pieces = [body[i : i + size] for i in range(0, len(body), size)] or [b""]
    received = 0
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if pause:
            await asyncio.sleep(0)
        if received < len(pieces):
            received += 1
            more = received < len(pieces)
            return {"type": "http.request", "body": pieces[received - 1], "more_body": more}
        await asyncio.Event().wait()  # a server waits here until the client leaves
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"content-type", MULTIPART.encode()), (b"content-length", b"%d" % len(body))]
    await app.as_asgi()(http_scope("POST", "/", headers), receive, send)
    answer = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], answer, sum(len(p) for p in pieces[:received])


def post_by_hand(
    interface: str, app: App, body: bytes, size: int, pause: bool = False
) -> tuple[int, bytes, int]:
    if interface == "wsgi":
        status, answer, read = dribbled_post(app, body, size)
        return int(status.split()[0]), answer, read
    return asyncio.run(asgi_post(app, body, size, pause))


# -- streaming parts ---------------------------------------------------------------------------


def test_parts_come_in_order(make_client: MakeClient, colour: str) -> None:
    response = post(make_client(parts_app(colour)), SAMPLE_BODY)
    assert response.status_code == 200, response.text
    assert response.json() == EXPECTED_SAMPLE


def test_part_attributes_and_headers(make_client: MakeClient, colour: str) -> None:
    app = App()

    def describe(item: Part) -> Entry:
        return {**_entry(item), "x-tag": item.headers.get("x-tag"), "repr": repr(item)}

    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            return [describe(item) for item in request.iter_parts()]

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            return [describe(item) async for item in request.aiter_parts()]

    body = multipart(
        part("f", b"x", filename="a b.bin", extra=("X-Tag: one",)),
        part("g", "y", content_type="text/plain; charset=utf-8"),
    )
    assert post(make_client(app), body).json() == [
        {
            "name": "f",
            "filename": "a b.bin",
            "type": "application/octet-stream",
            "x-tag": "one",
            "repr": "<Part 'f' file 'a b.bin' 'application/octet-stream'>",
        },
        {
            "name": "g",
            "filename": None,
            "type": "text/plain",
            "x-tag": None,
            "repr": "<Part 'g' field 'text/plain'>",
        },
    ]


def test_part_header_missing_is_400(make_client: MakeClient, colour: str) -> None:
    app = App()

    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            return [item.headers["x-tag"] for item in request.iter_parts()]

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            return [item.headers["x-tag"] async for item in request.aiter_parts()]

    client = make_client(app)
    tagged = multipart(part("f", "x", extra=("X-Tag: one",)))
    assert post(client, tagged).json() == ["one"]
    response = post(client, multipart(part("f", "x")))
    assert (response.status_code, response.text) == (400, "missing header 'x-tag'")


def test_text_decodes_with_the_part_charset(make_client: MakeClient, colour: str) -> None:
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            return [item.text() for item in request.iter_parts()]

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            return [await item.atext() async for item in request.aiter_parts()]

    body = multipart(
        part("a", "é".encode("latin-1"), content_type="text/plain; charset=iso-8859-1"),
        part("b", "ü"),
        part("c", "ß".encode("latin-1"), filename="c.txt", content_type="text/plain; charset=l1"),
    )
    client = make_client(app)
    assert post(client, body).json() == ["é", "ü", "ß"]
    bad = multipart(part("f", b"x", filename="f", content_type="text/plain; charset=rot13"))
    assert post(client, bad).status_code == 400


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_bodies_dripped_by_hand(interface: str, colour: str, size: int) -> None:
    status, answer, read = post_by_hand(interface, parts_app(colour), SAMPLE_BODY, size)
    assert status == 200, answer
    assert json.loads(answer) == EXPECTED_SAMPLE
    assert read == len(SAMPLE_BODY)


def test_final_crlf_alone_in_the_last_message(interface: str, colour: str) -> None:
    body = SAMPLE_BODY + b"\r\n"  # TRAPS.md 4: an epilogue after the closing boundary
    status, answer, _ = post_by_hand(interface, parts_app(colour), body, len(SAMPLE_BODY))
    assert (status, json.loads(answer)) == (200, EXPECTED_SAMPLE)


def test_a_part_left_unread_is_skipped(make_client: MakeClient, colour: str) -> None:
    skip = ("upload", "title")
    response = post(make_client(parts_app(colour, skip=skip)), SAMPLE_BODY)
    assert response.json() == expected(skip)


def test_breaking_out_early_reads_no_more_of_the_body(interface: str, colour: str) -> None:
    big = multipart(part("first", "1"), part("file", b"z" * 200_000, filename="f"), part("x", "2"))
    status, answer, read = post_by_hand(interface, parts_app(colour, stop="first"), big, 1024)
    assert status == 200
    assert json.loads(answer) == [
        {"name": "first", "filename": None, "type": "text/plain", "data": "1"}
    ]
    assert read < 10_000


def test_requests_after_an_early_break_work(make_client: MakeClient, colour: str) -> None:
    client = make_client(parts_app(colour, stop="title"))
    for _ in range(3):
        response = post(client, SAMPLE_BODY)
        assert response.json() == EXPECTED_SAMPLE[:1]


# -- limits and malformed bodies ---------------------------------------------------------------


# NOTE: the same limits and answers as form(): one table for both.
LIMIT_CASES = MULTIPART_LIMIT_CASES


@pytest.mark.parametrize(("limits", "body", "status"), LIMIT_CASES)
def test_limits(
    make_client: MakeClient, colour: str, limits: Limits, body: bytes, status: int
) -> None:
    response = post(make_client(parts_app(colour, limits)), body)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(("limits", "body", "status"), LIMIT_CASES)
def test_limits_on_bodies_dripped_by_hand(
    interface: str, colour: str, limits: Limits, body: bytes, status: int
) -> None:
    # NOTE: a byte per read for the small bodies; the big ones (1 MiB) in reads of a prime
    # number of bytes, which still cut heads and boundaries at every offset: a byte at a time,
    # they took up to 36 s each (an async handler under WSGI, a bridge trip per byte).
    size = 1 if len(body) <= 64 * 1024 else 997
    answer = post_by_hand(interface, parts_app(colour, limits), body, size)
    assert answer[0] == status, answer[1]


def test_a_skipped_field_still_counts(make_client: MakeClient, colour: str) -> None:
    app = parts_app(colour, Limits(max_field_size=10), skip=("x",))
    response = post(make_client(app), multipart(part("x", "v" * 11), part("y", "1")))
    assert response.status_code == 413
    assert response.text == "form field 'x' is larger than 10 bytes"


# NOTE: refusals of every kind, each answered by form() and by streamed parts alike: the
# status and the text, not the status alone.
SAME_REFUSALS = [
    pytest.param(Limits(max_body_size=50), SAMPLE_BODY, id="body"),
    pytest.param(
        Limits(max_form_memory=40),
        multipart(part("a", "x" * 30), part("b", "y" * 30)),
        id="form-memory",
    ),
    pytest.param(
        Limits(max_part_headers=2),
        multipart(part("a", "1", extra=("X-A: 1", "X-B: 2"))),
        id="part-headers",
    ),
    pytest.param(
        Limits(max_part_header_size=100),
        multipart(part("a", "1", extra=("X-A: " + "z" * 200,))),
        id="part-header-size",
    ),
    pytest.param(
        Limits(max_form_header_size=300),
        multipart(*(part(f"a{i}", "1") for i in range(20))),
        id="form-header-size",
    ),
    pytest.param(
        Limits(max_form_files=1),
        multipart(part("f", b"1", filename="f"), part("g", b"2", filename="g")),
        id="files",
    ),
    pytest.param(
        None, multipart(b'Content-Disposition: attachment; name="a"\r\n\r\n1'), id="not-form-data"
    ),
    pytest.param(
        None,
        multipart(b'Content-Disposition: form-data; name="a"\r\nno colon\r\n\r\n1'),
        id="header-without-colon",
    ),
    pytest.param(None, SAMPLE_BODY.replace(b"\r\n", b"\n"), id="bare-lf"),
    pytest.param(
        None,
        multipart(b"Content-Disposition: form-data; name=f; filename*=x''%ZZ\r\n\r\nx"),
        id="filename-star",
    ),
]


@pytest.mark.parametrize(("limits", "body"), SAME_REFUSALS)
def test_parts_refuse_what_form_refuses_with_the_same_answer(
    make_client: MakeClient, colour: str, limits: Limits | None, body: bytes
) -> None:
    form = post(make_client(form_app(colour, limits)), body)
    parts = post(make_client(parts_app(colour, limits)), body)
    assert form.status_code in (400, 413), form.text
    assert (parts.status_code, parts.text) == (form.status_code, form.text)


MALFORMED = [
    pytest.param(SAMPLE_BODY[: len(SAMPLE_BODY) // 2], id="cut-in-the-middle"),
    pytest.param(SAMPLE_BODY[: -len(f"--{BOUNDARY}--\r\n")], id="no-final-boundary"),
    pytest.param(SAMPLE_BODY[:-4], id="cut-in-final-boundary"),
    pytest.param(b"", id="empty"),
    pytest.param(b"no multipart here at all", id="garbage"),
    pytest.param(
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=x\r\n".encode(), id="cut-in-headers"
    ),
    pytest.param(
        f"--{BOUNDARY}\r\nContent-Type: text/plain\r\n\r\nx\r\n--{BOUNDARY}--\r\n".encode(),
        id="no-content-disposition",
    ),
    pytest.param(multipart(part("x", "a", content_type="text/plain; charset=nope")), id="charset"),
    pytest.param(multipart(part("", "a")), id="no-name"),
]


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_bodies_are_400(make_client: MakeClient, colour: str, body: bytes) -> None:
    response = post(make_client(parts_app(colour)), body)
    assert response.status_code == 400, response.text


@pytest.mark.parametrize("body", MALFORMED)
def test_malformed_bodies_dripped_by_hand_are_400(interface: str, colour: str, body: bytes) -> None:
    status, answer, _ = post_by_hand(interface, parts_app(colour), body, 1)
    assert status == 400, answer


def test_a_body_without_a_boundary_is_400(make_client: MakeClient, colour: str) -> None:
    response = post(make_client(parts_app(colour)), SAMPLE_BODY, "multipart/form-data")
    assert (response.status_code, response.text) == (400, "multipart body without a boundary")


@pytest.mark.parametrize(("length", "status"), [(70, 200), (71, 400)])
def test_a_boundary_longer_than_rfc_2046_allows_is_400(
    make_client: MakeClient, colour: str, length: int, status: int
) -> None:
    boundary = "b" * length
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="a"\r\n\r\n1\r\n--{boundary}--\r\n'
    )
    content_type = f"multipart/form-data; boundary={boundary}"
    response = post(make_client(parts_app(colour)), body.encode(), content_type)
    assert response.status_code == status, response.text
    if status == 400:
        assert response.text == "multipart boundary longer than 70 characters"


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "application/json", "multipart/mixed; boundary=b"],
)
def test_other_content_types_are_415(
    make_client: MakeClient, colour: str, content_type: str | None
) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = make_client(parts_app(colour)).post("/", content=b"a=1", headers=headers)
    assert (response.status_code, response.text) == (415, "expected a multipart/form-data body")


def where_it_fails(colour: str, read: bool) -> App:
    """An app that tells where a truncated body's 400 was raised, and what a later step raises."""
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            parts, where = request.iter_parts(), "next"
            try:
                for item in parts:
                    where = "part"
                    if read:
                        b"".join(item.iter_bytes())
                    where = "next"
            except HTTPError as error:
                return {"where": where, "status": error.status}
            return "no error"

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            parts, where = request.aiter_parts(), "next"
            try:
                async for item in parts:
                    where = "part"
                    if read:
                        b"".join([chunk async for chunk in item.aiter_bytes()])
                    where = "next"
            except HTTPError as error:
                return {"where": where, "status": error.status}
            return "no error"

    return app


@pytest.mark.parametrize(("read", "where"), [(True, "part"), (False, "next")])
def test_a_truncated_body_fails_where_it_is_pulled(
    make_client: MakeClient, colour: str, read: bool, where: str
) -> None:
    body = multipart(part("a", "1"), part("f", b"z" * 3000, filename="f"))[:2000]
    response = post(make_client(where_it_fails(colour, read)), body)
    assert response.json() == {"where": where, "status": 400}


# -- rules: once, in order, in one colour ------------------------------------------------------


def rule_app(colour: str, action: str) -> App:
    """An app that breaks one rule of streamed parts and answers with the RuntimeError."""
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            try:
                return SYNC_ACTIONS[action](request)
            except RuntimeError as error:
                return {"error": str(error)}

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            try:
                return await ASYNC_ACTIONS[action](request)
            except RuntimeError as error:
                return {"error": str(error)}

    return app


def _sync_left_behind(request: Request) -> Any:
    parts = request.iter_parts()
    first = next(parts)
    next(parts)
    return list(first.iter_bytes())


def _sync_iterator_kept(request: Request) -> Any:
    parts = request.iter_parts()
    chunks = next(parts).iter_bytes()
    next(chunks)
    next(parts)
    return list(chunks)


def _sync_iterator_not_started(request: Request) -> Any:
    parts = request.iter_parts()
    chunks = next(parts).iter_bytes()
    next(parts)
    return [next(chunks).decode()]


def _sync_read_twice(request: Request) -> Any:
    parts = request.iter_parts()
    first = next(parts)
    first.text()
    return first.text()


def _sync_loop_ended(request: Request) -> Any:
    parts = request.iter_parts()
    first = next(parts)
    parts.close()
    return first.text()


def _sync_twice(request: Request) -> Any:
    list(request.iter_parts())
    return list(request.iter_parts())


def _sync_after_form(request: Request) -> Any:
    request.form()
    return list(request.iter_parts())


def _sync_wrong_colour_part(request: Request) -> Any:
    return next(request.iter_parts()).aiter_bytes()


def _sync_wrong_colour_text(request: Request) -> Any:
    reading = next(request.iter_parts()).atext()
    try:
        return reading.send(None)  # NOTE: as an await would run it, to its first step.
    finally:
        reading.close()


async def _async_left_behind(request: Request) -> Any:
    parts = request.aiter_parts()
    first = await anext(parts)
    await anext(parts)
    return [chunk async for chunk in first.aiter_bytes()]


async def _async_iterator_kept(request: Request) -> Any:
    parts = request.aiter_parts()
    chunks = (await anext(parts)).aiter_bytes()
    await anext(chunks)
    await anext(parts)
    return [chunk async for chunk in chunks]


async def _async_iterator_not_started(request: Request) -> Any:
    parts = request.aiter_parts()
    chunks = (await anext(parts)).aiter_bytes()
    await anext(parts)
    return [(await anext(chunks)).decode()]


async def _async_read_twice(request: Request) -> Any:
    parts = request.aiter_parts()
    first = await anext(parts)
    await first.atext()
    return await first.atext()


async def _async_loop_ended(request: Request) -> Any:
    parts = request.aiter_parts()
    first = await anext(parts)
    await parts.aclose()  # type: ignore[attr-defined]
    return await first.atext()


async def _async_twice(request: Request) -> Any:
    [item async for item in request.aiter_parts()]
    return [item async for item in request.aiter_parts()]


async def _async_after_form(request: Request) -> Any:
    await request.aform()
    return [item async for item in request.aiter_parts()]


async def _async_wrong_colour_part(request: Request) -> Any:
    return (await anext(request.aiter_parts())).iter_bytes()


async def _async_wrong_colour_text(request: Request) -> Any:
    return (await anext(request.aiter_parts())).text()


SYNC_ACTIONS: dict[str, Callable[[Request], Any]] = {
    "left-behind": _sync_left_behind,
    "iterator-kept": _sync_iterator_kept,
    "iterator-not-started": _sync_iterator_not_started,
    "read-twice": _sync_read_twice,
    "loop-ended": _sync_loop_ended,
    "twice": _sync_twice,
    "after-form": _sync_after_form,
    "wrong-colour-part": _sync_wrong_colour_part,
    "wrong-colour-text": _sync_wrong_colour_text,
}
ASYNC_ACTIONS: dict[str, Callable[[Request], Any]] = {
    "left-behind": _async_left_behind,
    "iterator-kept": _async_iterator_kept,
    "iterator-not-started": _async_iterator_not_started,
    "read-twice": _async_read_twice,
    "loop-ended": _async_loop_ended,
    "twice": _async_twice,
    "after-form": _async_after_form,
    "wrong-colour-part": _async_wrong_colour_part,
    "wrong-colour-text": _async_wrong_colour_text,
}


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("left-behind", "part 'title' was left behind by request.{parts}: read each part's data"),
        ("iterator-kept", "part 'title' was left behind by request.{parts}"),
        # NOTE: not a chunk of the next part's data first.
        ("iterator-not-started", "part 'title' was left behind by request.{parts}"),
        ("read-twice", "the data of part 'title' was already read"),
        ("loop-ended", "part 'title' was left behind by request.{parts}, whose loop has ended"),
        ("twice", "request.{parts}: the body was already consumed"),
        ("after-form", "request.{parts}: the body was already consumed"),
        ("wrong-colour-part", "this part comes from request.{parts}: read it with part.{twin}"),
        # NOTE: it named part.iter_bytes(), which text() calls, not the call the handler made.
        (
            "wrong-colour-text",
            "part.{text}: this part comes from request.{parts}: read it with part.{text_twin}",
        ),
    ],
)
def test_rules_of_streamed_parts(
    make_client: MakeClient, colour: str, action: str, message: str
) -> None:
    names = {
        "sync": {
            "parts": "iter_parts()",
            "twin": "iter_bytes()",
            "text": "atext()",
            "text_twin": "text()",
        },
        "async": {
            "parts": "aiter_parts()",
            "twin": "aiter_bytes()",
            "text": "text()",
            "text_twin": "atext() in async code",
        },
    }[colour]
    response = post(make_client(rule_app(colour, action)), SAMPLE_BODY)
    assert message.format(**names) in response.json()["error"]


def test_parts_of_a_body_read_before(make_client: MakeClient, colour: str) -> None:
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            request.read()
            return read_parts_sync(request)

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            await request.aread()
            return await read_parts_async(request)

    assert post(make_client(app), SAMPLE_BODY).json() == EXPECTED_SAMPLE


@pytest.mark.parametrize("offload", [True, False])
def test_iter_parts_where_it_would_block_names_the_twin(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, offload: bool
) -> None:
    app = App()
    if offload:

        @app.post("/")
        async def wrong(request: Request) -> Any:
            return [item.name for item in request.iter_parts()]

    else:

        @app.post("/", offload=False)
        def inline(request: Request) -> Any:
            return [item.name for item in request.iter_parts()]

    with caplog.at_level("ERROR", logger="microweb"):
        response = post(make_client(app), SAMPLE_BODY)
    assert response.status_code == 500
    errors = [str(r.exc_info[1]) for r in caplog.records if r.exc_info is not None]
    assert any("request.iter_parts() blocks" in e and "aiter_parts()" in e for e in errors)


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_part_being_read_when_the_loop_ends_is_read_to_its_end(
    interface: str, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: an async generator left by a break is closed later, by the event loop: the part
    # then failed after some of its data (a 500 under Uvicorn), and under WSGI the closing of
    # the chunks its reader was awaiting failed too ("asynchronous generator is already
    # running", logged by asyncio). A sync loop's part, whose end came at once, always failed.
    app = App()
    if colour == "sync":

        @app.post("/")
        def sync_handler(request: Request) -> Any:
            for item in request.iter_parts():
                chunks = item.iter_bytes()
                break
            return {"size": sum(len(chunk) for chunk in chunks)}

    else:

        @app.post("/")
        async def async_handler(request: Request) -> Any:
            async for item in request.aiter_parts():
                chunks = item.aiter_bytes()
                break
            return {"size": sum([len(chunk) async for chunk in chunks])}

    body = multipart(part("f", LARGE * 40, filename="a"), part("g", "1"))
    with caplog.at_level("ERROR"):
        status, answer, _ = post_by_hand(interface, app, body, 1000, pause=True)
        gc.collect()  # NOTE: a task's error is logged when the task is freed.
    assert status == 200, answer
    assert json.loads(answer) == {"size": len(LARGE) * 40}
    assert [r.getMessage() for r in caplog.records] == []


# -- what outlives a request -------------------------------------------------------------------

# NOTE: a part cut off by the end of the body; a part with too many header lines (413).
CUT_PART = f"--{BOUNDARY}\r\n".encode() + part("f", b"x" * 5000, filename="a")
MANY_HEADERS = multipart(part("f", "1", extra=tuple(f"X-{n}: 1" for n in range(20))))


@pytest.mark.parametrize("skip", [(), ("f",)], ids=["read", "skipped"])
@pytest.mark.parametrize(
    "body", [b"not multipart", CUT_PART, MANY_HEADERS], ids=["garbage", "cut", "headers"]
)
def test_a_malformed_body_leaves_no_cycle_holding_the_request(
    interface: str, colour: str, body: bytes, skip: tuple[str, ...]
) -> None:
    # NOTE: the parts kept their error, whose traceback held the frames that held them, and
    # the current part and the parts referred to each other: every malformed body left its
    # request, parser and the body read so far to a full collection (64 of 64 cases).
    app = parts_app(colour, skip=skip)
    assert requests_left_in_cycles(app, interface, "POST", "/", body, MULTIPART) == 0


@pytest.mark.parametrize("cut", [False, True], ids=["whole", "client-left"])
def test_a_loop_left_early_leaves_no_cycle_holding_the_request(
    interface: str, colour: str, cut: bool
) -> None:
    app = parts_app(colour, stop="title")
    kept = requests_left_in_cycles(app, interface, "POST", "/", SAMPLE_BODY, MULTIPART, cut=cut)
    assert kept == 0


# -- the part machine without I/O --------------------------------------------------------------


def pull_sync(chunks: list[bytes], limits: Limits | None = None) -> list[Entry]:
    stream = PartStream(MULTIPART, limits or Limits())
    parts = SyncParts(stream, iter(chunks), lambda: None)
    out = []
    while (item := parts.next_part()) is not None:
        out.append({**_entry(item), "data": _data(item, b"".join(item.iter_bytes()))})
    return out


def pull_async(chunks: list[bytes]) -> list[Entry]:
    async def agen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    async def run() -> list[Entry]:
        parts = AsyncParts(PartStream(MULTIPART, Limits()), agen())
        out = []
        while (item := await parts.next_part()) is not None:
            data = b"".join([chunk async for chunk in item.aiter_bytes()])
            out.append({**_entry(item), "data": _data(item, data)})
        return out

    return asyncio.run(run())


@settings(max_examples=50, database=None, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(SAMPLE_BODY)), max_size=30))
def test_random_split_points(points: list[int]) -> None:
    chunks = split_at(SAMPLE_BODY, points)
    assert pull_sync(chunks) == EXPECTED_SAMPLE
    assert pull_async(chunks) == EXPECTED_SAMPLE


@settings(max_examples=30, database=None, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=len(SAMPLE_BODY)), max_size=10),
    st.integers(min_value=1, max_value=len(SAMPLE_BODY) - 3),  # "--B--" alone is complete
)
def test_random_cuts_of_a_truncated_body_are_400(points: list[int], end: int) -> None:
    body = SAMPLE_BODY[:end]
    with pytest.raises(HTTPError) as caught:
        pull_sync(split_at(body, [p for p in points if p <= end]))
    assert caught.value.status == 400


@pytest.mark.parametrize("line", [b"X-Note: a\nX-Injected: 1", b"X-Note: a\rX-Injected: 1"])
def test_a_bare_line_break_in_a_part_header_is_400_however_it_comes(line: bytes) -> None:
    body = multipart(part("x", "v", extra=(line.decode(),)))
    for cut in range(len(body) + 1):
        for pull in (pull_sync, pull_async):
            with pytest.raises(HTTPError) as caught:
                pull(split_at(body, [cut]))
            assert caught.value.status == 400, (cut, pull.__name__)


def test_a_first_part_glued_to_a_preamble_is_never_dropped() -> None:
    body = b"junk" + multipart(part("a", "1"), part("b", "2"))
    for cut in range(len(body) + 1):
        for pull in (pull_sync, pull_async):
            with pytest.raises(HTTPError) as caught:
                pull(split_at(body, [cut]))
            assert caught.value.status == 400, (cut, pull.__name__)


def test_a_preamble_of_dashes_costs_no_python_step_a_byte() -> None:
    # NOTE: the end of each read that may start "--boundary" was found one "-" at a time: a
    # preamble of dashes, its boundary "x" and dashes, took some 240 Python lines a 100-byte
    # read, where the parse itself takes some 30.
    events = MultipartEvents("x" + "-" * 68, Limits())
    chunks = [b"-" * 100] * 50

    def read() -> list[Any]:
        return [event for chunk in chunks for event in events.parse(chunk)]

    lines, found = traced_lines(read)
    assert found == []
    assert lines < 60 * len(chunks)


def test_one_byte_at_a_time_without_io() -> None:
    chunks = [SAMPLE_BODY[i : i + 1] for i in range(len(SAMPLE_BODY))]
    assert pull_sync(chunks) == EXPECTED_SAMPLE
    assert pull_async(chunks) == EXPECTED_SAMPLE


def test_an_error_is_raised_again_by_every_later_step() -> None:
    body = multipart(part("x", "v" * 11), part("y", "1"))
    stream = PartStream(MULTIPART, Limits(max_field_size=10))
    parts = SyncParts(stream, iter([body]), lambda: None)
    assert parts.next_part() is not None
    with pytest.raises(HTTPError) as caught:
        parts.next_part()
    with pytest.raises(HTTPError) as again:
        parts.next_part()
    assert (again.value.status, again.value.detail) == (413, caught.value.detail)
    # NOTE: what is kept is a copy never raised: no traceback, whose frames hold the parts.
    assert parts.error is not None and parts.error.__traceback__ is None


def test_the_stream_refuses_other_content_types() -> None:
    for content_type in ("text/plain", "", None, "application/x-www-form-urlencoded"):
        with pytest.raises(HTTPError) as caught:
            PartStream(content_type, Limits())
        assert caught.value.status == 415


# -- aform(): spooled writes off the event loop ------------------------------------------------


def _on_a_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


def test_aform_never_writes_a_spooled_file_on_the_event_loop(
    make_client: MakeClient, interface: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    threshold = 1000
    monkeypatch.setattr(_forms, "WRITE_BATCH", 16384)  # NOTE: several batches, overlapped.
    large_file = LARGE * 20
    calls: list[tuple[str, bool, bool]] = []  # (call, past the threshold, on the event loop)
    loop_threads: set[threading.Thread] = set()
    write, append, seek = UploadFile._write, UploadFile._append, UploadFile.seek

    def spying_write(self: UploadFile, chunk: bytes) -> None:
        calls.append(("write", self.size + len(chunk) > threshold, _on_a_loop()))
        write(self, chunk)

    def spying_append(self: UploadFile, chunks: list[bytes]) -> None:
        calls.append(("append", True, threading.current_thread() in loop_threads))
        append(self, chunks)

    def spying_seek(self: UploadFile, offset: int, whence: int = 0) -> int:
        calls.append(("seek", self.size > threshold, _on_a_loop()))
        return seek(self, offset, whence)

    monkeypatch.setattr(UploadFile, "_write", spying_write)
    monkeypatch.setattr(UploadFile, "_append", spying_append)
    monkeypatch.setattr(UploadFile, "seek", spying_seek)
    app = App(limits=Limits(spool_threshold=threshold))

    @app.post("/")
    async def handler(request: Request) -> Any:
        loop_threads.add(threading.current_thread())
        form = await request.aform()
        small, large = form["small"], form["large"]
        assert isinstance(small, UploadFile) and isinstance(large, UploadFile)
        data = await large.aread()
        return {"small": small.in_memory, "large": large.in_memory, "ok": data == large_file}

    body = multipart(
        part("small", b"s" * 10, filename="s"), part("large", large_file, filename="f")
    )
    pieces = [body[i : i + 3000] for i in range(0, len(body), 3000)]
    client = make_client(app)
    response = post(client, chunked(interface, pieces))
    assert response.json() == {"small": True, "large": False, "ok": True}
    assert calls.count(("append", True, False)) > 2  # past the threshold: in a worker thread
    assert ("seek", True, False) in calls
    assert [call for call in calls if call[1] and call[2]] == []


def test_the_upload_example_streams_parts(
    make_client: MakeClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: loaded by path: the repository root is on sys.path only when another test put it
    # there, so this test failed when run alone.
    upload = load_example("upload.py", "upload_example")
    monkeypatch.setattr(upload, "UPLOAD_DIR", tmp_path)
    client = make_client(upload.app)
    files = {"file": ("../../a b.txt", b"x" * 70_000, "text/plain")}
    response = client.post("/upload-stream", data={"note": "hi", "other": "1"}, files=files)
    assert response.json() == {
        "note": "hi",
        "name": "../../a b.txt",
        "safe_name": "a_b.txt",
        "size": 70_000,
        "content_type": "text/plain",
    }
    assert (tmp_path / "a_b.txt").read_bytes() == b"x" * 70_000
    assert client.post("/upload-stream", data={"note": "hi"}).status_code == 415
    no_file = client.post("/upload-stream", files={"note": (None, "hi")})
    assert no_file.status_code == 400
    # NOTE: as /upload, it saves the part named "file" only, not another file part.
    files = {"file": ("a.txt", b"a"), "extra": ("b.txt", b"b")}
    assert client.post("/upload-stream", files=files).json()["name"] == "a.txt"
    assert not (tmp_path / "b.txt").exists()


@pytest.mark.parametrize(
    "content_type",
    [
        "multipart/form-data; boundary=real; boundary=evil",
        "multipart/form-data; boundary=evil; BOUNDARY = real",
        'multipart/form-data; boundary="real"; x="a;b"; boundary=evil',
        "multipart/form-data; boundary=real; boundary*=utf-8''evil",
        "multipart/form-data; boundary=real; boundary*0=ev; boundary*1=il",
    ],
)
@pytest.mark.parametrize("reader", ["form", "iter_parts"])
def test_a_boundary_named_twice_is_400(
    make_client: MakeClient, colour: str, reader: str, content_type: str
) -> None:
    # SPEC: RFC 6838 4.3: a parameter given twice is an error. The last one was taken, where a
    # proxy or a firewall that takes the first reads another form from the same body.
    app = form_app(colour) if reader == "form" else parts_app(colour)
    body = multipart(part("a", "1"), boundary="real") + multipart(part("b", "2"), boundary="evil")
    response = post(make_client(app), body, content_type)
    assert (response.status_code, response.text) == (
        400,
        "multipart Content-Type names its boundary twice",
    )


def test_a_boundary_word_inside_a_value_is_no_second_boundary(
    make_client: MakeClient, colour: str
) -> None:
    content_type = 'multipart/form-data; boundary=real; x="boundary=evil"'
    response = post(
        make_client(form_app(colour)), multipart(part("a", "1"), boundary="real"), content_type
    )
    assert (response.status_code, response.json()) == (200, {"a": ["1"]})
