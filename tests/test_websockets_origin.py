"""The test client's WebSocket handshakes carry an ``Origin``, as a browser's always do: the
origin of the app's own page by default, another one, or none. (WebSockets exist under ASGI
only.)"""

from __future__ import annotations

from typing import Any

import pytest

from microweb import App, WebSocket, WebSocketDisconnect
from microweb.plugins import CSRF
from microweb.testing import TestClient


def _origin_app(csrf: bool = False) -> App:
    app = App()
    if csrf:
        app.install(CSRF())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json(ws.headers.getlist("origin"))

    return app


def _origins_sent(base_url: str = "http://testserver", url: str = "/ws", **options: Any) -> Any:
    client = TestClient(_origin_app(), interface="asgi", base_url=base_url)
    with client, client.websocket_connect(url, **options) as session:
        return session.receive_json()


@pytest.mark.parametrize(
    ("base_url", "url", "origin"),
    [
        ("http://testserver", "/ws", "http://testserver"),
        ("https://testserver", "/ws", "https://testserver"),
        ("http://testserver:8080", "/ws", "http://testserver:8080"),
        ("http://testserver", "wss://app.example/ws", "https://app.example"),
        ("http://testserver", "ws://[::1]:8000/ws", "http://[::1]:8000"),
    ],
)
def test_a_handshake_carries_the_origin_of_the_apps_own_page(
    base_url: str, url: str, origin: str
) -> None:
    # NOTE: browsers always send it on a handshake; the test client sent none, so an app that
    # checks it could not be tested as a browser reaches it.
    assert _origins_sent(base_url, url) == [origin]


def test_a_handshake_carries_the_origin_it_is_given() -> None:
    assert _origins_sent(origin="https://evil.example") == ["https://evil.example"]


def test_a_handshake_carries_no_origin_when_told() -> None:
    # NOTE: as a client that is not a browser (a script, another service) sends it.
    assert _origins_sent(origin=False) == []


@pytest.mark.parametrize("origin", [True, False, "https://other.example"])
def test_an_origin_in_the_headers_goes_as_it_is(origin: bool | str) -> None:
    headers = {"Origin": "https://given.example"}
    assert _origins_sent(headers=headers, origin=origin) == ["https://given.example"]


def test_an_origin_in_the_clients_default_headers_goes_as_it_is() -> None:
    app = _origin_app()
    headers = {"origin": "https://default.example"}
    client = TestClient(app, interface="asgi", headers=headers)
    with client, client.websocket_connect("/ws") as session:
        assert session.receive_json() == ["https://default.example"]


@pytest.mark.parametrize("origin", ["https://other.example", False])
def test_an_origin_given_to_the_call_wins_over_the_clients_default(origin: str | bool) -> None:
    # NOTE: the default Origin went, and origin= was silently ignored.
    client = TestClient(_origin_app(), interface="asgi", headers={"Origin": "https://d.example"})
    with client, client.websocket_connect("/ws", origin=origin) as session:
        assert session.receive_json() == ([origin] if origin else [])


def test_an_origin_in_the_headers_of_the_call_wins_over_the_clients_default() -> None:
    client = TestClient(_origin_app(), interface="asgi", headers={"Origin": "https://d.example"})
    headers = {"origin": "https://given.example"}
    with client, client.websocket_connect("/ws", headers=headers, origin="https://o.example") as ws:
        assert ws.receive_json() == ["https://given.example"]


@pytest.mark.parametrize(
    ("origin", "sent"),
    [
        ("https://bücher.de", "https://xn--bcher-kva.de"),
        ("https://BÜCHER.de:8443", "https://xn--bcher-kva.de:8443"),
        ("http://bücher.de:80", "http://xn--bcher-kva.de"),
    ],
)
def test_an_origin_with_an_international_host_goes_in_idna_as_a_browser_sends_it(
    origin: str, sent: str
) -> None:
    # NOTE: httpx raised UnicodeEncodeError.
    assert _origins_sent(origin=origin) == [sent]


@pytest.mark.parametrize(
    "origin",
    [
        "https://bücher.de/page",
        "https://bü cher.de",
        "bücher.de",
        "https://x?q=ü",
        "https://u@ü",
        "https://x#ü",
    ],
)
def test_a_non_ascii_origin_that_is_no_origin_is_a_value_error(origin: str) -> None:
    client = TestClient(_origin_app(), interface="asgi")
    with client, pytest.raises(ValueError, match="origin="):
        client.websocket_connect("/ws", origin=origin)


def test_an_origin_with_a_line_break_is_refused_as_a_server_refuses_it() -> None:
    client = TestClient(_origin_app(), interface="asgi")
    with client, pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect("/ws", origin="https://a.example\r\nx-evil: 1")
    assert refused.value.response.status_code == 400


@pytest.mark.parametrize("origin", [1, None, b"https://a.example"])
def test_an_origin_of_another_type_is_a_type_error(origin: Any) -> None:
    client = TestClient(_origin_app(), interface="asgi")
    with client, pytest.raises(TypeError, match="origin=True"):
        client.websocket_connect("/ws", origin=origin)


def test_an_origin_checking_app_is_testable_both_ways() -> None:
    with TestClient(_origin_app(csrf=True), interface="asgi") as client:
        with client.websocket_connect("/ws") as session:
            assert session.receive_json() == ["http://testserver"]
        with pytest.raises(WebSocketDisconnect) as refused:
            client.websocket_connect("/ws", origin="https://evil.example")
        assert refused.value.response.status_code == 403
