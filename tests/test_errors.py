"""Errors: HTTPError, default error bodies, error handlers, logging and debug tracebacks."""

from __future__ import annotations

import asyncio
import gc
import itertools
import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from http import HTTPStatus
from typing import Any

import pytest
from conftest import MakeClient, in_colour, traced_lines
from drive import asgi_call, body_messages, http_scope, requests_left_in_cycles, wsgi_environ

from microweb import App, ClientDisconnect, HTTPError, Limits, Request, Response, Router
from microweb._error_logs import _chains_to, _shown_chain, was_reported
from microweb._errors import log_failure
from microweb._parsing import MAX_ACCEPT_SIZE, prefers_json
from microweb._request import logged_method
from microweb.plugins import AccessLog
from microweb.testing import TestClient


class ShopError(Exception):
    """A base application error."""


class OutOfStock(ShopError):
    """A subclass, handled through the base class's handler."""


def _raising_app(colour: str, exc: Exception) -> App:
    app = App()

    def index(request: Request) -> str:
        raise exc

    app.get("/")(in_colour(colour, index))
    return app


# -- HTTPError and default bodies --------------------------------------------------------------


def test_http_error_status_detail_headers(make_client: MakeClient, colour: str) -> None:
    app = _raising_app(colour, HTTPError(403, "no entry", {"x-reason": "policy"}))
    response = make_client(app).get("/")
    assert response.status_code == 403
    assert response.text == "no entry"
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-reason"] == "policy"


def test_http_error_default_detail_is_phrase(make_client: MakeClient) -> None:
    app = _raising_app("sync", HTTPError(418))
    response = make_client(app).get("/")
    assert response.status_code == 418
    assert response.text == "I'm a Teapot"


class _WerkzeugNotFound(Exception):
    # NOTE: what Flask's abort(404) raises, as Werkzeug spells it; Werkzeug is not installed.
    code = 404


_WerkzeugNotFound.__module__ = "werkzeug.exceptions"


class _StarletteHTTPException(Exception):
    def __init__(self, status_code: int) -> None:
        super().__init__(status_code)
        self.status_code = status_code


_StarletteHTTPException.__module__ = "starlette.exceptions"


class _NoModule(Exception):
    """An error class whose ``__module__`` is no str (set so by a code generator, say)."""


_NoModule.__module__ = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    "raised,advice",
    [
        (_WerkzeugNotFound(), "raise microweb.HTTPError(404) instead"),
        (_StarletteHTTPException(422), "raise microweb.HTTPError(422) instead"),
        # NOTE: Starlette's own docs pass HTTPStatus members: the advice was left out.
        (_StarletteHTTPException(HTTPStatus.GONE), "raise microweb.HTTPError(410) instead"),
        (KeyError("x"), None),
        # NOTE: its __module__.partition() raised out of the log line: the app raised out to
        # the server (its 500, its traceback), with nothing logged by the app.
        (_NoModule("x"), None),
        # NOTE: the bounds of an error status (mutation review384: 599 left out).
        (_StarletteHTTPException(400), "raise microweb.HTTPError(400) instead"),
        (_StarletteHTTPException(599), "raise microweb.HTTPError(599) instead"),
        (_StarletteHTTPException(600), None),
    ],
    ids=[
        "werkzeug",
        "starlette",
        "starlette-http-status",
        "other",
        "no-module",
        "starlette-400",
        "starlette-599",
        "starlette-600",
    ],
)
def test_another_frameworks_http_error_is_logged_with_what_to_raise(
    make_client: MakeClient,
    colour: str,
    caplog: pytest.LogCaptureFixture,
    raised: Exception,
    advice: str | None,
) -> None:
    # NOTE: abort(404) kept from Flask, or Starlette's HTTPException, is no HTTPError here: a
    # 500 whose log line gave no reason.
    caplog.set_level(logging.ERROR, logger="microweb")
    assert make_client(_raising_app(colour, raised)).get("/").status_code == 500
    messages = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert messages and all(m.startswith("unhandled error in GET /") for m in messages)
    if advice is None:
        assert set(messages) == {"unhandled error in GET /"}
    else:
        assert all(m.endswith(advice) and "is not microweb's" in m for m in messages)


def test_another_frameworks_http_error_raised_by_an_error_handler_says_what_to_raise(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a ported handler that turns a KeyError into abort(404): its failure's line gave
    # no reason, where the same raise in a route handler's says what to raise.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _raising_app(colour, KeyError("x"))

    def not_found(request: Request, exc: KeyError) -> str:
        raise _WerkzeugNotFound()

    app.error_handler(KeyError)(in_colour(colour, not_found))
    assert make_client(app).get("/").status_code == 500
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message.startswith("error handler ") and " failed in GET /: " in message
    assert message.endswith(
        "werkzeug.exceptions._WerkzeugNotFound is not microweb's; "
        "raise microweb.HTTPError(404) instead"
    )


def test_an_error_handler_reading_status_code_is_told_to_read_status(
    interface: str, colour: str
) -> None:
    # NOTE: Starlette's exc.status_code in a ported handler: Python's bare "has no attribute".
    app = _raising_app(colour, HTTPError(418))

    def handler(request: Request, exc: HTTPError) -> Response:
        return Response.json({"error": exc.detail}, status=exc.status_code)  # type: ignore[attr-defined]

    app.error_handler(HTTPError)(in_colour(colour, handler))
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(AttributeError, match=r"read exc\.status$"),
    ):
        client.get("/")


@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "text/html, application/json;q=0.9",
        "application/problem+json",
        "application/vnd.api+json",
        "Application/JSON; charset=utf-8",
        "text/plain;q=0.5, application/json",
        "*/*, application/json",
    ],
)
def test_json_error_body_when_client_accepts_json(make_client: MakeClient, accept: str) -> None:
    app = _raising_app("sync", HTTPError(409, "already there", {"x-reason": "dup"}))
    client = make_client(app)
    response = client.get("/", headers={"accept": accept})
    assert response.status_code == 409
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": 409, "detail": "already there"}
    assert response.headers["x-reason"] == "dup"
    response = client.get("/missing", headers={"accept": accept})
    assert response.status_code == 404
    assert response.json() == {"status": 404, "detail": "Not Found"}


@pytest.mark.parametrize(
    "accept",
    [
        None,
        "*/*",
        "text/html",
        "text/plain",
        # NOTE: q=0 refuses JSON (RFC 9110 12.5.1); text/plain preferred over JSON wins.
        "application/json;q=0",
        "application/json;q=0, */*",
        "text/plain, application/json;q=0.5",
        "text/*, application/json;q=0.9",
        "application/jsonp",
        "text/x-json-ish",
    ],
)
def test_text_error_body_otherwise(make_client: MakeClient, accept: str | None) -> None:
    app = App()
    headers = {"accept": accept} if accept is not None else {}
    response = make_client(app).get("/missing", headers=headers)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Not Found"


def test_a_plain_text_error_body_is_not_sniffed(make_client: MakeClient, colour: str) -> None:
    # NOTE: a detail that quotes the client (a form field's name, the app's own f"no note
    # {name}") loaded by <script src> ran as a script: browsers run a text/plain script
    # unless the response says nosniff (Fetch), and Internet Explorer rendered it as HTML.
    def index(request: Request) -> str:
        raise HTTPError(404, request.query["q"])

    app = App()
    app.get("/")(in_colour(colour, index))
    client = make_client(app)
    response = client.get("/", params={"q": "alert(1)//<script>"})
    assert response.text == "alert(1)//<script>"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert client.get("/missing").headers["x-content-type-options"] == "nosniff"
    as_json = client.get("/missing", headers={"accept": "application/json"})
    assert "x-content-type-options" not in as_json.headers


@pytest.mark.parametrize(
    ("headers", "vary"),
    [({}, "Accept"), ({"Vary": "Cookie"}, "Cookie, Accept"), ({"Vary": "accept"}, "accept")],
    ids=["none", "cookie", "accept"],
)
def test_a_default_error_body_says_it_varies_by_accept(
    make_client: MakeClient, colour: str, headers: dict[str, str], vary: str
) -> None:
    # NOTE: the body is JSON or text by Accept, and a 404 is cacheable without a word from the
    # app (RFC 9111 4.2.2): a shared cache gave a browser the JSON 404 an API client had had.
    def index(request: Request) -> str:
        raise HTTPError(404, headers=headers)

    app = App()
    app.get("/")(in_colour(colour, index))
    client = make_client(app)
    for accept in ("application/json", "text/html", "*/*"):
        for path in ("/", "/missing"):
            answer = client.get(path, headers={"accept": accept})
            expected = vary if path == "/" else "Accept"
            assert (answer.status_code, answer.headers.get_list("vary")) == (404, [expected])
    assert client.head("/missing").headers.get_list("vary") == ["Accept"]


def test_an_httperrors_own_sniffing_header_is_kept(make_client: MakeClient) -> None:
    app = _raising_app("sync", HTTPError(400, headers={"X-Content-Type-Options": "other"}))
    response = make_client(app).get("/")
    assert response.headers.get_list("x-content-type-options") == ["other"]


def test_an_accept_value_over_the_cap_is_not_read(make_client: MakeClient) -> None:
    # NOTE: each item costs Python work (256 KiB of commas took 127 ms); RFC 9110 12.5.1 lets a
    # server disregard Accept, and a longer value is read as absent: plain text.
    longest = "application/json" + "," * (MAX_ACCEPT_SIZE - len("application/json"))
    client = make_client(App())
    response = client.get("/missing", headers={"accept": longest})
    assert response.json() == {"status": 404, "detail": "Not Found"}
    response = client.get("/missing", headers={"accept": longest + ","})
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "Not Found"
    assert prefers_json(longest) and not prefers_json(longest + " ")


@pytest.mark.parametrize("status", [200, 204, 302, 399, 600, 99])
def test_http_error_refuses_non_error_status(status: int) -> None:
    with pytest.raises(ValueError):
        HTTPError(status)


def test_http_error_attributes() -> None:
    exc = HTTPError(404)
    assert exc.status == 404
    assert exc.detail == "Not Found"
    assert exc.headers == {}


@pytest.mark.parametrize(
    "headers",
    [{"x-reason": "a\r\nset-cookie: x=1"}, {"x-reason": " padded"}, {"bad name": "v"}],
)
def test_http_error_refuses_invalid_headers_when_raised(headers: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        HTTPError(400, "bad", headers)


@pytest.mark.parametrize("detail", [{"title": "invalid"}, ["a"], b"bytes", 42])
def test_http_error_refuses_non_str_detail(detail: object) -> None:
    with pytest.raises(TypeError, match=r"detail must be a str.*Response\.json"):
        HTTPError(422, detail)  # type: ignore[arg-type]


@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
def test_http_error_with_dict_detail_in_handler_is_500(
    make_client: MakeClient, colour: str, accept: str
) -> None:
    # A dict detail used to reach the plain-text default body and crash the app past its 500.
    app = App()

    def structured(request: Request) -> None:
        raise HTTPError(422, {"title": "invalid"})  # type: ignore[arg-type]

    app.get("/")(in_colour(colour, structured))
    response = make_client(app).get("/", headers={"accept": accept})
    assert response.status_code == 500


def test_http_error_refuses_a_detail_utf8_cannot_encode() -> None:
    with pytest.raises(ValueError, match=r"detail holds '\\udc80', a lone surrogate"):
        HTTPError(404, "no file caf\udc80.txt")


@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
def test_http_error_with_a_lone_surrogate_in_a_handler_is_a_logged_500(
    make_client: MakeClient, colour: str, accept: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a file name from os.listdir() (surrogateescape) in the detail: the default answer's
    # encode raised past every handler, a 500 and a traceback from the server, nothing logged
    # by the app (review160).
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    def missing(request: Request) -> None:
        raise HTTPError(404, "no file caf\udc80.txt")

    app.get("/")(in_colour(colour, missing))
    response = make_client(app).get("/", headers={"accept": accept})
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error in GET /"]
    assert record.exc_info is not None and "lone surrogate" in str(record.exc_info[1])


class _Unsayable(ClientDisconnect):
    """A ClientDisconnect of the app's whose message can't be read."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


@pytest.mark.parametrize(
    ("gone", "detail"),
    [
        (lambda: ClientDisconnect("left caf\udc80"), "left caf\\udc80"),
        (_Unsayable, "the client disconnected"),
    ],
)
@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
def test_a_client_disconnect_whose_message_is_no_text_is_still_answered_400(
    make_client: MakeClient,
    colour: str,
    accept: str,
    gone: Callable[[], ClientDisconnect],
    detail: str,
) -> None:
    # NOTE: its message goes into the default 400: one holding a lone surrogate (a name
    # decoded with surrogateescape), or whose str() raised, raised out of the app, a 500 and
    # a traceback from the server with nothing logged by the app.
    def leave(request: Request) -> None:
        raise gone()

    app = App()
    app.get("/")(in_colour(colour, leave))
    response = make_client(app).get("/", headers={"accept": accept})
    assert response.status_code == 400
    got = response.json()["detail"] if accept == "application/json" else response.text
    assert got == detail


class _NoFile(HTTPError):
    """An HTTPError whose detail is set after it was made, past the checks of HTTPError()."""

    def __init__(self, name: str) -> None:
        super().__init__(404)
        self.detail = f"no file {name}"


@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
@pytest.mark.parametrize("changed", ["detail", "header"])
def test_http_error_changed_after_it_was_made_into_no_answer_is_a_logged_500(
    make_client: MakeClient,
    colour: str,
    accept: str,
    changed: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the default answer's encode (a detail) or its Response (a header) raised past
    # every handler and out of the app: a 500 and a traceback from the server, nothing logged
    # by the app (review161; d4e8aaf checks them only when the HTTPError is made).
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    def missing(request: Request) -> None:
        if changed == "detail":
            raise _NoFile("caf\udc80.txt")
        error = HTTPError(404)
        error.headers["x-file"] = "caf\r\nx: y"
        raise error

    app.get("/")(in_colour(colour, missing))
    response = make_client(app).get("/", headers={"accept": accept})
    assert response.status_code == 500
    [record] = [r for r in caplog.records if r.getMessage() == "unhandled error in GET /"]
    assert record.exc_info is not None
    assert record.exc_info[0] is (UnicodeEncodeError if changed == "detail" else ValueError)


def test_an_http_error_changed_into_no_answer_leaves_no_cycle_holding_the_request(
    interface: str, colour: str
) -> None:
    app = App()

    def missing(request: Request) -> None:
        raise _NoFile("caf\udc80.txt")

    app.post("/")(in_colour(colour, missing))
    assert requests_left_in_cycles(app, interface, "POST", "/", b"body") == 0


def test_http_error_with_invalid_header_in_handler_is_500(make_client: MakeClient) -> None:
    app = App()

    @app.get("/")
    def index(request: Request) -> None:
        raise HTTPError(401, headers={"www-authenticate": 'Basic realm="\u20ac"'})

    response = make_client(app).get("/")
    assert response.status_code == 500
    assert "www-authenticate" not in response.headers


# -- error handlers ----------------------------------------------------------------------------


def test_status_handler_also_handles_router_404(make_client: MakeClient, colour: str) -> None:
    app = App()
    seen: list[int] = []

    if colour == "sync":

        @app.error_handler(404)
        def not_found(request: Request, exc: HTTPError) -> Response:
            seen.append(exc.status)
            return Response.json({"missing": request.path}, status=404)

    else:

        @app.error_handler(404)
        async def not_found(request: Request, exc: HTTPError) -> Response:
            seen.append(exc.status)
            return Response.json({"missing": request.path}, status=404)

    @app.get("/item/{name}")
    def item(request: Request, name: str) -> str:
        raise HTTPError(404, f"no item {name}")

    client = make_client(app)
    response = client.get("/nowhere")
    assert response.status_code == 404
    assert response.json() == {"missing": "/nowhere"}
    response = client.get("/item/x")
    assert response.status_code == 404
    assert response.json() == {"missing": "/item/x"}
    assert seen == [404, 404]


@pytest.mark.parametrize("handler_colour", ["sync", "async"])
def test_an_error_handler_runs_with_the_error_as_the_one_being_handled(
    make_client: MakeClient, colour: str, handler_colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: sys.exc_info(), and so logger.exception(), named the error only under ASGI for a
    # def route and handler, and nothing elsewhere ("NoneType: None" in the log line).
    app = App()

    def seen(request: Request, exc: Exception) -> Response:
        logging.getLogger("app.errors").exception("answering %s", request.path)
        return Response.json({"handled": sys.exc_info()[1] is exc}, status=418)

    app.error_handler(ValueError)(in_colour(handler_colour, seen))
    app.error_handler(404)(in_colour(handler_colour, seen))

    def bug(request: Request) -> None:
        raise ValueError("bug")

    def missing(request: Request) -> None:
        raise HTTPError(404)

    app.get("/bug")(in_colour(colour, bug))
    app.get("/missing")(in_colour(colour, missing))
    client = make_client(app)
    with caplog.at_level(logging.ERROR, "app.errors"):
        for path in ("/bug", "/missing", "/nowhere"):
            response = client.get(path)
            assert (response.status_code, response.json()) == (418, {"handled": True}), path
    logged = [record for record in caplog.records if record.name == "app.errors"]
    assert [type(record.exc_info[1]) for record in logged if record.exc_info] == [
        ValueError,
        HTTPError,
        HTTPError,
    ]
    # NOTE: the error's traceback as it was raised, with no frame of the handling added (on
    # 3.10, sys.exc_info() keeps the traceback of where it was caught: one frame of microweb's).
    assert "raise ValueError" in caplog.text
    assert ("_calls.py" in caplog.text) is (sys.version_info < (3, 11))


@pytest.mark.parametrize("handler_colour", ["sync", "async"])
def test_an_error_handler_that_raises_the_error_again_leaves_no_cycle_and_its_traceback(
    make_client: MakeClient,
    interface: str,
    colour: str,
    handler_colour: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: a bare raise took the frames it went through into the error's traceback: the
    # handler's call in microweb (holding the error and the request, a cycle) and the
    # logged traceback started in microweb, above the route's own raise.
    app = App()

    def again(request: Request, exc: Exception) -> None:
        raise

    app.error_handler(ValueError)(in_colour(handler_colour, again))

    def bug(request: Request) -> None:
        raise ValueError("bug")

    app.post("/")(in_colour(colour, bug))
    assert requests_left_in_cycles(app, interface, "POST", "/", b"body") == 0
    with caplog.at_level(logging.ERROR, "microweb"):
        assert make_client(app).post("/").status_code == 500
    [record] = [r for r in caplog.records if r.exc_info and r.exc_info[0] is ValueError]
    assert record.exc_text is not None
    assert "_calls.py" not in record.exc_text
    assert "raise ValueError" in record.exc_text


def test_status_handler_for_raised_http_error(make_client: MakeClient) -> None:
    app = _raising_app("async", HTTPError(429, "slow down"))

    @app.error_handler(429)
    def too_many(request: Request, exc: HTTPError) -> Response:
        return Response.text(f"custom: {exc.detail}", status=429, headers={"retry-after": "1"})

    response = make_client(app).get("/")
    assert response.status_code == 429
    assert response.text == "custom: slow down"
    assert response.headers["retry-after"] == "1"


def test_class_handler_matches_subclass(make_client: MakeClient, colour: str) -> None:
    app = App()

    if colour == "sync":

        @app.error_handler(ShopError)
        def shop_error(request: Request, exc: ShopError) -> Response:
            return Response.json({"error": type(exc).__name__, "message": str(exc)}, status=422)

    else:

        @app.error_handler(ShopError)
        async def shop_error(request: Request, exc: ShopError) -> Response:
            return Response.json({"error": type(exc).__name__, "message": str(exc)}, status=422)

    @app.get("/base")
    def base(request: Request) -> str:
        raise ShopError("closed")

    @app.get("/sub")
    async def sub(request: Request) -> str:
        raise OutOfStock("no apples")

    client = make_client(app)
    response = client.get("/base")
    assert response.status_code == 422
    assert response.json() == {"error": "ShopError", "message": "closed"}
    response = client.get("/sub")
    assert response.status_code == 422
    assert response.json() == {"error": "OutOfStock", "message": "no apples"}


def test_most_specific_class_handler_wins(make_client: MakeClient) -> None:
    app = _raising_app("sync", OutOfStock("none left"))

    @app.error_handler(ShopError)
    def shop_error(request: Request, exc: ShopError) -> Response:
        return Response.text("base", status=400)

    @app.error_handler(OutOfStock)
    def out_of_stock(request: Request, exc: OutOfStock) -> Response:
        return Response.text("specific", status=409)

    response = make_client(app).get("/")
    assert response.status_code == 409
    assert response.text == "specific"


def test_error_handler_may_return_any_handler_value(make_client: MakeClient) -> None:
    app = _raising_app("sync", ShopError("x"))

    @app.error_handler(ShopError)
    def shop_error(request: Request, exc: ShopError) -> dict[str, str]:
        return {"handled": str(exc)}

    response = make_client(app).get("/")
    assert response.status_code == 200
    assert response.json() == {"handled": "x"}


def test_500_handler_sees_unexpected_exceptions(make_client: MakeClient, colour: str) -> None:
    app = _raising_app(colour, ZeroDivisionError("divided"))
    seen: list[BaseException] = []

    @app.error_handler(500)
    async def server_error(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return Response.text("sorry", status=500)

    response = make_client(app).get("/")
    assert response.status_code == 500
    assert response.text == "sorry"
    assert len(seen) == 1
    assert isinstance(seen[0], ZeroDivisionError)


# -- unhandled errors --------------------------------------------------------------------------


def test_unhandled_exception_is_logged_500(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _raising_app(colour, ValueError("secret-detail-1234"))
    response = make_client(app).get("/")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"
    assert "Traceback" not in response.text
    assert "secret-detail-1234" not in response.text
    logged = [
        record
        for record in caplog.records
        if record.name.startswith("microweb") and record.exc_info is not None
    ]
    assert logged, "the unhandled error was not logged on logger 'microweb'"
    exc_info = logged[0].exc_info
    assert exc_info is not None
    assert isinstance(exc_info[1], ValueError)
    assert "secret-detail-1234" in str(exc_info[1])


def test_unhandled_exception_json_body(make_client: MakeClient) -> None:
    app = _raising_app("sync", ValueError("secret-detail-1234"))
    response = make_client(app).get("/", headers={"accept": "application/json"})
    assert response.status_code == 500
    assert response.json() == {"status": 500, "detail": "Internal Server Error"}


def test_http_error_is_not_logged_as_error(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _raising_app("sync", HTTPError(404))
    assert make_client(app).get("/").status_code == 404
    assert not [r for r in caplog.records if r.name.startswith("microweb")]


def test_debug_puts_traceback_in_body(make_client: MakeClient, colour: str) -> None:
    app = App(debug=True)

    if colour == "sync":

        @app.get("/")
        def index(request: Request) -> str:
            raise ValueError("visible-in-debug")

    else:

        @app.get("/")
        async def index(request: Request) -> str:
            raise ValueError("visible-in-debug")

    response = make_client(app).get("/")
    assert response.status_code == 500
    assert "Traceback" in response.text
    assert "ValueError: visible-in-debug" in response.text


@pytest.mark.parametrize("debug", ["0", "false", "", 1, 0, None])
def test_debug_that_is_not_a_bool_is_refused(debug: object) -> None:
    # App(debug=os.environ.get("DEBUG")) with DEBUG=0 put tracebacks in every 500.
    with pytest.raises(TypeError, match="debug must be True or False"):
        App(debug=debug)  # type: ignore[arg-type]
    app = App()
    with pytest.raises(TypeError, match="debug must be True or False"):
        app.debug = debug  # type: ignore[assignment]
    assert app.debug is False


def test_debug_is_off_by_default(make_client: MakeClient) -> None:
    response = make_client(_raising_app("sync", ValueError("hidden"))).get("/")
    assert (response.status_code, response.text) == (500, "Internal Server Error")


@pytest.mark.parametrize("accept", ["text/plain", "application/json"])
def test_debug_puts_a_traceback_holding_a_lone_surrogate_in_the_body(
    make_client: MakeClient, colour: str, accept: str
) -> None:
    # NOTE: a message with a name decoded with surrogateescape (os.listdir()): the debug page's
    # encode raised out of the app, a 500 and a traceback from the server (review161).
    app = App(debug=True)

    def index(request: Request) -> str:
        raise ValueError("no file caf\udc80.txt")

    app.get("/")(in_colour(colour, index))
    response = make_client(app).get("/", headers={"accept": accept})
    assert response.status_code == 500
    assert "ValueError: no file caf\\udc80.txt" in (
        response.json()["detail"] if accept == "application/json" else response.text
    )


@pytest.mark.parametrize("key", [404, ShopError, 500])
def test_failing_error_handler_gives_500(
    make_client: MakeClient, key: int | type[Exception], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()

    @app.error_handler(key)
    def broken(request: Request, exc: Exception) -> str:
        raise RuntimeError("handler-broke-5678")

    @app.get("/shop")
    def shop(request: Request) -> str:
        raise ShopError("x")

    @app.get("/crash")
    def crash(request: Request) -> str:
        raise KeyError("x")

    path = {404: "/missing", ShopError: "/shop", 500: "/crash"}[key]
    response = make_client(app).get(path)
    assert response.status_code == 500
    assert "handler-broke-5678" not in response.text
    assert "Traceback" not in response.text
    assert any(r.name.startswith("microweb") for r in caplog.records)


def test_async_failing_error_handler_gives_500(make_client: MakeClient) -> None:
    app = App()

    @app.error_handler(404)
    async def broken(request: Request, exc: HTTPError) -> str:
        raise RuntimeError("async handler broke")

    assert make_client(app).get("/missing").status_code == 500


def test_error_handler_registration_is_checked() -> None:
    app = App()
    with pytest.raises(ValueError):
        app.error_handler(200)
    with pytest.raises(TypeError):
        app.error_handler("404")  # type: ignore[arg-type]
    # NOTE: no request ever ends in these: a handler for one would never run. BaseException
    # (and BaseExceptionGroup) would: the message names Exception for a catch-all.
    for ending in (KeyboardInterrupt, SystemExit, asyncio.CancelledError, BaseException):
        with pytest.raises(TypeError, match=f"got {ending.__name__}: .*register Exception"):
            app.error_handler(ending)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="subclass of Exception"):
            Router().error_handler(ending)  # type: ignore[arg-type]
    # NOTE: a client that left gets no answer: a handler for it never ran (review172).
    for gone in (ClientDisconnect, type("Gone", (ClientDisconnect,), {})):
        with pytest.raises(TypeError, match=f"got {gone.__name__}: a client that left"):
            app.error_handler(gone)
        with pytest.raises(TypeError, match="no error handler runs for it"):
            Router().error_handler(gone)
    # NOTE: app code's StopIteration reaches the handlers as a RuntimeError (PEP 479, and the
    # drivers for sync code): a handler for it was taken and never ran, under both interfaces.
    for stop in (StopIteration, type("Done", (StopIteration,), {})):
        with pytest.raises(TypeError, match=f"got {stop.__name__}: .* register RuntimeError"):
            app.error_handler(stop)
        with pytest.raises(TypeError, match="reaches error handlers as a RuntimeError"):
            Router().error_handler(stop)


def test_a_plain_value_from_an_error_handler_keeps_the_error_status(
    make_client: MakeClient,
) -> None:
    app = App()

    @app.get("/boom")
    def boom(request: Request) -> str:
        raise RuntimeError("boom")

    @app.post("/only-post")
    def only_post(request: Request) -> str:
        return "posted"

    @app.error_handler(404)
    def not_found(request: Request, exc: Exception) -> str:
        return "nothing here"

    @app.error_handler(405)
    def not_allowed(request: Request, exc: Exception) -> dict[str, str]:
        return {"error": "method"}

    @app.error_handler(500)
    def failed(request: Request, exc: Exception) -> str:
        return "sorry"

    client = make_client(app)
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.text) == (404, "nothing here")
    wrong = client.get("/only-post")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "OPTIONS, POST"
    assert client.get("/boom").status_code == 500


def test_a_response_with_the_error_status_from_an_error_handler_keeps_the_error_headers(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: review140 found a templated 405 page (templates.render(..., status=405)) sent
    # without Allow, and a 401 page without WWW-Authenticate, where a tuple kept them.
    app = App()

    @app.post("/only-post")
    def only_post(request: Request) -> str:
        return "posted"

    @app.get("/private")
    def private(request: Request) -> str:
        raise HTTPError(401, headers={"www-authenticate": "Bearer", "x-kept": "error's"})

    @app.get("/gone")
    def gone(request: Request) -> str:
        raise HTTPError(401, headers={"www-authenticate": "Bearer"})

    def not_allowed(request: Request, exc: Exception) -> Response:
        return Response.html("<h1>Not here</h1>", status=405)

    def unauthorized(request: Request, exc: Exception) -> Response:
        if request.path == "/gone":  # another status: the handler's own answer, as it is
            return Response.redirect("/login", status=303)
        page = Response.html("<h1>Sign in</h1>", status=401)
        page.headers["x-kept"] = "handler's"
        return page

    app.error_handler(405)(in_colour(colour, not_allowed))
    app.error_handler(401)(in_colour(colour, unauthorized))
    client = make_client(app)
    wrong = client.get("/only-post")
    assert (wrong.status_code, wrong.text) == (405, "<h1>Not here</h1>")
    assert wrong.headers["allow"] == "OPTIONS, POST"
    refused = client.get("/private")
    assert (refused.status_code, refused.headers["www-authenticate"]) == (401, "Bearer")
    assert refused.headers["x-kept"] == "handler's"
    moved = client.get("/gone")
    assert (moved.status_code, moved.headers["location"]) == (303, "/login")
    assert "www-authenticate" not in moved.headers


def test_an_error_page_the_app_keeps_gets_each_errors_own_headers(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: review141: the error's headers were added to the Response the handler returned,
    # which the app kept: the first 405's Allow stayed on it, and went out with every 405.
    app = App()
    page = Response.html("<h1>Not here</h1>", status=405)

    @app.get("/read")
    def read(request: Request) -> str:
        return "read"

    @app.post("/write")
    def write(request: Request) -> str:
        return "written"

    app.error_handler(405)(in_colour(colour, lambda request, exc: page))
    client = make_client(app)
    assert client.post("/read").headers["allow"] == "GET, HEAD, OPTIONS"
    assert client.get("/write").headers["allow"] == "OPTIONS, POST"
    assert "allow" not in page.headers


@pytest.mark.parametrize("answer", ["returned", "raised"])
def test_an_error_a_class_handler_answers_with_a_5xx_is_logged(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture, answer: str
) -> None:
    # NOTE: review140 found a catch-all handler (Exception -> a JSON 500) hiding every bug's
    # traceback, where the same error answered by a 500 handler is logged; review141, one
    # that raised HTTPError(503) too.
    caplog.set_level(logging.DEBUG, logger="microweb")
    app = App()

    @app.get("/bug")
    def bug(request: Request) -> str:
        raise ZeroDivisionError("a bug")

    @app.get("/item")
    def item(request: Request) -> str:
        raise KeyError("item")

    def missing(request: Request, exc: Exception) -> Response:
        return Response.text("no such item", status=404)

    def internal(request: Request, exc: Exception) -> tuple[str, int]:
        if answer == "raised":
            raise HTTPError(503, "try again later")
        return "try again later", 503

    app.error_handler(KeyError)(in_colour(colour, missing))
    app.error_handler(Exception)(in_colour(colour, internal))
    client = make_client(app)
    assert client.get("/item").status_code == 404
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    failed = client.get("/bug")
    assert (failed.status_code, failed.text) == (503, "try again later")
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.getMessage().startswith("unhandled error in GET /bug, answered 503 by ")
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError


def test_an_error_handler_that_fails_is_logged_with_the_request_it_answered(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="microweb")
    app = App()

    @app.get("/orders/{order}")
    def order(request: Request, order: str) -> str:
        raise KeyError(order)

    def broken(request: Request, exc: Exception) -> str:
        raise RuntimeError("the handler's own bug")

    app.error_handler(KeyError)(in_colour(colour, broken))
    assert make_client(app).get("/orders/7?x=1").status_code == 500
    [record] = [r for r in caplog.records if r.getMessage().startswith("error handler ")]
    assert record.getMessage().endswith(" failed in GET /orders/7")
    assert record.exc_info is not None and record.exc_info[0] is RuntimeError


@pytest.mark.parametrize("flows", [False, True])
def test_an_error_handler_that_fails_is_logged_with_the_error_it_answered(
    make_client: MakeClient, colour: str, flows: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: with no flows, a WSGI def handler's or an async def handler's error went to its
    # handler outside an except clause: the handler's failure alone was logged, and the bug
    # it answered (logged by nobody else) was lost.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _raising_app(colour, KeyError("the route's bug"))

    def broken(request: Request, exc: Exception) -> str:
        raise RuntimeError("the handler's own bug")

    app.error_handler(KeyError)(broken)
    if flows:

        @app.middleware
        def passing(request: Request) -> Iterator[None]:
            yield

    assert make_client(app).get("/").status_code == 500
    [record] = caplog.records
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    # NOTE: as the log has it: the chain is unlinked once logged (see the next tests).
    logged = caplog.text
    assert logged.index('KeyError: "the route\'s bug"') < logged.index(
        "RuntimeError: the handler's own bug"
    )


@pytest.mark.parametrize("own_error", [False, True], ids=["plain", "own-error"])
@pytest.mark.parametrize("flows", [False, True], ids=["no-flows", "flows"])
def test_a_500_handler_that_fails_logs_the_error_it_answered_once(
    make_client: MakeClient,
    colour: str,
    flows: bool,
    own_error: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the error was logged before its 500 handler ran, then again as the context of the
    # handler's failure: its traceback twice in the log. A failure that came out of an error
    # of the handler's own holds no chain to it: then it is logged on its own, once.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _raising_app(colour, KeyError("the route's bug"))

    def broken(request: Request, exc: Exception) -> str:
        if own_error:
            try:
                {}["the handler's key"]
            except KeyError:
                raise RuntimeError("the handler's own bug") from None
        raise RuntimeError("the handler's own bug")

    app.error_handler(500)(in_colour(colour, broken))
    if flows:

        @app.middleware
        def passing(request: Request) -> Iterator[None]:
            yield

    assert make_client(app).get("/").status_code == 500
    logged = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert logged.count('KeyError: "the route\'s bug"') == 1
    assert logged.count("RuntimeError: the handler's own bug") == 1
    messages = [record.getMessage() for record in caplog.records]
    assert messages[-1].startswith("error handler ")
    assert len(messages) == 1 + own_error


@pytest.mark.parametrize("key", [500, KeyError], ids=["500", "class"])
def test_an_error_handler_that_raises_one_error_object_again_logs_each_request_its_own_error(
    make_client: MakeClient, colour: str, key: object, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the error the handler answered was chained at the end of its failure's chain, by
    # a context set on the failure: an error object raised again (a module's constant) kept
    # it, and the next request's was chained after it, and so on. Each request's log then
    # held every earlier request's error, and the object kept them all, with their requests.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()
    count = itertools.count()

    def index(request: Request) -> str:
        raise KeyError(f"bug {next(count)}")

    app.get("/")(in_colour(colour, index))
    shared = RuntimeError("the handler's own bug")

    def broken(request: Request, exc: Exception) -> str:
        raise shared

    app.error_handler(key)(in_colour(colour, broken))
    client = make_client(app)
    for _ in range(3):
        caplog.clear()
        assert client.get("/").status_code == 500
    logged = caplog.text
    assert logged.count("RuntimeError: the handler's own bug") == 1
    assert [line for line in logged.splitlines() if line.startswith("KeyError")] == [
        "KeyError: 'bug 2'"
    ]


def test_a_500_handler_that_answers_logs_the_error_once_after_it_ran(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="microweb")
    app = _raising_app(colour, KeyError("the route's bug"))

    def page(request: Request, exc: Exception) -> str:
        logging.getLogger("microweb.app").info("the 500 page")
        return "sorry"

    app.error_handler(500)(in_colour(colour, page))
    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (500, "sorry")
    assert [record.getMessage() for record in caplog.records] == [
        "the 500 page",
        "unhandled error in GET /",
    ]


@pytest.mark.parametrize(
    ("path", "other_handler"),
    [("/nowhere", None), ("/nowhere", 404), ("/gone", None), ("/gone", 410), ("/bug", None)],
)
def test_headers_over_the_limit_are_answered_by_the_apps_431_handler(
    make_client: MakeClient,
    colour: str,
    path: str,
    other_handler: int | type[Exception] | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the default 404 (or 410, or 500) read the headers for Accept and answered their
    # 431 itself, past the app's 431 handler (review160).
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App(limits=Limits(max_headers=30))

    def too_many(request: Request, exc: HTTPError) -> tuple[str, int]:
        return (f"the 431 page: {exc.detail}, {len(request.headers)} kept", 431)

    def other(request: Request, exc: Exception) -> str:
        return f"{request.headers.get('x-0')}, the other page"

    def gone(request: Request) -> str:
        raise HTTPError(410)

    def bug(request: Request) -> str:
        raise KeyError("bug")

    app.error_handler(431)(in_colour(colour, too_many))
    if other_handler is not None:
        app.error_handler(other_handler)(in_colour(colour, other))
    app.get("/gone")(in_colour(colour, gone))
    app.get("/bug")(in_colour(colour, bug))
    sent = {f"x-{i}": str(i) for i in range(40)}
    response = make_client(app).get(path, headers=sent)
    assert (response.status_code, response.text) == (
        431,
        "the 431 page: more than 30 header lines, 30 kept",
    )
    logged = [r for r in caplog.records if r.getMessage().startswith("unhandled error in GET /bug")]
    assert len(logged) == (path == "/bug")


def test_an_error_handler_that_raises_an_httperror_answers_with_it_quietly(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: HTTPErrors are answers, not failures, wherever they are raised (hunt69 found this
    # one logged at ERROR with a traceback, "error handler ... failed").
    caplog.set_level(logging.DEBUG, logger="microweb")
    app = App()

    @app.get("/item")
    def item(request: Request) -> str:
        raise KeyError("item")

    def missing(request: Request, exc: Exception) -> str:
        raise HTTPError(404, "no such item", headers={"x-reason": "missing"})

    app.error_handler(KeyError)(in_colour(colour, missing))
    answer = make_client(app).get("/item")
    assert (answer.status_code, answer.text) == (404, "no such item")
    assert answer.headers["x-reason"] == "missing"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize("raised", [RuntimeError, HTTPError], ids=["failure", "httperror"])
def test_an_error_handler_that_raises_leaves_no_cycle_holding_the_request(
    interface: str, colour: str, raised: type[Exception]
) -> None:
    # NOTE: what the handler raised has the error page's frame in its traceback, which kept
    # it: each such 500 (or 4xx) kept its request, body and form until a full collection.
    app = App()

    @app.post("/")
    def boom(request: Request) -> None:
        raise KeyError("item")

    def failing(request: Request, exc: Exception) -> str:
        raise RuntimeError("the handler failed") if raised is RuntimeError else HTTPError(404)

    app.error_handler(KeyError)(in_colour(colour, failing))
    assert requests_left_in_cycles(app, interface, "POST", "/", b"body") == 0


DENIED = HTTPError(403, "no entry", headers={"x-why": "kept"})
"""An error the app keeps at module level and raises in every request it refuses."""


@pytest.mark.parametrize("flows", [False, True], ids=["no flows", "flows"])
@pytest.mark.parametrize("handled", [False, True], ids=["default", "error handler"])
def test_an_httperror_the_app_keeps_keeps_no_request_it_answered(
    make_client: MakeClient, colour: str, flows: bool, handled: bool
) -> None:
    # NOTE: each raise added that request's frames to its traceback: every request it
    # answered stayed alive, with its body, for as long as the app ran.
    app = App()
    if flows:

        @app.middleware
        def passing(request: Request) -> Iterator[None]:
            yield

    def refuse(request: Request) -> None:
        raise DENIED

    def page(request: Request, exc: HTTPError) -> str:
        return f"refused: {exc.detail}"

    app.post("/kept-error-probe")(in_colour(colour, refuse))
    if handled:
        app.error_handler(403)(in_colour(colour, page))
    client = make_client(app)
    for _ in range(3):
        answer = client.post("/kept-error-probe", content=b"x" * 1000)
        assert (answer.status_code, answer.headers["x-why"]) == (403, "kept")
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, Request) and o.path == "/kept-error-probe"]
    assert (kept, DENIED.__traceback__) == ([], None)


def test_an_httperror_the_app_keeps_keeps_no_request_whose_headers_were_431(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: answered as the 431 of the headers, the kept error kept its traceback (review160).
    app = App(limits=Limits(max_headers=30))

    def refuse(request: Request) -> None:
        raise DENIED

    app.post("/kept-error-431-probe")(in_colour(colour, refuse))
    client = make_client(app)
    sent = {f"x-{i}": str(i) for i in range(40)}
    for _ in range(3):
        answer = client.post("/kept-error-431-probe", content=b"x" * 1000, headers=sent)
        assert answer.status_code == 431
    gc.collect()
    kept = [o for o in gc.get_objects() if isinstance(o, Request) and o.path.endswith("431-probe")]
    assert (kept, DENIED.__traceback__) == ([], None)


class Gone(HTTPError):
    def __init__(self) -> None:
        super().__init__(410, "gone for good")


def test_a_status_handler_comes_before_handlers_for_httperror_and_its_bases(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: as in Flask and Starlette: an error page for any exception does not take the 404
    # page's place (port59 found the opposite when porting a Flask app). A handler for a
    # subclass of HTTPError is more specific than a status, and still comes first.
    app = App()
    app.error_handler(Exception)(in_colour(colour, lambda request, exc: ("any error", 500)))
    app.error_handler(HTTPError)(in_colour(colour, lambda request, exc: "some HTTP error"))
    app.error_handler(404)(in_colour(colour, lambda request, exc: "the 404 page"))
    app.error_handler(410)(in_colour(colour, lambda request, exc: "the 410 page"))
    app.error_handler(Gone)(in_colour(colour, lambda request, exc: "the Gone page"))

    @app.get("/gone")
    def gone(request: Request) -> str:
        raise Gone()

    @app.get("/teapot")
    def teapot(request: Request) -> str:
        raise HTTPError(418)

    @app.get("/boom")
    def boom(request: Request) -> str:
        raise KeyError("a bug")

    client = make_client(app)
    assert (client.get("/nowhere").status_code, client.get("/nowhere").text) == (
        404,
        "the 404 page",
    )
    assert client.get("/gone").text == "the Gone page"
    assert client.get("/teapot").text == "some HTTP error"
    assert (client.get("/boom").status_code, client.get("/boom").text) == (500, "any error")


def test_a_handler_for_exception_still_answers_a_status_with_no_handler(
    make_client: MakeClient, colour: str
) -> None:
    app = App()
    app.error_handler(Exception)(in_colour(colour, lambda request, exc: ("any error", 599)))
    app.error_handler(500)(in_colour(colour, lambda request, exc: "the 500 page"))
    client = make_client(app)
    missing = client.get("/nowhere")
    assert (missing.status_code, missing.text) == (599, "any error")


def test_http_error_attributes_are_public(make_client: MakeClient, colour: str) -> None:
    app = App()

    def describe(request: Request, exc: HTTPError) -> Response:
        body = {"status": exc.status, "detail": exc.detail, "headers": exc.headers}
        return Response.json(body, status=exc.status)

    app.error_handler(HTTPError)(in_colour(colour, describe))

    @app.get("/limited")
    def limited(request: Request) -> str:
        raise HTTPError(429, headers={"retry-after": "30"})

    answer = make_client(app).get("/limited")
    assert answer.status_code == 429
    assert answer.json() == {
        "status": 429,
        "detail": "Too Many Requests",
        "headers": {"retry-after": "30"},
    }
    assert HTTPError(404, "no such note").detail == "no such note"
    assert HTTPError(400).headers == {}


# -- Cancellations -----------------------------------------------------------------------------


async def _cancelled_subtask() -> None:
    """Await a task this code cancelled itself: its CancelledError is app code's, not a cut."""
    task = asyncio.ensure_future(asyncio.sleep(10))
    await asyncio.sleep(0)
    task.cancel()
    await task


def _cancelling_app(started: asyncio.Event) -> App:
    app = App()

    @app.get("/waits")
    async def waits(request: Request) -> str:
        started.set()
        await asyncio.sleep(10)
        return "unreachable"

    return app


def _app_saying_sorry() -> tuple[App, list[BaseException]]:
    """Return an app whose 500 handler answers "sorry", and the list it puts each error in."""
    app = App()
    seen: list[BaseException] = []

    @app.error_handler(500)
    def failed(request: Request, exc: Exception) -> Response:
        seen.append(exc)
        return Response("sorry", status=500)

    return app, seen


@pytest.mark.parametrize("where", ["handler", "flow", "after"])
def test_a_cancelled_error_of_app_code_is_an_error_of_its_request(
    make_client: MakeClient, interface: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a handler (or a callback) that awaited a task it had cancelled. The request's own
    # task was not cancelled: the error is answered (500 through the error handlers, or logged
    # as a failed callback) under both interfaces. Under ASGI it left the app, as if the
    # server had cut the request off, and Uvicorn answered its own 500.
    if interface == "asgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (serving.md)")
    caplog.set_level(logging.WARNING, logger="microweb")
    app, seen = _app_saying_sorry()
    closed: list[str] = []

    if where == "flow":

        @app.middleware
        async def around(request: Request) -> AsyncIterator[None]:
            try:
                yield
            finally:
                closed.append("flow")

    @app.get("/")
    async def index(request: Request) -> str:
        if where == "after":
            request.after_response(_cancelled_subtask)
            return "answered"
        await _cancelled_subtask()
        return "unreachable"

    response = make_client(app).get("/")
    logged = [record.exc_info[1] for record in caplog.records if record.exc_info is not None]
    if where == "after":
        assert (response.status_code, response.text) == (200, "answered")
        assert "after-response callback" in caplog.text
    else:
        assert (response.status_code, response.text) == (500, "sorry")
        assert logged == seen
    assert len(logged) == 1 and isinstance(logged[0], Exception)
    assert isinstance(logged[0].__cause__, asyncio.CancelledError)
    assert closed == (["flow"] if where == "flow" else [])
    assert "cut off" not in caplog.text


@pytest.mark.parametrize("where", ["handler", "inline", "flow", "after"])
def test_a_cancelled_error_raised_by_sync_code_is_an_error_of_its_request(
    make_client: MakeClient, interface: str, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: no server cancels sync code. Under WSGI a def handler's (or callback's)
    # CancelledError left the app: Waitress logged it and left the connection open,
    # unanswered; under ASGI, raised on the loop (offload=False, a sync flow), Uvicorn
    # answered its own 500 past the handlers.
    if interface == "asgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (serving.md)")
    caplog.set_level(logging.WARNING, logger="microweb")
    app, seen = _app_saying_sorry()

    if where == "flow":

        @app.middleware
        def around(request: Request) -> Iterator[None]:
            yield
            raise asyncio.CancelledError("the flow's own")

    def callback() -> None:
        raise asyncio.CancelledError("the callback's own")

    @app.get("/", offload=where != "inline")
    def index(request: Request) -> str:
        if where == "after":
            request.after_response(callback)
        if where in ("flow", "after"):
            return "answered"
        raise asyncio.CancelledError("the handler's own")

    response = make_client(app).get("/")
    if where == "after":
        assert (response.status_code, response.text) == (200, "answered")
        failures = [r for r in caplog.records if "after-response callback" in r.getMessage()]
        assert len(failures) == 1 and failures[0].exc_info is not None
        seen.append(failures[0].exc_info[1])
    else:
        assert (response.status_code, response.text) == (500, "sorry")
    assert len(seen) == 1 and isinstance(seen[0], Exception)
    assert isinstance(seen[0].__cause__, asyncio.CancelledError)
    assert "cut off" not in caplog.text


def _app_with_an_outer_flow() -> tuple[App, list[int]]:
    """An app whose flow takes the response an error becomes, as AccessLog, RequestID and CORS
    do: it records its status and adds ``x-outer``."""
    app = App()
    statuses: list[int] = []

    @app.middleware
    def outer(request: Request) -> Iterator[None]:
        try:
            response = yield
        except Exception:
            response = yield
        statuses.append(response.status)
        response.headers["x-outer"] = "seen"

    return app, statuses


@pytest.mark.parametrize("where", ["handler", "inline", "flow", "error handler"])
def test_the_flows_see_the_500_of_sync_codes_own_cancelled_error(
    make_client: MakeClient, interface: str, where: str
) -> None:
    # NOTE: the core took a CancelledError out of sync code it called for the server's cut:
    # it closed the flows, and the 500 went out without them (no header of theirs, and an
    # AccessLog flow logged 499), where a def handler in ASGI's pool was answered through them.
    if interface == "asgi" and where == "handler" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: from the pool, a cut")
    app, statuses = _app_with_an_outer_flow()

    if where == "flow":

        @app.middleware
        def inner(request: Request) -> Iterator[None]:
            raise asyncio.CancelledError("the flow's own")
            yield

    if where == "error handler":

        @app.error_handler(RuntimeError)
        def failing(request: Request, exc: Exception) -> str:
            raise asyncio.CancelledError("the error handler's own")

    @app.get("/", offload=where != "inline")
    def index(request: Request) -> str:
        if where == "error handler":
            raise RuntimeError("boom")
        raise asyncio.CancelledError("the handler's own")

    response = make_client(app).get("/")
    assert (response.status_code, response.headers.get("x-outer")) == (500, "seen")
    assert statuses == [500]


@pytest.mark.parametrize("when", ["after its answer", "at its second yield"])
def test_the_flows_see_the_500_of_a_sync_flows_cleanups_own_cancelled_error(
    make_client: MakeClient, when: str
) -> None:
    # NOTE: the cleanup runs when the core closes the flow, in the request's thread: its own
    # CancelledError was taken for the server's cut there, the flows outside were closed and
    # the 500 went out without them (review78).
    app, statuses = _app_with_an_outer_flow()

    @app.middleware
    def inner(request: Request) -> Iterator[Response | None]:
        try:
            if when == "after its answer":
                yield Response("answered by the flow")
            else:
                yield
                yield  # NOTE: the flow ends here: closed, its finally runs.
        finally:
            raise asyncio.CancelledError("the cleanup's own")

    @app.get("/")
    def index(request: Request) -> str:
        return "ok"

    response = make_client(app).get("/")
    assert (response.status_code, response.headers.get("x-outer")) == (500, "seen")
    assert statuses == [500]


@pytest.mark.parametrize("key", [500, Exception])
def test_an_error_handler_that_raises_a_cancelled_error_fails_as_any(
    make_client: MakeClient,
    interface: str,
    key: int | type[Exception],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: taken for a cut, its request was answered by the error handlers once more, and the
    # handler raised it again out of the app: Waitress held the connection open, unanswered;
    # Uvicorn answered its own 500.
    if interface == "asgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (serving.md)")
    app = App()

    @app.error_handler(key)
    def failing(request: Request, exc: Exception) -> str:
        raise asyncio.CancelledError("the error handler's own")

    @app.get("/")
    def index(request: Request) -> str:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="microweb"):
        response = make_client(app).get("/")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert "cut off" not in caplog.text
    failures = [r for r in caplog.records if r.getMessage().startswith("error handler")]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert isinstance(failures[0].exc_info[1], Exception)


def test_an_error_handler_that_finds_the_client_gone_after_a_cancelled_error_answers_400(
    make_client: MakeClient, interface: str
) -> None:
    # NOTE: under ASGI the ClientDisconnect left the app (Uvicorn answered its own 500);
    # WSGI answered 400, as to any ClientDisconnect out of an error handler.
    if interface == "asgi" and sys.version_info < (3, 11):
        pytest.skip("Python 3.10 counts no task's cancellations: taken for a cut (serving.md)")
    app = App()

    @app.error_handler(500)
    def failing(request: Request, exc: Exception) -> str:
        raise ClientDisconnect("gone meanwhile")

    @app.get("/", offload=False)
    def index(request: Request) -> str:
        raise asyncio.CancelledError("the handler's own")

    response = make_client(app).get("/")
    assert (response.status_code, response.text) == (400, "gone meanwhile")


def test_a_request_the_server_cancels_is_reported_as_cut_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def call() -> BaseException:
        started = asyncio.Event()
        asgi = _cancelling_app(started).as_asgi()

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            pass

        caught: list[BaseException] = []

        async def served() -> None:
            # NOTE: caught inside the task, as a server does: awaiting a cancelled task gives
            # a new CancelledError on Python 3.10.
            try:
                await asgi(http_scope(path="/waits"), receive, send)
            except asyncio.CancelledError as exc:
                caught.append(exc)
                raise

        task = asyncio.ensure_future(served())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return caught[0]

    caplog.set_level(logging.WARNING, logger="microweb")
    error = asyncio.run(call())
    assert was_reported(error)
    assert "GET /waits cut off before its answer: the server cancelled it" in caplog.text


FORGED = "/files/a%0D%0AINFO:%20200%20OK%20forged%1B[2J"


def test_the_log_line_of_an_unhandled_error_holds_the_path_encoded(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the line held request.path decoded: CR LF started a forged line in the log, ESC
    # drove the terminal that shows it (hunt60). Encoded as the access log encodes it.
    app = App()

    def fails(request: Request, rest: str) -> str:
        raise LookupError(rest)

    app.get("/files/{rest:path}")(in_colour(colour, fails))
    with caplog.at_level(logging.ERROR, logger="microweb"):
        assert make_client(app).get(FORGED).status_code == 500
    assert [record.getMessage() for record in caplog.records] == [
        "unhandled error in GET /files/a%0D%0AINFO:%20200%20OK%20forged%1B%5B2J"
    ]


def test_the_log_line_of_a_stream_that_fails_holds_the_path_encoded(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    app = App()

    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise LookupError("gone")

    @app.get("/files/{rest:path}")
    def stream(request: Request, rest: str) -> Response:
        return Response.stream(chunks())

    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(LookupError):
        make_client(app).get(FORGED)
    assert [record.getMessage() for record in caplog.records] == [
        "error while streaming GET /files/a%0D%0AINFO:%20200%20OK%20forged%1B%5B2J"
    ]


def test_a_callback_that_fails_after_a_stream_failed_is_logged_on_its_own(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: under WSGI the server closes the body while the stream's error goes by: the
    # callback's error was logged "during handling of" the stream's, which it had no part in.
    app = App()

    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise LookupError("gone")

    def callback() -> None:
        raise ZeroDivisionError("callback")

    @app.get("/")
    def stream(request: Request) -> Response:
        request.after_response(in_colour(colour, callback))
        return Response.stream(chunks())

    with caplog.at_level(logging.ERROR, logger="microweb"), pytest.raises(LookupError):
        make_client(app).get("/")
    failed = [r.exc_info[1] for r in caplog.records if r.exc_info and "callback" in r.msg]
    assert len(failed) == 1 and isinstance(failed[0], ZeroDivisionError)
    assert failed[0].__context__ is None


def test_log_failure_names_its_caller_as_logger_error_does(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the record had no file, line 0 and funcName None: a user's format with
    # %(pathname)s:%(lineno)d %(funcName)s printed ":0 None" for why the app did not start.
    monkeypatch.setattr(logging.getLogger("microweb"), "level", logging.CRITICAL)

    def starting() -> int:
        try:
            raise OSError("address in use")
        except OSError:
            log_failure("cannot listen on %s: %s", "x", "address in use", exc_info=True)
        return sys._getframe().f_lineno - 1

    line = starting()
    [record] = caplog.records
    assert (record.levelno, record.getMessage()) == (
        logging.ERROR,
        "cannot listen on x: address in use",
    )
    assert (record.pathname, record.lineno, record.funcName) == (__file__, line, "starting")
    assert record.exc_info is not None and record.exc_info[0] is OSError
    format_ = logging.Formatter("%(filename)s:%(lineno)d %(module)s %(funcName)s")
    assert format_.formatMessage(record) == f"test_errors.py:{line} test_errors starting"


# NOTE: a method no server refuses everywhere (Waitress passes on any, up to a space); the
# test client answers 400 itself, as h11 would, so the app is called here with it as is.
FORGED_METHOD = "BREW\r\nINFO:forged\x1b[2J"


def _call_with_method(app: App, interface: str, method: str) -> int:
    if interface == "wsgi":
        seen: list[str] = []

        def start(status: str, headers: Any, exc_info: Any = None) -> Any:
            seen.append(status)

        result = app.as_wsgi()(wsgi_environ(method, "/a\rb"), start)
        b"".join(result)
        getattr(result, "close", lambda: None)()
        return int(seen[0][:3])
    sent = asyncio.run(asgi_call(app, http_scope(method, "/a\rb"), body_messages(b"")))
    return int(sent[0]["status"])


@pytest.mark.parametrize(
    ("method", "logged"),
    [(FORGED_METHOD, "BREW%0D%0AINFO%3Aforged%1B%5B2J"), ("G\udc80T", "G%5Cudc80T")],
    ids=["forged", "surrogate"],
)
def test_the_log_lines_of_a_request_hold_its_method_encoded(
    interface: str, method: str, logged: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the path was encoded in microweb's log lines, the method not: CR LF in it started
    # a forged line in the 500's line and the access log's, ESC drove the terminal.
    app = App()
    app.install(AccessLog())

    @app.middleware
    def fails(request: Request):  # type: ignore[no-untyped-def]
        raise LookupError("any method")
        yield

    with caplog.at_level(logging.INFO):
        assert _call_with_method(app, interface, method) == 500
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("microweb")]
    assert lines[0] == f"unhandled error in {logged} /a%0Db"
    assert lines[1].startswith(f"{logged} /a%0Db 500 ")
    assert len(lines) == 2


@pytest.mark.parametrize(
    ("method", "logged"),
    [
        ("GET", "GET"),
        ("M-SEARCH", "M-SEARCH"),
        ("x!#$&'*+.^_`|~1", "x!#$&'*+.^_`|~1"),
        ("A%0D", "A%250D"),
        ("G T", "G%20T"),
        ("GÉT", "G%C3%89T"),
        ("", ""),
        ("G\udc80T", "G%5Cudc80T"),
    ],
    ids=["plain", "dash", "tchars", "percent", "space", "non-ascii", "empty", "surrogate"],
)
def test_logged_method_leaves_a_token_and_encodes_the_rest(method: str, logged: str) -> None:
    request = Request.__new__(Request)
    request.method = method
    assert logged_method(request) == logged


def _chain_of(count: int) -> BaseException:
    """An error with ``count - 1`` contexts before it, each raised while the last was handled."""
    error: BaseException | None = None
    for index in range(count):
        made = KeyError(index)
        made.__context__ = error
        error = made
    assert error is not None
    return error


def test_the_chain_of_a_failed_handlers_error_is_walked_once() -> None:
    # NOTE: each step looked back over every error walked before it: 0.8 s of CPU for a chain
    # of 5,000 (a loop that raised in its own except clause), where the log's traceback
    # took 0.05 s. Counted in Python lines: a few per error.
    error = _chain_of(2_000)
    lines, shown = traced_lines(lambda: _shown_chain(error))
    assert len(shown) == 2_000
    assert lines < 10 * 2_000
    lines, chains = traced_lines(lambda: _chains_to(ValueError("failure"), error))
    assert chains is True
    assert lines < 10 * 2_000
