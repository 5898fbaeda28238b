"""The built-in plugins installed together, on HTTP routes and on a WebSocket handshake."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from microweb import App, Request, Response
from microweb.plugins import CORS, AccessLog, GZip, RequestID, Sessions, Static
from microweb.testing import TestClient

SECRET = "a-test-secret-of-32-characters!!"
TEXT = "microweb compresses this line. " * 100


def test_all_plugins_together_under_both_interfaces(files: Path) -> None:
    app = App()
    app.install(AccessLog())
    app.install(RequestID(generator=lambda: "fixed"))
    app.install(CORS(["https://app.example"]))
    app.install(GZip())
    app.install(Static(files))

    @app.get("/")
    async def index(request: Request) -> str:
        return TEXT

    with TestClient(app, interface="both") as client:
        response = client.get("/", headers={"origin": "https://app.example"})
        assert response.text == TEXT
        assert response.headers["content-encoding"] == "gzip"
        assert response.headers["vary"] == "Accept-Encoding, Origin"
        assert response.headers["x-request-id"] == "fixed"
        assert client.get("/static/site.css").headers["content-encoding"] == "gzip"


def test_flow_plugins_around_a_websocket_handshake(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()
    app.install(AccessLog())
    app.install(RequestID(generator=lambda: "rid"))
    app.install(CORS(["https://app.example"]))
    app.install(GZip())
    sessions = app.install(Sessions(SECRET, secure=False))

    @app.websocket("/ws")
    async def socket(ws: Any) -> None:
        await ws.accept()
        await ws.send_json({"session": ws.request.session, "id": ws.request.state.request_id})

    cookie = sessions.sign(json.dumps({"user": "ada"}))
    headers = {"origin": "https://app.example", "cookie": f"session={cookie}"}
    with (
        TestClient(app, interface="asgi") as client,
        client.websocket_connect("/ws", headers=headers) as ws,
    ):
        assert ws.receive_json() == {"session": {"user": "ada"}, "id": "rid"}
        accepted = dict(ws.accepted["headers"])
    assert accepted[b"x-request-id"] == b"rid"
    assert accepted[b"access-control-allow-origin"] == b"https://app.example"
    assert b"content-encoding" not in accepted
    [record] = [r for r in caplog.records if r.name == "microweb.access"]
    assert record.getMessage().startswith("GET /ws 101 ")


def test_vary_lines_of_the_handler_are_kept_by_every_plugin(interface: str) -> None:
    app = App()
    app.install(CORS(["https://app.example"]))
    app.install(GZip())
    app.install(Sessions(SECRET, secure=False))

    @app.get("/")
    def index(request: Request) -> Response:
        request.session["user"] = "ada"
        response = Response.text(TEXT)
        response.headers.add("vary", "X-Theme")
        response.headers.add("vary", "X-Locale")
        return response

    with TestClient(app, interface=interface) as client:
        answer = client.get("/", headers={"origin": "https://app.example"})
    assert answer.headers.get_list("vary") == ["X-Theme, X-Locale, Cookie, Accept-Encoding, Origin"]
