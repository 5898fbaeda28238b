"""An HTTPError subclass that skips HTTPError's __init__: a bug of the app's, logged, a 500."""

from __future__ import annotations

import logging

import pytest
from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request, WebSocket, WebSocketDisconnect


class _Unmade(HTTPError):
    """Skips HTTPError.__init__ (a port's exception class): no status, detail or headers."""

    def __init__(self) -> None:
        Exception.__init__(self, "unmade")


@pytest.mark.parametrize("flows", [False, True])
def test_an_http_error_with_no_status_is_a_logged_500(
    make_client: MakeClient, colour: str, flows: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: without flows, the error handlers' lookup read exc.status and its AttributeError
    # left the app: a 500 and a traceback from the server, nothing logged by the app. With a
    # flow, it was a logged 500 already.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()
    if flows:

        @app.middleware
        def passes(request: Request):  # type: ignore[no-untyped-def]
            yield

    def raises(request: Request) -> None:
        raise _Unmade()

    app.get("/")(in_colour(colour, raises))
    response = make_client(app).get("/")
    assert response.status_code == 500
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(error) for error in logged] == [AttributeError]


def test_an_error_handler_that_keeps_raising_broken_http_errors_ends_in_one_500(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the handler for the broken answer's AttributeError raised another broken one,
    # whose AttributeError it answered again: a RecursionError past 900 lines logged.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    def unmade_again(request: Request, exc: AttributeError) -> None:
        raise _Unmade()

    app.error_handler(AttributeError)(in_colour(colour, unmade_again))

    def raises(request: Request) -> None:
        raise _Unmade()

    app.get("/")(in_colour(colour, raises))
    response = make_client(app).get("/")
    assert response.status_code == 500
    assert 1 <= len([r for r in caplog.records if r.exc_info]) <= 3


class _StatusFails(HTTPError):
    """Its ``status`` is a property that raises (a port's lazy status)."""

    @property  # type: ignore[override]
    def status(self) -> int:
        raise ValueError("no status yet")

    @status.setter
    def status(self, value: int) -> None:
        pass


class _StatusText(HTTPError):
    """Its ``status`` is a property that gives a ``str``."""

    @property  # type: ignore[override]
    def status(self) -> str:
        return "404"

    @status.setter
    def status(self, value: int) -> None:
        pass


class _StatusOk(HTTPError):
    """Its ``status`` is a property that gives an ``int`` no HTTPError may have: 200."""

    @property  # type: ignore[override]
    def status(self) -> int:
        return 200

    @status.setter
    def status(self, value: int) -> None:
        pass


_BROKEN = {"raises": _StatusFails, "text": _StatusText, "ok": _StatusOk}


@pytest.mark.parametrize("kind", ["raises", "text", "ok"])
@pytest.mark.parametrize("where", ["handler", "flow", "error-handler", "http-error-handler"])
def test_an_http_error_whose_status_fails_is_a_logged_500(
    make_client: MakeClient,
    colour: str,
    kind: str,
    where: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the error handlers' lookup (and the log of an error handler's HTTPError) read
    # exc.status with getattr, which lets any error but AttributeError out of the app: a 500
    # and a traceback from the server, nothing logged by the app. One of 200 went out as a
    # 200 with the error's body ("Not Found"), nothing logged.
    caplog.set_level(logging.ERROR, logger="microweb")
    broken = _BROKEN[kind]
    app = App()
    if where == "flow":

        @app.middleware
        def passes(request: Request):  # type: ignore[no-untyped-def]
            yield

    def raises(request: Request) -> None:
        raise (KeyError("x") if where.endswith("error-handler") else broken(404))

    app.get("/")(in_colour(colour, raises))
    if where.endswith("error-handler"):

        def answers(request: Request, exc: KeyError) -> None:
            raise broken(404)

        app.error_handler(KeyError)(in_colour(colour, answers))
    if where == "http-error-handler":
        app.error_handler(HTTPError)(lambda request, exc: "answered")
    response = make_client(app).get("/")
    assert response.status_code == 500
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert logged
    assert type(logged[-1]) is (TypeError if kind == "text" else ValueError)


@pytest.mark.parametrize("kind", ["raises", "ok"])
def test_a_websocket_handlers_http_error_whose_status_fails_closes_1011_and_is_logged(
    asgi_client: MakeClient, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: after accept(), the close code was chosen by exc.status < 500: its ValueError
    # left the ASGI app, and the client got no close frame from it. One of 200 closed 1008,
    # as a client's error, nothing logged.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    @app.websocket("/ws")
    async def fails(ws: WebSocket) -> None:
        await ws.accept()
        raise _BROKEN[kind](404)

    with asgi_client(app).websocket_connect("/ws") as session:
        with pytest.raises(WebSocketDisconnect) as closed:
            session.receive_text()
        assert closed.value.code == 1011
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(error) for error in logged] == [_BROKEN[kind]]
