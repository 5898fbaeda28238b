"""The Sessions plugin where a request does not end in its handler's answer: an error handler's
answer, and a WebSocket handshake (whose answer goes before the handler runs)."""

from __future__ import annotations

import json
from typing import Any

from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request, Response, WebSocket
from microweb.plugins import Sessions, flash, get_flashed_messages
from microweb.testing import TestClient

SECRET = "a-test-secret-of-32-characters!!"


class OutOfStock(Exception):
    """An app's own error, which its error handler answers with a 409."""


def error_handled_app(colour: str) -> App:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    def missing(request: Request) -> None:
        request.session["by_handler"] = True
        raise HTTPError(404)

    def sold_out(request: Request) -> None:
        request.session["by_handler"] = True
        raise OutOfStock()

    def not_found(request: Request, exc: HTTPError) -> Response:
        request.session["by_error_handler"] = 404
        flash(request, "No such page.", "error")
        return Response.text("not here", status=404)

    def out_of_stock(request: Request, exc: OutOfStock) -> Response:
        request.session["by_error_handler"] = 409
        return Response.text("sold out", status=409)

    def look(request: Request) -> dict[str, Any]:
        return {"session": dict(request.session), "flashes": get_flashed_messages(request)}

    app.get("/missing")(in_colour(colour, missing))
    app.get("/sold-out")(in_colour(colour, sold_out))
    app.get("/look")(in_colour(colour, look))
    app.error_handler(404)(in_colour(colour, not_found))
    app.error_handler(OutOfStock)(in_colour(colour, out_of_stock))
    return app


def test_an_error_handlers_answer_carries_the_session_changed_by_both(
    make_client: MakeClient, colour: str
) -> None:
    client = make_client(error_handled_app(colour))
    answer = client.get("/missing")
    assert (answer.status_code, answer.text) == (404, "not here")
    assert client.get("/look").json() == {
        "session": {
            "_flashes": [["error", "No such page."]],
            "by_error_handler": 404,
            "by_handler": True,
        },
        "flashes": ["No such page."],
    }
    client.cookies.clear()
    assert client.get("/sold-out").status_code == 409
    assert client.get("/look").json()["session"] == {"by_error_handler": 409, "by_handler": True}


def websocket_app() -> tuple[App, Sessions]:
    app = App()
    sessions = app.install(Sessions(SECRET, secure=False))

    @app.middleware
    def stamp(request: Request) -> Any:
        if request.query.get("stamp"):
            request.session["stamped"] = True
        yield

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_json(
            {"session": dict(ws.request.session), "flashes": get_flashed_messages(ws.request)}
        )
        ws.request.session["by_handler"] = True  # NOTE: documented as lost.

    @app.get("/look")
    def look(request: Request) -> dict[str, Any]:
        return dict(request.session)

    return app, sessions


def _accept_headers(ws: Any) -> list[tuple[bytes, bytes]]:
    return [(bytes(name), bytes(value)) for name, value in ws.accepted["headers"]]


def test_a_websocket_handler_reads_the_session_and_its_changes_are_not_saved() -> None:
    app, sessions = websocket_app()
    cookie = sessions.sign(json.dumps({"user": "ada", "_flashes": [["message", "Saved."]]}))
    with TestClient(app, interface="asgi") as client:
        client.cookies["session"] = cookie
        with client.websocket_connect("/ws") as ws:
            seen = ws.receive_json()
            headers = _accept_headers(ws)
        assert seen == {
            "session": {"user": "ada", "_flashes": [["message", "Saved."]]},
            "flashes": ["Saved."],
        }
        # NOTE: nothing changed before the acceptance: no cookie; the handler's changes (the
        # flashes taken, its own key) had nothing to go out with.
        assert not [value for name, value in headers if name == b"set-cookie"]
        assert (b"vary", b"Cookie") in headers
        assert client.get("/look").json() == {
            "user": "ada",
            "_flashes": [["message", "Saved."]],
        }


def test_a_flows_change_to_the_session_goes_out_with_the_websocket_acceptance() -> None:
    app, sessions = websocket_app()
    with (
        TestClient(app, interface="asgi") as client,
        client.websocket_connect("/ws?stamp=1") as ws,
    ):
        assert ws.receive_json() == {"session": {"stamped": True}, "flashes": []}
        [cookie] = [value for name, value in _accept_headers(ws) if name == b"set-cookie"]
    value = cookie.decode("latin-1").split(";")[0].removeprefix("session=")
    assert sessions.load(value) == {"stamped": True}


def test_an_invalid_session_cookie_is_deleted_by_the_websocket_acceptance() -> None:
    app, _ = websocket_app()
    forged = {"cookie": "session=forged.1.x"}
    with (
        TestClient(app, interface="asgi") as client,
        client.websocket_connect("/ws", headers=forged) as ws,
    ):
        assert ws.receive_json() == {"session": {}, "flashes": []}
        [cookie] = [value for name, value in _accept_headers(ws) if name == b"set-cookie"]
    assert cookie.startswith(b"session=;") and b"Max-Age=0" in cookie
