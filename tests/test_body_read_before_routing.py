"""A body that an app flow read before routing, read again by the handler of a route with
smaller limits: the route's ``max_body_size`` (and ``max_json_size``) hold for what was read.

App flows run before routing, so a flow's read takes the app's limits; the handler's read
then gets the body (or form, or JSON) kept from it. It got it whatever its size, past the
route's own limit, which held only in an app whose flows did not read the body.
"""

from __future__ import annotations

import contextlib
import json
import random
import tracemalloc
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conftest import MakeClient

from microweb import App, FormData, HTTPError, Limits, Request
from microweb._forms import FormBuilder, check_kept_form

ROUTE_LIMIT = 100
SMALL = b"a=" + b"x" * 40
LARGE = b"a=" + b"x" * 5000
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON_HEADERS = {"content-type": "application/json"}


def _multipart(value: bytes) -> bytes:
    return b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n' + value + b"\r\n--b--\r\n"


MULTIPART = {"content-type": "multipart/form-data; boundary=b"}


def _sync_parts(request: Request) -> int:
    return sum(len(b"".join(part.iter_bytes())) for part in request.iter_parts())


async def _async_parts(request: Request) -> int:
    size = 0
    async for part in request.aiter_parts():
        size += sum([len(chunk) async for chunk in part.aiter_bytes()])
    return size


async def _async_chunks(request: Request) -> int:
    return sum([len(chunk) async for chunk in request.aiter_bytes()])


async def _async_form(request: Request) -> int:
    return len((await request.aform())["a"])


# NOTE: each read of the body, in each colour, and what it answers for a body within limits.
READS: dict[str, tuple[Callable[[Request], Any], Callable[[Request], Any]]] = {
    "read": (lambda r: len(r.read()), lambda r: _len_of(r.aread())),
    "text": (lambda r: len(r.text()), lambda r: _len_of(r.atext())),
    "form": (lambda r: len(r.form()["a"]), _async_form),
    "iter_bytes": (lambda r: sum(map(len, r.iter_bytes())), _async_chunks),
}


async def _len_of(pending: Any) -> int:
    return len(await pending)


def _app(
    colour: str,
    flow_read: Callable[[Request], Awaitable[Any]],
    read: Any,
    limits: dict[str, int] | None = None,
) -> App:
    """An app whose flow reads the body whole (``flow_read``), and a route on ``/`` limited to
    ``ROUTE_LIMIT`` bytes (or by ``limits``) whose handler reads it again with ``read`` (sync,
    async)."""
    app = App()

    @app.middleware
    async def early(request: Request) -> Any:
        await flow_read(request)
        yield

    limits = limits or {"max_body_size": ROUTE_LIMIT, "max_json_size": ROUTE_LIMIT}
    sync_read, async_read = read
    if colour == "sync":

        @app.post("/", limits=limits)
        def handler(request: Request) -> dict[str, Any]:
            return {"read": sync_read(request)}

    else:

        @app.post("/", limits=limits)
        async def ahandler(request: Request) -> dict[str, Any]:
            return {"read": await async_read(request)}

    return app


def _aread(request: Request) -> Any:
    return request.aread()


@pytest.mark.parametrize("kind", sorted(READS))
def test_a_body_read_by_a_flow_is_held_to_the_routes_limit(
    make_client: MakeClient, colour: str, kind: str
) -> None:
    client = make_client(_app(colour, _aread, READS[kind]))
    answer = client.post("/", content=LARGE, headers=FORM)
    assert (answer.status_code, answer.text) == (413, "request body is larger than 100 bytes")
    assert client.post("/", content=SMALL, headers=FORM).json() == {
        "read": 40 if kind == "form" else len(SMALL)
    }


@pytest.mark.parametrize("flow_read", ["aread", "aform"])
def test_a_form_read_by_a_flow_is_held_to_the_routes_limit(
    make_client: MakeClient, colour: str, flow_read: str
) -> None:
    app = _app(colour, lambda request: getattr(request, flow_read)(), READS["form"])
    client = make_client(app)
    for body in (LARGE, _multipart(b"x" * 5000)):
        headers = FORM if body is LARGE else MULTIPART
        answer = client.post("/", content=body, headers=headers)
        assert (answer.status_code, answer.text) == (413, "request body is larger than 100 bytes")
    assert client.post("/", content=_multipart(b"x" * 10), headers=MULTIPART).json() == {"read": 10}


def test_parts_of_a_body_read_by_a_flow_are_held_to_the_routes_limit(
    make_client: MakeClient, colour: str
) -> None:
    client = make_client(_app(colour, _aread, (_sync_parts, _async_parts)))
    answer = client.post("/", content=_multipart(b"x" * 5000), headers=MULTIPART)
    assert (answer.status_code, answer.text) == (413, "request body is larger than 100 bytes")
    small = client.post("/", content=_multipart(b"x" * 10), headers=MULTIPART)
    assert small.json() == {"read": 10}


def test_json_read_by_a_flow_is_held_to_the_routes_limits(
    make_client: MakeClient, colour: str
) -> None:
    app = _app(colour, lambda request: request.ajson(), (lambda r: r.json(), lambda r: r.ajson()))
    client = make_client(app)
    large = json.dumps(["x" * 5000]).encode()
    answer = client.post("/", content=large, headers=JSON_HEADERS)
    assert (answer.status_code, answer.text) == (413, "request body is larger than 100 bytes")
    assert client.post("/", content=b'["x"]', headers=JSON_HEADERS).json() == {"read": ["x"]}


@pytest.mark.parametrize("flow_read", ["aread", "ajson"])
def test_json_read_before_routing_is_held_to_the_routes_json_limit(
    make_client: MakeClient, colour: str, flow_read: str
) -> None:
    reads = (lambda r: r.json(), lambda r: r.ajson())
    flow = lambda request: getattr(request, flow_read)()  # noqa: E731
    client = make_client(_app(colour, flow, reads, {"max_json_size": ROUTE_LIMIT}))
    large = json.dumps(["x" * 5000]).encode()
    answer = client.post("/", content=large, headers=JSON_HEADERS)
    assert (answer.status_code, answer.text) == (413, "JSON body is larger than 100 bytes")


def _parts_of(count: int, size: int = 3, filename: bool = False) -> bytes:
    disposition = b'; filename="f.txt"' if filename else b""
    return (
        b"".join(
            b'--b\r\nContent-Disposition: form-data; name="a"%s\r\n\r\n%s\r\n'
            % (disposition, b"x" * size)
            for _ in range(count)
        )
        + b"--b--\r\n"
    )


def _field_of(data: bytes, content_type: bytes = b"") -> bytes:
    """A multipart body of one text field ``a`` of ``data``, its Content-Type ``text/plain``
    with ``content_type`` (parameters) after it, if given."""
    head = b"\r\nContent-Type: text/plain%s" % content_type if content_type else b""
    return b'--b\r\nContent-Disposition: form-data; name="a"%s\r\n\r\n%s\r\n--b--\r\n' % (
        head,
        data,
    )


# NOTE: a body within the route's max_body_size, past one of its form limits, as the handler's
# own form() answers it: (route limits, body, headers, status, text).
FORM_LIMITS = {
    "parts": (
        {"max_form_parts": 2},
        _parts_of(5),
        MULTIPART,
        413,
        "multipart limit reached: Maximum segment count exceeded",
    ),
    "files": (
        {"max_form_files": 2},
        _parts_of(3, filename=True),
        MULTIPART,
        413,
        "the form has more than 2 files",
    ),
    # NOTE: a file named "" is one once it has data, as the parser counts it: a kept form of
    # three passed a route of max_form_files=2, whose own read refuses them.
    "files-named-empty": (
        {"max_form_files": 2},
        _parts_of(3).replace(b'name="a"', b'name="a"; filename=""'),
        MULTIPART,
        413,
        "the form has more than 2 files",
    ),
    "field": (
        {"max_field_size": 5},
        _parts_of(1, size=50),
        MULTIPART,
        413,
        "form field 'a' is larger than 5 bytes",
    ),
    "memory": (
        {"max_form_memory": 8},
        _parts_of(3, size=4),
        MULTIPART,
        413,
        "form fields are larger than 8 bytes",
    ),
    # NOTE: a kept form's text fields were measured in characters: a field of 10 UTF-8 bytes
    # in 5 characters passed a route of max_field_size=6 (and max_form_memory=8).
    "field-bytes": (
        {"max_field_size": 6},
        _field_of("ééééé".encode()),
        MULTIPART,
        413,
        "form field 'a' is larger than 6 bytes",
    ),
    "field-bytes-past-the-heads": (
        {"max_field_size": 60},
        _field_of(("é" * 50).encode()),
        MULTIPART,
        413,
        "form field 'a' is larger than 60 bytes",
    ),
    "memory-bytes": (
        {"max_form_memory": 8},
        _field_of("ééééé".encode()),
        MULTIPART,
        413,
        "form fields are larger than 8 bytes",
    ),
    "field-utf-16": (
        {"max_field_size": 6},
        _field_of("abcd".encode("utf-16-le"), b"; charset=utf-16le"),
        MULTIPART,
        413,
        "form field 'a' is larger than 6 bytes",
    ),
    # NOTE: the part header limits were not held for a kept form at all.
    "part-header-size": (
        {"max_part_header_size": 60},
        _field_of(b"x", b"; charset=utf-8; x=" + b"y" * 40),
        MULTIPART,
        413,
        "multipart limit reached: a part's headers are too long",
    ),
    "part-headers": (
        {"max_part_headers": 2},
        _parts_of(1).replace(b"\r\n\r\n", b"\r\nX-A: 1\r\nX-B: 2\r\n\r\n", 1),
        MULTIPART,
        413,
        "multipart limit reached: a part has too many header lines",
    ),
    "form-header-size": (
        {"max_form_header_size": 100},
        _parts_of(3),
        MULTIPART,
        413,
        "multipart limit reached: the parts' headers are too long together",
    ),
    # NOTE: a form past several limits: a kept form's check took the limits one at a time
    # (the parts, the files, the part heads, then the fields), where a read meets them in the
    # order of the body, and answered with another one: the parts for a first field past
    # max_field_size, the files for the fields' memory or a file's head too long, a head's
    # bytes for its third line past max_part_headers.
    "field-before-parts": (
        {"max_field_size": 5, "max_form_parts": 2},
        _parts_of(3, size=50),
        MULTIPART,
        413,
        "form field 'a' is larger than 5 bytes",
    ),
    "memory-before-files": (
        {"max_form_memory": 8, "max_form_files": 1},
        _field_of(b"x" * 10)[: -len(b"--b--\r\n")] + _parts_of(2, filename=True),
        MULTIPART,
        413,
        "form fields are larger than 8 bytes",
    ),
    "head-before-files": (
        {"max_form_files": 1, "max_part_header_size": 60},
        _parts_of(1, filename=True)[: -len(b"--b--\r\n")]
        + _parts_of(1, filename=True).replace(b"\r\n\r\n", b"\r\nX-A: 1\r\n\r\n", 1),
        MULTIPART,
        413,
        "multipart limit reached: a part's headers are too long",
    ),
    "lines-before-bytes": (
        {"max_part_headers": 2, "max_part_header_size": 80},
        _parts_of(1).replace(b"\r\n\r\n", b"\r\nX-A: 1\r\nX-B: %s\r\n\r\n" % (b"y" * 50), 1),
        MULTIPART,
        413,
        "multipart limit reached: a part has too many header lines",
    ),
    "urlencoded-memory": (
        {"max_form_memory": 8},
        b"a=xxxxxxxxxx",
        FORM,
        413,
        "form fields are larger than 8 bytes",
    ),
    "urlencoded-fields": (
        {"max_query_params": 2},
        b"a=1&b=2&c=3",
        FORM,
        400,
        "more than 2 query or form fields",
    ),
    # NOTE: max_field_size held for multipart fields alone; a urlencoded field is measured
    # in bytes once percent-decoded, as a multipart field's bytes are.
    "urlencoded-field": (
        {"max_field_size": 5},
        b"b=1&a=" + b"%C3%A9" * 3,
        FORM,
        413,
        "form field 'a' is larger than 5 bytes",
    ),
    # NOTE: past several, as its read meets them: the body's bytes, its fields' count, then
    # each field's bytes.
    "urlencoded-fields-before-field": (
        {"max_query_params": 1, "max_field_size": 2},
        b"a=xxxx&b=1",
        FORM,
        400,
        "more than 1 query or form fields",
    ),
    "urlencoded-memory-before-field": (
        {"max_form_memory": 9, "max_field_size": 2},
        b"a=xxxx&b=1",
        FORM,
        413,
        "form fields are larger than 9 bytes",
    ),
    # NOTE: the parser counts the empty fields too (as parse_qsl does), where a kept form's
    # check counted its items: one field and three empty ones passed max_query_params=2.
    "urlencoded-empty-fields": (
        {"max_query_params": 2},
        b"a=1&&&",
        FORM,
        400,
        "more than 2 query or form fields",
    ),
}


async def _async_items(request: Request) -> int:
    return len((await request.aform()).multi_items())


FORM_ITEMS = (lambda r: len(r.form().multi_items()), _async_items)


@pytest.mark.parametrize("limit", sorted(FORM_LIMITS))
def test_a_form_read_by_a_flow_is_held_to_the_routes_form_limits(
    make_client: MakeClient, colour: str, limit: str
) -> None:
    # NOTE: only max_body_size was held: a flow's form(), read under the app's form limits,
    # gave the handler of a route of max_form_parts=2 a form of 5 parts (and so for the
    # files, a field's size, the fields' memory and the urlencoded fields' count).
    limits, body, headers, status, text = FORM_LIMITS[limit]
    app = _app(colour, lambda request: request.aform(), FORM_ITEMS, limits)
    client = make_client(app)
    answer = client.post("/", content=body, headers=headers)
    assert (answer.status_code, answer.text) == (status, text)
    # NOTE: the handler's own read answers the same without the flow's.
    plain = _app(colour, lambda request: _len_of(_nothing()), FORM_ITEMS, limits)
    answer = make_client(plain).post("/", content=body, headers=headers)
    assert (answer.status_code, answer.text) == (status, text)


async def _nothing() -> bytes:
    return b""


def test_a_form_within_the_routes_form_limits_is_given_again(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: a form read under the route's own limits, every limit reached and none passed
    # (a field of 5 bytes in 3 characters, 2 files, 4 parts, a widest part head of 58 bytes
    # in 1 line, 209 bytes of heads), is given again by a second read.
    limits = {
        "max_field_size": 5,
        "max_form_files": 2,
        "max_form_parts": 4,
        "max_form_memory": 5,
        "max_part_header_size": 58,
        "max_part_headers": 1,
        "max_form_header_size": 209,
    }
    file_part = b'--b\r\nContent-Disposition: form-data; name="f"; filename="f.txt"\r\n\r\nxyz\r\n'
    body = (
        b'--b\r\nContent-Disposition: form-data; name="a"\r\n\r\n'
        + "éé!".encode()
        + b"\r\n"
        + file_part * 2
        + b'--b\r\nContent-Disposition: form-data; name="e"; filename=""\r\n\r\n\r\n--b--\r\n'
    )
    app = _app(colour, lambda request: _len_of(_nothing()), (_twice, _atwice), limits)
    answer = make_client(app).post("/", content=body, headers=MULTIPART)
    assert (answer.status_code, answer.json()) == (200, {"read": 4})


def _twice(request: Request) -> int:
    request.form()
    return len(request.form().multi_items())


async def _atwice(request: Request) -> int:
    await request.aform()
    return len((await request.aform()).multi_items())


def _random_part(rng: random.Random, index: int) -> bytes:
    kind = rng.choice(["field", "file", "empty-input", "named-empty"])
    disposition = b'Content-Disposition: form-data; name="p%d"' % index
    if kind == "file":
        disposition += b'; filename="f%d.txt"' % index
    elif kind in ("empty-input", "named-empty"):
        disposition += b'; filename=""'
    lines = [disposition] + [b"X-%d: %s" % (n, b"h" * rng.randrange(40)) for n in range(3)]
    data = b"" if kind == "empty-input" else "é".encode() * rng.randrange(12)
    return b"--b\r\n" + b"\r\n".join(lines[: rng.randrange(1, 5)]) + b"\r\n\r\n" + data + b"\r\n"


def _answer(body: bytes, limits: Limits, kept: FormData | None = None) -> str:
    builder = FormBuilder(MULTIPART["content-type"], limits)
    try:
        if kept is None:
            builder.feed_all([body]).close()
        else:
            check_kept_form(kept, limits, len(body), urlencoded=False)
    except HTTPError as error:
        builder.discard()
        return f"{error.status} {error.detail}"
    return "read"


def test_a_kept_form_past_several_limits_answers_as_its_read_does() -> None:
    # NOTE: forms of random parts under random limits: the check of the form a flow read under
    # the app's limits gives the answer the route's own read (in one chunk) gives, the first
    # limit the body meets, part by part, each head line by line.
    rng = random.Random(261)
    for _ in range(400):
        body = b"".join(_random_part(rng, n) for n in range(rng.randrange(1, 7))) + b"--b--\r\n"
        limits = Limits(
            max_form_parts=rng.randrange(1, 7),
            max_form_files=rng.randrange(0, 4),
            max_field_size=rng.randrange(0, 24),
            max_form_memory=rng.randrange(0, 60),
            max_part_header_size=rng.randrange(40, 160),
            max_part_headers=rng.randrange(1, 5),
            max_form_header_size=rng.randrange(40, 600),
        )
        kept = FormBuilder(MULTIPART["content-type"], Limits()).feed_all([body])
        try:
            assert _answer(body, limits, kept) == _answer(body, limits), (body, limits)
        finally:
            kept.close()


@pytest.mark.parametrize("line", [b"v", b"v" * 300], ids=["short-lines", "long-lines"])
def test_a_forms_measure_holds_little_for_a_thousand_parts_of_eight_head_lines(
    line: bytes,
) -> None:
    # NOTE: what a form keeps for the check of a kept form: a list of each part's head lines
    # (an int object each past 256 bytes) and a tuple a part held 200 KB for 1,000 parts of
    # eight short lines, 3 times the form's own items, and 396 KB for lines of 300 bytes,
    # on every form read, kept by a flow or not. Now 4 bytes a line and 32 bytes a part.
    head = b"\r\n".join(b"X-%d: %s" % (n, line) for n in range(7))
    body = b"".join(
        b'--b\r\nContent-Disposition: form-data; name="f%d"\r\n%s\r\n\r\nv\r\n' % (n, head)
        for n in range(1000)
    )
    limits = Limits(max_form_header_size=len(body))
    tracemalloc.start()  # NOTE: it counts only what is allocated while it traces.
    try:
        form = FormBuilder(MULTIPART["content-type"], limits).feed_all([body + b"--b--\r\n"])
        before = tracemalloc.get_traced_memory()[0]
        form._measure = ((), (), (), 0, limits)
        let_go = before - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # NOTE: typically 64 KB: 32 of the lines' sizes, 24 of the parts' numbers, 8 of names.
    assert let_go < 90_000, f"{let_go} bytes kept"
    assert len(form) == 1000
    form.close()


# NOTE: each read a flow can make of the body before routing (async: a flow runs inline).
async def _flow_iter_parts(request: Request) -> None:
    async for part in request.aiter_parts():
        async for _ in part.aiter_bytes():
            pass


async def _flow_iter_bytes(request: Request) -> None:
    async for _ in request.aiter_bytes():
        pass


FLOW_READS: dict[str, Callable[[Request], Awaitable[Any]]] = {
    "aread": lambda request: request.aread(),
    "atext": lambda request: request.atext(),
    "aform": lambda request: request.aform(),
    "aiter_parts": _flow_iter_parts,
    "aiter_bytes": _flow_iter_bytes,
}


def _refusing_app(
    colour: str,
    flow_read: Callable[[Request], Awaitable[Any]],
    read: Any,
    app_limits: dict[str, int],
    route_limits: dict[str, int],
) -> App:
    """An app of ``app_limits`` whose flow reads the body and goes on past the read's 4xx, and
    a route on ``/`` of larger ``route_limits`` whose handler reads it again with ``read``."""
    app = App(limits=Limits(**app_limits))

    @app.middleware
    async def early(request: Request) -> Any:
        with contextlib.suppress(HTTPError):
            await flow_read(request)
        yield

    sync_read, async_read = read
    if colour == "sync":

        @app.post("/", limits=route_limits)
        def handler(request: Request) -> dict[str, Any]:
            return {"read": sync_read(request)}

    else:

        @app.post("/", limits=route_limits)
        async def ahandler(request: Request) -> dict[str, Any]:
            return {"read": await async_read(request)}

    return app


def _framed(body: bytes, framing: str) -> Any:
    """``body`` with a Content-Length, or chunked (the test client's iterable content)."""
    return body if framing == "length" else iter([body[:50], body[50:]])


HANDLER_READS = {**READS, "parts": (_sync_parts, _async_parts)}


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("kind", sorted(HANDLER_READS))
@pytest.mark.parametrize("flow_read", sorted(FLOW_READS))
def test_a_body_a_flow_refused_is_refused_on_a_route_of_a_larger_limit(
    make_client: MakeClient, colour: str, flow_read: str, kind: str, framing: str
) -> None:
    # NOTE: under WSGI a chunked body comes with a Content-Length (Waitress, wsgiref and the
    # test client buffer it), refused from it before reading: that refusal was not kept, and
    # the route's read took the body with a 200, where ASGI's read-time 413 was kept.
    app = _refusing_app(
        colour,
        FLOW_READS[flow_read],
        HANDLER_READS[kind],
        {"max_body_size": ROUTE_LIMIT},
        {"max_body_size": 100 * ROUTE_LIMIT},
    )
    client = make_client(app)
    body = _multipart(b"x" * 500)
    answer = client.post("/", content=_framed(body, framing), headers=MULTIPART)
    assert (answer.status_code, answer.text) == (413, "request body is larger than 100 bytes")
    if flow_read in ("aread", "atext"):  # NOTE: the reads that keep the body, for any read.
        small = _multipart(b"x" * 10)
        answer = client.post("/", content=_framed(small, framing), headers=MULTIPART)
        assert answer.json() == {"read": 10 if kind in ("form", "parts") else len(small)}


JSON_READS = (lambda r: r.json(), lambda r: r.ajson())


@pytest.mark.parametrize("framing", ["length", "chunked"])
@pytest.mark.parametrize("limit", ["max_json_size", "max_body_size"])
def test_json_a_flow_refused_is_refused_on_a_route_of_a_larger_limit(
    make_client: MakeClient, colour: str, limit: str, framing: str
) -> None:
    flow = lambda request: request.ajson()  # noqa: E731
    app = _refusing_app(colour, flow, JSON_READS, {limit: ROUTE_LIMIT}, {limit: 100 * ROUTE_LIMIT})
    client = make_client(app)
    body = json.dumps(["x" * 500]).encode()
    answer = client.post("/", content=_framed(body, framing), headers=JSON_HEADERS)
    what = "JSON body" if limit == "max_json_size" else "request body"
    assert (answer.status_code, answer.text) == (413, f"{what} is larger than 100 bytes")
    small = client.post("/", content=_framed(b'["x"]', framing), headers=JSON_HEADERS)
    assert small.json() == {"read": ["x"]}


def test_a_read_after_a_json_refused_by_its_length_gets_the_body(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: json()'s 413 by max_json_size, from the Content-Length, read nothing: read() still
    # takes the body within max_body_size (json() again gets the 413).
    body = json.dumps(["x" * 500]).encode()

    def again(request: Request) -> Any:
        refused = []
        for read in (request.json, request.read, request.json):
            try:
                refused.append(len(read()))
            except HTTPError as exc:
                refused.append(exc.status)
        return refused

    async def aagain(request: Request) -> Any:
        refused = []
        for read in (request.ajson, request.aread, request.ajson):
            try:
                refused.append(len(await read()))
            except HTTPError as exc:
                refused.append(exc.status)
        return refused

    app = _refusing_app(
        colour, lambda r: r.ajson(), (again, aagain), {"max_json_size": ROUTE_LIMIT}, {}
    )
    answer = make_client(app).post("/", content=body, headers=JSON_HEADERS)
    assert answer.json() == {"read": [413, len(body), 413]}


def test_a_body_a_flow_refused_names_a_smaller_route_limit(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: the 413 an app flow's read kept from the Content-Length named the app's limit on a
    # route of a smaller one (1,000 bytes where the route takes 100), where the route's own
    # read refuses the same length naming its own, as it did before the 413 was kept.
    app = _refusing_app(
        colour,
        FLOW_READS["aread"],
        READS["read"],
        {"max_body_size": 10 * ROUTE_LIMIT},
        {"max_body_size": ROUTE_LIMIT},
    )
    answer = make_client(app).post("/", content=b"x" * 5000)
    assert (answer.status_code, answer.text) == (413, "request body is larger than 100 bytes")


def test_json_a_flow_refused_names_a_smaller_route_limit(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: as for the body: json()'s kept 413 named the app's max_json_size.
    flow = lambda request: request.ajson()  # noqa: E731
    limit = "max_json_size"
    app = _refusing_app(colour, flow, JSON_READS, {limit: 10 * ROUTE_LIMIT}, {limit: ROUTE_LIMIT})
    body = json.dumps(["x" * 5000]).encode()
    answer = make_client(app).post("/", content=body, headers=JSON_HEADERS)
    assert (answer.status_code, answer.text) == (413, "JSON body is larger than 100 bytes")
