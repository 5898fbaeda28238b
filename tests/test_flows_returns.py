"""A ``def`` flow that returns a value instead of yielding it: an error, never dropped.

An ``async def`` flow cannot return a value (a ``SyntaxError``); a ``def`` one can, and the
value went nowhere: the response it meant to replace was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Generator
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request, Response


def _logged_error(caplog: pytest.LogCaptureFixture) -> BaseException:
    [error] = [record.exc_info[1] for record in caplog.records if record.exc_info]
    assert error is not None
    return error


def test_a_def_flow_that_returns_a_response_after_its_yield_fails_the_request(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.middleware
    def hide_not_found(request: Request) -> Generator[Any, Any, Any]:
        response = yield
        if response.status == 404:
            return Response.json({"error": "nothing here"}, status=404)

    def secret(request: Request) -> Response:
        return Response.text("the page that was to be hidden", status=404)

    app.get("/")(in_colour(colour, secret))
    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(app).get("/")
    assert response.status_code == 500
    assert "hidden" not in response.text
    error = _logged_error(caplog)
    assert isinstance(error, TypeError)
    assert "hide_not_found returned Response" in str(error)
    assert "yield it" in str(error)
    assert error.__suppress_context__


def test_a_def_flow_that_returns_a_response_before_its_yield_says_so(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.middleware
    def auth(request: Request) -> Generator[Any, Any, Any]:
        if "authorization" not in request.headers:
            return Response.text("forbidden", status=403)
        yield

    def home(request: Request) -> str:
        return "home"

    app.get("/")(in_colour(colour, home))
    caplog.set_level(logging.ERROR, logger="microweb")
    client = make_client(app)
    assert client.get("/", headers={"authorization": "x"}).text == "home"
    assert client.get("/").status_code == 500
    error = _logged_error(caplog)
    assert isinstance(error, TypeError)
    assert "auth returned Response" in str(error)


def test_a_def_flow_that_returns_a_response_for_an_error_fails_the_request(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    @app.middleware
    def answer(request: Request) -> Generator[Any, Any, Any]:
        try:
            yield
        except LookupError:
            return Response.text("answered", status=404)

    def broken(request: Request) -> str:
        raise LookupError("the bug")

    app.get("/")(in_colour(colour, broken))
    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(app).get("/")
    assert response.status_code == 500
    error = _logged_error(caplog)
    assert isinstance(error, TypeError)
    assert "answer returned Response" in str(error)


def test_a_def_flow_that_returns_none_after_its_yield_passes_the_response(
    make_client: MakeClient,
) -> None:
    app = App()

    @app.middleware
    def plain(request: Request) -> Generator[Any, Any, Any]:
        response = yield
        response.headers["x-seen"] = "1"
        return None

    @app.get("/")
    def home(request: Request) -> str:
        return "home"

    response = make_client(app).get("/")
    assert (response.status_code, response.text, response.headers["x-seen"]) == (200, "home", "1")


def test_a_def_flow_that_returns_the_response_it_was_given_passes_it(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: as a Flask after_request hook returns its response: the one passing anyway.
    app = App()

    @app.middleware
    def stamp(request: Request) -> Generator[Any, Any, Any]:
        response = yield
        response.headers["x-seen"] = "1"
        return response

    def home(request: Request) -> str:
        return "home"

    app.get("/")(in_colour(colour, home))
    response = make_client(app).get("/")
    assert (response.status_code, response.text, response.headers["x-seen"]) == (200, "home", "1")
