"""Request bodies under both interfaces and in both handler colours.

Each test writes its handler as ``def`` (sync twins: ``read``, ``text``...) or ``async def`` (async
twins: ``aread``, ``atext``...) according to the ``colour`` fixture.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour, traced_lines
from drive import (
    asgi_call,
    body_messages,
    chunked,
    http_scope,
    response_body,
    wsgi_environ,
    wsgi_post,
)

from microweb import App, ClientDisconnect, HTTPError, Limits, Request, Response
from microweb._body import CHUNK_SIZE, HOP_CHUNKS, READ_HOP_CHUNKS
from microweb._forms import FORM_READ
from microweb._framing import switch_refusal, transfer_coding_refusal
from microweb._strict_json import parse_json
from microweb.testing import TestClient

SyncOp = Callable[[Request], Any]
AsyncOp = Callable[[Request], Awaitable[Any]]


# -- helpers ---------------------------------------------------------------------------------


def add_body_route(
    app: App,
    colour: str,
    sync_op: SyncOp,
    async_op: AsyncOp,
    path: str = "/",
    **options: Any,
) -> None:
    """Register a POST handler on ``path`` that returns ``sync_op`` or ``await async_op``."""
    if colour == "sync":

        def handler(request: Request) -> Any:
            return sync_op(request)

    else:

        async def handler(request: Request) -> Any:
            return await async_op(request)

    app.post(path, name=path, **options)(handler)


def body_app(colour: str, sync_op: SyncOp, async_op: AsyncOp, **options: Any) -> App:
    """Build an app with one body route on ``/`` (see ``add_body_route``)."""
    app = App(limits=options.pop("limits", None))
    add_body_route(app, colour, sync_op, async_op, **options)
    return app


def read_app(colour: str, **options: Any) -> App:
    """An app that answers with the body it read."""
    return body_app(colour, Request.read, Request.aread, **options)


def text_app(colour: str) -> App:
    """An app that answers with the decoded body."""
    return body_app(colour, Request.text, Request.atext)


def json_app(colour: str) -> App:
    """An app that answers ``{"value": <parsed JSON body>}``."""

    def sync_json(request: Request) -> Response:
        return Response.json({"value": request.json()})

    async def async_json(request: Request) -> Response:
        return Response.json({"value": await request.ajson()})

    return body_app(colour, sync_json, async_json)


def sync_chunks(request: Request) -> list[bytes]:
    return list(request.iter_bytes())


async def async_chunks(request: Request) -> list[bytes]:
    return [chunk async for chunk in request.aiter_bytes()]


# -- read, text ------------------------------------------------------------------------------


def test_read(make_client: MakeClient, colour: str) -> None:
    client = make_client(read_app(colour))
    response = client.post("/", content=b"hello \x00\xff body")
    assert response.status_code == 200
    assert response.content == b"hello \x00\xff body"
    assert client.post("/").content == b""


def test_read_a_chunked_body(make_client: MakeClient, colour: str, interface: str) -> None:
    client = make_client(read_app(colour))
    response = client.post("/", content=chunked(interface, [b"one ", b"two ", b"three"]))
    assert response.status_code == 200
    assert response.content == b"one two three"


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        (None, "café".encode(), "café"),
        ("text/plain", "café".encode(), "café"),
        ("text/plain; charset=utf-8", "café".encode(), "café"),
        ("text/plain; charset=latin-1", "café".encode("latin-1"), "café"),
        ('text/plain; charset="ISO-8859-1"', "café".encode("latin-1"), "café"),
        ("text/plain; charset=utf-16", "café".encode("utf-16"), "café"),
    ],
)
def test_text_uses_the_charset_of_the_content_type(
    make_client: MakeClient, colour: str, content_type: str | None, body: bytes, expected: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = make_client(text_app(colour)).post("/", content=body, headers=headers)
    assert response.status_code == 200
    assert response.text == expected


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain; charset=nope", b"abc"),  # unknown charset
        ("text/plain; charset=rot13", b"abc"),  # a codec, but not a text encoding
        ("text/plain", b"caf\xe9"),  # latin-1 bytes sent as UTF-8
        ("text/plain; charset=ascii", "café".encode()),
        # Python codecs that are not WHATWG text encodings (TRAPS.md 24).
        ("text/plain; charset=undefined", b"abc"),
        ("text/plain; charset=unicode_escape", b"\\x41"),
        ("text/plain; charset=idna", b"abc"),
        ("text/plain; charset=base64", b"YWJj"),
        ("text/plain; charset=utf-32", "abc".encode("utf-32")),
        ("text/plain; charset=replacement", b"abc"),
        ("text/plain; charset=", b"abc"),
    ],
)
def test_text_with_bad_charset_or_bytes_is_400(
    make_client: MakeClient, colour: str, content_type: str, body: bytes
) -> None:
    response = make_client(text_app(colour)).post(
        "/", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 400


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("text/plain; charset=utf-8", b"\xe9", "the body is not valid utf-8"),
        # NOTE: the codec that failed, the byte order mark's: it named the label's, latin-1,
        # which any bytes are.
        (
            "text/plain; charset=latin1",
            b"\xff\xfeabc",
            "the body is not valid utf-16-le (as its byte order mark says)",
        ),
        (
            "text/plain; charset=windows-1252",
            b"\xef\xbb\xbf\xe9",
            "the body is not valid utf-8 (as its byte order mark says)",
        ),
    ],
    ids=["utf-8", "latin1-with-utf-16-bom", "cp1252-with-utf-8-bom"],
)
def test_text_that_does_not_decode_names_the_codec_that_failed(
    make_client: MakeClient, colour: str, content_type: str, body: bytes, message: str
) -> None:
    response = make_client(text_app(colour)).post(
        "/", content=body, headers={"content-type": content_type}
    )
    assert (response.status_code, response.text) == (400, message)


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain; charset=utf-8; charset=utf-16",
        "text/plain; charset=utf-8; CHARSET=utf-8",
        'text/plain; charset="utf-8"; charset=utf-16',
        "text/plain; charset=utf-8; charset*=utf-8''utf-16",
    ],
)
def test_text_with_a_charset_named_twice_is_400(
    make_client: MakeClient, colour: str, content_type: str
) -> None:
    # SPEC: RFC 6838 4.3, a parameter given twice is an error. The last one was taken, where a
    # proxy or a firewall that reads the first decodes other text than the app.
    response = make_client(text_app(colour)).post(
        "/", content="hi".encode("utf-16"), headers={"content-type": content_type}
    )
    assert (response.status_code, response.text) == (
        400,
        "the body's Content-Type names its charset twice",
    )


def test_text_with_a_charset_and_a_name_holding_charset_is_read(
    make_client: MakeClient, colour: str
) -> None:
    content_type = 'text/plain; x="charset=utf-16"; charset=utf-8; xcharset=a'
    response = make_client(text_app(colour)).post(
        "/", content="caf\u00e9".encode(), headers={"content-type": content_type}
    )
    assert (response.status_code, response.text) == (200, "caf\u00e9")


def test_text_with_punycode_charset_is_400_before_decoding(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: decoding this as punycode costs seconds of CPU (quadratic), stalling an event loop.
    body = b"a" * 300_000 + b"-" + b"9" * 300_000
    response = make_client(text_app(colour)).post(
        "/", content=body, headers={"content-type": "text/plain; charset=punycode"}
    )
    assert response.status_code == 400
    assert "unsupported charset" in response.text
    assert "punycode" not in response.text


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("text/plain; charset=UTF8", "café".encode(), "café"),
        ("text/plain; charset= Windows-1251 ", "привет".encode("cp1251"), "привет"),
        ("text/plain; charset=shift_jis", "日本".encode("cp932"), "日本"),
        ("text/plain; charset=euc-kr", "한국".encode("cp949"), "한국"),
        ("text/plain; charset=gbk", "中文".encode("gbk"), "中文"),
        ("text/plain; charset=koi8-r", "мир".encode("koi8-r"), "мир"),
        ("text/plain; charset=latin1", b"\x80\xe9", "\x80é"),  # ISO-8859-1, not windows-1252
        ("text/plain; charset=windows-1252", b"\x80\xe9", "€é"),
        ("text/plain; charset=utf-16", "hé".encode("utf-16-le"), "hé"),  # no BOM: little end
        ("text/plain; charset=utf-16", "hé".encode("utf-16-be").join([b"\xfe\xff", b""]), "hé"),
        ("text/plain; charset=utf-16be", "hé".encode("utf-16-be"), "hé"),
        ("text/plain", b"\xef\xbb\xbfhi", "hi"),  # a UTF-8 byte order mark is dropped
        # NOTE: a byte order mark wins over any label, as in WHATWG's decode: it won over a
        # Unicode label only, and a UTF-8 file labelled windows-1252 read as "ï»¿hÃ©".
        ("text/plain; charset=windows-1252", b"\xef\xbb\xbfh\xc3\xa9", "hé"),
        ("text/plain; charset=iso-8859-1", b"\xef\xbb\xbfh\xc3\xa9", "hé"),
        ("text/plain; charset=us-ascii", b"\xef\xbb\xbfh\xc3\xa9", "hé"),
        ("text/plain; charset=shift_jis", b"\xff\xfe" + "hé".encode("utf-16-le"), "hé"),
        ("text/plain; charset=utf-8", b"\xfe\xff" + "hé".encode("utf-16-be"), "hé"),
    ],
)
def test_text_accepts_whatwg_charset_labels(
    make_client: MakeClient, colour: str, content_type: str, body: bytes, expected: str
) -> None:
    response = make_client(text_app(colour)).post(
        "/", content=body, headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text
    assert response.text == expected


# -- json ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        "application/problem+json; charset=utf-8",
    ],
)
def test_json_accepts_json_media_types(
    make_client: MakeClient, colour: str, content_type: str
) -> None:
    payload = {"name": "café", "tags": [1, 2.5, None, True]}
    response = make_client(json_app(colour)).post(
        "/", content=json.dumps(payload).encode(), headers={"content-type": content_type}
    )
    assert response.status_code == 200
    assert response.json() == {"value": payload}


def test_json_via_httpx_json_argument(make_client: MakeClient, colour: str) -> None:
    response = make_client(json_app(colour)).post("/", json=[1, {"a": "b"}])
    assert response.json() == {"value": [1, {"a": "b"}]}


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/jsonx", "application/x-www-form-urlencoded"]
)
def test_json_with_another_content_type_is_415(
    make_client: MakeClient, colour: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = make_client(json_app(colour)).post("/", content=b'{"a": 1}', headers=headers)
    assert response.status_code == 415


DEEP = 100_000


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b'{"a": 1} trailing',
        b"[NaN]",
        b'{"a": Infinity}',
        b"-Infinity",
        json.dumps({"a": "café"}).encode("utf-16"),
        b'{"a": "caf\xe9"}',
        b"[" * DEEP + b"]" * DEEP,
        b'{"a":' * DEEP + b"1" + b"}" * DEEP,
        b"[" * DEEP,
        b'{"a": 1e999}',
        b"[-1e400]",
        b"[" + b"9" * 400 + b".0]",
    ],
    ids=[
        "invalid",
        "empty",
        "trailing",
        "nan",
        "infinity",
        "minus-infinity",
        "utf-16",
        "latin-1",
        "deep-array",
        "deep-object",
        "deep-unterminated",
        "float-overflow",
        "negative-float-overflow",
        "long-float-overflow",
    ],
)
def test_invalid_json_is_400(make_client: MakeClient, colour: str, body: bytes) -> None:
    response = make_client(json_app(colour)).post(
        "/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


@pytest.mark.parametrize("sign", ["", "-"])
@pytest.mark.usefixtures("int_digits_limit")
def test_json_integers_past_4300_digits_are_400(
    make_client: MakeClient, colour: str, sign: str
) -> None:
    client = make_client(json_app(colour))
    longest = sign + "7" * 4300
    answer = client.post("/", content=f"[{longest}]", headers={"content-type": "application/json"})
    assert answer.json() == {"value": [int(longest)]}
    # NOTE: 1 MB of digits (under max_json_size): int() of it takes 5.3 s, the limit lifted.
    for digits in (4301, 1_000_000):
        body = f'{{"n": {sign}{"7" * digits}}}'
        response = client.post("/", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 400
        assert "integer of more than 4300 digits" in response.text


def test_a_lower_int_digit_limit_of_the_app_is_kept_and_named(
    make_client: MakeClient, colour: str
) -> None:
    if not hasattr(sys, "set_int_max_str_digits"):
        pytest.skip("this Python has no int() digit limit")
    saved = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        response = make_client(json_app(colour)).post(
            "/", content="[" + "7" * 641 + "]", headers={"content-type": "application/json"}
        )
    finally:
        sys.set_int_max_str_digits(saved)
    assert response.status_code == 400
    assert "integer of more than 640 digits" in response.text


@pytest.mark.usefixtures("int_digits_limit")
def test_int_segments_past_4300_digits_do_not_match(make_client: MakeClient) -> None:
    app = App()

    @app.get("/n/{n:int}")
    def number(request: Request, n: int) -> dict[str, int]:
        return {"digits": len(str(n))}

    client = make_client(app)
    assert client.get("/n/" + "9" * 4300).json() == {"digits": 4300}
    assert client.get("/n/" + "9" * 4301).status_code == 404
    assert client.get("/n/" + "9" * 60_000).status_code == 404


def silent_json_app(colour: str) -> App:
    """An app that answers ``{"value": ..., "loud": status}``: ``json(silent=True)``, then the
    status a plain ``json()`` gives (200 if it parses)."""

    def loud_status(parse: Callable[[], Any]) -> int:
        try:
            parse()
        except HTTPError as exc:
            return exc.status
        return 200

    def sync_json(request: Request) -> Response:
        value = request.json(silent=True)
        return Response.json({"value": value, "loud": loud_status(request.json)})

    async def async_json(request: Request) -> Response:
        value = await request.ajson(silent=True)
        try:
            await request.ajson()
        except HTTPError as exc:
            return Response.json({"value": value, "loud": exc.status})
        return Response.json({"value": value, "loud": 200})

    return body_app(colour, sync_json, async_json)


@pytest.mark.parametrize(
    ("body", "content_type", "answer"),
    [
        (b'{"a": 1}', "application/json", {"value": {"a": 1}, "loud": 200}),
        (b"{not json", "application/json", {"value": None, "loud": 400}),
        (b"", "application/json", {"value": None, "loud": 400}),
        (b'{"a": 1}', "text/plain", {"value": None, "loud": 415}),
        (b"[" * DEEP, "application/json", {"value": None, "loud": 400}),
    ],
    ids=["valid", "invalid", "empty", "another-type", "deep"],
)
def test_silent_json_gives_none_for_a_body_that_is_not_json(
    make_client: MakeClient, colour: str, body: bytes, content_type: str, answer: Any
) -> None:
    # NOTE: Flask's get_json(silent=True); the failure is not kept for a later plain json().
    response = make_client(silent_json_app(colour)).post(
        "/", content=body, headers={"content-type": content_type}
    )
    assert (response.status_code, response.json()) == (200, answer)


def forced_json_app(colour: str, limits: Limits | None = None, **options: bool) -> App:
    """An app that answers the JSON of ``json(force=True, **options)``, or its error."""
    return body_app(
        colour,
        lambda request: Response.json({"value": request.json(force=True, **options)}),
        _async_forced(options),
        limits=limits,
    )


def _async_forced(options: dict[str, bool]) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        return Response.json({"value": await request.ajson(force=True, **options)})

    return handler


@pytest.mark.parametrize("content_type", ["text/plain; charset=UTF-8", "", "application/json"])
def test_forced_json_parses_the_body_whatever_its_type(
    make_client: MakeClient, colour: str, content_type: str
) -> None:
    # NOTE: Flask's get_json(force=True): AWS SNS, say, posts its JSON as text/plain.
    headers = {"content-type": content_type} if content_type else {}
    response = make_client(forced_json_app(colour)).post(
        "/", content=b'{"Type": "Notification"}', headers=headers
    )
    assert (response.status_code, response.json()) == (200, {"value": {"Type": "Notification"}})


@pytest.mark.parametrize(
    ("body", "silent", "answer"),
    [(b"{not json", False, 400), (b"{not json", True, None), (b"x" * 2000, True, 413)],
    ids=["invalid", "invalid-silent", "too-large-silent"],
)
def test_forced_json_still_refuses_what_is_not_json_or_too_large(
    make_client: MakeClient, colour: str, body: bytes, silent: bool, answer: int | None
) -> None:
    app = forced_json_app(colour, Limits(max_json_size=1000), silent=silent)
    response = make_client(app).post("/", content=body, headers={"content-type": "text/plain"})
    if answer is None:
        assert (response.status_code, response.json()) == (200, {"value": None})
    else:
        assert response.status_code == answer


@pytest.mark.parametrize("force", [False, True])
def test_silent_json_after_form_is_none(make_client: MakeClient, colour: str, force: bool) -> None:
    # NOTE: form() streamed the body; json(silent=True) read it again: RuntimeError, a 500
    # (with force=True too, which skipped the type check that gave None: Flask gives None).
    def sync_op(request: Request) -> Response:
        form = request.form()
        json = request.json(silent=True, force=force)
        return Response.json({"form": dict(form), "json": json})

    async def async_op(request: Request) -> Response:
        form = await request.aform()
        json = await request.ajson(silent=True, force=force)
        return Response.json({"form": dict(form), "json": json})

    response = make_client(body_app(colour, sync_op, async_op)).post("/", data={"a": "1"})
    assert (response.status_code, response.json()) == (200, {"form": {"a": "1"}, "json": None})


@pytest.mark.parametrize(("silent", "answer"), [(False, 415), (True, None)])
def test_json_of_another_type_is_refused_before_its_body_is_read(
    make_client: MakeClient, colour: str, silent: bool, answer: int | None
) -> None:
    # NOTE: the body was read first: past the limit, a 413 for a body that was not JSON anyway.
    def sync_op(request: Request) -> Response:
        return Response.json({"value": request.json(silent=silent)})

    async def async_op(request: Request) -> Response:
        return Response.json({"value": await request.ajson(silent=silent)})

    app = body_app(colour, sync_op, async_op, limits=Limits(max_body_size=4))
    response = make_client(app).post(
        "/", content=b"not json at all", headers={"content-type": "text/plain"}
    )
    if answer is None:
        assert (response.status_code, response.json()) == (200, {"value": None})
    else:
        assert response.status_code == answer


def test_json_after_the_body_was_streamed_names_itself(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: it named request.read(), which it calls, not the call the handler made.
    def sync_op(request: Request) -> str:
        list(request.iter_bytes())
        try:
            request.json()
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    async def async_op(request: Request) -> str:
        [chunk async for chunk in request.aiter_bytes()]
        try:
            await request.ajson()
        except RuntimeError as exc:
            return str(exc)
        return "no error"

    client = make_client(body_app(colour, sync_op, async_op))
    response = client.post("/", json={"a": 1})
    prefix = "" if colour == "sync" else "a"
    assert response.text.startswith(
        f"request.{prefix}json(): the body was already consumed by request.{prefix}iter_bytes()"
    )


def test_json_float_overflow_says_why(make_client: MakeClient, colour: str) -> None:
    response = make_client(json_app(colour)).post(
        "/", content=b'{"a": 1e999}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert "beyond the range of a float" in response.text


def test_json_big_finite_numbers_still_parse(make_client: MakeClient, colour: str) -> None:
    body = b'{"a": 1e308, "b": -2.5e-400, "c": 123456789012345678901234567890}'
    response = make_client(json_app(colour)).post(
        "/", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "value": {"a": 1e308, "b": -0.0, "c": 123456789012345678901234567890}
    }


def test_json_after_a_byte_order_mark_parses(make_client: MakeClient, colour: str) -> None:
    response = make_client(json_app(colour)).post(
        "/", content=b'\xef\xbb\xbf{"a": 1}', headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {"value": {"a": 1}}


# -- streaming -------------------------------------------------------------------------------


def test_iter_bytes_yields_chunks(make_client: MakeClient, colour: str, interface: str) -> None:
    parts = [bytes([65 + i]) * 50_000 for i in range(3)]
    seen: list[int] = []

    def sync_op(request: Request) -> bytes:
        chunks = sync_chunks(request)
        seen.extend(len(chunk) for chunk in chunks)
        return b"".join(chunks)

    async def async_op(request: Request) -> bytes:
        chunks = await async_chunks(request)
        seen.extend(len(chunk) for chunk in chunks)
        return b"".join(chunks)

    client = make_client(body_app(colour, sync_op, async_op))
    response = client.post("/", content=chunked(interface, parts))
    assert response.status_code == 200
    assert response.content == b"".join(parts)
    assert len(seen) >= 2, "the body should arrive in several chunks"
    assert all(seen)
    assert sum(seen) == 150_000


def test_iter_bytes_of_an_empty_body_yields_nothing(make_client: MakeClient, colour: str) -> None:
    def sync_op(request: Request) -> dict[str, int]:
        return {"chunks": len(sync_chunks(request))}

    async def async_op(request: Request) -> dict[str, int]:
        return {"chunks": len(await async_chunks(request))}

    client = make_client(body_app(colour, sync_op, async_op))
    assert client.post("/").json() == {"chunks": 0}


def test_iter_bytes_after_read_yields_the_cached_body(make_client: MakeClient, colour: str) -> None:
    def sync_op(request: Request) -> bytes:
        first = request.read()
        return first + b"|" + b"".join(sync_chunks(request))

    async def async_op(request: Request) -> bytes:
        first = await request.aread()
        return first + b"|" + b"".join(await async_chunks(request))

    client = make_client(body_app(colour, sync_op, async_op))
    assert client.post("/", content=b"abc").content == b"abc|abc"


def test_read_after_iter_bytes_consumed_the_body_is_an_error(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    def sync_op(request: Request) -> bytes:
        sync_chunks(request)
        return request.read()

    async def async_op(request: Request) -> bytes:
        await async_chunks(request)
        return await request.aread()

    client = make_client(body_app(colour, sync_op, async_op))
    with caplog.at_level("ERROR", logger="microweb"):
        response = client.post("/", content=b"abc")
    assert response.status_code == 500
    assert "consumed" in caplog.text


# -- one cache for both colours --------------------------------------------------------------


def test_a_flow_and_the_handler_share_one_cache(make_client: MakeClient, colour: str) -> None:
    app = App()
    flow_saw: list[Any] = []

    # NOTE: an async flow, because a sync flow must not block (DESIGN.md): under ASGI it runs
    # on the event loop, where request.read() is refused.
    @app.middleware
    async def peek(request: Request) -> AsyncIterator[None]:
        flow_saw.append(await request.aread())
        flow_saw.append(await request.ajson())
        yield

    def sync_op(request: Request) -> dict[str, Any]:
        body = request.read()
        return {"body": body.decode(), "text": request.text(), "json": request.json()}

    async def async_op(request: Request) -> dict[str, Any]:
        body = await request.aread()
        return {"body": body.decode(), "text": await request.atext(), "json": await request.ajson()}

    add_body_route(app, colour, sync_op, async_op)
    payload = b'{"k": [1, 2]}'
    response = make_client(app).post(
        "/", content=payload, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.json() == {
        "body": payload.decode(),
        "text": payload.decode(),
        "json": {"k": [1, 2]},
    }
    assert flow_saw == [payload, {"k": [1, 2]}]


class Refused(Exception):
    """What the handlers of the error handler test raise."""


@pytest.mark.parametrize("read_first", [False, True], ids=["unread", "read"])
def test_an_error_handler_reads_the_body_the_handler_left(
    make_client: MakeClient, colour: str, read_first: bool
) -> None:
    # NOTE: under ASGI a def handler runs in the pool and the error handler on the loop: the
    # body source, made in either, serves both (and one cache).
    app = App()

    @app.error_handler(Refused)
    async def refused(request: Request, exc: Refused) -> tuple[dict[str, Any], int]:
        return {"body": await request.atext(), "type": request.content_type}, 422

    def sync_op(request: Request) -> None:
        if read_first:
            request.read()
        raise Refused

    async def async_op(request: Request) -> None:
        if read_first:
            await request.aread()
        raise Refused

    add_body_route(app, colour, sync_op, async_op)
    response = make_client(app).post("/", content=b"ping", headers={"content-type": "text/plain"})
    assert (response.status_code, response.json()) == (422, {"body": "ping", "type": "text/plain"})


# -- the wrong colour ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "twin"),
    [
        ("read", "aread()"),
        ("text", "atext()"),
        ("json", "ajson()"),
        ("iter_bytes", "aiter_bytes()"),
    ],
)
def test_sync_body_method_in_async_handler_is_500_naming_the_twin(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, method: str, twin: str
) -> None:
    app = App()

    @app.post("/")
    async def wrong(request: Request) -> Any:
        result = getattr(request, method)()
        return b"".join(result) if method == "iter_bytes" else result

    client = make_client(app)
    with caplog.at_level("ERROR", logger="microweb"):
        response = client.post(
            "/", content=b'{"a": 1}', headers={"content-type": "application/json"}
        )
    assert response.status_code == 500
    assert twin not in response.text  # no detail without debug=True
    errors = [record for record in caplog.records if record.name == "microweb"]
    assert errors, "the error should be logged on the 'microweb' logger"
    assert any(
        record.exc_info is not None and f"request.{twin}" in str(record.exc_info[1])
        for record in errors
    ), [record.getMessage() for record in errors]


def test_sync_body_method_in_async_handler_shows_the_twin_in_debug(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = App(debug=True)

    @app.post("/")
    async def wrong(request: Request) -> bytes:
        return request.read()

    with caplog.at_level("ERROR", logger="microweb"):
        response = make_client(app).post("/", content=b"abc")
    assert response.status_code == 500
    assert "await request.aread()" in response.text


# -- limits ----------------------------------------------------------------------------------


def test_body_over_the_limit_is_413_before_reading(make_client: MakeClient, colour: str) -> None:
    seen: list[int] = []

    def sync_op(request: Request) -> str:
        for chunk in request.iter_bytes():
            seen.append(len(chunk))
        return "read"

    async def async_op(request: Request) -> str:
        async for chunk in request.aiter_bytes():
            seen.append(len(chunk))
        return "read"

    app = body_app(colour, sync_op, async_op, limits=Limits(max_body_size=10))
    client = make_client(app)
    assert client.post("/", content=b"x" * 10).text == "read"
    seen.clear()
    response = client.post("/", content=b"x" * 11)
    assert response.status_code == 413
    assert seen == [], "Content-Length says 11 > 10: nothing should be read"
    # The announced length decides, not the bytes sent: counting them would see 5 bytes, then
    # a body shorter than its Content-Length (400).
    response = client.post("/", content=b"x" * 5, headers={"content-length": "1000"})
    assert response.status_code == 413
    assert seen == []


def test_read_over_the_limit_is_413(make_client: MakeClient, colour: str) -> None:
    client = make_client(read_app(colour, limits=Limits(max_body_size=10)))
    assert client.post("/", content=b"x" * 10).status_code == 200
    assert client.post("/", content=b"x" * 1000).status_code == 413


def test_chunked_body_is_counted_while_reading(
    make_client: MakeClient, colour: str, interface: str
) -> None:
    seen: dict[str, Any] = {"chunks": []}

    def sync_op(request: Request) -> str:
        seen["content-length"] = request.headers.get("content-length")
        for chunk in request.iter_bytes():
            seen["chunks"].append(len(chunk))
        return "read"

    async def async_op(request: Request) -> str:
        seen["content-length"] = request.headers.get("content-length")
        async for chunk in request.aiter_bytes():
            seen["chunks"].append(len(chunk))
        return "read"

    app = body_app(colour, sync_op, async_op, limits=Limits(max_body_size=10))
    client = make_client(app)
    response = client.post("/", content=chunked(interface, [b"x" * 6, b"y" * 6, b"z" * 6]))
    assert response.status_code == 413
    if interface == "asgi":
        # A truly chunked request: no Content-Length, the 413 comes from counting.
        assert seen == {"content-length": None, "chunks": [6]}
    # Read whole with the twin methods too.
    read_client = make_client(read_app(colour, limits=Limits(max_body_size=10)))
    response = read_client.post("/", content=chunked(interface, [b"x" * 6, b"y" * 6]))
    assert response.status_code == 413
    response = read_client.post("/", content=chunked(interface, [b"x" * 5, b"y" * 5]))
    assert response.status_code == 200
    assert response.content == b"x" * 5 + b"y" * 5


def test_route_limits_override_the_app_limits(make_client: MakeClient, colour: str) -> None:
    app = App(limits=Limits(max_body_size=50))
    add_body_route(app, colour, Request.read, Request.aread, "/small", limits={"max_body_size": 10})
    add_body_route(app, colour, Request.read, Request.aread, "/big", limits={"max_body_size": 100})
    add_body_route(app, colour, Request.read, Request.aread, "/own", limits=Limits(max_body_size=5))
    add_body_route(app, colour, Request.read, Request.aread, "/default")
    client = make_client(app)
    assert client.post("/small", content=b"x" * 11).status_code == 413
    assert client.post("/small", content=b"x" * 10).status_code == 200
    assert client.post("/big", content=b"x" * 80).status_code == 200
    assert client.post("/big", content=b"x" * 101).status_code == 413
    assert client.post("/own", content=b"x" * 6).status_code == 413
    assert client.post("/default", content=b"x" * 50).status_code == 200
    assert client.post("/default", content=b"x" * 51).status_code == 413


def test_body_shorter_than_content_length_is_400(make_client: MakeClient, colour: str) -> None:
    client = make_client(read_app(colour))
    response = client.post("/", content=b"x" * 10, headers={"content-length": "100"})
    assert response.status_code == 400


def test_body_shorter_than_content_length_is_400_when_streamed(
    make_client: MakeClient, colour: str
) -> None:
    client = make_client(body_app(colour, sync_chunks, async_chunks))
    response = client.post("/", content=b"x" * 10, headers={"content-length": "100"})
    assert response.status_code == 400


@pytest.mark.parametrize("value", ["abc", "-1", "1.5", "0x10"])
def test_invalid_content_length_is_400(colour: str, value: str) -> None:
    # NOTE: ASGI only: under WSGI the server (and wsgiref.validate) refuses such a request
    # before the app is called.
    with TestClient(read_app(colour), interface="asgi") as client:
        response = client.post("/", content=b"", headers={"content-length": value})
    assert response.status_code == 400


def test_a_sync_generator_as_content_streams_under_both_interfaces(
    make_client: MakeClient,
) -> None:
    app = App()

    @app.post("/")
    async def handler(request: Request) -> dict[str, int]:
        return {"size": len(await request.aread())}

    response = make_client(app).post("/", content=(b"ab" for _ in range(3)))
    assert response.json() == {"size": 6}


# -- bridges: a body read across threads, in hops -----------------------------------------------
# An async def handler under WSGI reads wsgi.input in a worker thread, up to READ_HOP_CHUNKS
# chunks a hop, and a def handler under ASGI takes receive()'s messages through the loop, up
# to HOP_CHUNKS a hop.

LARGE = bytes(range(256)) * 4096  # NOTE: 1 MiB; past CHUNK_SIZE, so the reads hop.
MAX_HOP = HOP_CHUNKS * CHUNK_SIZE  # NOTE: the most one ASGI hop takes (1 MiB).
MAX_READ_HOP = READ_HOP_CHUNKS * CHUNK_SIZE  # NOTE: the most one WSGI hop reads (256 KiB).


class Sipping(io.BytesIO):
    """A ``wsgi.input`` giving at most ``most`` bytes per read, and counting its reads."""

    def __init__(self, data: bytes, most: int) -> None:
        super().__init__(data)
        self.most, self.reads = most, 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(self.most if size is None or size < 0 else min(size, self.most))


def wsgi_sizes(
    colour: str, stream: io.BytesIO, length: int | None, limits: Limits | None = None
) -> tuple[str, bytes]:
    """POST ``stream`` (``length`` bytes, ``None``: terminated) to an app answering how many
    bytes it streamed; status and answer."""
    app = body_app(
        colour, lambda r: str(len(b"".join(sync_chunks(r)))), _async_length, limits=limits
    )
    return wsgi_post(app, stream, None, length)


async def _async_length(request: Request) -> str:
    return str(len(b"".join(await async_chunks(request))))


class Asked(io.BytesIO):
    """A ``wsgi.input`` keeping the size of each read asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.asked: list[int] = []

    def read(self, size: int | None = -1) -> bytes:
        self.asked.append(-1 if size is None else size)
        return super().read(size)


@pytest.mark.parametrize("call", ["form", "stream"])
def test_form_reads_wsgi_input_in_larger_chunks_than_stream(call: str) -> None:
    # NOTE: WSGI only: under ASGI the server sizes the chunks (its receive() messages).
    boundary = "b0undary"
    data = LARGE * 2
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="f.bin"\r\n\r\n'
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    app = App()

    @app.post("/")
    def handler(request: Request) -> str:
        if call == "form":
            return str(request.form()["f"].size)
        return str(sum(len(chunk) for chunk in request.iter_bytes()))

    stream = Asked(body)
    _, answer = wsgi_post(app, stream, f"multipart/form-data; boundary={boundary}", len(body))
    assert answer == str(len(data) if call == "form" else len(body)).encode()
    assert max(stream.asked) == (FORM_READ if call == "form" else CHUNK_SIZE)


@pytest.mark.parametrize("most", [1000, 65536, 100_000])
@pytest.mark.parametrize("framing", ["content-length", "terminated"])
def test_a_large_wsgi_body_is_read_whole_whatever_each_read_gives(
    colour: str, most: int, framing: str
) -> None:
    length = len(LARGE) if framing == "content-length" else None
    status, body = wsgi_sizes(colour, Sipping(LARGE, most), length)
    assert (status[:3], body) == ("200", str(len(LARGE)).encode())


def test_a_large_wsgi_body_ending_early_is_400(colour: str) -> None:
    status, body = wsgi_sizes(colour, Sipping(LARGE[:300_000], 5000), len(LARGE))
    assert status.startswith("400")
    assert b"shorter than its Content-Length" in body


def test_a_large_wsgi_body_reaches_the_handler_in_order(interface: str, colour: str) -> None:
    app = body_app(colour, lambda r: Response(b"".join(sync_chunks(r))), _async_echo)
    with TestClient(app, interface=interface) as client:
        assert client.post("/", content=LARGE).content == LARGE


async def _async_echo(request: Request) -> Response:
    return Response(b"".join(await async_chunks(request)))


def test_an_async_handler_under_wsgi_reads_a_large_body_in_few_hops() -> None:
    # NOTE: 1 chunk in the first hop, then 2, 4 and 4 again (READ_HOP_CHUNKS): 1 MiB in 16
    # chunks takes 6 hops; the reads are counted, the hops seen by the threads that make them.
    threads: set[int] = set()
    stream = Sipping(LARGE, 65536)
    original = stream.read

    def read(size: int | None = -1) -> bytes:
        threads.add(threading.get_ident())
        return original(size)

    stream.read = read  # type: ignore[method-assign]
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(fn: Any, *args: Any) -> Any:
        hops.append(getattr(fn, "__name__", "?"))
        return await real(fn, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(asyncio, "to_thread", counted)
        status, body = wsgi_sizes("async", stream, len(LARGE))
    assert (status[:3], body) == ("200", str(len(LARGE)).encode())
    assert READ_HOP_CHUNKS == 4
    assert hops == ["_read_chunks"] * 6
    assert threading.get_ident() not in threads


def async_read_peaks(sizes: list[int], framing: str) -> list[int]:
    """The most bytes traced at once (every thread) while an ``async def`` handler under WSGI
    takes each body of ``sizes`` from ``wsgi.input``, framed by ``Content-Length`` or not."""
    app = App()

    @app.post("/")
    async def count(request: Request) -> str:
        return str(sum([len(chunk) async for chunk in request.aiter_bytes()]))

    def post(stream: io.BytesIO) -> bytes:
        size = len(stream.getbuffer())
        if framing == "content-length":
            environ = wsgi_environ("POST", "/", CONTENT_LENGTH=str(size))
        else:
            environ = wsgi_environ("POST", "/", **{"wsgi.input_terminated": True})
        environ["wsgi.input"] = stream
        body = b"".join(driver(environ, lambda s, h, e=None: None))
        assert body == str(size).encode()
        return body

    peaks = []
    driver = app.as_wsgi()
    try:
        post(io.BytesIO(LARGE))  # NOTE: the worker threads start, once.
        for size in sizes:
            stream = io.BytesIO(bytes(size))  # NOTE: made before tracing, as a server's.
            tracemalloc.start()
            try:
                post(stream)
                peaks.append(tracemalloc.get_traced_memory()[1])
            finally:
                tracemalloc.stop()
    finally:
        driver.close()
    return peaks


def test_an_async_handler_under_wsgi_holds_about_one_hop_of_the_body() -> None:
    # NOTE: each hop's chunks are new bytes, read in a worker thread and alive until the
    # handler has taken them all: 16 chunks a hop held 1 MiB at once (tracemalloc traces
    # every thread).
    [peak] = async_read_peaks([4 * len(LARGE)], "content-length")
    assert peak < 3 * MAX_READ_HOP, f"{peak} bytes at once"  # NOTE: typically 1.3 hops.


@pytest.mark.parametrize("framing", ["content-length", "terminated"])
def test_an_async_handler_under_wsgi_lets_go_of_a_hop_before_the_next_is_read(
    framing: str,
) -> None:
    # NOTE: the finished future of a hop's thread read still holds its list while the loop
    # goes on to the next hop, whose read starts at once: dropping the name alone held two
    # hops at once in most runs (2.05 hops, 2.3 at most). Sizes around an exact number of
    # chunks, a few rounds each: the overlap is a race.
    size = 4 * len(LARGE)
    peaks = async_read_peaks([size - 1, size, size + 1] * 3, framing)
    assert max(peaks) < 7 * MAX_READ_HOP // 4, f"{peaks} bytes at once"  # NOTE: 1.3 hops.


class Failing(io.BytesIO):
    """A ``wsgi.input`` whose ``failing``-th read fails, as a socket's does once reset."""

    def __init__(self, data: bytes, failing: int) -> None:
        super().__init__(data)
        self.failing, self.reads = failing, 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads == self.failing:
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().read(size)


def test_a_wsgi_read_error_comes_after_the_chunks_read_before_it(colour: str) -> None:
    # NOTE: the 6th read fails inside the third hop (chunks 4 and 5 read already); the
    # handler gets those two first, as a def handler reading chunk by chunk does.
    def sync_op(request: Request) -> Response:
        got = 0
        try:
            for _ in request.iter_bytes():
                got += 1
        except ClientDisconnect:
            return Response(f"{got} chunks, then the error")
        return Response("no error")

    async def async_op(request: Request) -> Response:
        got = 0
        try:
            async for _ in request.aiter_bytes():
                got += 1
        except ClientDisconnect:
            return Response(f"{got} chunks, then the error")
        return Response("no error")

    app = body_app(colour, sync_op, async_op)
    status, body = wsgi_post(app, Failing(LARGE, failing=6), None, len(LARGE))
    assert (status[:3], body) == ("200", b"5 chunks, then the error")


def test_a_wsgi_body_of_unknown_length_is_read_little_past_the_limit(colour: str) -> None:
    # NOTE: 413 either way; the reads stop within a chunk of the limit, not a whole hop past.
    limit = 3 * MAX_READ_HOP // 2
    stream = io.BytesIO(LARGE * 4)
    status, body = wsgi_sizes(colour, stream, None, Limits(max_body_size=limit))
    assert (status[:3], body) == ("413", f"request body is larger than {limit} bytes".encode())
    assert stream.tell() <= limit + CHUNK_SIZE, f"{stream.tell() - limit} bytes past the limit"


class Stalling(io.BytesIO):
    """A ``wsgi.input`` whose second read waits for ``go``; ``after`` is set by a third read."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.reads = 0
        self.go, self.after = threading.Event(), threading.Event()

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        if self.reads == 2:
            self.go.wait(10)
        elif self.reads > 2:
            self.after.set()
        return super().read(size)


def test_an_async_handler_that_gives_up_mid_hop_reads_no_more_of_wsgi_input() -> None:
    # NOTE: the second hop (2 chunks) stalls on its first read; the handler times out and
    # answers. Its worker thread ends that read, then must leave wsgi.input to the server.
    app = App()

    @app.post("/")
    async def handler(request: Request) -> Response:
        got: list[bytes] = []

        async def read() -> None:
            async for chunk in request.aiter_bytes():
                got.append(chunk)

        try:
            await asyncio.wait_for(read(), 0.2)
        except asyncio.TimeoutError:  # not the builtin TimeoutError before 3.11
            return Response(f"{len(got)} chunk, then gave up", status=408)
        return Response("read it all")

    stream = Stalling(LARGE)
    driver = app.as_wsgi()
    try:
        environ = wsgi_environ(
            "POST", "/", CONTENT_LENGTH=str(len(LARGE)), **{"wsgi.input": stream}
        )
        body = b"".join(driver(environ, lambda s, h, e=None: None))
        stream.go.set()
        assert body == b"1 chunk, then gave up"
        assert not stream.after.wait(0.5), "a cancelled hop read on"
    finally:
        stream.go.set()
        driver.close()
    assert stream.tell() == 2 * CHUNK_SIZE


def test_a_def_handler_under_asgi_gets_a_slow_clients_bytes_as_they_come() -> None:
    # NOTE: each message after the first comes only once the handler has the one before: a
    # hop that waited for more than the messages ready would never return.
    app = App()
    words = [b"one", b"two", b"three", b"four", b"five"]
    had = [threading.Event() for _ in words]

    @app.post("/")
    def handler(request: Request) -> Response:
        chunks = []
        for chunk in request.iter_bytes():
            had[len(chunks)].set()
            chunks.append(chunk)
        return Response(b"|".join(chunks))

    messages = body_messages(*words)

    async def receive() -> dict[str, Any]:
        index = len(words) - len(messages)
        if index:
            assert await asyncio.to_thread(had[index - 1].wait, 5), "the hop waited"
        return messages.pop(0)

    async def run() -> list[dict[str, Any]]:
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await asyncio.wait_for(app.as_asgi()(http_scope("POST", "/"), receive, send), 10)
        return sent

    sent = asyncio.run(run())
    assert (sent[0]["status"], response_body(sent)) == (200, b"|".join(words))


def test_a_def_handler_under_asgi_takes_the_ready_messages_in_order() -> None:
    parts = [bytes([i]) * 1000 for i in range(40)]
    app = body_app("sync", lambda r: Response(b"".join(sync_chunks(r))), _async_echo)
    sent = asyncio.run(asgi_call(app, http_scope("POST", "/"), body_messages(*parts)))
    assert (sent[0]["status"], response_body(sent)) == (200, b"".join(parts))


def test_a_def_handler_under_asgi_takes_few_ready_messages_past_the_limit() -> None:
    # NOTE: 40 messages of 1,000 bytes all ready, a limit of 10,000: hops of 1, 2 and 4
    # messages, then the fourth stops at one byte past the limit (11 messages), not at 8 more.
    limits = Limits(max_body_size=10_000)
    app = body_app(
        "sync", lambda r: str(len(b"".join(sync_chunks(r)))), _async_length, limits=limits
    )
    messages = body_messages(*[b"a" * 1000] * 40)
    taken = 0

    async def receive() -> dict[str, Any]:
        nonlocal taken
        if taken < len(messages):
            taken += 1  # NOTE: ready: returns with no await, as a server's with data in.
            return messages[taken - 1]
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        await asyncio.wait_for(app.as_asgi()(http_scope("POST", "/"), receive, send), 10)

    asyncio.run(run())
    assert (sent[0]["status"], taken) == (413, 11)


def test_a_disconnect_among_the_ready_messages_ends_a_def_handlers_read() -> None:
    seen: list[int] = []

    def sync_op(request: Request) -> str:
        try:
            for chunk in request.iter_bytes():
                seen.append(len(chunk))
        except ClientDisconnect:
            seen.append(-1)
            raise
        return "read"

    app = body_app("sync", sync_op, _async_length)
    messages = [*body_messages(b"a" * 10, b"b" * 20, b"c" * 30)[:2], {"type": "http.disconnect"}]
    asyncio.run(asgi_call(app, http_scope("POST", "/"), messages))
    assert seen == [10, 20, -1]


# -- wsgi.input that fails: the client reset the connection -------------------------------------


READERS: dict[str, tuple[SyncOp, AsyncOp]] = {
    "read": (Request.read, Request.aread),
    "iter_bytes": (sync_chunks, async_chunks),
    "form": (Request.form, Request.aform),
}


def post_failing_input(app: App, size: int, content_type: str | None = None) -> tuple[str, bytes]:
    """POST ``size`` bytes whose ``wsgi.input`` fails at its first read; status and answer."""
    return wsgi_post(app, Failing(b"a=" + b"x" * (size - 2), failing=1), content_type, size)


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("size", [5000, 300_000])
def test_a_wsgi_input_that_fails_is_a_client_disconnect_answered_400(
    colour: str, reader: str, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: as under ASGI, where the client's leaving sends nothing: no traceback, no 500.
    app = body_app(colour, *READERS[reader])
    status, body = post_failing_input(app, size, "application/x-www-form-urlencoded")
    assert status == "400 Bad Request"
    assert b"the client disconnected while its body was read" in body
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_a_handler_may_catch_the_client_disconnect_of_a_failed_wsgi_input(colour: str) -> None:
    def sync_op(request: Request) -> str:
        try:
            return str(len(request.read()))
        except ClientDisconnect as exc:
            return f"gone: {type(exc.__cause__).__name__}"

    async def async_op(request: Request) -> str:
        try:
            return str(len(await request.aread()))
        except ClientDisconnect as exc:
            return f"gone: {type(exc.__cause__).__name__}"

    status, body = post_failing_input(body_app(colour, sync_op, async_op), 300_000)
    assert (status, body) == ("200 OK", b"gone: ConnectionResetError")


@pytest.mark.parametrize("size", [5000, 300_000])
def test_a_stream_that_reads_a_failing_wsgi_input_ends_with_nothing_logged(
    colour: str, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the response has started; as under ASGI, the client's leaving is no error to log.
    events: list[str] = []

    def sync_op(request: Request) -> Response:
        def dots() -> Iterator[bytes]:
            yield b"start "
            for _ in request.iter_bytes():
                yield b"."

        request.after_response(events.append, "after")
        return Response.stream(dots())

    async def async_op(request: Request) -> Response:
        async def dots() -> AsyncIterator[bytes]:
            yield b"start "
            async for _ in request.aiter_bytes():
                yield b"."

        request.after_response(events.append, "after")
        return Response.stream(dots())

    status, body = post_failing_input(body_app(colour, sync_op, async_op), size)
    assert (status, body, events) == ("200 OK", b"start ", ["after"])
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def sync_parts_dots(request: Request) -> Iterator[bytes]:
    for _ in request.iter_parts():
        yield b"."


async def async_parts_dots(request: Request) -> AsyncIterator[bytes]:
    async for _ in request.aiter_parts():
        yield b"."


def sync_rewrapped_dots(request: Request) -> Iterator[bytes]:
    try:
        for _ in request.iter_bytes():
            yield b"."
    except ClientDisconnect as exc:
        raise ClientDisconnect("gone") from exc


async def async_rewrapped_dots(request: Request) -> AsyncIterator[bytes]:
    try:
        async for _ in request.aiter_bytes():
            yield b"."
    except ClientDisconnect as exc:
        raise ClientDisconnect("gone") from exc


# NOTE: reads of the body whose ClientDisconnect is not the one the failed read made: the
# parts' reader raises it again "from None", and app code may raise one of its own from it.
STREAM_READS = {
    "iter_parts": (sync_parts_dots, async_parts_dots),
    "rewrapped": (sync_rewrapped_dots, async_rewrapped_dots),
}


def stream_reading_app(colour: str, read: str) -> App:
    """``POST /`` streams ``start `` and then a dot for each step of ``STREAM_READS[read]``."""
    sync_dots, async_dots = STREAM_READS[read]

    def sync_op(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"start "
            yield from sync_dots(request)

        return Response.stream(chunks())

    async def async_op(request: Request) -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"start "
            async for dot in async_dots(request):
                yield dot

        return Response.stream(chunks())

    return body_app(colour, sync_op, async_op)


@pytest.mark.parametrize("read", list(STREAM_READS))
@pytest.mark.parametrize("size", [5000, 300_000])
def test_a_stream_whose_body_read_fails_ends_with_nothing_logged_however_it_reads(
    colour: str, read: str, size: int, caplog: pytest.LogCaptureFixture
) -> None:
    app = stream_reading_app(colour, read)
    status, body = post_failing_input(app, size, "multipart/form-data; boundary=b")
    assert (status, body) == ("200 OK", b"start ")
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("read", list(STREAM_READS))
def test_an_asgi_stream_whose_body_read_sees_the_client_leave_ends_with_nothing_logged(
    colour: str, read: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = stream_reading_app(colour, read)
    scope = http_scope("POST", headers=[(b"content-type", b"multipart/form-data; boundary=b")])
    messages = [*body_messages(b"--b\r\n", b"")[:1], {"type": "http.disconnect"}]
    sent = asyncio.run(asgi_call(app, scope, messages))
    # NOTE: the watcher of receive() may cut the stream before "start " is sent: no matter,
    # the client is gone; but the response must not be ended as whole.
    assert sent[0]["type"] == "http.response.start"
    assert all(m.get("more_body") for m in sent[1:])
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def stream_app_raising_client_disconnect(colour: str, cause: Exception | None = None) -> App:
    """``GET /`` streams ``start `` and then raises ``ClientDisconnect`` of its own."""
    app = App()

    def gone() -> Iterator[bytes]:
        yield b"start "
        raise ClientDisconnect("stop") from cause

    async def agone() -> AsyncIterator[bytes]:
        yield b"start "
        raise ClientDisconnect("stop") from cause

    app.get("/")(
        in_colour(colour, lambda request: Response.stream(gone() if colour == "sync" else agone()))
    )
    return app


# NOTE: an OSError of the app's own (an upstream that reset) says nothing of this client.
@pytest.mark.parametrize("cause", [None, ConnectionResetError(104, "upstream reset")])
def test_a_client_disconnect_of_a_wsgi_stream_s_own_cuts_the_response(
    colour: str, cause: Exception | None, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the client is there: ended quietly, a chunked response would look whole to it.
    driver = stream_app_raising_client_disconnect(colour, cause).as_wsgi()
    got: list[bytes] = []
    try:
        body = driver(wsgi_environ("GET", "/"), lambda s, h, e=None: None)
        with pytest.raises(ClientDisconnect):
            for chunk in body:
                got.append(chunk)
        body.close()  # type: ignore[attr-defined]
    finally:
        driver.close()
    assert got == [b"start "]
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == [
        "error while streaming GET /"
    ]


def test_a_client_disconnect_of_an_asgi_stream_s_own_leaves_the_response_unfinished(
    colour: str,
) -> None:
    # NOTE: the server cuts the connection of an app that returns with its response unfinished.
    app = stream_app_raising_client_disconnect(colour)
    sent = asyncio.run(asgi_call(app, http_scope("GET", "/"), body_messages(b"")))
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert (sent[1]["body"], sent[1].get("more_body")) == (b"start ", True)


@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
def test_a_client_disconnect_raised_by_app_code_is_a_default_400(
    make_client: MakeClient, colour: str, accept: str
) -> None:
    # NOTE: the client is still there: under ASGI too it gets the 400 (it used to get nothing,
    # and Uvicorn made that a 500). With no message, the 400 still says why.
    app = App()

    def gone(request: Request) -> None:
        raise ClientDisconnect

    app.get("/")(in_colour(colour, gone))
    response = make_client(app).get("/", headers={"accept": accept})
    assert response.status_code == 400
    if accept == "text/plain":
        assert response.text == "the client disconnected"
    else:
        assert response.json() == {"status": 400, "detail": "the client disconnected"}


def test_a_client_disconnect_raised_by_an_error_handler_is_a_default_400(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: as from a handler: not an error handler's failure (a logged traceback, a 500).
    app = App()

    @app.get("/")
    def refused(request: Request) -> None:
        raise HTTPError(422, "unreadable")

    def gone(request: Request, exc: HTTPError) -> None:
        raise ClientDisconnect("left while the error was answered")

    app.error_handler(422)(in_colour(colour, gone))
    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (400, "left while the error was answered")
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


@pytest.mark.parametrize("mixed", [False, True])
def test_an_exception_group_of_client_disconnects_is_one_client_disconnect(
    make_client: MakeClient, colour: str, mixed: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: an asyncio.TaskGroup whose task read the body of a client that left raises them
    # in a group: it was logged as an unhandled error with its traceback, and a 500.
    # NOTE: on Python 3.10, anyio's task groups raise the exceptiongroup backport's.
    if sys.version_info >= (3, 11):
        group_type: Any = ExceptionGroup  # noqa: F821 (3.11+)
    else:
        group_type = pytest.importorskip("exceptiongroup").ExceptionGroup
    app = App()

    def gone(request: Request) -> None:
        inner = [ClientDisconnect("left during the read")]
        other: list[Exception] = [KeyError("x")] if mixed else []
        raise group_type("task group", [group_type("reader", inner), *other])

    app.get("/")(in_colour(colour, gone))
    response = make_client(app).get("/")
    errors = [r.getMessage() for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]
    if mixed:
        assert response.status_code == 500
        assert errors == ["unhandled error in GET /"]
    else:
        assert (response.status_code, response.text) == (400, "left during the read")
        assert errors == []


def test_a_head_request_whose_handler_raises_client_disconnect_gets_a_bare_400(
    make_client: MakeClient,
) -> None:
    app = App()

    @app.get("/")
    def gone(request: Request) -> None:
        raise ClientDisconnect("stop")

    response = make_client(app).head("/")
    assert (response.status_code, response.content) == (400, b"")


def test_asgi_sends_nothing_when_the_body_source_saw_the_client_leave(colour: str) -> None:
    # NOTE: the handler catches nothing; the ClientDisconnect comes from http.disconnect.
    sent: list[dict[str, Any]] = []
    app = read_app(colour)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = http_scope("POST", headers=[(b"content-length", b"10")])
    asyncio.run(app.as_asgi()(scope, receive, send))
    assert sent == []


class Closable:
    """A response body of its own, which records its ``close()``."""

    def __init__(self, closed: list[str]) -> None:
        self.closed = closed

    def __iter__(self) -> Iterator[bytes]:
        yield b"never sent"

    def close(self) -> None:
        self.closed.append("closed")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_asgi_closes_a_stream_whose_start_could_not_be_sent(colour: str, method: str) -> None:
    closed: list[str] = []
    app = App()
    app.get("/")(in_colour(colour, lambda request: Response.stream(Closable(closed))))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        raise ConnectionResetError("gone")

    asyncio.run(app.as_asgi()(http_scope(method), receive, send))
    assert closed == ["closed"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_asgi_closes_a_stream_whose_start_was_cancelled(colour: str, method: str) -> None:
    # NOTE: the server cancels the request while send(start) waits (a slow client at shutdown).
    closed: list[str] = []
    app = App()
    app.get("/")(in_colour(colour, lambda request: Response.stream(Closable(closed))))

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def main() -> None:
        sending = asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            sending.set()
            await asyncio.Event().wait()

        task = asyncio.ensure_future(app.as_asgi()(http_scope(method), receive, send))
        await sending.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert closed == ["closed"]


def test_asgi_answers_a_client_disconnect_quietly_when_send_fails() -> None:
    # NOTE: app code raised it, and the client is gone after all: no error escapes the app.
    app = App()

    @app.get("/")
    async def gone(request: Request) -> None:
        raise ClientDisconnect

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: dict[str, Any]) -> None:
        raise ConnectionResetError("gone")

    asyncio.run(app.as_asgi()(http_scope("GET"), receive, send))


# -- framing: Content-Length beside Transfer-Encoding -------------------------------------------


@pytest.mark.parametrize("length", ["3", "300", "abc"])
def test_content_length_beside_transfer_encoding_is_ignored(
    make_client: MakeClient, colour: str, length: str
) -> None:
    # SPEC: RFC 9112 6.3. The WSGI side of TestClient gives the length it read, like Waitress.
    client = make_client(read_app(colour))
    headers = {"transfer-encoding": "chunked", "content-length": length}
    response = client.post("/", content=b"hello", headers=headers)
    assert (response.status_code, response.content) == (200, b"hello")


def test_content_length_beside_transfer_encoding_is_ignored_by_the_wsgi_body() -> None:
    # NOTE: by hand, as a WSGI server that hands both headers on and ends the input itself.
    environ = wsgi_environ(
        "POST",
        "/",
        CONTENT_LENGTH="3",
        HTTP_TRANSFER_ENCODING="chunked",
        **{"wsgi.input": io.BytesIO(b"hello"), "wsgi.input_terminated": True},
    )
    driver = read_app("sync").as_wsgi()
    try:
        assert b"".join(driver(environ, lambda status, headers, exc=None: None)) == b"hello"
    finally:
        driver.close()


def _send_coded(interface: str, colour: str, coding: str) -> tuple[int, bytes]:
    """POST ``hello`` with ``Transfer-Encoding: coding`` to ``read_app``, by hand, as a server
    that hands the header on; return the status and body."""
    app = read_app(colour)
    if interface == "wsgi":
        data = io.BytesIO(b"hello")
        extra = {"wsgi.input": data, "wsgi.input_terminated": True}
        environ = wsgi_environ("POST", "/", HTTP_TRANSFER_ENCODING=coding, **extra)
        statuses: list[str] = []
        driver = app.as_wsgi()
        try:
            body = b"".join(driver(environ, lambda status, head, exc=None: statuses.append(status)))
        finally:
            driver.close()
        status = int(statuses[0][:3])
    else:
        scope = http_scope("POST", "/", [(b"transfer-encoding", coding.encode())])
        sent = asyncio.run(asgi_call(app, scope, body_messages(b"hello")))
        status, body = sent[0]["status"], response_body(sent)
    return status, body


@pytest.mark.parametrize("coding", ["gzip, chunked", "x-custom, chunked", "chunked, gzip"])
def test_a_transfer_coding_other_than_chunked_is_501(
    interface: str, colour: str, coding: str
) -> None:
    # NOTE: Uvicorn with httptools passes "gzip, chunked" with the body still gzip-coded,
    # which the app must not take for the body.
    status, body = _send_coded(interface, colour, coding)
    assert (status, body) == (501, b"unsupported Transfer-Encoding (only chunked is)")


@pytest.mark.parametrize("coding", [",chunked", "chunked,,", "chunked, ", " , chunked"])
def test_empty_members_of_a_transfer_encoding_are_ignored(
    interface: str, colour: str, coding: str
) -> None:
    # SPEC: RFC 9110 5.6.1, a recipient MUST ignore a reasonable number of empty list members.
    # NOTE: the app answered 501 for ",chunked", which httptools framed as chunked (and
    # Waitress served): the body read, the next request on the connection answered.
    assert _send_coded(interface, colour, coding) == (200, b"hello")


@pytest.mark.parametrize("coding", ["chunked, chunked", "", " , "])
def test_chunked_twice_or_no_coding_is_501_too(interface: str, colour: str, coding: str) -> None:
    # NOTE: what every server refuses before the app (400, transfer_coding_refusal()): the
    # app took "chunked, chunked" for chunked (review317).
    status, body = _send_coded(interface, colour, coding)
    assert (status, body) == (501, b"unsupported Transfer-Encoding (only chunked is)")


@pytest.mark.parametrize(
    "lines", [[b"chunked", b"chunked"], [b"chunked", b""], [b"", b"chunked"]], ids=str
)
def test_transfer_encoding_lines_are_read_together(lines: list[bytes]) -> None:
    # NOTE: each line was checked alone: "chunked" on two lines was chunked (review317).
    headers = [(b"transfer-encoding", line) for line in lines]
    scope = http_scope("POST", "/", headers)
    sent = asyncio.run(asgi_call(read_app("async"), scope, body_messages(b"hello")))
    assert (sent[0]["status"], response_body(sent)) == (
        501,
        b"unsupported Transfer-Encoding (only chunked is)",
    )


@pytest.mark.parametrize(
    ("values", "length", "refusal"),
    [
        (["chunked"], False, None),
        (["Chunked "], False, None),
        ([",chunked"], False, None),
        (["chunked,,"], False, None),
        ([" , chunked , "], False, None),
        (["gzip, chunked"], False, (501, "unsupported Transfer-Encoding (only chunked is)")),
        (["gzip", "chunked"], False, (501, "unsupported Transfer-Encoding (only chunked is)")),
        (["gzip, chunked"], True, (400, "Transfer-Encoding with Content-Length")),
        (["chunked"], True, (400, "Transfer-Encoding with Content-Length")),
        (["gzip"], True, (400, "Transfer-Encoding without chunked last")),
        (["chunked, gzip"], False, (400, "Transfer-Encoding without chunked last")),
        (["identity"], False, (400, "Transfer-Encoding without chunked last")),
        (["chunked, chunked"], False, (400, "Transfer-Encoding names chunked more than once")),
        (["chunked", "chunked"], False, (400, "Transfer-Encoding names chunked more than once")),
        ([""], False, (400, "Transfer-Encoding line without a coding")),
        ([","], True, (400, "Transfer-Encoding line without a coding")),
        (["chunked", ""], False, (400, "Transfer-Encoding line without a coding")),
        (["", "chunked"], False, (400, "Transfer-Encoding line without a coding")),
        (["chunked", " , "], False, (400, "Transfer-Encoding line without a coding")),
        ([], False, (400, "Transfer-Encoding without chunked last")),
    ],
)
def test_transfer_coding_refusal_is_the_one_verdict(
    values: list[str], length: bool, refusal: tuple[int, str] | None
) -> None:
    # NOTE: the one reading that Waitress's and h11's wrappers and the app share (review317).
    assert transfer_coding_refusal(values, length) == refusal


@pytest.mark.parametrize(
    ("method", "connection", "upgrade", "body", "reason"),
    [
        ("CONNECT", None, False, True, "a body with a CONNECT request is not read"),
        ("CONNECT", None, False, False, None),
        ("POST", "keep-alive, Upgrade", True, True, "a body with an Upgrade request is not read"),
        ("POST", "UPGRADE", True, True, "a body with an Upgrade request is not read"),
        ("POST", "Upgrade", True, False, None),
        ("POST", "Upgrade", False, True, None),
        ("POST", None, True, True, None),
        ("POST", "upgrades, keep-alive", True, True, None),
    ],
)
def test_switch_refusal(
    method: str, connection: str | None, upgrade: bool, body: bool, reason: str | None
) -> None:
    assert switch_refusal(method, connection, upgrade, body) == reason


def test_transfer_encoding_chunked_is_read_in_any_case() -> None:
    scope = http_scope("POST", "/", [(b"transfer-encoding", b" Chunked ")])
    sent = asyncio.run(asgi_call(read_app("async"), scope, body_messages(b"hel", b"lo")))
    assert (sent[0]["status"], response_body(sent)) == (200, b"hello")


# -- memory: a body dripped one byte per message --------------------------------------------

DRIPPED = 16 * 1024  # NOTE: bytes; the sync colour under ASGI pays a loop round trip for each.


def length_app(colour: str) -> App:
    """An app that reads the whole body and answers with its length."""

    def size(request: Request) -> str:
        return str(len(request.read()))

    async def asize(request: Request) -> str:
        return str(len(await request.aread()))

    return body_app(colour, size, asize)


class Drip:
    """A ``wsgi.input`` that gives one byte of ``data`` per ``read()``."""

    def __init__(self, data: bytes) -> None:
        self.data, self.sent = data, 0

    def read(self, size: int = -1) -> bytes:
        if self.sent >= len(self.data):
            return b""
        self.sent += 1
        return self.data[self.sent - 1 : self.sent]


def drip_receive(data: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    """An ASGI ``receive`` that gives the body ``data`` one byte per message."""
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent < len(data):
            sent += 1
            body = data[sent - 1 : sent]
            return {"type": "http.request", "body": body, "more_body": sent < len(data)}
        await asyncio.Event().wait()  # NOTE: the client stays, as a server's receive() does.
        raise AssertionError("unreachable")

    return receive


def peak_of_dripped_request(
    interface: str, app: App, size: int, content_type: str = "", make_body: Any = None
) -> tuple[int, bytes]:
    """Send a body of ``size`` bytes one byte at a time; return the traced peak and the answer.

    The body is ``make_body(size)`` (``size`` times ``a`` by default). A first request with a
    small body starts what outlives a request (the app loop, the thread pool).
    """
    make = make_body or (lambda size: b"a" * size)
    if interface == "wsgi":
        driver = app.as_wsgi()

        def run(data: bytes) -> bytes:
            environ = wsgi_environ(
                "POST",
                "/",
                CONTENT_LENGTH=str(len(data)),
                CONTENT_TYPE=content_type,
                **{"wsgi.input": Drip(data)},
            )
            return b"".join(driver(environ, lambda status, headers, exc=None: None))

        try:
            run(make(1))
            data = make(size)  # NOTE: made before tracing, as a server's buffers are.
            tracemalloc.start()
            try:
                body = run(data)
                return tracemalloc.get_traced_memory()[1], body
            finally:
                tracemalloc.stop()
        finally:
            driver.close()

    async def main() -> tuple[int, bytes]:
        asgi = app.as_asgi()

        async def run(data: bytes) -> bytes:
            sent: list[dict[str, Any]] = []

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            headers = [(b"content-length", str(len(data)).encode())]
            if content_type:
                headers.append((b"content-type", content_type.encode()))
            await asgi(http_scope("POST", "/", headers), drip_receive(data), send)
            return b"".join(message.get("body", b"") for message in sent[1:])

        await run(make(1))
        data = make(size)
        tracemalloc.start()
        try:
            body = await run(data)
            return tracemalloc.get_traced_memory()[1], body
        finally:
            tracemalloc.stop()

    return asyncio.run(main())


def test_a_body_dripped_a_byte_at_a_time_is_held_about_once(interface: str, colour: str) -> None:
    # NOTE: kept as one bytes object per chunk, it cost about 90 times its size (TRAPS.md 27).
    peak, body = peak_of_dripped_request(interface, length_app(colour), DRIPPED)
    assert body == str(DRIPPED).encode()
    assert peak < 3 * DRIPPED, f"{peak / DRIPPED:.1f} times the body"


def form_length_app(colour: str) -> App:
    """An app that reads a form and answers with the length of its field ``a``."""
    app = App(limits=Limits(max_field_size=DRIPPED, max_form_memory=DRIPPED))

    def size(request: Request) -> str:
        return str(len(request.form()["a"]))

    async def asize(request: Request) -> str:
        return str(len((await request.aform())["a"]))

    add_body_route(app, colour, size, asize)
    return app


def urlencoded_field(size: int) -> bytes:
    return b"a=" + b"x" * max(size - 2, 0)


def multipart_field(size: int) -> bytes:
    head = b'--B\r\ncontent-disposition: form-data; name="a"\r\n\r\n'
    return head + b"x" * size + b"\r\n--B--\r\n"


@pytest.mark.parametrize(
    ("content_type", "make_body", "length"),
    [
        ("application/x-www-form-urlencoded", urlencoded_field, DRIPPED - 2),
        ("multipart/form-data; boundary=B", multipart_field, DRIPPED),
    ],
    ids=["urlencoded", "multipart"],
)
def test_a_form_dripped_a_byte_at_a_time_is_held_about_once(
    interface: str, colour: str, content_type: str, make_body: Any, length: int
) -> None:
    # NOTE: a text field kept as one bytes object per chunk cost about 90 times its size.
    # Parsing a urlencoded body holds its bytes, its text and the field at once: about 3.5.
    app = form_length_app(colour)
    peak, body = peak_of_dripped_request(interface, app, DRIPPED, content_type, make_body)
    assert body == str(length).encode()
    assert peak < 5 * DRIPPED, f"{peak / DRIPPED:.1f} times the form"


def test_body_kept_by_disconnect_checks_is_held_about_once() -> None:
    app = App()

    @app.post("/")
    async def poll(request: Request) -> str:
        for _ in range(DRIPPED):
            await request.ais_disconnected()  # NOTE: each call receives one message and keeps it.
        return str(len(await request.aread()))

    peak, body = peak_of_dripped_request("asgi", app, DRIPPED)
    assert body == str(DRIPPED).encode()
    assert peak < 3 * DRIPPED, f"{peak / DRIPPED:.1f} times the body"


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_streamed_echo_of_a_slow_upload_loses_nothing(colour: str) -> None:
    app = App()
    if colour == "sync":

        @app.post("/echo")
        def echo(request: Request) -> Response:
            return Response.stream(request.iter_bytes())

    else:

        @app.post("/echo")
        async def aecho(request: Request) -> Response:
            return Response.stream(request.aiter_bytes())

    scope = http_scope("POST", "/echo", [(b"content-length", b"40")])
    sent = asyncio.run(
        asgi_call(app, scope, body_messages(b"a" * 10, b"b" * 10, b"c" * 10, b"d" * 10), 0.05)
    )
    assert response_body(sent) == b"a" * 10 + b"b" * 10 + b"c" * 10 + b"d" * 10
    assert sent[-1] == {"type": "http.response.body", "body": b""}


def test_disconnect_checks_keep_the_body_only_up_to_the_limit() -> None:
    app = App(limits=Limits(max_body_size=1024))

    held: list[int] = []

    @app.post("/poll")
    async def poll(request: Request) -> dict[str, int]:
        for _ in range(100):
            await request.ais_disconnected()
            await asyncio.sleep(0)
        # NOTE: white-box: what the body source keeps for a reader that has not read yet.
        early = request._source._early  # type: ignore[attr-defined]
        held.append(0 if early is None else len(early))
        return {"size": len(await request.aread())}

    scope = http_scope("POST", "/poll")
    sent = asyncio.run(asgi_call(app, scope, body_messages(*[b"x" * 1000] * 50)))
    assert held and held[0] <= 1024
    assert sent[0]["status"] == 413


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_thousands_of_digits_in_content_length_give_413(interface: str) -> None:
    app = App()

    @app.post("/")
    def handler(request: Request) -> bytes:
        return request.read()

    length = "9" * 5000
    if interface == "asgi":
        scope = http_scope("POST", "/", [(b"content-length", length.encode())])
        status = asyncio.run(asgi_call(app, scope, body_messages(b"x")))[0]["status"]
    else:
        seen: list[str] = []
        environ = wsgi_environ("POST", "/", CONTENT_LENGTH=length, **{"wsgi.input": io.BytesIO()})
        app.as_wsgi()(environ, lambda s, h, e=None: seen.append(s))
        status = int(seen[0][:3])
    assert status == 413


def _post_with_length(interface: str, length: str, body: bytes) -> tuple[int, bytes]:
    app = App()

    @app.post("/")
    def handler(request: Request) -> bytes:
        return request.read()

    if interface == "asgi":
        scope = http_scope("POST", "/", [(b"content-length", length.encode())])
        sent = asyncio.run(asgi_call(app, scope, body_messages(body)))
        return sent[0]["status"], response_body(sent)
    seen: list[str] = []
    environ = wsgi_environ("POST", "/", CONTENT_LENGTH=length, **{"wsgi.input": io.BytesIO(body)})
    result = app.as_wsgi()(environ, lambda s, h, e=None: seen.append(s))
    return int(seen[0][:3]), b"".join(result)


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize(
    ("length", "body", "expected"),
    [
        ("0" * 20 + "5", b"hello", (200, b"hello")),
        ("0" * 5000 + "5", b"hello", (200, b"hello")),
        ("0" * 30, b"", (200, b"")),
        (" " + "0" * 19 + "5\t", b"hello", (200, b"hello")),
        ("0" * 10 + "9" * 19, b"hello", (413, None)),
    ],
    ids=["zeros-then-5", "thousands-of-zeros-then-5", "zeros-alone", "spaced", "zeros-then-huge"],
)
def test_leading_zeros_in_content_length_are_read_as_servers_frame_the_body(
    interface: str, length: str, body: bytes, expected: tuple[int, bytes | None]
) -> None:
    # SPEC: RFC 9110 8.6, Content-Length = 1*DIGIT. Waitress, h11 (up to 20 digits) and
    # httptools frame the body by the number, leading zeros and all: more than 18 digits was
    # a 413, a refusal of a 5-byte body the server had read. Servers: test_servers_hostile3.
    status, sent = _post_with_length(interface, length, body)
    assert status == expected[0]
    if expected[1] is not None:
        assert sent == expected[1]


def test_json_with_a_lone_surrogate_is_400(make_client: MakeClient) -> None:
    app = App()

    @app.post("/")
    def echo(request: Request) -> Any:
        return request.json()

    client = make_client(app)
    headers = {"content-type": "application/json"}
    assert client.post("/", content=b'{"a": "\\ud800"}', headers=headers).status_code == 400
    pair = client.post("/", content=b'{"a": "\\ud83d\\ude00"}', headers=headers)
    assert pair.json() == {"a": "\U0001f600"}


@pytest.mark.parametrize(
    ("text", "status"),
    [
        # NOTE: "\\" is an escaped backslash: the "ud800" after it is text, not an escape.
        (r'"\\ud800"', 200),
        (r'"\\\ud800"', 400),
        (r'"\ud800\\\udc00"', 400),
        (r'"\\\ud83d\ude00\\"', 200),
        (r'"\uDBFF\uDFFF\uD800\uDC00"', 200),
        (r'"\ud800\ud800\udc00"', 400),
        (r'"\ud83d\ude00\ude00"', 400),
        (r'"\u0041d800\udc00"', 400),
        (r'{"\ud83d\ude00": ["\n", "\udfff"]}', 400),
    ],
)
def test_lone_surrogates_are_told_from_escaped_backslashes(
    make_client: MakeClient, text: str, status: int
) -> None:
    app = App()

    @app.post("/")
    def echo(request: Request) -> Any:
        return {"value": request.json()}

    headers = {"content-type": "application/json"}
    response = make_client(app).post("/", content=text.encode(), headers=headers)
    assert response.status_code == status
    if status == 200:
        assert response.json() == {"value": json.loads(text)}


def test_a_surrogate_pair_costs_no_walk_of_the_parsed_value() -> None:
    # NOTE: one pair made the check walk every value of the parsed body in Python: 1.1 s of the
    # event loop for 10 MB of numbers. The tracer counts the Python lines that parsing ran.
    body = b'["\\ud83d\\ude00", ' + b"1, " * 10_000 + b"2]"
    lines, value = traced_lines(lambda: parse_json(body))
    assert value[0] == "\U0001f600" and len(value) == 10_002
    assert lines < 50
