"""Errors a port makes with a Request method used as a value (Flask's ``request.form["x"]``,
``request.json.get("x")``) or with Starlette's ``request.url.path``: the log line and the
debug page say what to write, where Python's message named only a ``'method'`` object."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

import pytest
from conftest import MakeClient, in_colour

from microweb import App, Request
from microweb._error_logs import port_hint
from microweb.testing import TestClient


def _form_subscripted(request: Request) -> Any:
    return request.form["name"]  # type: ignore[index]


def _json_get(request: Request) -> Any:
    return request.json.get("name")  # type: ignore[attr-defined]


def _form_iterated(req: Request) -> Any:
    return "name" in req.form  # type: ignore[operator]


def _ajson_get(request: Request) -> Any:
    return request.ajson.get("name")  # type: ignore[attr-defined]


def _url_path(request: Request) -> Any:
    return request.url.path  # type: ignore[attr-defined]


def _path_added(request: Request) -> Any:
    # NOTE: a TypeError of a Request's attribute, no method's: no hint.
    return request.path + 1  # type: ignore[operator]


def _key_error(request: Request) -> Any:
    raise KeyError("missing")


def _other_method(request: Request) -> Any:
    class Thing:
        def form(self) -> None:
            """A method of no Request's."""

    thing = Thing()
    return thing.form["name"]  # type: ignore[index]


def _another_objects_request(request: Request) -> Any:
    # NOTE: "box.request.form" holds "request.form", of no local named request (mutation
    # review384: a name after a dot taken for the local).
    class Other:
        def form(self) -> None:
            """A method of no Request's."""

    class Box:
        request = Other()

    box = Box()
    return box.request.form["name"]  # type: ignore[index]


class _ModulelessTypeError(TypeError):
    """An error class whose ``__module__`` is no str (set so by a code generator, say)."""


_ModulelessTypeError.__module__ = None  # type: ignore[assignment]


def _moduleless(request: Request) -> Any:
    # NOTE: its class's __module__ read as no other framework's, the line is read still
    # (mutation review384: None.partition() raised, and the hint was lost).
    raise _ModulelessTypeError("'method' object is not subscriptable", request.form)


_CASES: list[tuple[Callable[[Request], Any], str | None]] = [
    (
        _form_subscripted,
        "request.form is a method: call it, request.form() "
        "(await request.aform() in an async def handler)",
    ),
    (
        _json_get,
        "request.json is a method: call it, request.json() "
        "(await request.ajson() in an async def handler)",
    ),
    (_ajson_get, "request.ajson is a method: call it, await request.ajson()"),
    (
        _form_iterated,
        "req.form is a method: call it, req.form() (await req.aform() in an async def handler)",
    ),
    (
        _url_path,
        "request.url is a str, the whole URL: its parts are request.path, request.query, "
        "request.scheme and request.host",
    ),
    (_path_added, None),
    (_other_method, None),
    (_another_objects_request, None),
    (
        _moduleless,
        "request.form is a method: call it, request.form() "
        "(await request.aform() in an async def handler)",
    ),
]
_IDS = [
    "form-subscripted",
    "json-get",
    "ajson-get",
    "form-iterated",
    "url-path",
    "path-added",
    "other-method",
    "another-objects-request",
    "moduleless",
]


def _app(colour: str, handler: Callable[[Request], Any], debug: bool = False) -> App:
    app = App(debug=debug)
    app.post("/")(in_colour(colour, handler))
    return app


@pytest.mark.parametrize(("handler", "hint"), _CASES, ids=_IDS)
def test_the_log_line_says_what_to_write(
    make_client: MakeClient,
    colour: str,
    caplog: pytest.LogCaptureFixture,
    handler: Callable[[Request], Any],
    hint: str | None,
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(_app(colour, handler)).post("/", data={"name": "x"})
    assert response.status_code == 500
    assert "method" not in response.text  # NOTE: nothing of it shown outside debug.
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message == "unhandled error in POST /" + ("" if hint is None else f": {hint}")


@pytest.mark.parametrize(("handler", "hint"), _CASES[:2], ids=_IDS[:2])
def test_the_debug_page_says_what_to_write(
    make_client: MakeClient, colour: str, handler: Callable[[Request], Any], hint: str
) -> None:
    response = make_client(_app(colour, handler, debug=True)).post("/", data={"name": "x"})
    assert response.status_code == 500
    assert hint in response.text
    assert "Traceback" in response.text


def test_an_error_handlers_failure_says_what_to_write(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="microweb")
    app = _app(colour, _key_error)

    def missing(request: Request, exc: KeyError) -> Any:
        return {"error": request.json["error"]}  # type: ignore[index]

    app.error_handler(KeyError)(in_colour(colour, missing))
    assert make_client(app).post("/", json={"error": "x"}).status_code == 500
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message.startswith("error handler ")
    assert message.endswith(
        " failed in POST /: request.json is a method: call it, request.json() "
        "(await request.ajson() in an async def handler)"
    )


def test_an_error_with_no_traceback_gets_no_hint() -> None:
    assert port_hint(TypeError("'method' object is not subscriptable")) == ""
    assert port_hint(AttributeError("'str' object has no attribute 'path'")) == ""


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11's")
def test_an_error_the_test_client_raises_carries_the_hint(interface: str, colour: str) -> None:
    # NOTE: raise_server_exceptions=True raised Python's bare TypeError into the test.
    app = _app(colour, _form_subscripted)
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(TypeError) as raised,
    ):
        client.post("/", data={"name": "x"})
    assert raised.value.__notes__ == [
        "request.form is a method: call it, request.form() "
        "(await request.aform() in an async def handler)"
    ]


class _UnprintableTypeError(TypeError):
    def __str__(self) -> str:
        raise ValueError("no text")


class _ObjlessAttributeError(AttributeError):
    @property  # type: ignore[override]
    def obj(self) -> object:
        raise ValueError("no obj")


def _unprintable(request: Request) -> Any:
    raise _UnprintableTypeError(request.form)


def _objless(request: Request) -> Any:
    raise _ObjlessAttributeError(request.url)


@pytest.mark.parametrize("handler", [_unprintable, _objless])
def test_a_hint_that_fails_leaves_the_500_and_its_log_line(
    make_client: MakeClient,
    colour: str,
    caplog: pytest.LogCaptureFixture,
    handler: Callable[[Request], Any],
) -> None:
    # NOTE: the hint's own str(exc), or exc.obj, raised ValueError out of the log line: no
    # line, and an error in the error path went to the server, the test client's caller.
    caplog.set_level(logging.ERROR, logger="microweb")
    assert make_client(_app(colour, handler)).post("/").status_code == 500
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message == "unhandled error in POST /"


@pytest.mark.parametrize("handler", [_unprintable, _objless])
def test_a_hint_that_fails_leaves_the_debug_page(
    make_client: MakeClient, colour: str, handler: Callable[[Request], Any]
) -> None:
    response = make_client(_app(colour, handler, debug=True)).post("/")
    assert response.status_code == 500
    assert "Traceback" in response.text


class _FrozenTypeError(TypeError):
    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"frozen: {name}")


def _frozen(request: Request) -> Any:
    raise _FrozenTypeError("'method' object is not subscriptable", request.form)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11's")
def test_an_error_that_takes_no_note_is_raised_as_it_is(interface: str, colour: str) -> None:
    # NOTE: one that refuses new attributes (attrs' frozen errors): add_note() raised its
    # own error into the test, in place of the app's.
    app = _app(colour, _frozen)
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(_FrozenTypeError),
    ):
        client.post("/")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception notes are Python 3.11's")
def test_an_error_raised_again_carries_the_hint_once(interface: str, colour: str) -> None:
    # NOTE: an error object raised by more than one request (kept, as a module's constant
    # is) got a note each time it reached the test (mutation review384).
    kept: list[TypeError] = []

    def raised_again(request: Request) -> Any:
        if not kept:
            try:
                return request.form["name"]  # type: ignore[index]
            except TypeError as exc:
                kept.append(exc)
        raise kept[0]

    app = _app(colour, raised_again)
    with TestClient(app, interface=interface, raise_server_exceptions=True) as client:
        for _ in range(2):
            with pytest.raises(TypeError) as raised:
                client.post("/", data={"name": "x"})
    assert raised.value is kept[0]
    assert raised.value.__notes__ == [
        "request.form is a method: call it, request.form() "
        "(await request.aform() in an async def handler)"
    ]
