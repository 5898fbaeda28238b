"""Statuses given as ``http.HTTPStatus`` members, and statuses that are no status at all."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, NoReturn

import pytest
from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request, Response


@pytest.mark.parametrize("status", [404.0, 404.5, "404", None, True])
def test_http_error_refuses_a_status_that_is_no_int(status: Any) -> None:
    # NOTE: 404.0 went out as the ASGI status 404.0 and the JSON {"status": 404.0}.
    with pytest.raises(ValueError, match="4xx or 5xx"):
        HTTPError(status)


def test_http_error_takes_an_http_status_member_as_its_int() -> None:
    exc = HTTPError(HTTPStatus.IM_A_TEAPOT)
    assert (type(exc.status), exc.status, exc.detail) == (int, 418, "I'm a Teapot")


def test_a_tuple_may_carry_an_http_status(make_client: MakeClient, colour: str) -> None:
    app = App()

    def create(request: Request) -> Any:
        return {"id": 1}, HTTPStatus.CREATED

    def teapot(request: Request) -> Any:
        raise HTTPError(HTTPStatus.IM_A_TEAPOT)

    app.get("/create")(in_colour(colour, create))
    app.get("/teapot")(in_colour(colour, teapot))
    with make_client(app) as client:
        created = client.get("/create")
        assert (created.status_code, created.json()) == (201, {"id": 1})
        refused = client.get("/teapot", headers={"accept": "application/json"})
        assert refused.json() == {"status": 418, "detail": "I'm a Teapot"}


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (99999, ValueError),
        (42, ValueError),
        (600, ValueError),
        (100, ValueError),
        (HTTPStatus.SWITCHING_PROTOCOLS, ValueError),
        (199, ValueError),
        (200.0, TypeError),
        ("200", TypeError),
    ],
)
def test_a_response_refuses_a_status_no_server_can_send(status: Any, error: type) -> None:
    # NOTE: 99999 went out under ASGI and failed wsgiref.validate; 200.0 went out as 200.0.
    with pytest.raises(error, match="a Response"):
        Response("x", status=status)


@pytest.mark.parametrize("status", [99, 999, True, 200.0, "200"])
def test_assigning_a_status_no_server_can_send_is_the_apps_500(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, status: Any
) -> None:
    # NOTE: 99 went out under ASGI and failed wsgiref.validate; "200" failed in the driver.
    app = App()

    @app.get("/")
    def index(request: Request) -> Response:
        response = Response("made")
        response.status = status
        return response

    response = make_client(app).get("/")
    assert response.status_code == 500
    assert "a Response" in caplog.text
    made = Response("x")
    made.status = HTTPStatus.ACCEPTED
    assert type(made.status) is int and made.status == 202


@pytest.mark.parametrize("status", [100, 101, 103])
def test_a_1xx_response_is_the_apps_500_in_every_form(
    make_client: MakeClient, colour: str, status: int
) -> None:
    # NOTE: sent as the response, a 1xx closed the connection under Waitress and left the client
    # waiting under Uvicorn (it is an interim answer); wsgiref.validate refused it too.
    app = App()
    app.get("/made", name="made")(in_colour(colour, lambda request: Response("x", status=status)))
    app.get("/tuple", name="tuple")(in_colour(colour, lambda request: ("x", status)))
    with make_client(app) as client:
        assert client.get("/made").status_code == 500
        assert client.get("/tuple").status_code == 500


def test_a_response_takes_an_http_status_member_as_its_int(make_client: MakeClient) -> None:
    response = Response("made", status=HTTPStatus.CREATED)
    assert type(response.status) is int

    app = App()

    @app.get("/")
    def create(request: Request) -> Response:
        return Response("made", status=HTTPStatus.CREATED)

    assert make_client(app).get("/").status_code == 201


class _EnumStatus(HTTPError):
    """Sets its ``status`` to an ``IntEnum`` member after ``HTTPError.__init__``, which made it
    a plain ``int`` (a port's exception class that keeps ``http.HTTPStatus`` members)."""

    def __init__(self, status: HTTPStatus) -> None:
        super().__init__(404)
        self.status = status


def test_an_http_errors_int_enum_status_finds_the_error_handler_of_its_status(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the handlers' lookup wanted type(status) is int: an HTTPStatus member skipped the
    # app's error_handler(404), and the default 404 went out.
    app = App()
    seen: list[Any] = []

    def not_found(request: Request, exc: HTTPError) -> str:
        seen.append(exc.status)
        return "the app's 404"

    app.error_handler(404)(in_colour(colour, not_found))
    app.get("/")(in_colour(colour, lambda request: _raise(_EnumStatus(HTTPStatus.NOT_FOUND))))
    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (404, "the app's 404")
    assert seen == [HTTPStatus.NOT_FOUND]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize("status", [HTTPStatus.OK, HTTPStatus.CONTINUE])
def test_an_http_errors_int_enum_status_out_of_range_is_a_logged_500(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture, status: HTTPStatus
) -> None:
    # NOTE: an HTTPStatus member skipped the range check: HTTPStatus.OK went out as a 200
    # with the error's body ("Not Found"), nothing logged.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()
    app.get("/")(in_colour(colour, lambda request: _raise(_EnumStatus(status))))
    response = make_client(app).get("/")
    assert response.status_code == 500
    logged = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert [type(error) for error in logged] == [ValueError]
    assert "4xx or 5xx" in str(logged[0])


def _raise(error: Exception) -> NoReturn:
    raise error
