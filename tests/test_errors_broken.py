"""An HTTPError subclass that skips HTTPError's __init__: a bug of the app's, logged, a 500."""

from __future__ import annotations

import logging

import pytest
from conftest import MakeClient, in_colour

from microweb import App, HTTPError, Request


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
