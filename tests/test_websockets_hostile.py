"""WebSockets, in process, against what a hostile client or a real server does (review188).

Each test drives the real ``as_asgi()`` callable: through ``TestClient``, or with the ASGI
messages a server sends, where the test client cannot send them.
"""

from __future__ import annotations

import asyncio

import pytest
from conftest import MakeClient
from drive import handshake_messages, websocket_scope

from microweb import App, WebSocket, WebSocketDisconnect
from microweb.testing import TestClient


def test_a_receive_pending_when_another_task_closes_ends_with_that_close(
    asgi_client: MakeClient,
) -> None:
    # NOTE: Uvicorn sends websocket.disconnect with the app's code and reason once the app
    # closes: a watchdog that closed an idle socket ended the handler's receive there at
    # once, and under the test client only when the test closed, with the test's code.
    app = App()
    seen: list[tuple[int, str]] = []

    @app.websocket("/ws")
    async def watched(ws: WebSocket) -> None:
        await ws.accept()

        async def watchdog() -> None:
            await ws.close(4000, "idle")

        closing = asyncio.create_task(watchdog())
        try:
            await ws.receive_text()
        except WebSocketDisconnect as exc:
            seen.append((exc.code, exc.reason))
        await closing

    with asgi_client(app).websocket_connect("/ws") as session:
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
        assert (closed.value.code, closed.value.reason) == (4000, "idle")
    assert seen == [(4000, "idle")]


def test_empty_subprotocols_a_server_passes_on_are_not_offered() -> None:
    # NOTE: Uvicorn splits "chat, , v2" and "chat," on commas and keeps the empty names;
    # RFC 9110 5.6.1 has a recipient ignore empty list elements, as the test client does.
    # An app that took ws.subprotocols[-1] accepted "", and the client got no subprotocol.
    app = App()
    seen: list[list[str]] = []

    @app.websocket("/ws")
    async def chat(ws: WebSocket) -> None:
        seen.append(ws.subprotocols)
        await ws.accept(subprotocol=ws.subprotocols[-1])

    sent = handshake_messages(app.as_asgi(), websocket_scope("/ws", ["chat", "", "v2", ""]))
    assert seen == [["chat", "v2"]]
    assert sent[0]["type"] == "websocket.accept"
    assert sent[0]["subprotocol"] == "v2"


@pytest.mark.parametrize("closed_by", ["session", "client"])
def test_a_handler_that_only_sends_hears_that_the_test_closed(closed_by: str) -> None:
    # NOTE: a server's send() raises once its client has gone; the test client's took every
    # message in silence, so a ticker never ended: the session's close waited 10 s and raised
    # TimeoutError, the client's (a server's stop) cancelled it after 2 s.
    app = App()
    seen: list[int] = []

    @app.websocket("/ticks")
    async def ticks(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.send_text("tick")
                await asyncio.sleep(0.001)
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    client = TestClient(app, interface="asgi")
    try:
        session = client.websocket_connect("/ticks")
        assert session.receive_text() == "tick"
        if closed_by == "session":
            session.close()
    finally:
        client.close()
    assert seen == [1006]


def test_the_messages_sent_before_the_tests_close_reach_the_handler() -> None:
    # NOTE: a server reads the client's close only once the app took what came before it, so
    # the replies to them go out but, maybe, the last one's: the handler reads them all, and
    # ends. Had its sends failed as soon as the test closed, a reply could have ended it first.
    app = App()
    seen: list[str] = []

    @app.websocket("/echo")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            seen.append(text)
            await ws.send_text(text)

    client = TestClient(app, interface="asgi")
    with client, client.websocket_connect("/echo") as session:
        for text in "abcde":
            session.send_text(text)
    assert seen == list("abcde")
