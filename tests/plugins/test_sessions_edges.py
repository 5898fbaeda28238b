"""The Sessions plugin where a request does not end in its handler's answer: an error handler's
answer, and a WebSocket handshake (whose answer goes before the handler runs)."""

from __future__ import annotations

import json
from typing import Any

from conftest import MakeClient, in_colour
from hypothesis import given, settings
from hypothesis import strategies as st

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


_SESSIONS = Sessions(SECRET)
_VALID = _SESSIONS.sign(json.dumps({"user": "ada", "roles": ["admin"]}))
# NOTE: what a cookie value may hold as a browser sends it (RFC 6265 cookie-octet), and more.
_COOKIE_CHARS = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters='";,\\')


@st.composite
def _altered(draw: st.DrawFn) -> str:
    """The valid cookie with one change: a character replaced, inserted or removed, or cut."""
    value = _VALID
    at = draw(st.integers(0, len(value)))
    kind = draw(st.sampled_from(["replace", "insert", "remove", "cut", "cut-start"]))
    if kind == "replace" and at < len(value):
        value = value[:at] + draw(_COOKIE_CHARS) + value[at + 1 :]
    elif kind == "insert":
        value = value[:at] + draw(st.text(_COOKIE_CHARS, min_size=1, max_size=3)) + value[at:]
    elif kind == "remove" and at < len(value):
        value = value[:at] + value[at + 1 :]
    elif kind == "cut":
        value = value[:at]
    elif kind == "cut-start":
        value = value[at:]
    return value


@settings(max_examples=200, deadline=None)
@given(value=_altered())
def test_any_change_to_a_signed_cookie_gives_an_empty_session(value: str) -> None:
    assert _SESSIONS.load(_VALID) == {"user": "ada", "roles": ["admin"]}
    if value != _VALID:
        assert _SESSIONS.load(value) == {}


def test_altered_cookies_are_deleted_and_never_a_500(interface: str) -> None:
    app = App()
    app.install(_SESSIONS)

    @app.get("/me")
    def me(request: Request) -> dict[str, Any]:
        return dict(request.session)

    values = [_VALID[:-1], _VALID[1:], _VALID + "A", _VALID.replace(".", "..", 1), "." * 3, ""]
    with TestClient(app, interface=interface) as client:
        for value in values:
            answer = client.get("/me", headers={"cookie": f"session={value}"})
            assert (answer.status_code, answer.json()) == (200, {}), value
            assert "Max-Age=0" in answer.headers["set-cookie"], value
