"""AccessLog's line for a WebSocket handshake: the status its client got, also where the
handler, not a flow, answered it. (WebSockets exist under ASGI only.)"""

from __future__ import annotations

import asyncio
import logging
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
    WebSocket,
    WebSocketDisconnect,
)
from microweb.plugins import AccessLog


class NotSignedIn(Exception):
    pass


def _app() -> App:
    app = App()
    app.install(AccessLog())

    @app.error_handler(NotSignedIn)
    def sign_in(request: Request, exc: NotSignedIn) -> str:
        return "sign in first"  # NOTE: a 200 over HTTP; a handshake's refusal says 403.

    @app.websocket("/ws/{how}")
    async def handler(ws: WebSocket, how: str) -> None:
        if how == "close":
            await ws.close()
        elif how == "http":
            raise HTTPError(401, headers={"www-authenticate": "Bearer"})
        elif how == "bug":
            raise KeyError(how)
        elif how == "class":
            raise NotSignedIn()
        elif how == "return":
            return
        await ws.accept()
        await ws.send_text("hello")
        await ws.receive_text()

    return app


def _statuses(caplog: pytest.LogCaptureFixture) -> list[list[str]]:
    return [
        record.getMessage().split()[:3]
        for record in caplog.records
        if record.name == "microweb.access"
    ]


@pytest.mark.parametrize(
    ("how", "status"),
    [("close", "403"), ("return", "403"), ("http", "401"), ("bug", "500"), ("class", "403")],
)
def test_a_handshake_the_handler_refuses_is_logged_with_its_refusals_status(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture, how: str, status: str
) -> None:
    # NOTE: the line was written when the flows were done, before the handler ran: 101 for
    # every handshake its handler then refused.
    caplog.set_level(logging.INFO, logger="microweb.access")
    client = asgi_client(_app())
    with pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect(f"/ws/{how}")
    assert refused.value.response is not None
    assert str(refused.value.response.status_code) == status
    assert _statuses(caplog) == [["GET", f"/ws/{how}", status]]


def test_an_accepted_handshake_is_logged_101_once_accepted(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    client = asgi_client(_app())
    with client.websocket_connect("/ws/open") as session:
        assert session.receive_text() == "hello"
        # NOTE: while the connection is open: not when it ends.
        assert _statuses(caplog) == [["GET", "/ws/open", "101"]]
        session.send_text("bye")
    assert _statuses(caplog) == [["GET", "/ws/open", "101"]]


@pytest.mark.parametrize("how", ["http", "class"])
def test_a_refusal_the_server_cannot_send_is_logged_403(
    caplog: pytest.LogCaptureFixture, how: str
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    sent = handshake_messages(_app().as_asgi(), websocket_scope(f"/ws/{how}"))
    assert [message["type"] for message in sent] == ["websocket.close"]
    assert _statuses(caplog) == [["GET", f"/ws/{how}", "403"]]


def test_a_client_gone_before_the_handler_answered_is_logged_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="microweb.access")
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.disconnect", "code": 1006}

    async def send(message: Message) -> None:
        sent.append(message)

    asgi = _app().as_asgi()
    asyncio.run(asyncio.wait_for(asgi(websocket_scope("/ws/open"), receive, send), 5))
    assert sent == []
    assert _statuses(caplog) == [["GET", "/ws/open", "499"]]


def test_a_handshake_a_flow_outside_it_refuses_after_the_101_is_logged_once(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: AccessLog, further in, saw the 101 and waited for the handler's answer, which
    # never came: the handshake was not logged at all.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()

    @app.middleware
    def closing_time(request: Request) -> Any:
        response = yield
        if request.query.get("late") and response.status == 101:
            yield Response.text("closed for the night", status=503)

    app.install(AccessLog())

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()

    client = asgi_client(app)
    with pytest.raises(WebSocketDisconnect) as refused:
        client.websocket_connect("/ws?late=1")
    assert refused.value.response is not None
    assert refused.value.response.status_code == 503
    assert _statuses(caplog) == [["GET", "/ws", "503"]]


class _BrokenLog(AccessLog):
    def log(self, request: Request, status: int, started: float) -> None:
        raise RuntimeError("the log is broken")


@pytest.mark.parametrize("how", ["open", "close"])
def test_a_log_that_fails_on_a_handshakes_answer_leaves_the_session_alone(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture, how: str
) -> None:
    # NOTE: its error went into the handler's accept(), after the 101 had gone out: the
    # handler's error was answered with a refusal, sent on an accepted connection.
    app = App()
    app.install(_BrokenLog())

    @app.websocket("/ws/{how}")
    async def handler(ws: WebSocket, how: str) -> None:
        if how == "close":
            await ws.close()
            return
        await ws.accept()
        await ws.send_text("hello")
        await ws.receive_text()

    client = asgi_client(app)
    with caplog.at_level(logging.ERROR, logger="microweb"):
        if how == "open":
            with client.websocket_connect("/ws/open") as session:
                assert session.receive_text() == "hello"
                session.send_text("bye")
        else:
            with pytest.raises(WebSocketDisconnect) as refused:
                client.websocket_connect("/ws/close")
            assert refused.value.response is not None
            assert refused.value.response.status_code == 403
    failures = [r for r in caplog.records if r.name == "microweb" and r.exc_info]
    assert [f.getMessage() for f in failures] == [f"answer report of GET /ws/{how} failed"]
    assert isinstance(failures[0].exc_info[1], RuntimeError)  # type: ignore[index]


@pytest.mark.parametrize("outer", [True, False], ids=["app-flow-outside", "app-flow-inside"])
def test_an_apps_own_state_named_handshake_answered_is_left_alone(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture, outer: bool
) -> None:
    # NOTE: AccessLog's calls for the handshake's answer were kept in the app's own namespace,
    # as request.state.handshake_answered: an app's flow that set it made AccessLog's flow
    # raise (a 500), or the session's end raise a TypeError out of the app.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()

    def mark(request: Request) -> Any:
        request.state.handshake_answered = "mine"
        yield

    if outer:
        app.middleware(mark)
    app.install(AccessLog())
    if not outer:
        app.middleware(mark)

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(ws.request.state.handshake_answered)
        await ws.receive_text()

    client = asgi_client(app)
    with client.websocket_connect("/ws") as session:
        assert session.receive_text() == "mine"
        session.send_text("bye")
    assert _statuses(caplog) == [["GET", "/ws", "101"]]


@pytest.mark.parametrize("where", ["flow", "handler"])
def test_a_client_disconnect_raised_before_the_answer_is_logged_499(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture, where: str
) -> None:
    # NOTE: one raised by the handler before accept() was logged 403 (the close it became),
    # where a flow's, and an HTTP handler's, are logged 499, as a client gone.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = App()
    app.install(AccessLog())

    @app.middleware
    def leaving(request: Request) -> Any:
        if where == "flow":
            raise ClientDisconnect("the client left")
        yield

    @app.websocket("/ws")
    async def handler(ws: WebSocket) -> None:
        raise ClientDisconnect("the client left")

    with pytest.raises(WebSocketDisconnect):
        asgi_client(app).websocket_connect("/ws")
    assert _statuses(caplog) == [["GET", "/ws", "499"]]


@pytest.mark.parametrize(
    ("path", "status"),
    [("/nowhere", "404"), ("/rooms/a", "401"), ("/caf%ff", "400")],
    ids=["no-route", "converter", "malformed"],
)
def test_a_handshake_no_route_takes_is_logged(
    asgi_client: MakeClient, caplog: pytest.LogCaptureFixture, path: str, status: str
) -> None:
    # NOTE: refused before AccessLog's flow ran, it had no line at all; refused through the
    # flows now, it has the line of what its client got.
    caplog.set_level(logging.INFO, logger="microweb.access")
    app = _app()

    def locked(text: str) -> str:
        raise HTTPError(401, "locked")

    app.add_converter("locked", locked)

    @app.websocket("/rooms/{name:locked}")
    async def room(ws: WebSocket, name: str) -> None:
        await ws.accept()

    with pytest.raises(WebSocketDisconnect) as refused:
        asgi_client(app).websocket_connect(path)
    assert refused.value.response is not None
    assert str(refused.value.response.status_code) == status
    # NOTE: the log writes the path's bytes that are not text percent-encoded, in capitals.
    assert _statuses(caplog) == [["GET", path.replace("%ff", "%FF"), status]]
