"""TestClient(raise_server_exceptions=True) and WebSockets: the handler's error reaches the test.

WebSockets run under ASGI only, so the sessions here come from ``"asgi"`` and ``"both"``
clients (the latter uses its ASGI side); under ``"wsgi"`` ``websocket_connect()`` refuses.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from microweb import App, Request, WebSocket, WebSocketDisconnect
from microweb.testing import TestClient, WebSocketSession

SIDES = ["asgi", "both"]


class Boom(Exception):
    """The error the handler under test raises."""


@pytest.fixture(autouse=True)
def _quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    # NOTE: the driver logs each of these errors, as under a server; that is tested elsewhere.
    with caplog.at_level(logging.CRITICAL, logger="microweb"):
        yield


def _app(boom: Exception, *, accept: bool = True) -> App:
    app = App()

    @app.websocket("/ws")
    async def fail(ws: WebSocket) -> None:
        if accept:
            await ws.accept()
            await ws.send_text("hello")
            await ws.receive_text()  # NOTE: the failure waits for the test's message
        raise boom

    return app


@pytest.mark.parametrize("interface", SIDES)
def test_by_default_the_session_sees_a_close_with_1011(interface: str) -> None:
    with TestClient(_app(Boom("no")), interface=interface) as client:
        with client.websocket_connect("/ws") as session:
            assert session.receive_text() == "hello"
            session.send_text("go")
            with pytest.raises(WebSocketDisconnect) as closed:
                session.receive_text()
        assert closed.value.code == 1011
        with client.websocket_connect("/ws") as session:
            session.send_text("go")  # NOTE: and the end of the block raises nothing
    refusing = TestClient(_app(Boom("no"), accept=False), interface=interface)
    with refusing, pytest.raises(WebSocketDisconnect) as refused:
        refusing.websocket_connect("/ws")
    assert refused.value.code == 1008


@pytest.mark.parametrize("interface", SIDES)
def test_the_receive_that_sees_the_end_raises_the_error(interface: str) -> None:
    boom = Boom("in the handler")
    client = TestClient(_app(boom), interface=interface, raise_server_exceptions=True)
    with client, client.websocket_connect("/ws") as session:
        assert session.receive_text() == "hello"  # NOTE: what was sent before, first
        session.send_text("go")
        with pytest.raises(Boom) as raised:
            session.receive_text()
        # NOTE: raised once: neither close() nor the end of the block raises it again.
        session.close()
    assert raised.value is boom
    assert "fail" in [str(entry.name) for entry in raised.traceback]


@pytest.mark.parametrize("interface", SIDES)
def test_the_end_of_the_with_block_raises_the_error(interface: str) -> None:
    boom = Boom("after the last receive")
    client = TestClient(_app(boom), interface=interface, raise_server_exceptions=True)
    with client, pytest.raises(Boom) as raised, client.websocket_connect("/ws") as session:
        session.send_text("go")
    assert raised.value is boom


def test_close_raises_the_error() -> None:
    boom = Boom("seen by close")
    with TestClient(_app(boom), interface="asgi", raise_server_exceptions=True) as client:
        session = client.websocket_connect("/ws")
        session.send_text("go")
        with pytest.raises(Boom) as raised:
            session.close()
        session.close()  # NOTE: once
    assert raised.value is boom


def test_the_tests_own_error_wins_over_the_apps() -> None:
    client = TestClient(_app(Boom("app")), interface="asgi", raise_server_exceptions=True)
    with client, pytest.raises(KeyError), client.websocket_connect("/ws") as session:
        session.send_text("go")
        raise KeyError("the test's")


@pytest.mark.parametrize("interface", SIDES)
def test_an_error_before_accept_is_raised_by_websocket_connect(interface: str) -> None:
    boom = Boom("before accept")
    app = _app(boom, accept=False)
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(Boom) as raised,
    ):
        client.websocket_connect("/ws")
    assert raised.value is boom


def test_a_handshake_flows_error_is_raised_by_websocket_connect() -> None:
    boom = Boom("in a flow")
    app = _app(Boom("not reached"))

    @app.middleware
    def failing(request: Request) -> Iterator[None]:
        raise boom
        yield

    with (
        TestClient(app, interface="asgi", raise_server_exceptions=True) as client,
        pytest.raises(Boom) as raised,
    ):
        client.websocket_connect("/ws")
    assert raised.value is boom


def test_the_option_is_read_at_each_handshake() -> None:
    with TestClient(_app(Boom("later")), interface="asgi") as client:
        client.raise_server_exceptions = True
        with pytest.raises(Boom), client.websocket_connect("/ws") as session:
            session.send_text("go")
        client.raise_server_exceptions = False
        with client.websocket_connect("/ws") as session:
            session.send_text("go")


def test_a_session_that_ends_well_raises_nothing() -> None:
    app = App()

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())

    with TestClient(app, interface="asgi", raise_server_exceptions=True) as client:
        with client.websocket_connect("/ws") as session:
            session.send_text("hi")
            assert session.receive_text() == "hi"
            with pytest.raises(WebSocketDisconnect) as closed:
                session.receive_text()
        assert closed.value.code == 1000
        with client.websocket_connect("/ws") as session:
            pass  # NOTE: the client leaves first: a WebSocketDisconnect in the handler


def test_under_wsgi_websocket_connect_still_refuses() -> None:
    client = TestClient(_app(Boom("x")), interface="wsgi", raise_server_exceptions=True)
    with client, pytest.raises(RuntimeError, match="ASGI"):
        client.websocket_connect("/ws")


# -- an error that escapes the app (a bug in microweb or a plugin): raised, never a hang ----------


def _escaping_app(monkeypatch: pytest.MonkeyPatch, accept_first: bool) -> App:
    from microweb import _asgi

    async def escapes(
        host: object, scope: object, request: object, receive: object, send: Any
    ) -> None:
        if accept_first:
            await send({"type": "websocket.accept"})
        raise Boom("escaped the driver")

    monkeypatch.setattr(_asgi, "run_session", escapes)
    app = App()

    @app.websocket("/ws")
    async def ws_accept(ws: WebSocket) -> None:
        await ws.accept()

    return app


@pytest.mark.parametrize("side", SIDES)
def test_an_error_escaping_the_app_before_the_handshake_is_raised(
    monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    # NOTE: websocket_connect() waited for the app's first message forever: the suite hung.
    app = _escaping_app(monkeypatch, accept_first=False)
    with TestClient(app, interface=side) as client, pytest.raises(Boom, match="escaped"):
        client.websocket_connect("/ws")


@pytest.mark.parametrize("side", SIDES)
def test_an_error_escaping_the_app_after_the_accept_is_raised(
    monkeypatch: pytest.MonkeyPatch, side: str
) -> None:
    app = _escaping_app(monkeypatch, accept_first=True)
    with TestClient(app, interface=side) as client:
        ws = client.websocket_connect("/ws")
        with pytest.raises(Boom, match="escaped"):
            ws.receive_text()


def test_a_receive_cancelled_while_waiting_loses_no_message() -> None:
    # NOTE: a receive that ended unanswered (its timeout of 10 s, or a cancel) left its wait for
    # the app's next message running: that took the message, and the next receive never saw it.
    app = App()

    @app.websocket("/ws")
    async def echo_once(ws: WebSocket) -> None:
        await ws.accept()
        await ws.send_text(await ws.receive_text())

    async def receive_cancelled(session: WebSocketSession) -> None:
        waiting = asyncio.ensure_future(session._next_message())
        await asyncio.sleep(0)  # NOTE: it waits for the app now; the app waits for the test.
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting

    with TestClient(app, interface="asgi") as client, client.websocket_connect("/ws") as session:
        asyncio.run_coroutine_threadsafe(receive_cancelled(session), client.loop).result()
        session.send_text("kept")
        assert session.receive_text() == "kept"
