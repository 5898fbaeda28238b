"""What an error a WebSocket handler raises before ``accept()`` answers: its error handler's
response refuses the handshake, as over HTTP. (WebSockets exist under ASGI only; the WSGI side's
refusal is tested in test_servers_websocket_wsgi.py.)"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
from typing import Any

import pytest
from conftest import MakeClient
from drive import Message, handshake_messages, websocket_scope

from microweb import (
    App,
    ClientDisconnect,
    HTTPError,
    Request,
    Response,
    Router,
    WebSocket,
    WebSocketDisconnect,
)
from microweb._asgi_request import DENIAL_RESPONSE, DENIAL_SENT_WHOLE
from microweb.testing import TestClient


class NotSignedIn(Exception):
    pass


def _app(*, class_handler: bool, page_500: bool) -> App:
    app = App()

    if class_handler:

        @app.error_handler(NotSignedIn)
        def sign_in_first(request: Request, exc: NotSignedIn) -> Response:
            return Response("sign in first", status=401, headers={"www-authenticate": "Bearer"})

    if page_500:

        @app.error_handler(500)
        def oops(request: Request, exc: Exception) -> Response:
            return Response("our fault", status=500)

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        token = ws.request.query.get("token")
        if token is None:
            raise NotSignedIn()
        if token == "bug":
            raise KeyError(token)
        await ws.accept()
        if token == "late":
            raise NotSignedIn()
        await ws.send_text("welcome")

    return app


def _refusal(client: TestClient, path: str) -> tuple[int, int, str]:
    with pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect(path)
    answer = refused.value.response
    assert answer is not None
    return refused.value.code, answer.status_code, answer.text


def test_a_class_error_handler_answers_an_error_raised_before_accept(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the client got a 403 and an ERROR with a traceback was logged, where the same
    # error over HTTP got the handler's 401, and a flow's got it during the handshake.
    client = asgi_client(_app(class_handler=True, page_500=False))
    with caplog.at_level(logging.ERROR, logger="microweb"):
        assert _refusal(client, "/ws") == (1008, 401, "sign in first")
        with client.websocket_connect("/ws?token=t") as session:
            assert session.receive_text() == "welcome"
    assert caplog.records == []


def test_a_bug_raised_before_accept_is_answered_by_the_500_page_and_logged_once(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    client = asgi_client(_app(class_handler=False, page_500=True))
    with caplog.at_level(logging.ERROR, logger="microweb"):
        assert _refusal(client, "/ws?token=bug") == (1008, 500, "our fault")
    logged = [r for r in caplog.records if r.exc_info]
    assert len(logged) == 1
    assert isinstance(logged[0].exc_info[1], KeyError)  # type: ignore[index]
    assert "GET /ws" in logged[0].getMessage()


def test_a_bug_raised_before_accept_is_raised_to_a_test_client_that_asks() -> None:
    client = TestClient(
        _app(class_handler=False, page_500=False), interface="asgi", raise_server_exceptions=True
    )
    with pytest.raises(KeyError):
        client.websocket_connect("/ws?token=bug")


def test_an_error_after_accept_still_closes_1011_whatever_its_handler(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the handshake is answered by then: no response can go out.
    client = asgi_client(_app(class_handler=True, page_500=False))
    with (
        caplog.at_level(logging.ERROR, logger="microweb"),
        client.websocket_connect("/ws?token=late") as session,
        pytest.raises(WebSocketDisconnect) as closed,
    ):
        session.receive_text()
    assert closed.value.code == 1011
    assert [r.getMessage() for r in caplog.records] == ["error in WebSocket handler for /ws"]


@pytest.mark.parametrize("class_handler", [True, False])
def test_a_refusal_for_an_error_is_a_close_where_the_server_cannot_send_it(
    class_handler: bool,
) -> None:
    app = _app(class_handler=class_handler, page_500=False)
    sent = handshake_messages(app.as_asgi(), websocket_scope("/ws"))
    assert [message["type"] for message in sent] == ["websocket.close"]
    assert sent[0]["code"] == 1008


def _converting_app() -> App:
    app = App()

    def room_id(text: str) -> int:
        if text == "locked":
            raise HTTPError(401, "sign in first", headers={"www-authenticate": "Bearer"})
        if text == "bug":
            raise NotSignedIn(text)  # NOTE: no ValueError: the converter's own error.
        return int(text)

    app.add_converter("room", room_id)

    @app.error_handler(NotSignedIn)
    def sign_in_first(request: Request, exc: NotSignedIn) -> Response:
        return Response("sign in, then", status=401)

    @app.websocket("/rooms/{n:room}")
    async def room(ws: WebSocket, n: int) -> None:
        await ws.accept()
        await ws.send_json(n)

    return app


def test_a_converters_error_refuses_a_handshake_with_the_error_handlers_answer(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a converter's HTTPError(401) or an error a class handler takes reached the client
    # as the 403 of a close, where the same converter's on an HTTP route, and the handler's
    # before accept(), went out as the error handlers answer them.
    client = asgi_client(_converting_app())
    with caplog.at_level(logging.ERROR, logger="microweb"):
        assert _refusal(client, "/rooms/locked") == (1008, 401, "sign in first")
        assert _refusal(client, "/rooms/bug") == (1008, 401, "sign in, then")
        with client.websocket_connect("/rooms/7") as session:
            assert session.receive_json() == 7


def test_a_client_disconnect_raised_before_accept_is_a_close_not_logged(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: as a flow's (and an HTTP handler's): fail() re-raises it, and it left the ASGI app,
    # which the test client raised and Uvicorn logged as "Exception in ASGI application".
    app = App()

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        raise ClientDisconnect()

    sent, kept = _requests_kept(app.as_asgi(), websocket_scope("/ws"))
    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]
    # NOTE: fail() re-raises it, and its traceback then held the frame that held it.
    assert kept == 0
    with caplog.at_level(logging.ERROR, logger="microweb"):
        with pytest.raises(WebSocketDisconnect) as refused:
            asgi_client(app).websocket_connect("/ws")
        assert refused.value.code == 1008
    assert caplog.records == []


def _requests_kept(asgi: Any, scope: Message) -> tuple[list[Message], int]:
    """Run a handshake with the cycle collector off; return what the app sent and how many
    of its requests only a collection would free."""
    handshake_messages(asgi, scope)  # NOTE: the first fills the caches; not counted.
    scope = {**scope, "query_string": b"counted"}
    logging.disable(logging.CRITICAL)  # NOTE: a kept log record holds the error.
    gc.disable()
    # PERF: the collection below looks only at what came since; none collects the whole heap
    # (tests/drive.py, requests_left_in_cycles).
    gc.freeze()
    try:
        sent = handshake_messages(asgi, scope)
        gc.set_debug(gc.DEBUG_SAVEALL)
        gc.collect()
        kept = [o for o in gc.garbage if isinstance(o, Request) and o.query_string == b"counted"]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
        gc.enable()
        logging.disable(logging.NOTSET)
    return sent, len(kept)


@pytest.mark.parametrize("denial", [False, True], ids=["close", "denial-response"])
@pytest.mark.parametrize("segment", ["locked", "bug"])
def test_a_converters_refusal_frees_its_request_without_a_collection(
    segment: str, denial: bool
) -> None:
    # NOTE: the converter's error (not an HTTPError) went through the error handlers, and its
    # traceback then held the session's frame, which held it: the request waited for a full
    # collection.
    scope = websocket_scope(f"/rooms/{segment}")
    if denial:
        # NOTE: with the mark of a server that sends it whole, as `microweb serve` gives it:
        # the extension alone is not taken from an older Uvicorn that another test of this
        # process imported (the 3.10 venv's 0.54).
        scope["extensions"] = {DENIAL_RESPONSE: {}, DENIAL_SENT_WHOLE: {}}
    sent, kept = _requests_kept(_converting_app().as_asgi(), scope)
    assert sent[0].get("status", sent[0].get("code")) == (401 if denial else 1008)
    assert kept == 0


def test_a_converters_error_on_a_routers_route_is_the_apps_to_answer_as_over_http(
    asgi_client: MakeClient,
) -> None:
    # NOTE: the route is not matched when its converter raises: the router's handlers don't
    # see the error, over HTTP or WebSocket alike (docs/routing.md).
    app = App()

    def room_id(text: str) -> int:
        raise HTTPError(401, "sign in first")

    app.add_converter("room", room_id)
    app.error_handler(401)(lambda request, exc: Response("the app's", status=401))
    api = Router(prefix="/api")
    api.error_handler(401)(lambda request, exc: Response("the router's", status=401))
    api.get("/rooms/{n:room}")(lambda request, n: "never")

    @api.websocket("/rooms/{n:room}")
    async def room(ws: WebSocket, n: int) -> None:
        await ws.accept()

    app.include(api)
    client = asgi_client(app)
    assert client.get("/api/rooms/1").text == "the app's"
    assert _refusal(client, "/api/rooms/1") == (1008, 401, "the app's")


@pytest.mark.skipif(
    sys.version_info < (3, 11), reason="Python 3.10 tells no app's CancelledError from a cancel"
)
def test_a_converters_own_cancelled_error_is_its_bug_as_over_http(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: over HTTP it is answered 500 and logged, as a handler's; on a WebSocket route it
    # left the app (the test client raised it; a server logs it as the app's exception).
    app = App()

    def room_id(text: str) -> int:
        raise asyncio.CancelledError()

    app.add_converter("room", room_id)
    app.get("/rooms/{n:room}")(lambda request, n: "never")

    @app.websocket("/rooms/{n:room}")
    async def room(ws: WebSocket, n: int) -> None:
        await ws.accept()

    client = asgi_client(app)
    with caplog.at_level(logging.ERROR, logger="microweb"):
        assert client.get("/rooms/1").status_code == 500
        assert _refusal(client, "/rooms/1")[:2] == (1008, 500)
    assert len([r for r in caplog.records if r.exc_info]) == 2
