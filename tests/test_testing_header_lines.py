"""A header line that no server passes on gets the 400 the servers answer, not the app."""

from __future__ import annotations

import pytest
from conftest import MakeClient

from microweb import App, Request, Response, WebSocket
from microweb.testing import TestClient, WebSocketRefused

# NOTE: each refused with 400 before the app runs by Waitress, Uvicorn (h11 and httptools) and
# microweb serve under both servers (measured with a raw socket).
REFUSED = [
    (b"X Y", b"1"),
    (b"X(Y)", b"1"),
    (b"X@Y", b"1"),
    (b"X/Y", b"1"),
    (b"X{Y}", b"1"),
    (b"X-A", b"a\x00b"),
    (b"X-A", b"a\x01b"),
    (b"X-A", b"a\x7fb"),
    (b"X-A", b"a\rb"),
    (b"X-A", b"a\nb"),
]


def _app() -> App:
    app = App()
    calls: list[str] = []
    app.state.calls = calls

    @app.get("/h")
    def headers(request: Request) -> dict[str, list[list[str]]]:
        calls.append(request.path)
        return {"headers": [list(pair) for pair in request.headers.items()]}

    return app


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=repr)
def test_a_header_line_no_server_passes_on_is_a_400_without_the_app(
    make_client: MakeClient, name: bytes, value: bytes
) -> None:
    app = _app()
    answer = make_client(app).get("/h", headers=[(name, value)])
    assert answer.status_code == 400
    assert app.state.calls == []


@pytest.mark.parametrize(
    ("name", "value"),
    [(b"X-A", b"a\tb"), (b"X-A", b"caf\xe9"), (b"X!#$%&'*+-.^_`|~1", b"1"), (b"X-A", b"")],
    ids=repr,
)
def test_a_header_line_every_server_passes_on_reaches_the_app(
    make_client: MakeClient, name: bytes, value: bytes
) -> None:
    app = _app()
    answer = make_client(app).get("/h", headers=[(name, value)])
    assert answer.status_code == 200
    assert app.state.calls == ["/h"]


@pytest.mark.parametrize(("name", "value"), REFUSED, ids=repr)
def test_a_websocket_handshake_with_such_a_line_is_refused_with_400(
    name: bytes, value: bytes
) -> None:
    app = App()
    calls: list[str] = []

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        calls.append("called")
        await ws.accept()
        await ws.close()

    with TestClient(app, interface="asgi") as client, pytest.raises(WebSocketRefused) as refused:
        client.websocket_connect("/ws", headers={name.decode("latin-1"): value.decode("latin-1")})
    assert refused.value.response.status_code == 400
    assert calls == []


def test_a_websocket_handshake_with_good_lines_reaches_the_app() -> None:
    app = App()
    calls: list[str] = []

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        calls.append(ws.headers["x-a"])
        await ws.accept()
        await ws.close()

    with (
        TestClient(app, interface="asgi") as client,
        client.websocket_connect("/ws", headers={"X-A": "a\tb"}),
    ):
        pass
    assert calls == ["a\tb"]


@pytest.mark.parametrize("method", ["G@T", "GE(T)", "G/T", "G\x00T", "G T"])
def test_a_method_that_is_no_token_is_a_400_without_the_app(
    make_client: MakeClient, method: str
) -> None:
    app = _app()
    assert make_client(app).request(method, "/h").status_code == 400
    assert app.state.calls == []


def test_a_method_that_is_a_token_reaches_the_app(make_client: MakeClient) -> None:
    # NOTE: the app's 405, as under every server (measured).
    answer = make_client(_app()).request("PATCH", "/h")
    assert answer.status_code == 405
    assert "GET" in answer.headers["allow"]


@pytest.mark.parametrize("method", ["PURGE", "PROPFIND", "BREW"])
def test_a_method_no_route_can_take_is_the_apps_405_without_a_warning(
    make_client: MakeClient, method: str
) -> None:
    # NOTE: wsgiref.validate warned (WSGIWarning "Unknown REQUEST_METHOD") under WSGI only, so
    # under -W error the test of a 405 failed there and passed under ASGI; PEP 3333 names no
    # methods, and Waitress passes them on (docs/serving.md).
    answer = make_client(_app()).request(method, "/h")
    assert answer.status_code == 405
    assert "GET" in answer.headers["allow"]


@pytest.mark.parametrize("interface", ["wsgi", "asgi", "both"])
def test_a_response_header_value_with_a_tab_inside_comes_back_as_sent(interface: str) -> None:
    # NOTE: RFC 9110 5.5 allows HTAB inside a field value, and microweb lets the app set one;
    # Waitress, Granian (WSGI) and Uvicorn send it as it is (measured with a raw socket). The
    # WSGI side failed under wsgiref.validate, whose check of
    # PEP 3333's "no control characters" refuses a tab too, while the ASGI side passed.
    app = App()

    @app.get("/t")
    def tabbed(request: Request) -> Response:
        return Response.text("t", headers={"x-tab": "a\tb", "x-plain": "c d"})

    with TestClient(app, interface) as client:
        answer = client.get("/t")
    assert (answer.headers["x-tab"], answer.headers["x-plain"]) == ("a\tb", "c d")
