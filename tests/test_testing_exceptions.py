"""TestClient(raise_server_exceptions=True): an error no handler answered is raised in the test.

Each case runs in both handler colours: a def handler runs in the thread pool under ASGI, an
async def one on the app loop's thread under WSGI, so the error is seen from another thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from conftest import in_colour

from microweb import App, HTTPError, Request, Response, WebSocket
from microweb._errors import ClientDisconnect
from microweb.testing import TestClient

INTERFACES = ["wsgi", "asgi", "both"]


class Boom(Exception):
    """The error the app under test raises."""


def _failing_app(colour: str, boom: Exception) -> App:
    app = App()

    def fail(request: Request) -> str:
        raise boom

    app.get("/")(in_colour(colour, fail))
    return app


def _names(info: pytest.ExceptionInfo[BaseException]) -> list[str]:
    return [str(entry.name) for entry in info.traceback]


@pytest.mark.parametrize("interface", INTERFACES)
def test_by_default_the_app_answers_500(interface: str, colour: str) -> None:
    with TestClient(_failing_app(colour, Boom("no")), interface=interface) as client:
        assert client.raise_server_exceptions is False
        assert client.get("/").status_code == 500


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_handlers_error_is_raised_with_its_traceback(interface: str, colour: str) -> None:
    boom = Boom("in the handler")
    app = _failing_app(colour, boom)
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(Boom) as raised,
    ):
        client.get("/")
    assert raised.value is boom
    assert "fail" in _names(raised)


def test_the_option_is_read_on_every_request(interface: str) -> None:
    with TestClient(_failing_app("sync", Boom("later")), interface=interface) as client:
        assert client.get("/").status_code == 500
        client.raise_server_exceptions = True
        with pytest.raises(Boom):
            client.get("/")
        client.raise_server_exceptions = False
        assert client.get("/").status_code == 500


def _flow(colour: str, boom: Exception) -> Callable[..., Any]:
    if colour == "sync":

        def sync_flow(request: Request) -> Iterator[None]:
            yield
            raise boom

        return sync_flow

    async def async_flow(request: Request) -> AsyncIterator[None]:
        yield
        raise boom

    return async_flow


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_flows_error_is_raised(interface: str, colour: str) -> None:
    boom = Boom("in a flow")
    app = App()
    app.middleware(_flow(colour, boom))
    app.get("/")(in_colour(colour, lambda request: "ok"))
    with TestClient(app, interface=interface, raise_server_exceptions=True) as client:
        with pytest.raises(Boom) as raised:
            client.get("/")
        assert raised.value is boom
        client.raise_server_exceptions = False
        assert client.get("/").status_code == 500


class _FailingPlugin:
    name = "failing"

    def __init__(self, boom: Exception) -> None:
        self.boom = boom

    def apply(self, handler: Callable[..., Any], route: Any) -> Callable[..., Any]:
        def wrapped(request: Request, **params: Any) -> Any:
            raise self.boom

        return in_colour("async" if route.is_async else "sync", wrapped)


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_plugins_error_is_raised(interface: str, colour: str) -> None:
    boom = Boom("in a plugin")
    app = App()
    app.install(_FailingPlugin(boom))
    app.get("/")(in_colour(colour, lambda request: "ok"))
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(Boom) as raised,
    ):
        client.get("/")
    assert raised.value is boom


def _stream(colour: str, boom: Exception) -> Any:
    if colour == "sync":

        def chunks() -> Iterator[bytes]:
            yield b"first"
            raise boom

        return chunks()

    async def achunks() -> AsyncIterator[bytes]:
        yield b"first"
        raise boom

    return achunks()


@pytest.mark.parametrize("interface", INTERFACES)
@pytest.mark.parametrize("option", [False, True])
def test_a_stream_that_fails_is_raised_whatever_the_option(
    interface: str, colour: str, option: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: its status line went out already, so there is no 500 to give: a server cuts the
    # connection, and the client raises the error under either value.
    boom = Boom("in a stream")
    app = App()

    @app.get("/")
    def stream(request: Request) -> Response:
        return Response.stream(_stream(colour, boom))

    with (
        caplog.at_level(logging.CRITICAL, logger="microweb"),
        TestClient(app, interface=interface, raise_server_exceptions=option) as client,
        pytest.raises(Boom) as raised,
    ):
        client.get("/")
    assert raised.value is boom


@pytest.mark.parametrize("interface", INTERFACES)
def test_an_after_response_error_is_raised_once_every_callback_ran(
    interface: str, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    boom = Boom("after the response")
    ran: list[str] = []
    app = App()

    def callback() -> None:
        raise boom

    @app.get("/")
    def index(request: Request) -> str:
        request.after_response(in_colour(colour, callback))
        request.after_response(ran.append, "next")
        return "ok"

    with TestClient(app, interface=interface) as client:
        with caplog.at_level(logging.ERROR, logger="microweb"):
            assert client.get("/").text == "ok"  # NOTE: by default, logged only
        assert "after-response callback" in caplog.text
        client.raise_server_exceptions = True
        ran.clear()
        with pytest.raises(Boom) as raised:
            client.get("/")
    assert raised.value is boom
    assert ran == ["next"]  # NOTE: under "both", the WSGI side raised: one run


@pytest.mark.parametrize("interface", INTERFACES)
def test_a_redirects_after_response_error_is_raised_before_it_is_followed(
    interface: str, colour: str
) -> None:
    # NOTE: the redirect was followed first: the page it led to ran (a POST's 303 to a GET
    # that changes something, say) before the test saw the error of the request it sent.
    boom = Boom("after the redirect")
    ran: list[str] = []
    app = App()

    def callback() -> None:
        raise boom

    @app.post("/old")
    def old(request: Request) -> Response:
        request.after_response(in_colour(colour, callback))
        return Response.redirect("/new", status=303)

    @app.get("/new")
    def new(request: Request) -> str:
        ran.append("new")
        return "new"

    with TestClient(app, interface=interface, raise_server_exceptions=True) as client:
        with pytest.raises(Boom) as raised:
            client.post("/old", follow_redirects=True)
        assert raised.value is boom
        if interface != "both":  # NOTE: stream() is for one interface
            with pytest.raises(Boom), client.stream("POST", "/old", follow_redirects=True):
                pass
    assert ran == []


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_a_call_that_raises_nothing_inside_a_raising_stream_raises_nothing(
    interface: str, colour: str
) -> None:
    # NOTE: a call with raise_server_exceptions=False, inside the with block of a stream()
    # that raises them, took that block's list of errors: its app's 500 was raised at the
    # block's exit, and its next request raised it before it was sent (the redirect check).
    boom = Boom("the quiet client's")
    with (
        TestClient(_failing_app(colour, boom), interface=interface) as quiet,
        TestClient(App(), interface=interface, raise_server_exceptions=True) as client,
        client.stream("GET", "/") as streamed,
    ):
        assert quiet.get("/").status_code == 500
        assert quiet.get("/").status_code == 500
        client.raise_server_exceptions = False
        assert client.get("/").status_code == 404
    assert streamed.status_code == 404


@pytest.mark.parametrize("interface", INTERFACES)
def test_errors_the_app_answers_are_not_raised(interface: str, colour: str) -> None:
    class Gone(HTTPError):
        pass

    app = App()
    errors: dict[str, Exception] = {
        "/answered": ValueError("answered by its handler"),
        "/last-resort": KeyError("answered by the 500 handler"),
        "/http": HTTPError(404, "nothing here"),
        "/subclass": Gone(410),
        "/disconnect": ClientDisconnect("raised by app code"),
    }

    def fail(request: Request) -> str:
        raise errors[request.path]

    for path in errors:
        app.get(path, name=path)(in_colour(colour, fail))
    app.error_handler(ValueError)(in_colour(colour, lambda request, exc: ("teapot", 418)))
    app.error_handler(500)(in_colour(colour, lambda request, exc: "sorry"))
    statuses = {"/answered": 418, "/last-resort": 500, "/http": 404, "/subclass": 410}
    with TestClient(app, interface=interface, raise_server_exceptions=True) as client:
        for path, status in {**statuses, "/disconnect": 400}.items():
            assert client.get(path).status_code == status, path


@pytest.mark.parametrize("interface", INTERFACES)
def test_an_error_handler_that_fails_is_raised(interface: str, colour: str) -> None:
    failure = Boom("in the error handler")
    app = App()

    def handle(request: Request, exc: Exception) -> str:
        raise failure

    def fail(request: Request) -> str:
        raise ValueError("handled, badly")

    app.get("/")(in_colour(colour, fail))
    app.error_handler(ValueError)(in_colour(colour, handle))
    with (
        TestClient(app, interface=interface, raise_server_exceptions=True) as client,
        pytest.raises(Boom) as raised,
    ):
        client.get("/")
    assert raised.value is failure


def _ending_app(colour: str, ending: BaseException) -> App:
    app = App()

    def fail(request: Request) -> str:
        raise ending

    def streamed(request: Request) -> Response:
        def chunks() -> Iterator[str]:
            yield "a"
            raise ending

        return Response.stream(chunks())

    def later(request: Request) -> str:
        request.after_response(in_colour(colour, lambda: fail(request)))
        return "sent"

    app.get("/handler")(in_colour(colour, fail))
    app.get("/stream")(in_colour(colour, streamed))
    app.get("/after")(in_colour(colour, later))
    app.get("/fine")(lambda request: "fine")
    return app


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize("where", ["handler", "stream", "after"])
@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt])
def test_a_system_exit_goes_to_the_test_and_the_client_serves_on(
    interface: str, colour: str, where: str, ending: type[BaseException]
) -> None:
    # NOTE: docs/errors.md: app code's SystemExit and KeyboardInterrupt go to the server, which
    # serves on. Under WSGI the call raised it and the client served on; under ASGI it stopped
    # the client's loop: LoopStopped instead, then "Event loop is closed" from every request
    # and from the with block's exit, and no shutdown hook ran.
    events: list[str] = []
    app = _ending_app(colour, ending(3))
    app.on_shutdown(lambda: events.append("shutdown"))
    with TestClient(app, interface=interface) as client:
        with pytest.raises(ending):
            client.get(f"/{where}")
        assert client.get("/fine").text == "fine"
    assert events == ["shutdown"]


@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt])
def test_a_websocket_handlers_system_exit_goes_to_the_test(ending: type[BaseException]) -> None:
    app = App()

    @app.websocket("/ws")
    async def socket(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()
        raise ending(2)

    app.get("/fine")(lambda request: "fine")
    with TestClient(app, interface="asgi") as client:
        with pytest.raises(ending), client.websocket_connect("/ws") as session:
            session.send_text("bye")
            session.receive_text()
        assert client.get("/fine").text == "fine"


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
@pytest.mark.parametrize("ending", [SystemExit, KeyboardInterrupt])
def test_a_startup_hooks_system_exit_goes_to_the_test(
    interface: str, ending: type[BaseException]
) -> None:
    # NOTE: under ASGI the lifespan's task stopped the client's loop: "Event loop is closed".
    app = App()

    @app.on_startup
    def start() -> None:
        raise ending(7)

    with pytest.raises(ending), TestClient(app, interface=interface):
        pass


class BrokenUpload(Exception):
    """The error of a test's own request body."""


@pytest.mark.parametrize("raise_server_exceptions", [False, True])
def test_an_error_of_the_tests_own_request_body_is_raised_not_the_apps(
    interface: str, colour: str, raise_server_exceptions: bool, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: under ASGI, a content= generator that raised was raised into the app's body read:
    # logged as the app's unhandled error, a 500 (under WSGI the test got it, as here).
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()
    read: list[bytes] = []

    def upload(request: Request) -> str:
        read.append(request.read())
        return "read"

    async def aupload(request: Request) -> str:
        read.append(await request.aread())
        return "read"

    app.post("/")(upload if colour == "sync" else aupload)

    def body() -> Iterator[bytes]:
        yield b"first"
        raise BrokenUpload("the test's generator")

    client = TestClient(app, interface, raise_server_exceptions=raise_server_exceptions)  # type: ignore[arg-type]
    with client, pytest.raises(BrokenUpload):
        client.post("/", content=body())
    assert read == []
    assert not [record for record in caplog.records if record.exc_info]


@pytest.mark.parametrize("chunks", [["text"], [b"ok", 7], [b"ok", None]])
@pytest.mark.parametrize("interface", ["wsgi", "asgi", "both"])
def test_a_content_chunk_that_is_not_bytes_is_the_tests_error(
    interface: str, chunks: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: under ASGI, a str chunk went to the app as an http.request body, which ASGI says
    # is bytes: the app failed, a 500 logged as its own error; under WSGI the test got a
    # TypeError from bytes.join(), which named no content=.
    caplog.set_level(logging.ERROR, logger="microweb")
    app = App()
    read: list[bytes] = []

    @app.post("/")
    def upload(request: Request) -> str:
        read.append(request.read())
        return "read"

    with TestClient(app, interface) as client:  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="content= chunks must be bytes"):
            client.post("/", content=iter(chunks))
        with pytest.raises(TypeError, match="content= chunks must be bytes"):
            client.post("/", content=chunks)
        assert client.post("/", content=[b"by", bytearray(b"te"), memoryview(b"s")]).text == "read"
    assert read == [b"bytes"] * (2 if interface == "both" else 1)
    assert not [record for record in caplog.records if record.exc_info]


@pytest.mark.parametrize("chunk", ["text", 7, None])
@pytest.mark.parametrize("interface", ["wsgi", "asgi", "both"])
def test_an_endless_content_of_chunks_that_are_not_bytes_is_read_no_further_than_the_first(
    interface: str, chunk: object
) -> None:
    # NOTE: under "both", a chunk that is no bytes counted nothing towards the cap of what is
    # read before the sides are called: an endless upload of str chunks hung the test and
    # filled memory, where each side refuses the first.
    app = App()
    app.post("/")(lambda request: request.read())
    pulled: list[int] = []

    def endless() -> Iterator[object]:
        for number in range(100_000):  # NOTE: on the old code, ends (with an error) at last
            pulled.append(number)
            yield chunk

    client = TestClient(app, interface)  # type: ignore[arg-type]
    with client, pytest.raises(TypeError, match="content= chunks must be bytes"):
        client.post("/", content=endless())
    assert len(pulled) <= 2
