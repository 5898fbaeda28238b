"""The built-in plugins installed together, on HTTP routes and on a WebSocket handshake."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from microweb import App, Request, Response, WebSocket, WebSocketDisconnect
from microweb.plugins import (
    CORS,
    CSRF,
    AccessLog,
    GZip,
    ProxyHeaders,
    RequestID,
    Sessions,
    Static,
    TrustedHosts,
)
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


def every_plugin_app(files: Path) -> App:
    """All nine plugins; the two that must come first (ProxyHeaders, TrustedHosts) installed
    last, where the order would matter if they did not put their flows outside."""
    app = App()
    app.install(AccessLog())
    app.install(RequestID(generator=lambda: "rid"))
    # NOTE: CORS refuses WebSocket handshakes from any origin it does not list, the app's own
    # included, so the app's own origin is listed for the handshake test.
    app.install(CORS(["https://app.example", "https://shop.example"], allow_credentials=True))
    app.install(CSRF(trusted_origins=["https://app.example"]))
    app.install(GZip())
    app.install(Sessions(SECRET))
    app.install(Static(files))
    app.install(TrustedHosts(["shop.example"]))
    app.install(ProxyHeaders(trusted=["127.0.0.1"]))

    @app.post("/cart")
    def add(request: Request) -> str:
        request.session["items"] = request.session.get("items", 0) + 1
        return TEXT

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json({"scheme": ws.request.scheme, "host": ws.request.host})

    return app


PROXIED = {"x-forwarded-proto": "https", "x-forwarded-host": "shop.example"}
PROXY = ("127.0.0.1", 50000)


def test_csrf_and_trusted_hosts_with_every_other_plugin(interface: str, files: Path) -> None:
    with TestClient(every_plugin_app(files), interface=interface, client=PROXY) as client:
        own = client.post("/cart", headers={**PROXIED, "origin": "https://shop.example"})
        assert (own.status_code, own.text) == (200, TEXT)
        assert own.headers["content-encoding"] == "gzip"
        assert own.headers["x-request-id"] == "rid"
        assert "Secure" in own.headers["set-cookie"]  # NOTE: https, as the proxy said.

        # NOTE: CORS lets app.example read answers, CSRF lets its pages post.
        trusted = {**PROXIED, "sec-fetch-site": "cross-site", "origin": "https://app.example"}
        allowed = client.post("/cart", headers=trusted)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"

        forged = {**PROXIED, "sec-fetch-site": "cross-site", "origin": "https://evil.example"}
        refused = client.post("/cart", headers=forged)
        assert (refused.status_code, refused.headers["x-request-id"]) == (403, "rid")
        assert "set-cookie" not in refused.headers
        assert client.post("/static/site.css", headers=forged).status_code == 405

        for headers in ({**PROXIED, "x-forwarded-host": "evil.example"}, {"host": "evil.example"}):
            other_host = client.post("/cart", headers={**headers, "origin": "https://shop.example"})
            assert (other_host.status_code, other_host.text) == (400, "host not allowed")
            assert "x-request-id" not in other_host.headers  # NOTE: no other flow ran.


def test_csrf_and_trusted_hosts_check_a_websocket_handshake_among_every_plugin(
    files: Path,
) -> None:
    with TestClient(every_plugin_app(files), interface="asgi", client=PROXY) as client:
        own = {**PROXIED, "origin": "https://shop.example"}
        with client.websocket_connect("/ws", headers=own) as ws:
            assert ws.receive_json() == {"scheme": "wss", "host": "shop.example"}
        for refused in (
            {**PROXIED, "origin": "https://evil.example"},
            {**PROXIED, "sec-fetch-site": "same-site", "origin": "https://shop.example"},
            {**own, "x-forwarded-host": "evil.example"},
        ):
            with pytest.raises(WebSocketDisconnect):
                client.websocket_connect("/ws", headers=refused)
