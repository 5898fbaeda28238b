"""Lines of a ``Cookie`` header are one header to the app, under both interfaces.

A WSGI server passes one ``HTTP_COOKIE`` (``microweb serve``'s Waitress and the test client join
its lines with ``"; "``); an ASGI server passes each line, as an HTTP/2 one passes each cookie
of a request: RFC 9113 8.2.3 joins them with ``"; "`` before they go on as one header.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import MakeClient
from drive import asgi_call, body_messages, http_scope, response_body

from microweb import App, Request

_SENT = ("x-before", "cookie", "accept", "x-after")


def _headers_app() -> App:
    app = App()

    @app.get("/")
    def headers(request: Request) -> dict[str, object]:
        return {
            "get": request.headers.get("cookie"),
            "lines": request.headers.getlist("cookie"),
            "items": [list(item) for item in request.headers.items() if item[0] in _SENT],
            "cookies": dict(request.cookies),
        }

    return app


@pytest.mark.parametrize(
    ("lines", "joined", "cookies"),
    [
        (["a=1", "b=2"], "a=1; b=2", {"a": "1", "b": "2"}),
        (["a=1", "b=2", "c=3"], "a=1; b=2; c=3", {"a": "1", "b": "2", "c": "3"}),
        (["a=1"], "a=1", {"a": "1"}),
    ],
    ids=["two", "three", "one"],
)
def test_cookie_lines_are_one_header_under_both_interfaces(
    make_client: MakeClient, lines: list[str], joined: str, cookies: dict[str, str]
) -> None:
    # NOTE: headers.get("cookie") gave the first line alone under ASGI, the lines joined
    # under WSGI; getlist() and items() two entries under one, one under the other.
    sent = [("x-before", "1"), *[("cookie", line) for line in lines], ("x-after", "2")]
    seen = make_client(_headers_app()).get("/", headers=sent).json()
    assert seen["get"] == joined
    assert seen["lines"] == [joined]
    assert [item for item in seen["items"] if item[0] != "accept"] == [
        ["x-before", "1"],
        ["cookie", joined],
        ["x-after", "2"],
    ]
    assert seen["cookies"] == cookies


def test_cookie_lines_of_an_http2_scope_are_one_header() -> None:
    # NOTE: as Hypercorn passes an HTTP/2 request's cookies: one header entry each.
    scope = http_scope(headers=[(b"cookie", b"a=1"), (b"accept", b"*/*"), (b"cookie", b"b=2")])
    scope["http_version"] = "2"
    sent = asyncio.run(asgi_call(_headers_app(), scope, body_messages(b"")))
    seen = json.loads(response_body(sent))
    assert seen["get"] == "a=1; b=2"
    assert seen["items"] == [["cookie", "a=1; b=2"], ["accept", "*/*"]]
