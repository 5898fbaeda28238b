"""An error handler for an exception class that fails: its failure is a bug the flows see.

A class handler answers inside the flows; when it raises instead, nothing answered the
request, and its default 500 must not reach the flows as an answer: a session changed by the
request that failed was saved with the 500, as a bug's 500 never saves it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import requests_left_in_cycles

from microweb import App, HTTPError, Request, Response
from microweb.plugins import Sessions

SECRET = "a-test-secret-of-32-characters!!"


class OutOfStock(Exception):
    """An app's own error, which its class handler answers."""


def _app(colour: str, seen: list[str]) -> App:
    app = App()
    app.install(Sessions(SECRET, secure=False))

    @app.middleware
    def ends(request: Request) -> Iterator[Any]:
        # NOTE: a flow that lets errors pass and ends (a rollback, then raise).
        try:
            response = yield
        except Exception as exc:
            seen.append(f"error {type(exc).__name__}")
            raise
        seen.append(f"response {response.status}")
        response.headers["x-ended"] = "1"

    @app.middleware
    def waits(request: Request) -> Iterator[Any]:
        # NOTE: a flow that waits for the response an error becomes (as RequestID does).
        try:
            response = yield
        except Exception:
            response = yield
        response.headers["x-waited"] = "1"

    def buy(request: Request) -> None:
        request.session["user"] = "ann"
        raise OutOfStock()

    def broken(request: Request, exc: OutOfStock) -> Response:
        raise RuntimeError("the error page is broken")

    def refused(request: Request, exc: OutOfStock) -> Response:
        raise HTTPError(409)

    def answered(request: Request, exc: OutOfStock) -> Response:
        return Response.text("sold out", status=409)

    handlers = {"/broken": broken, "/refused": refused, "/answered": answered}

    def by_path(request: Request, exc: OutOfStock) -> Response:
        return handlers[request.path](request, exc)

    for path in handlers:
        app.get(path, name=path)(in_colour(colour, buy))
    app.error_handler(OutOfStock)(in_colour(colour, by_path))
    return app


def test_a_failing_class_handlers_500_saves_no_session_and_is_no_answer_to_flows(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the 500 for the handler's failure went through the flows as its answer: the
    # sessions flow saved the session of the request that failed (Set-Cookie on the 500), a
    # flow that ends on errors took it for a response; a bug's 500 does neither.
    caplog.set_level(logging.ERROR, logger="microweb")
    seen: list[str] = []
    client = make_client(_app(colour, seen))
    failed = client.get("/broken")
    assert (failed.status_code, failed.text) == (500, "Internal Server Error")
    assert "set-cookie" not in failed.headers
    assert "x-ended" not in failed.headers
    assert failed.headers["x-waited"] == "1"
    assert seen == ["error RuntimeError"]
    # NOTE: logged once, as the handler's failure.
    [record] = caplog.records
    assert record.getMessage().startswith("error handler ")
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


@pytest.mark.parametrize(("path", "status"), [("/refused", 409), ("/answered", 409)])
def test_a_class_handlers_answer_goes_through_the_flows_with_the_session(
    make_client: MakeClient, colour: str, path: str, status: int
) -> None:
    # NOTE: an answer (an HTTPError it raises included) is the app's: the flows get it.
    seen: list[str] = []
    answer = make_client(_app(colour, seen)).get(path)
    assert answer.status_code == status
    assert answer.headers["set-cookie"].startswith("session=")
    assert answer.headers["x-ended"] == answer.headers["x-waited"] == "1"
    assert seen == [f"response {status}"]


@pytest.mark.parametrize("path", ["/missing", "/raises-404"])
def test_a_failing_404_handlers_500_is_no_answer_to_flows(
    make_client: MakeClient, colour: str, path: str
) -> None:
    # NOTE: the router's 404, or a handler's HTTPError(404): its handler answers inside the
    # flows, and its failure is a bug, as a class handler's is.
    seen: list[str] = []
    app = _app(colour, seen)

    def raises(request: Request) -> None:
        raise HTTPError(404)

    def broken(request: Request, exc: HTTPError) -> Response:
        raise RuntimeError("the 404 page is broken")

    app.get("/raises-404")(in_colour(colour, raises))
    app.error_handler(404)(in_colour(colour, broken))
    failed = make_client(app).get(path)
    assert failed.status_code == 500
    assert "x-ended" not in failed.headers
    assert failed.headers["x-waited"] == "1"
    assert seen == ["error RuntimeError"]


@pytest.mark.parametrize("answers", [False, True], ids=["unanswered", "a-flow-answers"])
def test_a_failing_class_handler_leaves_no_request_in_a_cycle(
    interface: str, colour: str, answers: bool
) -> None:
    # NOTE: the failure, raised to the flows, is marked on the request until the 500 is made
    # for it, and it holds the request in its traceback: a flow that answers it clears it too.
    app = _app(colour, [])
    if answers:

        @app.middleware
        def answering(request: Request) -> Iterator[Any]:
            try:
                yield
            except RuntimeError:
                yield Response.text("answered by a flow", status=503)

    assert requests_left_in_cycles(app, interface, "GET", "/broken") == 0
