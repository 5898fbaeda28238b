"""Header names an ASGI server keeps in the case the client sent them.

The ASGI HTTP spec (2.5): "Header names should be lowercased, but it is not required; servers
should preserve header case on a best-effort basis." Uvicorn, Hypercorn and Daphne lower them;
a server or an ASGI middleware in front of the app may not, and the app then sees the request
as a lower-casing server would have given it.
"""

from __future__ import annotations

import asyncio
import json

from drive import asgi_call, body_messages, http_scope, response_body

from microweb import App, Request


def _echo_app() -> App:
    app = App()

    @app.post("/")
    def echo(request: Request) -> dict[str, object]:
        return {
            "token": request.headers.get("x-token"),
            "has_token": "X-Token" in request.headers,
            "names": list(request.headers),
            "cookie": request.headers.get("cookie"),
            "cookies": dict(request.cookies),
            "json": request.json(),
        }

    return app


def test_header_names_in_upper_case_are_found() -> None:
    # NOTE: request.headers missed "X-Token", request.cookies was empty, and json() answered
    # 415: the Content-Type line was not seen.
    body = b'{"a": 1}'
    scope = http_scope(
        "POST",
        headers=[
            (b"X-Token", b"t"),
            (b"Content-Type", b"application/json"),
            (b"Content-Length", b"%d" % len(body)),
            (b"Cookie", b"a=1"),
            (b"COOKIE", b"b=2"),
        ],
    )
    sent = asyncio.run(asgi_call(_echo_app(), scope, body_messages(body)))
    assert sent[0]["status"] == 200, response_body(sent)
    seen = json.loads(response_body(sent))
    assert seen == {
        "token": "t",
        "has_token": True,
        "names": ["host", "x-token", "content-type", "content-length", "cookie"],
        "cookie": "a=1; b=2",
        "cookies": {"a": "1", "b": "2"},
        "json": {"a": 1},
    }


def test_content_length_in_upper_case_frames_the_body() -> None:
    # NOTE: a "Content-Length" over the limit was not seen, so the 413 waited for the body.
    app = App()

    @app.post("/")
    async def size(request: Request) -> dict[str, int]:
        return {"size": len(await request.aread())}

    scope = http_scope("POST", headers=[(b"Content-Length", b"%d" % (11 * 2**20))])
    sent = asyncio.run(asgi_call(app, scope, body_messages(b"")))
    assert sent[0]["status"] == 413


def test_a_content_encoding_in_upper_case_is_seen() -> None:
    # NOTE: a gzip body was parsed as JSON (and a valid one answered 200), where its
    # lower-case twin answers 415.
    app = App()

    @app.post("/")
    async def parsed(request: Request) -> object:
        return await request.ajson()

    headers = [(b"Content-Type", b"application/json"), (b"Content-Encoding", b"gzip")]
    scope = http_scope("POST", headers=headers)
    sent = asyncio.run(asgi_call(app, scope, body_messages(b"{}")))
    assert sent[0]["status"] == 415


def _read_app() -> App:
    app = App()

    @app.post("/json")
    async def parsed(request: Request) -> object:
        return await request.ajson()

    @app.post("/text")
    def text(request: Request) -> str:
        return request.text()

    @app.post("/size")
    async def size(request: Request) -> dict[str, int]:
        return {"size": len(await request.aread())}

    return app


def _status(path: str, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, bytes]:
    scope = http_scope("POST", path, headers=headers)
    sent = asyncio.run(asgi_call(_read_app(), scope, body_messages(body)))
    return sent[0]["status"], response_body(sent)


def test_a_content_encoding_in_upper_case_beside_a_lower_case_type_is_seen() -> None:
    # NOTE: names were lowered only when "content-type" was missing as sent: a lower-case type
    # beside "Content-Encoding: gzip" had the gzip body parsed as JSON (a valid one: 200).
    headers = [(b"content-type", b"application/json"), (b"Content-Encoding", b"gzip")]
    assert _status("/json", headers, b"{}")[0] == 415


def test_a_content_encoding_in_upper_case_without_a_type_is_seen_by_text() -> None:
    # NOTE: text() looks for no Content-Type: a coded body was decoded as text with a 200.
    assert _status("/text", [(b"Content-Encoding", b"gzip")], b"abc")[0] == 415


def test_two_content_lengths_in_different_case_are_400() -> None:
    # NOTE: "content-length: 4" was taken and "Content-Length: 3" not seen (a 200), where the
    # two in lower case are 400 (RFC 9112 6.3): a body framed one way by one reader, another
    # here.
    for second in (b"content-length", b"Content-Length"):
        headers = [(b"content-length", b"4"), (second, b"3")]
        assert _status("/size", headers, b"abcd")[0] == 400


def test_a_transfer_encoding_in_upper_case_overrides_a_lower_case_content_length() -> None:
    # NOTE: "content-length: 3" framed the body, and "Transfer-Encoding: chunked" (which makes
    # a Content-Length ignored, RFC 9112 6.3) was not seen, where in lower case it is.
    lower = [(b"transfer-encoding", b"chunked"), (b"content-length", b"3")]
    mixed = [(b"Transfer-Encoding", b"chunked"), (b"content-length", b"3")]
    assert _status("/size", lower, b"abcd") == (200, b'{"size":4}')
    assert _status("/size", mixed, b"abcd") == (200, b'{"size":4}')


def test_header_names_of_a_servers_bytearray_frame_the_body() -> None:
    # NOTE: the spec says bytes; a bytearray name was read before the case check and still is.
    for name in (b"content-length", b"Content-Length"):
        assert _status("/size", [(bytearray(name), b"3")], b"abc") == (200, b'{"size":3}')


def test_two_content_types_in_different_case_are_joined_as_in_lower_case() -> None:
    # NOTE: the lower-case line alone was the type when found as sent: JSON parsed (a 200)
    # where the two lines in lower case are joined, a malformed type, and answered 415.
    for second in (b"content-type", b"Content-Type"):
        headers = [(b"content-type", b"application/json"), (second, b"text/plain")]
        assert _status("/json", headers, b"{}")[0] == 415
