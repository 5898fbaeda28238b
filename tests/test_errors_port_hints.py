"""Errors a port makes with a Request method used as a value (Flask's ``request.form["x"]``,
``request.json.get("x")``) or with Starlette's ``request.url.path``: the log line and the
debug page say what to write, where Python's message named only a ``'method'`` object."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import http_scope

import microweb
from microweb import App, HTTPError, Request, Response
from microweb._port_hints import port_hint
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


def _status_code(request: Request) -> Any:
    return Response(b"made", status_code=201)  # type: ignore[call-arg]


def _json_status_code(request: Request) -> Any:
    return microweb.Response.json({"made": True}, status_code=201)  # type: ignore[call-arg]


def _error_status_code(request: Request) -> Any:
    raise HTTPError(status_code=404)  # type: ignore[call-arg]


def _content(request: Request) -> Any:
    return Response(content=b"made")  # type: ignore[call-arg]


def _mimetype(request: Request) -> Any:
    return Response.text("made", mimetype="text/csv")  # type: ignore[call-arg]


def _background(request: Request) -> Any:
    return Response.json({}, background=None)  # type: ignore[call-arg]


def _own_response(request: Request) -> Any:
    class Response:  # NOTE: the app's own class of that name: no hint of microweb's.
        def __init__(self) -> None:
            """Takes nothing."""

    return Response(status_code=201)  # type: ignore[call-arg]


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


# NOTE: a library's module with a Response of its own that takes no status_code (requests').
_requests = ModuleType("requests_like")
exec("class Response:\n    def __init__(self):\n        pass\n", vars(_requests))


def _other_librarys_response(request: Request) -> Any:
    # NOTE: the frame binds microweb's Response too: the line names the one it called.
    assert Response
    return _requests.Response(status_code=201)


_CASES: list[tuple[Callable[[Request], Any], str | None]] = [
    (
        _status_code,
        "microweb's Response.__init__() takes status=, not status_code= (another framework's name)",
    ),
    (
        _json_status_code,
        "microweb's Response.json() takes status=, not status_code= (another framework's name)",
    ),
    (
        _error_status_code,
        "microweb's HTTPError.__init__() takes status=, not status_code= (another framework's "
        "name)",
    ),
    (
        _content,
        "microweb's Response.__init__() takes body=, not content= (another framework's name)",
    ),
    (
        _mimetype,
        "microweb's Response.text() takes headers={'content-type': ...}, not mimetype= "
        "(another framework's name)",
    ),
    (
        _background,
        "microweb's Response.json() takes no background=: call "
        "request.after_response(fn, *args, **kwargs) in the handler",
    ),
    (_own_response, None),
    (_other_librarys_response, None),
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
    "status-code",
    "json-status-code",
    "error-status-code",
    "content",
    "mimetype",
    "background",
    "own-response",
    "other-librarys-response",
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


_ON_THE_DEBUG_PAGE = ["status-code", "error-status-code", "form-subscripted", "json-get"]


@pytest.mark.parametrize(
    ("handler", "hint"),
    [_CASES[_IDS.index(name)] for name in _ON_THE_DEBUG_PAGE],
    ids=_ON_THE_DEBUG_PAGE,
)
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


def _group_type() -> Any:
    # NOTE: on Python 3.10, anyio's task groups raise the exceptiongroup backport's.
    if sys.version_info >= (3, 11):
        return ExceptionGroup  # noqa: F821 (3.11+)
    return pytest.importorskip("exceptiongroup").ExceptionGroup


_GROUP_HINT = (
    "ExceptionGroup of HTTPError(404), a task group's: only an HTTPError raised on its own "
    "is answered, a group is a 500 (as in Starlette); raise it alone, with "
) + (
    "except* HTTPError as group: raise group.exceptions[0]"
    if sys.version_info >= (3, 11)
    # NOTE: no except* before Python 3.11: the hint said to write a SyntaxError there.
    else "exceptiongroup's catch({HTTPError: handler}) around the task group, the handler "
    "raising group.exceptions[0]"
)


@pytest.mark.parametrize("nested", [False, True])
def test_an_exception_group_of_an_http_error_says_how_to_raise_it(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture, nested: bool
) -> None:
    # NOTE: asyncio.TaskGroup (and anyio's) raise a child's HTTPError in a group, which is no
    # HTTPError: a 500, as Starlette's, whose log line said nothing of the 404 inside.
    group = _group_type()
    inner = [HTTPError(404, "no such note")]

    def grouped(request: Request) -> Any:
        raise group("unhandled errors in a TaskGroup", [group("inner", inner)] if nested else inner)

    caplog.set_level(logging.ERROR, logger="microweb")
    response = make_client(_app(colour, grouped)).post("/")
    assert response.status_code == 500
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message == f"unhandled error in POST /: {_GROUP_HINT}"


def test_an_exception_group_of_other_errors_gets_no_group_hint(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    group = _group_type()

    def grouped(request: Request) -> Any:
        raise group("tasks", [HTTPError(404), KeyError("x")])

    caplog.set_level(logging.ERROR, logger="microweb")
    assert make_client(_app(colour, grouped)).post("/").status_code == 500
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message == "unhandled error in POST /"


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.TaskGroup is Python 3.11's")
def test_the_hint_of_a_task_group_works_as_it_says(make_client: MakeClient) -> None:
    app = App()

    async def refuse() -> None:
        raise HTTPError(404, "no such note")

    @app.get("/grouped")
    async def grouped(request: Request) -> None:
        async with asyncio.TaskGroup() as tasks:  # type: ignore[attr-defined,unused-ignore]
            tasks.create_task(refuse())

    @app.get("/alone")
    async def alone(request: Request) -> None:
        exec(
            "async def run(TaskGroup, refuse, HTTPError):\n"
            "    try:\n"
            "        async with TaskGroup() as tasks:\n"
            "            tasks.create_task(refuse())\n"
            "    except* HTTPError as group:\n"
            "        raise group.exceptions[0]\n",
            namespace := {},
        )
        await namespace["run"](asyncio.TaskGroup, refuse, HTTPError)

    client = make_client(app)
    assert client.get("/grouped").status_code == 500
    assert (client.get("/alone").status_code, client.get("/alone").text) == (404, "no such note")


@pytest.mark.skipif(sys.version_info >= (3, 11), reason="except* is written from Python 3.11")
def test_the_hint_of_a_task_group_works_as_it_says_on_python_3_10(make_client: MakeClient) -> None:
    anyio = pytest.importorskip("anyio")
    catch = pytest.importorskip("exceptiongroup").catch
    app = App()

    async def refuse() -> None:
        raise HTTPError(404, "no such note")

    def handler(group: Any) -> None:
        raise group.exceptions[0]

    @app.get("/alone")
    async def alone(request: Request) -> None:
        with catch({HTTPError: handler}):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(refuse)

    client = make_client(app)
    assert (client.get("/alone").status_code, client.get("/alone").text) == (404, "no such note")


def test_a_templates_render_with_status_code_says_status(tmp_path: Path) -> None:
    templating = pytest.importorskip("microweb.templating")
    templates = templating.Templates(tmp_path)
    try:
        templates.render(None, "page.html", {}, status_code=404)
    except TypeError as exc:
        hint = port_hint(exc)
    assert hint == (
        "microweb's Templates.render() takes status=, not status_code= (another framework's name)"
    )


def test_a_class_of_the_same_name_from_elsewhere_gets_no_keyword_hint() -> None:
    # NOTE: a module that holds microweb's classes and its own Response: the name as the
    # calling frame binds it is what was called.
    namespace: dict[str, Any] = {}
    exec(
        "import microweb\n"
        "from microweb import HTTPError, Response as Answer\n"
        "class Response:\n"
        "    def __init__(self):\n"
        "        pass\n"
        "try:\n"
        "    Response(status_code=201)\n"
        "except TypeError as exc:\n"
        "    error = exc\n",
        namespace,
    )
    assert port_hint(namespace["error"]) == ""


def test_a_subclass_and_falcons_description_get_the_keyword_hint() -> None:
    class Gone(Response):
        def __init__(self, body: bytes) -> None:
            super().__init__(body, status_code=410)  # type: ignore[call-arg]

    try:
        Gone(b"gone")
    except TypeError as exc:
        hint = port_hint(exc)
    assert hint.startswith("microweb's Response.__init__() takes status=, not status_code=")
    try:
        HTTPError(404, description="no such link")  # type: ignore[call-arg]
    except TypeError as exc:
        hint = port_hint(exc)
    assert hint == (
        "microweb's HTTPError.__init__() takes detail=, not description= (another framework's name)"
    )


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


class _Stop(BaseException):
    """An app's own BaseException, no KeyboardInterrupt or SystemExit."""


def _foreign_error(raised: type[BaseException], name: str = "status_code") -> type[Exception]:
    """Starlette's HTTPException as a port raises it, whose ``name`` raises ``raised``."""

    def read(self: Exception) -> object:
        raise raised(f"{name} read")

    cls = type("HTTPException", (Exception,), {name: property(read)})
    cls.__module__ = "starlette.exceptions"
    return cls


@pytest.mark.parametrize("raised", [asyncio.CancelledError])
@pytest.mark.parametrize("name", ["status_code", "code"])
def test_an_attribute_that_raises_a_base_exception_leaves_no_hint(
    make_client: MakeClient,
    colour: str,
    caplog: pytest.LogCaptureFixture,
    raised: type[BaseException],
    name: str,
) -> None:
    # NOTE: only an Exception was caught: the property's CancelledError went out of the log
    # line, and the app's error with it, to the server in place of the 500. Raised in sync
    # code, it is the app's own, an error of the request as out of a handler.
    error = _foreign_error(raised, name)

    def handler(request: Request) -> Any:
        raise error()

    assert port_hint(error()) == ""
    caplog.set_level(logging.ERROR, logger="microweb")
    assert make_client(_app(colour, handler)).post("/").status_code == 500
    [message] = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert message == "unhandled error in POST /"
    response = make_client(_app(colour, handler, debug=True)).post("/")
    assert (response.status_code, "Traceback" in response.text) == (500, True)


_ENDINGS = [KeyboardInterrupt, SystemExit, GeneratorExit, _Stop]


@pytest.mark.parametrize("raised", _ENDINGS)
def test_an_attribute_that_raises_an_ending_raises_it_as_a_handlers_own(
    interface: str, colour: str, raised: type[BaseException]
) -> None:
    # NOTE: as a handler's own: Ctrl-C, sys.exit() and any BaseException that is no Exception
    # go on to the server, here the test. A GeneratorExit or an app's own (gevent's Timeout,
    # which arrives in sync code that waits) was taken for a failed read and lost, where the
    # same raised by the handler went on.
    error = _foreign_error(raised)

    def handler(request: Request) -> Any:
        raise error()

    def direct(request: Request) -> Any:
        raise raised("status_code read")

    with pytest.raises(raised, match="status_code read"):
        port_hint(error())
    for app in (_app(colour, handler), _app(colour, direct), _app(colour, handler, debug=True)):
        with (
            TestClient(app, interface=interface, raise_server_exceptions=False) as client,
            pytest.raises(raised, match="status_code read"),
        ):
            client.post("/")


def _cancelled_then_raising(raised: type[BaseException] | None) -> tuple[object, list[object]]:
    """Run an ``async def`` handler that the server cancels as it waits (the client left):
    it raises, in place of the cancellation, the port's error whose ``status_code`` raises
    ``raised``, or a RuntimeError with ``None``. Return the class of what ended the ASGI
    call (``None`` if it returned) and the statuses sent."""
    started = asyncio.Event()
    app = App()

    @app.post("/")
    async def handler(request: Request) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            if raised is None:
                raise RuntimeError("converted") from None
            raise _foreign_error(raised)() from None

    asgi = app.as_asgi()
    sent: list[object] = []

    async def call() -> object:
        async def receive() -> dict[str, Any]:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            sent.append(message.get("status", message["type"]))

        task = asyncio.ensure_future(asgi(http_scope("POST", "/"), receive, send))
        await started.wait()
        task.cancel()
        try:
            await task
        except BaseException as exc:
            return type(exc)
        return None

    return asyncio.run(call()), sent


def test_a_cancelled_error_of_a_read_in_a_cancelled_request_is_the_apps_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: ASGI only: no WSGI server cancels a call. The handler made the server's
    # cancellation its own error; a CancelledError of the read is no second cancellation:
    # the 500 and its line, as for any error the handler raised in its place.
    caplog.set_level(logging.ERROR, logger="microweb")
    assert _cancelled_then_raising(None) == (None, [500, "http.response.body"])
    assert _cancelled_then_raising(asyncio.CancelledError) == (None, [500, "http.response.body"])
    messages = [r.getMessage() for r in caplog.records if r.name == "microweb"]
    assert messages == ["unhandled error in POST /"] * 2


@pytest.mark.parametrize("raised", [GeneratorExit, _Stop])
def test_an_ending_of_a_read_in_a_cancelled_request_goes_to_the_server(
    raised: type[BaseException],
) -> None:
    assert _cancelled_then_raising(raised) == (raised, [])
