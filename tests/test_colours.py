"""Handler colours: where def and async def handlers run under each interface."""

from __future__ import annotations

import asyncio
import functools
import gc
import inspect
import json
import logging
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest
from conftest import MakeClient, loop_runs_here
from drive import asgi_get, wsgi_get

from microweb import App, Request, Response
from microweb._routing import is_async_callable
from microweb.testing import TestClient


def test_both_colours_under_each_interface(make_client: MakeClient, interface: str) -> None:
    app = App()

    @app.get("/def/{n:int}")
    def sync_handler(request: Request, n: int) -> dict[str, Any]:
        return {"colour": "def", "n": n, "interface": request.interface}

    @app.get("/async/{n:int}")
    async def async_handler(request: Request, n: int) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"colour": "async", "n": n, "interface": request.interface}

    client = make_client(app)
    assert client.get("/def/1").json() == {"colour": "def", "n": 1, "interface": interface}
    assert client.get("/async/2").json() == {"colour": "async", "n": 2, "interface": interface}


def _said_async(make: Callable[[], Any]) -> Callable[..., Any]:
    """A ``def`` handler, giving ``make()``, that says it is ``async def``.

    What ``inspect.markcoroutinefunction`` makes of a ``def`` (Python 3.12+); before 3.12 an
    object whose ``__call__`` attribute is an ``async def`` stands in: registration sees that
    attribute, a call runs the class's ``def __call__``.
    """

    def handler(request: Request) -> Any:
        return make()

    mark = getattr(inspect, "markcoroutinefunction", None)
    if mark is not None:
        marked: Callable[..., Any] = mark(handler)
        return marked

    class SaidAsync:
        def __init__(self) -> None:
            self.__dict__["__call__"] = self.said

        async def said(self, request: Request) -> Any:
            raise AssertionError("never called")

        def __call__(self, request: Request) -> Any:
            return make()

    return SaidAsync()


def _steps() -> Iterator[str]:
    yield "a generator is no awaitable"


SAID_ASYNC = {
    "tuple": lambda: (b"ok", "text/plain; charset=utf-8"),
    "Response": lambda: Response("ok"),
    "generator": _steps,
    "str": lambda: "ok",
}


@pytest.mark.parametrize("kind", SAID_ASYNC)
def test_a_handler_said_async_that_gives_no_awaitable_is_a_500(
    make_client: MakeClient, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a tuple, Response or generator is no awaitable: it must not pass for the driver's
    # own plain answer, response or effect generator.
    app = App()
    handler = _said_async(SAID_ASYNC[kind])
    assert is_async_callable(handler)
    app.get("/")(handler)
    with caplog.at_level("ERROR", logger="microweb"):
        response = make_client(app).get("/")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"


@pytest.mark.parametrize("kind", SAID_ASYNC)
def test_a_handler_said_async_that_gives_no_awaitable_inside_flows_is_a_500(
    make_client: MakeClient, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: inside flows its value is awaited by the core's carrier (own_exit_carried); the
    # error thrown back in at its yield must stay the one that says why (review336).
    app = App()
    seen: list[str] = []

    @app.middleware
    def flow(request: Request) -> Iterator[None]:
        try:
            yield
        except Exception as exc:
            seen.append(type(exc).__name__)
            raise

    app.get("/")(_said_async(SAID_ASYNC[kind]))
    with caplog.at_level("ERROR", logger="microweb"):
        response = make_client(app).get("/")
    assert response.status_code == 500
    assert seen == ["TypeError"]


async def _async_steps(request: Request) -> Iterator[str]:
    return _steps()


async def _async_tuple(request: Request) -> tuple[str, str]:
    return ("ok", "text/plain; charset=utf-8")


async def _async_response(request: Request) -> Response:
    return Response("made", status=201)


class _AsyncCall:
    async def __call__(self, request: Request) -> tuple[str, str]:
        return ("ok", "text/plain; charset=utf-8")


class _AsyncResponder:
    async def __call__(self, request: Request, status: int) -> Response:
        return Response("made", status=status)


@pytest.mark.parametrize(
    ("handler", "status", "text"),
    [
        (_async_steps, 500, "Internal Server Error"),
        (_async_tuple, 500, "Internal Server Error"),
        (functools.partial(_async_tuple), 500, "Internal Server Error"),
        (_AsyncCall(), 500, "Internal Server Error"),
        (_async_response, 201, "made"),
        (functools.partial(_async_response), 201, "made"),
        # NOTE: inspect sees through a partial only to a function, not to an async __call__.
        (functools.partial(_AsyncResponder(), status=201), 201, "made"),
    ],
)
def test_what_an_async_handler_returns_is_its_result_whatever_its_type(
    make_client: MakeClient,
    handler: Callable[..., Any],
    status: int,
    text: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: the awaited result, a generator or tuple included, is no effect generator or plain
    # answer of the framework: it goes through to_response like any other result.
    app = App()
    app.get("/")(handler)
    with caplog.at_level("ERROR", logger="microweb"):
        response = make_client(app).get("/")
    assert (response.status_code, response.text) == (status, text)


# -- ASGI --------------------------------------------------------------------------------------


def test_asgi_blocking_def_handler_does_not_block_the_loop() -> None:
    # NOTE: the def handler blocks until the async ones have answered, instead of sleeping
    # 0.5 s with the async ones timed against 0.35 s: a busy machine could pass that margin
    # (review386). A def handler that blocked the loop would wait out its 10 s.
    app = App()
    fast_done = threading.Event()

    @app.get("/sleep")
    def sleeper(request: Request) -> str:
        return "slept" if fast_done.wait(10) else "the loop was blocked"

    @app.get("/fast")
    async def fast(request: Request) -> str:
        await asyncio.sleep(0.01)
        return "fast"

    async def scenario() -> tuple[bytes, list[bytes]]:
        asgi = app.as_asgi()
        slow_task = asyncio.ensure_future(asgi_get(asgi, "/sleep"))
        await asyncio.sleep(0.05)  # the sleeper is now (most likely) waiting in its thread
        fast_answers = await asyncio.gather(*(asgi_get(asgi, "/fast") for _ in range(5)))
        fast_done.set()
        status, slow = await slow_task
        assert status == 200
        return slow, [body for status, body in fast_answers if status == 200]

    slow, fast_bodies = asyncio.run(scenario())
    assert fast_bodies == [b"fast"] * 5
    assert slow == b"slept"


def test_asgi_offload_false_runs_on_the_loop_thread(make_client: MakeClient) -> None:
    app = App()
    seen: dict[str, tuple[int, bool]] = {}

    @app.get("/async")
    async def on_loop(request: Request) -> str:
        seen["async"] = (threading.get_ident(), loop_runs_here())
        return "ok"

    @app.get("/inline", offload=False)
    def inline(request: Request) -> str:
        seen["inline"] = (threading.get_ident(), loop_runs_here())
        return "ok"

    @app.get("/pooled")
    def pooled(request: Request) -> str:
        seen["pooled"] = (threading.get_ident(), loop_runs_here())
        return "ok"

    client = TestClient(app, interface="asgi")
    try:
        for path in ("/async", "/inline", "/pooled"):
            assert client.get(path).status_code == 200
    finally:
        client.close()
    loop_thread, loop_running = seen["async"]
    assert loop_running
    assert seen["inline"] == (loop_thread, True)
    assert seen["pooled"][0] != loop_thread
    assert seen["pooled"][1] is False


def test_asgi_def_handlers_run_concurrently_in_the_pool() -> None:
    app = App(max_threads=4)
    # NOTE: the four handlers meet inside the pool, instead of four 0.3 s sleeps timed against
    # 0.9 s, which a busy machine could pass (review386): one after another, they never meet.
    meeting = threading.Barrier(4, timeout=10)

    @app.get("/sleep")
    def sleeper(request: Request) -> str:
        meeting.wait()
        return "slept"

    async def scenario() -> list[tuple[int, bytes]]:
        asgi = app.as_asgi()
        return list(await asyncio.gather(*(asgi_get(asgi, "/sleep") for _ in range(4))))

    assert asyncio.run(scenario()) == [(200, b"slept")] * 4


# -- WSGI --------------------------------------------------------------------------------------


def test_wsgi_def_handler_runs_on_calling_thread() -> None:
    app = App()
    seen: list[tuple[int, bool]] = []

    @app.get("/")
    def index(request: Request) -> str:
        seen.append((threading.get_ident(), loop_runs_here()))
        return "ok"

    @app.get("/inline", offload=False)
    def inline(request: Request) -> str:
        seen.append((threading.get_ident(), loop_runs_here()))
        return "ok"

    wsgi = app.as_wsgi()
    try:
        assert wsgi_get(wsgi, "/") == ("200 OK", b"ok")
        assert wsgi_get(wsgi, "/inline") == ("200 OK", b"ok")
        callers: list[int] = []

        def worker() -> None:
            callers.append(threading.get_ident())
            assert wsgi_get(wsgi, "/") == ("200 OK", b"ok")

        thread = threading.Thread(target=worker)
        thread.start()
        thread.join()
    finally:
        wsgi.close()
    main = threading.get_ident()
    assert seen == [(main, False), (main, False), (callers[0], False)]


def test_wsgi_async_handlers_share_one_loop_across_threads() -> None:
    app = App()
    threads = 8
    per_thread = 3

    @app.on_startup
    async def start() -> None:
        app.state.lock = asyncio.Lock()
        app.state.queue = asyncio.Queue()
        app.state.loop = asyncio.get_running_loop()
        app.state.inside = 0
        app.state.max_inside = 0

    @app.get("/work")
    async def work(request: Request) -> dict[str, Any]:
        state = request.app.state
        state.inside += 1
        state.max_inside = max(state.max_inside, state.inside)
        try:
            await state.queue.put(threading.get_ident())
            async with state.lock:
                await asyncio.sleep(0.005)  # hold the lock so the others contend for it
                item = await state.queue.get()
        finally:
            state.inside -= 1
        return {"loop": id(asyncio.get_running_loop()), "item": item}

    wsgi = app.as_wsgi()
    barrier = threading.Barrier(threads)
    results: list[tuple[str, bytes]] = []
    errors: list[BaseException] = []
    guard = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait(timeout=5)
            for _ in range(per_thread):
                answer = wsgi_get(wsgi, "/work")
                with guard:
                    results.append(answer)
        except BaseException as exc:  # collected and re-raised in the test thread
            with guard:
                errors.append(exc)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    try:
        for thread in pool:
            thread.start()
        for thread in pool:
            thread.join(timeout=30)
        assert not errors, errors
        assert len(results) == threads * per_thread
        assert {status for status, _ in results} == {"200 OK"}, results
        loop_ids = {json.loads(body)["loop"] for _, body in results}
        assert loop_ids == {id(app.state.loop)}
        assert app.state.max_inside > 1  # several threads' requests were on the loop at once
        assert app.state.queue.empty()
        # A later request from this thread still runs on the same loop.
        status, body = wsgi_get(wsgi, "/work")
        assert status == "200 OK"
        assert json.loads(body)["loop"] == id(app.state.loop)
    finally:
        wsgi.close()


def test_wsgi_no_new_loop_per_request() -> None:
    app = App()
    loops: list[asyncio.AbstractEventLoop] = []

    @app.get("/")
    async def index(request: Request) -> str:
        loops.append(asyncio.get_running_loop())
        return "ok"

    wsgi = app.as_wsgi()
    try:
        for _ in range(3):
            assert wsgi_get(wsgi, "/") == ("200 OK", b"ok")
        thread = threading.Thread(target=wsgi_get, args=(wsgi, "/"))
        thread.start()
        thread.join()
    finally:
        wsgi.close()
    assert len(loops) == 4
    assert all(loop is loops[0] for loop in loops)


def _def_wrapper(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator whose wrapper is ``def`` whatever the handler's colour (a ported hook)."""

    @functools.wraps(handler)
    def checked(request: Request, **params: Any) -> Any:
        return handler(request, **params)

    return checked


def test_a_def_wrapper_of_an_async_handler_is_refused_at_registration() -> None:
    app = App()

    async def create(request: Request) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="make the wrapper async def"):
        app.post("/tasks")(_def_wrapper(create))
    assert [route.template for route in app.routes] == []


def test_a_def_wrapper_of_a_def_handler_is_served(make_client: MakeClient) -> None:
    app = App()

    def show(request: Request, task_id: int) -> dict[str, Any]:
        return {"id": task_id}

    app.get("/tasks/{task_id:int}")(_def_wrapper(show))
    assert make_client(app).get("/tasks/3").json() == {"id": 3}


def _async_wrapper(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A decorator whose wrapper is ``async def``, for ``async def`` handlers."""

    @functools.wraps(handler)
    async def checked(request: Request, *args: Any, **params: Any) -> Any:
        return await handler(request, *args, **params)

    return checked


def test_an_async_wrapper_of_an_async_handler_is_served(make_client: MakeClient) -> None:
    # NOTE: it wraps an async def function too: it was refused as a def wrapper would be.
    app = App()

    @app.error_handler(404)
    @_async_wrapper
    async def missing(request: Request, exc: Exception) -> tuple[str, int]:
        return "no task", 404

    @app.get("/tasks/{task_id:int}")
    @_async_wrapper
    async def show(request: Request, task_id: int) -> dict[str, Any]:
        return {"id": task_id}

    client = make_client(app)
    assert client.get("/tasks/3").json() == {"id": 3}
    assert client.get("/nothing").text == "no task"


class _Resource:
    """A Falcon-style resource whose responder a decorator wrapped in a def function."""

    @_def_wrapper
    async def on_get(self, request: Request) -> dict[str, Any]:
        return {}


def test_a_def_wrapper_of_an_async_method_is_refused_at_registration() -> None:
    # NOTE: a bound method is no function: the wrapper in it was served, a 500 on each request.
    app = App()
    with pytest.raises(TypeError, match="make the wrapper async def"):
        app.get("/tasks")(_Resource().on_get)
    assert app.routes == []


async def _answer(request: Request, exc: Exception) -> str:
    return "answered"


async def _hook() -> None:
    return None


@pytest.mark.parametrize("where", ["error handler", "startup hook", "shutdown hook"])
def test_a_def_wrapper_of_an_async_function_is_refused_where_it_is_registered(
    where: str,
) -> None:
    # NOTE: an error handler's coroutine was a 500 on each error; a hook's was never awaited,
    # so startup went on without it (a RuntimeWarning at most).
    app = App()
    register = {
        "error handler": lambda: app.error_handler(500)(_def_wrapper(_answer)),
        "startup hook": lambda: app.on_startup(_def_wrapper(_hook)),
        "shutdown hook": lambda: app.on_shutdown(_def_wrapper(_hook)),
    }[where]
    with pytest.raises(TypeError, match=f"{where} .* make the wrapper async def"):
        register()


class _RunsItself:
    """A sync callable that runs an async handler to its end, as asgiref's async_to_sync."""

    def __init__(self, handler: Callable[..., Any]) -> None:
        functools.update_wrapper(self, handler)
        self._handler = handler

    def __call__(self, request: Request, **params: Any) -> Any:
        return asyncio.run(self._handler(request, **params))


def test_a_sync_object_that_runs_an_async_handler_itself_is_served(
    make_client: MakeClient,
) -> None:
    # NOTE: it has __wrapped__ too; only a def function's wrapper is taken for a mistake.
    app = App()

    async def show(request: Request, task_id: int) -> dict[str, Any]:
        return {"id": task_id}

    app.get("/tasks/{task_id:int}")(_RunsItself(show))
    assert make_client(app).get("/tasks/3").json() == {"id": 3}


def test_an_async_staticmethod_is_async(make_client: MakeClient) -> None:
    # NOTE: a staticmethod is callable since Python 3.10, but inspect does not look inside it:
    # its coroutine was taken for a def handler's return value, a 500 on every request.
    app = App()

    class Views:
        @app.get("/async")
        @staticmethod
        async def index(request: Request) -> str:
            await asyncio.sleep(0)
            return "async staticmethod"

        @app.get("/def")
        @staticmethod
        def plain(request: Request) -> str:
            return "def staticmethod"

        @app.error_handler(LookupError)
        @staticmethod
        async def missing(request: Request, exc: LookupError) -> tuple[str, int]:
            return "handled", 404

        @app.get("/missing")
        @staticmethod
        async def raises(request: Request) -> str:
            raise LookupError("nothing")

    client = make_client(app)
    assert client.get("/async").text == "async staticmethod"
    assert client.get("/def").text == "def staticmethod"
    assert (client.get("/missing").status_code, client.get("/missing").text) == (404, "handled")


@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_a_coroutine_from_a_def_handler_is_a_500_that_says_why(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture, recwarn: pytest.WarningsRecorder
) -> None:
    async def real(request: Request) -> str:
        return "never"

    app = App()
    # NOTE: a MagicMock's __call__ is def, whatever it wraps; AsyncMock is the async one.
    app.get("/")(mock.MagicMock(wraps=real))
    with caplog.at_level("ERROR", logger="microweb"):
        response = make_client(app).get("/")
    assert response.status_code == 500
    assert "returned a coroutine: it was called as a def function" in caplog.text
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_partial_of_an_async_staticmethod_is_async(make_client: MakeClient) -> None:
    # NOTE: the staticmethod was looked for before the partials were unwrapped: its coroutine
    # was taken for a def handler's return value, a 500 on every request.
    class Views:
        @staticmethod
        async def greet(request: Request, word: str) -> str:
            await asyncio.sleep(0)
            return f"hello {word}"

    app = App()
    app.get("/")(functools.partial(Views.__dict__["greet"], word="there"))
    assert make_client(app).get("/").text == "hello there"


def test_a_staticmethod_flow_has_its_function_colour(make_client: MakeClient) -> None:
    # NOTE: a flow registered in its class body was refused at registration as no generator
    # function, which it is.
    app = App()

    class Flows:
        @app.middleware
        @staticmethod
        def outer(request: Request) -> Iterator[None]:
            response = yield
            response.headers["x-outer"] = "sync"

        @app.middleware
        @staticmethod
        async def inner(request: Request) -> Any:
            await asyncio.sleep(0)
            response = yield
            response.headers["x-inner"] = "async"

    app.get("/")(lambda request: "ok")
    response = make_client(app).get("/")
    assert (response.text, response.headers["x-outer"], response.headers["x-inner"]) == (
        "ok",
        "sync",
        "async",
    )


def test_a_staticmethod_generator_handler_is_refused_at_registration() -> None:
    app = App()

    def numbers(request: Request) -> Iterator[str]:
        yield "1"

    with pytest.raises(TypeError, match="is a generator function; to stream"):
        app.get("/numbers")(staticmethod(numbers))
    assert [route.template for route in app.routes] == []


def test_a_staticmethod_of_a_def_wrapper_of_an_async_handler_is_refused() -> None:
    app = App()

    async def create(request: Request) -> dict[str, Any]:
        return {}

    with pytest.raises(TypeError, match="make the wrapper async def"):
        app.post("/tasks")(staticmethod(_def_wrapper(create)))
    assert [route.template for route in app.routes] == []


@pytest.mark.parametrize("flows", [False, True], ids=["no flows", "in flows"])
@pytest.mark.usefixtures("young_heap")  # NOTE: its gc.collect() is of what it makes.
def test_an_async_handler_whose_app_loop_closed_under_it_is_not_left_never_awaited(
    flows: bool,
) -> None:
    # NOTE: WSGI only: the app loop is its. A loop closed under a request (a close() from
    # another thread as it was handed the call) refuses the call: inside flows the handler's
    # coroutine, wrapped (own_exit_carried), was left unawaited, a warning at its collection,
    # where the app loop closed it as it closes one it was given (review336).
    app = App()
    if flows:

        @app.middleware
        def flow(request: Request) -> Iterator[None]:
            yield

    @app.get("/")
    async def home(request: Request) -> str:
        return "home"

    served = app.as_wsgi()
    unraisable: list[Any] = []
    try:
        assert wsgi_get(served, "/") == ("200 OK", b"home")
        running = served.app_loop._loop
        closed = asyncio.new_event_loop()
        closed.close()
        served.app_loop._loop = closed
        hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
        # NOTE: no log record kept (pytest keeps them): the 500's error, held, would hold the
        # coroutine past the collection below.
        logger = logging.getLogger("microweb")
        logger.disabled = True
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                status, _ = wsgi_get(served, "/")
                gc.collect()
        finally:
            sys.unraisablehook = hook
            logger.disabled = False
        assert status.startswith("500")
    finally:
        served.app_loop._loop = running
        served.close()
    assert [str(w.message) for w in caught] == []
    assert [str(u.exc_value) for u in unraisable] == []
