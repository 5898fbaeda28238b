"""request.after_response(): callbacks of both colours run after the last body byte, in order,
streams included, under both interfaces; failures are logged; disconnects still run them."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import sys
import threading
import traceback
import types
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
from conftest import MakeClient, in_colour
from drive import leave_after_sends, start_response, wsgi_environ

from microweb import (
    App,
    ClientDisconnect,
    HTTPError,
    Request,
    Response,
    ServerSentEvent,
    WebSocket,
)
from microweb._effects import ENDED, Colored
from microweb.testing import TestClient

Handler = Callable[..., Any]


def add_handler(app: App, colour: str, body: Callable[[Request], Any], path: str = "/") -> None:
    """Register ``GET path`` as a def or async def handler returning ``body(request)``."""
    app.get(path, name=path)(in_colour(colour, body))


def recorder(log: list[str]) -> tuple[Callable[..., None], Callable[..., Any]]:
    """A def and an async def callback that append their arguments to ``log``."""

    def sync_callback(tag: str, *, suffix: str = "") -> None:
        log.append(f"sync {tag}{suffix} on {threading.current_thread().name}")

    async def async_callback(tag: str, *, suffix: str = "") -> None:
        await asyncio.sleep(0)
        log.append(f"async {tag}{suffix} on {threading.current_thread().name}")

    return sync_callback, async_callback


def threads(log: list[str]) -> list[str]:
    return [entry.split(" on ")[0] for entry in log]


def test_callbacks_of_both_colours_run_in_order_after_the_response(
    make_client: MakeClient, colour: str
) -> None:
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    def body(request: Request) -> str:
        request.after_response(sync_callback, "one")
        request.after_response(async_callback, "two", suffix="!")
        request.after_response(sync_callback, "three")
        log.append("handler returned")
        return "hello"

    add_handler(app, colour, body)
    with make_client(app) as client:
        response = client.get("/")
        assert response.text == "hello"
        assert threads(log) == ["handler returned", "sync one", "async two!", "sync three"]


def test_sync_callbacks_use_the_pool_under_asgi_async_the_app_loop_under_wsgi(
    make_client: MakeClient, interface: str
) -> None:
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    @app.get("/")
    async def handler(request: Request) -> str:
        request.after_response(sync_callback, "s")
        request.after_response(async_callback, "a")
        return "ok"

    with make_client(app) as client:
        client.get("/")
    sync_thread, async_thread = (entry.split(" on ")[1] for entry in log)
    if interface == "asgi":
        assert sync_thread.startswith("microweb-worker")
    else:
        assert async_thread == "microweb-app-loop"


def streamed(kind: str, log: list[str]) -> Any:
    if kind == "sync":

        def sync_chunks() -> Iterator[bytes]:
            for i in range(3):
                log.append(f"chunk {i}")
                yield b"x"

        return sync_chunks()

    async def async_chunks() -> AsyncIterator[bytes]:
        for i in range(3):
            log.append(f"chunk {i}")
            yield b"x"

    return async_chunks()


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_callbacks_run_after_a_streamed_body_ends(
    make_client: MakeClient, colour: str, kind: str
) -> None:
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    def body(request: Request) -> Response:
        request.after_response(sync_callback, "s")
        request.after_response(async_callback, "a")
        return Response.stream(streamed(kind, log))

    add_handler(app, colour, body)
    with make_client(app) as client:
        assert client.get("/").content == b"xxx"
    assert threads(log) == ["chunk 0", "chunk 1", "chunk 2", "sync s", "async a"]


@pytest.mark.parametrize("method,status", [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_callbacks_run_for_responses_without_a_body(
    make_client: MakeClient, colour: str, method: str, status: int
) -> None:
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    def body(request: Request) -> Response:
        request.after_response(sync_callback, "s")
        request.after_response(async_callback, "a")
        return Response("text", status)

    add_handler(app, colour, body)
    with make_client(app) as client:
        assert client.request(method, "/").status_code == status
    assert threads(log) == ["sync s", "async a"]


def test_callbacks_run_after_an_error_response(make_client: MakeClient, colour: str) -> None:
    log: list[str] = []
    sync_callback, _ = recorder(log)
    app = App()

    def body(request: Request) -> str:
        request.after_response(sync_callback, "cleanup")
        raise HTTPError(409, "taken")

    add_handler(app, colour, body)
    with make_client(app) as client:
        assert client.get("/").status_code == 409
    assert threads(log) == ["sync cleanup"]


def test_a_failing_callback_is_logged_and_changes_nothing(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    def broken() -> None:
        raise RuntimeError("mail server down")

    async def abroken() -> None:
        raise RuntimeError("queue down")

    def body(request: Request) -> str:
        request.after_response(broken)
        request.after_response(sync_callback, "s")
        request.after_response(abroken)
        request.after_response(async_callback, "a")
        return "sent"

    add_handler(app, colour, body)
    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        response = client.get("/")
    assert (response.status_code, response.text) == (200, "sent")
    assert threads(log) == ["sync s", "async a"]
    failures = [r for r in caplog.records if "after-response callback" in r.getMessage()]
    assert [str(r.exc_info[1]) for r in failures if r.exc_info] == [
        "mail server down",
        "queue down",
    ]
    # NOTE: once each, naming the request: Waitress's threads run several requests' callbacks.
    assert [r.getMessage().rpartition("<locals>.")[2] for r in failures] == [
        "broken of GET / failed",
        "abroken of GET / failed",
    ]


def test_a_coroutine_or_another_non_callable_is_refused_where_it_is_added(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: request.after_response(notify("x")) was taken, then failed after the response
    # ("'coroutine' object is not callable" in the log, and a "never awaited" warning).
    log: list[str] = []
    app = App()

    async def notify(what: str) -> None:
        log.append(f"notified {what}")

    def body(request: Request) -> list[str]:
        refused = []
        for wrong in (notify("order 1"), None):
            with pytest.raises(TypeError) as error:
                request.after_response(wrong)
            refused.append(str(error.value))
        return refused

    add_handler(app, colour, body)
    with make_client(app) as client:
        response = client.get("/")
    assert response.status_code == 200
    coroutine, none = response.json()
    assert "request.after_response(" in coroutine
    assert ".notify, ...), not request.after_response(" in coroutine
    assert none == "after_response() takes a function to call, not NoneType"
    assert log == []


class Mailer:
    def send(self, to: str, subject: str = "") -> None:
        raise AssertionError("never called")


def test_arguments_that_do_not_fit_are_refused_where_they_are_added(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: they were taken, and failed only after the response, as a log line (builder143).
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    def body(request: Request) -> list[str]:
        refused = []
        for fn, args, kwargs in (
            (sync_callback, (), {}),
            (async_callback, ("a", "b"), {}),
            (sync_callback, ("a",), {"tag": "b"}),
            (async_callback, ("a",), {"sufix": "!"}),
            (Mailer().send, ("to", "subject", "body"), {}),
            (functools.partial(sync_callback, "a"), ("b",), {}),
        ):
            with pytest.raises(TypeError, match=r"^request\.after_response\(\): ") as error:
                request.after_response(fn, *args, **kwargs)
            refused.append(str(error.value).split(": ", 1)[1])
        return refused

    add_handler(app, colour, body)
    with make_client(app) as client:
        response = client.get("/")
    callback = "recorder.<locals>.{}_callback(tag, *, suffix='')"
    assert response.json() == [
        f"the arguments do not fit {callback.format('sync')}: missing a required argument: 'tag'",
        f"the arguments do not fit {callback.format('async')}: too many positional arguments",
        f"the arguments do not fit {callback.format('sync')}: multiple values for argument 'tag'",
        f"the arguments do not fit {callback.format('async')}: got an unexpected keyword "
        "argument 'sufix'",
        "the arguments do not fit Mailer.send(to, subject=''): too many positional arguments",
        "the arguments do not fit partial(*, suffix=''): too many positional arguments",
    ]
    assert log == []


def test_a_callback_that_does_not_fit_is_a_500_at_the_handlers_line(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    log: list[str] = []
    sync_callback, _ = recorder(log)
    app = App(debug=True)

    def body(request: Request) -> str:
        request.after_response(sync_callback, "a", "b")
        return "never"

    add_handler(app, colour, body)
    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        response = client.get("/")
    assert response.status_code == 500
    assert 'request.after_response(sync_callback, "a", "b")' in response.text
    assert "too many positional arguments" in response.text
    assert [record.getMessage() for record in caplog.records] == ["unhandled error in GET /"]
    assert log == []


def test_callbacks_whose_signature_cannot_be_read_are_taken(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: dict.update has no signature inspect can read; a class's is its __init__'s.
    seen: dict[str, int] = {}
    app = App()

    def body(request: Request) -> str:
        request.after_response(seen.update, {"update": 1})
        request.after_response(functools.partial(seen.__setitem__, "partial"), 2)
        return "ok"

    add_handler(app, colour, body)
    with make_client(app) as client:
        assert client.get("/").text == "ok"
    assert seen == {"update": 1, "partial": 2}


def test_a_def_callback_that_returns_a_coroutine_is_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the coroutine of a lambda around an async call was dropped with nothing but a
    # "never awaited" warning: the work was lost silently.
    log: list[str] = []
    app = App()

    async def notify(what: str) -> None:
        log.append(f"notified {what}")

    @app.get("/")
    def handler(request: Request) -> str:
        request.after_response(lambda: notify("order 1"))
        request.after_response(log.append, "next")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        assert client.get("/").text == "ok"
    assert log == ["next"]
    failures = [r for r in caplog.records if "after-response callback" in r.getMessage()]
    assert len(failures) == 1
    assert failures[0].exc_info is not None
    assert "returned a coroutine, which nobody awaits" in str(failures[0].exc_info[1])


def test_a_generator_function_as_a_callback_is_logged(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: called, a generator function makes a generator and runs none of its code: the
    # work was lost without a word, under both interfaces, from either kind.
    log: list[str] = []
    app = App()

    def audit(what: str) -> Iterator[None]:
        log.append(f"audit {what}")
        yield

    async def notify(what: str) -> AsyncIterator[None]:
        log.append(f"notify {what}")
        yield

    @app.get("/")
    def handler(request: Request) -> str:
        request.after_response(audit, "a")
        request.after_response(functools.partial(notify, "b"))
        request.after_response(log.append, "next")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        assert client.get("/").text == "ok"
    assert log == ["next"]
    failures = [r for r in caplog.records if "after-response callback" in r.getMessage()]
    assert len(failures) == 2
    assert [str(r.exc_info[1]).split(",")[0] for r in failures if r.exc_info] == [
        "it returned a generator",
        "it returned an async generator",
    ]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("ending", [GeneratorExit, KeyboardInterrupt, SystemExit])
def test_a_callback_that_raises_a_base_exception_lets_the_rest_run_first(
    make_client: MakeClient,
    colour: str,
    kind: str,
    ending: type[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the callbacks after it never ran (a lock or a file they would release stayed
    # held), though the servers log such an error and serve on: they run, then it goes on to
    # the server as a handler's does. A GeneratorExit that app code raises is one of these.
    log: list[str] = []
    sync_callback, async_callback = recorder(log)
    app = App()

    def ends() -> None:
        raise ending("from the callback")

    async def aends() -> None:
        await asyncio.sleep(0)
        raise ending("from the callback")

    def body(request: Request) -> str:
        request.after_response(sync_callback, "before")
        request.after_response(ends if kind == "sync" else aends)
        request.after_response(sync_callback, "s")
        request.after_response(ends if kind == "sync" else aends)
        request.after_response(async_callback, "a")
        return "sent"

    add_handler(app, colour, body)
    add_handler(app, colour, lambda request: "fine", "/fine")
    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        with pytest.raises(ending, match="from the callback") as raised:
            client.get("/")
        assert client.get("/fine").text == "fine"
    assert threads(log) == ["sync before", "sync s", "async a"]
    # NOTE: the first of them, as it was raised, and not wrapped or chained to the second.
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    assert not [r for r in caplog.records if "after-response callback" in r.getMessage()]


async def _raises_at_once() -> None:
    raise GeneratorExit("from the callback")


async def _raises_in_a_helper() -> None:
    async def helper() -> None:
        await asyncio.sleep(0)
        raise GeneratorExit("from the callback")

    await helper()


@pytest.mark.parametrize("callback", [_raises_at_once, _raises_in_a_helper])
def test_a_callbacks_generator_exit_from_any_depth_is_its_own(
    make_client: MakeClient, callback: Callable[[], Any]
) -> None:
    # NOTE: the carrier tells app code's from its own closing by the frames below the await:
    # one raised before the callback's first await, or in a coroutine it awaits, is app
    # code's too (review307).
    log: list[str] = []
    app = App()

    @app.get("/")
    def index(request: Request) -> str:
        request.after_response(callback)
        request.after_response(log.append, "after")
        return "sent"

    with make_client(app) as client, pytest.raises(GeneratorExit, match="from the callback"):
        client.get("/")
    assert log == ["after"]


async def _awaits_gather(fails: Callable[[], Any]) -> None:
    await asyncio.gather(fails())


async def _awaits_a_task(fails: Callable[[], Any]) -> None:
    await asyncio.ensure_future(fails())


async def _awaits_a_task_in_a_helper(fails: Callable[[], Any]) -> None:
    async def helper() -> None:
        await asyncio.ensure_future(fails())

    await helper()


@pytest.mark.parametrize("awaits", [_awaits_gather, _awaits_a_task, _awaits_a_task_in_a_helper])
def test_a_generator_exit_of_a_task_a_callback_awaited_lets_the_rest_run(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, awaits: Callable[..., Any]
) -> None:
    # NOTE: asyncio throws the task's GeneratorExit into the task that awaits it, and a throw
    # of GeneratorExit closes every coroutine that task awaits: the callbacks after it never
    # ran, under both interfaces (review307). Each async def callback has a task of its own
    # now, which takes the throw (review319).
    log: list[str] = []
    app = App()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise GeneratorExit("from the task")

    @app.get("/")
    def index(request: Request) -> str:
        request.after_response(awaits, fails)
        request.after_response(log.append, "after")
        return "sent"

    app.get("/fine")(lambda request: "fine")
    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        with pytest.raises(GeneratorExit, match="from the task"):
            client.get("/")
        assert client.get("/fine").text == "fine"
    assert log == ["after"]
    assert not [r for r in caplog.records if r.name.startswith("microweb")]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_callbacks_system_exit_past_a_streams_error_is_not_shown_as_during_it(
    make_client: MakeClient, kind: str
) -> None:
    app = App()

    def chunks() -> Iterator[bytes]:
        yield b"a"
        raise LookupError("gone")

    def ends() -> None:
        sys.exit("from the callback")

    @app.get("/")
    def stream(request: Request) -> Response:
        request.after_response(in_colour(kind, ends))
        return Response.stream(chunks())

    with pytest.raises(SystemExit) as raised:
        make_client(app).get("/")
    shown = "".join(traceback.format_exception(raised.value))
    assert "from the callback" in shown and "LookupError" not in shown


def test_a_callbacks_coroutine_closed_unfinished_is_closed_quietly() -> None:
    # NOTE: the GeneratorExit of a close is no callback's own: it goes on, and close() ends.
    from microweb._effects import _await_carried

    @types.coroutine
    def pause() -> Iterator[None]:
        yield

    finished: list[str] = []

    async def callback() -> None:
        try:
            await pause()
        finally:
            finished.append("finally")

    awaiting = _await_carried(callback())
    awaiting.send(None)
    awaiting.close()
    assert finished == ["finally"]


def test_a_callbacks_task_is_cancelled_when_what_awaits_it_is_closed() -> None:
    # NOTE: an async def callback runs in a task of its own (Apart, review319): closed
    # unfinished, what awaits it cancels it, and the callback's finally runs.
    from microweb._concurrency import apart
    from microweb._effects import Apart

    finished: list[str] = []

    async def callback(started: asyncio.Event) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            finished.append("finally")

    async def close_it() -> None:
        started = asyncio.Event()
        awaiting = apart(Apart(callback(started)))
        awaiting.send(None)
        await started.wait()
        awaiting.close()
        for _ in range(3):
            await asyncio.sleep(0)

    asyncio.run(close_it())
    assert finished == ["finally"]


def test_a_callback_may_add_another(make_client: MakeClient) -> None:
    log: list[str] = []
    app = App()

    @app.get("/")
    def handler(request: Request) -> str:
        def first() -> None:
            log.append("first")
            request.after_response(log.append, "second")

        request.after_response(first)
        return "ok"

    with make_client(app) as client:
        client.get("/")
    assert log == ["first", "second"]


@pytest.mark.parametrize("own", [False, True], ids=["none-before", "one-before"])
@pytest.mark.parametrize("kind", ["plain", "response", "stream", "no body", "upload"])
def test_a_callback_added_once_the_request_ended_is_refused(
    make_client: MakeClient, colour: str, kind: str, own: bool
) -> None:
    # NOTE: one added to a request that had ended (kept by a background job, say) was taken,
    # and never ran, with no word: appended to a list nobody read again once its callbacks
    # had run (review160), or made the request's first, which nobody looked for.
    log: list[str] = []
    kept: list[Request] = []
    app = App()

    def begin(request: Request) -> None:
        kept.append(request)
        if own:
            request.after_response(log.append, "ran")

    def body(request: Request) -> Any:
        begin(request)
        if kind == "plain":
            return "ok"
        if kind == "response":
            return Response("ok", status=201)
        if kind == "stream":
            return Response.stream(iter(["o", "k"]))
        return Response(status=204)

    async def aupload(request: Request) -> str:
        begin(request)
        return str((await request.aform())["file"].size)

    def upload(request: Request) -> str:
        begin(request)
        return str(request.form()["file"].size)

    app.get("/")(in_colour(colour, body))
    app.post("/")(aupload if colour == "async" else upload)
    with make_client(app) as client:
        if kind == "upload":
            response = client.post("/", files={"file": ("a.bin", b"x" * 10)})
        else:
            response = client.get("/")
        assert response.status_code < 300
    assert log == (["ran"] if own else [])
    with pytest.raises(RuntimeError, match=r"after the request ended"):
        kept[0].after_response(log.append, "late")
    assert log == (["ran"] if own else [])


def test_a_callback_added_once_a_websocket_session_ended_is_refused() -> None:
    kept: list[WebSocket] = []
    app = App()

    @app.websocket("/ws")
    async def chat(ws: WebSocket) -> None:
        kept.append(ws)
        await ws.accept()
        await ws.receive_text()

    with TestClient(app, interface="asgi") as client, client.websocket_connect("/ws") as session:
        session.send_text("bye")
    with pytest.raises(RuntimeError, match=r"after the request ended"):
        kept[0].request.after_response(print, "late")


def test_without_callbacks_a_wsgi_body_is_a_plain_list() -> None:
    app = App()

    @app.get("/")
    def handler(request: Request) -> str:
        return "hello"

    wsgi = app.as_wsgi()
    try:
        assert type(wsgi(wsgi_environ(), start_response)) is list  # NOTE: nothing to close
    finally:
        wsgi.close()


# -- a plugin's per-request resource that lives as long as a streamed body --------------------


class Connection:
    """Stands in for a database connection; reads fail once it is closed."""

    def __init__(self, opened: list[Connection]) -> None:
        self.closed = False
        opened.append(self)

    def read(self, n: int) -> str:
        if self.closed:
            raise RuntimeError("read on a closed connection")
        return f"row {n}"

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class PerRequestConnection:
    """Opens a connection per request in ``request.state.conn``, closed after the response."""

    name = "conn"

    def __init__(self) -> None:
        self.opened: list[Connection] = []

    def apply(self, handler: Handler, route: Any) -> Handler:
        if route.is_async:

            @functools.wraps(handler)
            async def async_wrapper(request: Request, **params: Any) -> Any:
                request.state.conn = conn = Connection(self.opened)
                request.after_response(conn.aclose)
                return await handler(request, **params)

            return async_wrapper

        @functools.wraps(handler)
        def wrapper(request: Request, **params: Any) -> Any:
            request.state.conn = conn = Connection(self.opened)
            request.after_response(conn.close)
            return handler(request, **params)

        return wrapper


def sse_app(colour: str) -> tuple[App, PerRequestConnection]:
    app = App()
    plugin = app.install(PerRequestConnection())

    def body(request: Request) -> Response:
        conn = request.state.conn

        async def events() -> AsyncIterator[ServerSentEvent]:
            for n in range(3):
                await asyncio.sleep(0)
                yield ServerSentEvent(conn.read(n))

        return Response.sse(events())

    add_handler(app, colour, body, "/events")
    return app, plugin


def test_a_plugin_connection_lives_until_a_streamed_sse_body_ends(
    make_client: MakeClient, colour: str
) -> None:
    app, plugin = sse_app(colour)
    with make_client(app) as client:
        response = client.get("/events")
        assert response.status_code == 200
        assert response.text == "data: row 0\n\ndata: row 1\n\ndata: row 2\n\n"
    [conn] = plugin.opened
    assert conn.closed


# -- a client that leaves mid-stream: the callbacks still run ---------------------------------


def endless(kind: str) -> Any:
    if kind == "sync":

        def sync_ticks() -> Iterator[bytes]:
            while True:
                yield b"tick\n"

        return sync_ticks()

    async def async_ticks() -> AsyncIterator[bytes]:
        while True:
            await asyncio.sleep(0.001)
            yield b"tick\n"

    return async_ticks()


def leaving_app(colour: str, kind: str, log: list[str]) -> App:
    sync_callback, async_callback = recorder(log)
    app = App()

    def body(request: Request) -> Response:
        request.after_response(sync_callback, "s")
        request.after_response(async_callback, "a")
        return Response.stream(endless(kind))

    add_handler(app, colour, body)
    return app


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_asgi_client_leaving_mid_stream_still_runs_the_callbacks(colour: str, kind: str) -> None:
    log: list[str] = []
    asgi = leaving_app(colour, kind, log).as_asgi()
    leave_after_sends(asgi)
    assert threads(log) == ["sync s", "async a"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_wsgi_client_leaving_mid_stream_still_runs_the_callbacks(colour: str, kind: str) -> None:
    log: list[str] = []
    wsgi = leaving_app(colour, kind, log).as_wsgi()
    try:
        body = wsgi(wsgi_environ(), start_response)
        chunks = iter(body)
        assert next(chunks) == b"tick\n"
        assert log == []
        body.close()  # type: ignore[attr-defined]  # NOTE: what a server does when the client left
    finally:
        wsgi.close()
    assert threads(log) == ["sync s", "async a"]


class _Audit:
    """A callback that is a class: calling it builds an instance, whatever ``__call__`` is."""

    def __init__(self, log: list[str], tag: str) -> None:
        log.append(f"made {tag}")

    async def __call__(self) -> None:
        raise AssertionError("never called: after_response calls the class itself")


def test_a_class_with_an_async_call_is_a_sync_callback(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: its async __call__ belongs to its instances; calling the class returns an instance,
    # which was taken for an awaitable (a TypeError, logged) when the class counted as async.
    log: list[str] = []
    app = App()

    @app.get("/")
    def handler(request: Request) -> str:
        request.after_response(_Audit, log, "audit")
        return "ok"

    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        assert client.get("/").text == "ok"
    assert log == ["made audit"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


class _Notifier:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def __call__(self, what: str) -> None:
        await asyncio.sleep(0)
        self.log.append(f"notified {what}")


def test_a_partial_of_an_object_with_an_async_call_is_awaited(
    make_client: MakeClient, colour: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: inspect sees through a partial only to a function: partial(_Notifier(log), ...)
    # counted as def, and its coroutine was logged as never awaited instead of run.
    log: list[str] = []
    app = App()

    def body(request: Request) -> str:
        request.after_response(functools.partial(_Notifier(log), "order 1"))
        request.after_response(functools.partial(functools.partial(_Notifier(log)), "order 2"))
        return "ok"

    add_handler(app, colour, body)
    with caplog.at_level(logging.ERROR, logger="microweb"), make_client(app) as client:
        assert client.get("/").text == "ok"
    assert log == ["notified order 1", "notified order 2"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("read_first", [False, True], ids=["body unread", "body read"])
def test_a_callback_asking_if_the_client_left_gets_one_answer(
    make_client: MakeClient, interface: str, colour: str, read_first: bool
) -> None:
    # NOTE: docs/streaming.md: the request has ended once its response is sent (Uvicorn's
    # receive() says http.disconnect then); under ASGI the answer was True only when the
    # handler had read the body, and under WSGI it was False.
    answers: list[bool] = []
    app = App()

    def ask(request: Request) -> None:
        answers.append(request.is_disconnected())

    async def aask(request: Request) -> None:
        answers.append(await request.ais_disconnected())

    def body(request: Request) -> str:
        if read_first:
            request.read()
        request.after_response(ask if colour == "sync" else aask, request)
        return "sent"

    app.post("/")(body)
    with make_client(app) as client:
        assert client.post("/", content=b"data").text == "sent"
    assert answers == [True]


def test_a_websocket_handlers_callbacks_run_once_the_connection_has_ended() -> None:
    log: list[str] = []
    app = App()

    @app.websocket("/ws")
    async def chat(ws: WebSocket) -> None:
        ws.request.after_response(log.append, "callback")
        await ws.accept()
        log.append(await ws.receive_text())

    with TestClient(app, interface="asgi") as client:
        with client.websocket_connect("/ws") as session:
            session.send_text("bye")
        assert log == ["bye", "callback"]


@pytest.mark.parametrize("read_first", [False, True], ids=["body unread", "body read"])
def test_a_callback_gets_the_body_the_handler_read_and_no_other(
    make_client: MakeClient, colour: str, read_first: bool
) -> None:
    # NOTE: Uvicorn's receive() says http.disconnect once the response is sent, so the body
    # the handler left unread is gone; a callback that read it got it under WSGI (and from an
    # async def callback under the test client's ASGI), and "the client disconnected" under
    # Uvicorn. Now the same error everywhere; a body read in the handler is there for it.
    seen: list[object] = []
    app = App()

    def read(request: Request) -> None:
        try:
            seen.append(request.read())
        except ClientDisconnect as exc:
            seen.append(str(exc))

    async def aread(request: Request) -> None:
        try:
            seen.append(await request.aread())
        except ClientDisconnect as exc:
            seen.append(str(exc))

    def body(request: Request) -> str:
        if read_first:
            request.read()
        request.after_response(read if colour == "sync" else aread, request)
        return "sent"

    app.post("/")(body)
    with make_client(app) as client:
        assert client.post("/", content=b"data").text == "sent"
    if read_first:
        assert seen == [b"data"]
    else:
        assert len(seen) == 1
        assert str(seen[0]).startswith("the request ended before its body was read (its response")


def test_the_shared_list_of_ended_requests_takes_no_callback() -> None:
    # NOTE: every request that ended with no callbacks shares it: one added there would have
    # run after some other request's response.
    call = (Colored(print, False), (), {})
    for add in (ENDED.append, functools.partial(ENDED.insert, 0), ENDED.extend):
        with pytest.raises(RuntimeError, match="the request has ended"):
            add(call if add is not ENDED.extend else [call])
    assert ENDED == [] and ENDED.ran


def test_a_handler_that_closed_its_request_still_gets_a_replaced_stream_closed(
    make_client: MakeClient,
) -> None:
    # NOTE: the stream a flow replaced is closed from a callbacks list of the request's own,
    # made after the handler's request.close() (the shared one of ended requests takes none,
    # and its refusal was a 500).
    closed: list[str] = []

    class Chunks:
        def __iter__(self) -> Iterator[str]:
            return iter(["unsent"])

        def close(self) -> None:
            closed.append("closed")

    app = App()

    @app.middleware
    def replace(request: Request) -> Any:
        yield
        yield Response.text("replaced")

    @app.get("/")
    def handler(request: Request) -> Response:
        request.close()
        return Response.stream(Chunks())

    with make_client(app) as client:
        for _ in range(2):
            closed.clear()
            assert client.get("/").text == "replaced"
            assert closed == ["closed"]


@pytest.mark.parametrize("adds", ["handler", "flow", "error handler", "stream"])
def test_a_handler_that_closed_its_request_may_still_get_callbacks(
    make_client: MakeClient, colour: str, adds: str
) -> None:
    # NOTE: request.close() releases the uploads; the request is still being handled. It marked
    # the request ended, so a flow's callback after the handler (a plugin's) was refused: a
    # 500, where it ran before (review166).
    log: list[str] = []
    app = App()

    @app.middleware
    def flow(request: Request) -> Any:
        response = yield
        if adds == "flow":
            request.after_response(log.append, "flow")
        return response

    def body(request: Request) -> Any:
        request.close()
        if adds == "handler":
            request.after_response(log.append, "handler")
        if adds == "error handler":
            raise KeyError("x")
        if adds == "stream":

            def chunks() -> Iterator[str]:
                yield "o"
                request.after_response(log.append, "stream")
                yield "k"

            return Response.stream(chunks())
        return "ok"

    def on_key_error(request: Request, exc: KeyError) -> str:
        request.after_response(log.append, "error handler")
        return "ok"

    app.get("/")(in_colour(colour, body))
    app.error_handler(KeyError)(in_colour(colour, on_key_error))
    with make_client(app) as client:
        for _ in range(2):
            log.clear()
            response = client.get("/")
            assert (response.status_code, response.text) == (200, "ok")
            assert log == [adds]


_TAG: contextvars.ContextVar[str] = contextvars.ContextVar("_TAG", default="unset")


def test_what_an_async_callback_sets_of_the_context_the_next_one_sees(
    make_client: MakeClient,
) -> None:
    # NOTE: each async def callback runs in a task of its own (review319), in a copy of the
    # request's context; what it set is set in the request's afterwards, as before.
    seen: list[str] = []
    app = App()

    async def sets() -> None:
        _TAG.set("set by the callback")

    @app.get("/")
    def index(request: Request) -> str:
        request.after_response(sets)
        request.after_response(lambda: seen.append(_TAG.get()))
        return "sent"

    with make_client(app) as client:
        assert client.get("/").text == "sent"
    assert seen == ["set by the callback"]


@pytest.mark.parametrize("fails", ["def", "async def"])
def test_what_a_failing_callback_sets_of_the_context_the_next_one_sees(
    make_client: MakeClient, fails: str
) -> None:
    # NOTE: what a callback sets is set for the next one also where it raises, whatever its
    # colour: the task of an async def one (review319) carried it back only where it returned.
    tag: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="unset")
    seen: list[str] = []
    app = App()

    def sets_then_fails() -> None:
        tag.set("set by the failing callback")
        raise ValueError("boom")

    async def sets_then_fails_async() -> None:
        sets_then_fails()

    @app.get("/")
    def index(request: Request) -> str:
        request.after_response(sets_then_fails if fails == "def" else sets_then_fails_async)
        request.after_response(lambda: seen.append(tag.get()))
        return "sent"

    with make_client(app) as client:
        assert client.get("/").text == "sent"
    assert seen == ["set by the failing callback"]
