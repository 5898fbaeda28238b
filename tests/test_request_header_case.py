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
