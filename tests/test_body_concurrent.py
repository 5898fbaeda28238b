"""Two reads of one body at the same time (``asyncio.gather``), under both interfaces.

The body comes in several pieces (under ASGI each after a turn of the test's loop; under WSGI
an async read hops to a thread for ``wsgi.input``), so that the first read has to wait for more
of it while the second one starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from conftest import MakeClient
from drive import ShortReads, requests_left_in_cycles, start_response, wsgi_environ, wsgi_post

from microweb import App, ClientDisconnect, HTTPError, Limits, Request
from microweb._asgi_body import ASGIBody
from microweb.testing import TestClient

URLENCODED = {"content-type": "application/x-www-form-urlencoded"}
JSON = {"content-type": "application/json"}
MULTIPART = {"content-type": "multipart/form-data; boundary=b"}
PART = b'--b\r\ncontent-disposition: form-data; name="x"\r\n\r\nhello\r\n--b--\r\n'


async def _apieces(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 4):
        await asyncio.sleep(0)  # NOTE: a turn of the loop, no wait.
        yield body[start : start + 4]


def _pieces(interface: str, body: bytes) -> Any:
    if interface == "asgi":
        return _apieces(body)
    return [body[start : start + 4] for start in range(0, len(body), 4)]


async def _parts(request: Request) -> list[str]:
    return [part.name async for part in request.aiter_parts()]


async def _bytes_length(request: Request) -> int:
    return len(b"".join([chunk async for chunk in request.aiter_bytes()]))


def _app(first: Any, second: Any) -> App:
    app = App(debug=True)

    # NOTE: max_field_size holds for a urlencoded field too (review261): a form field of
    # 300,000 bytes, several reads of the body, was a 413 under the default 64 KiB.
    @app.post("/", limits={"max_field_size": 1_000_000})
    async def both(request: Request) -> dict[str, Any]:
        a, b = await asyncio.gather(first(request), second(request))
        return {"a": a, "b": b}

    return app


async def _form_x(request: Request) -> str:
    return (await request.aform())["x"]


async def _length(request: Request) -> int:
    return len(await request.aread())


async def _silent_json(request: Request) -> Any:
    return await request.ajson(silent=True)


async def _text(request: Request) -> str:
    return await request.atext()


async def _json(request: Request) -> Any:
    return await request.ajson()


SHARED = [
    pytest.param(_form_x, _form_x, URLENCODED, b"x=1&y=2&z=3", "1", "1", id="aform+aform"),
    pytest.param(_form_x, _form_x, MULTIPART, PART, "hello", "hello", id="aform+aform-multipart"),
    pytest.param(_length, _json, JSON, b'{"k": [1, 2, 3]}', 16, {"k": [1, 2, 3]}, id="aread+ajson"),
    pytest.param(
        _json,
        _text,
        JSON,
        b'{"k": [1, 2, 3]}',
        {"k": [1, 2, 3]},
        '{"k": [1, 2, 3]}',
        id="ajson+atext",
    ),
    pytest.param(_length, _form_x, URLENCODED, b"x=1&y=2&z=3", 11, "1", id="aread+aform"),
    pytest.param(
        _length,
        _silent_json,
        JSON,
        b'{"k": [1, 2, 3]}',
        16,
        {"k": [1, 2, 3]},
        id="aread+ajson-silent",
    ),
    pytest.param(_text, _parts, MULTIPART, PART, PART.decode(), ["x"], id="atext+aiter_parts"),
    pytest.param(_length, _bytes_length, JSON, b'{"k": [1, 2, 3]}', 16, 16, id="aread+aiter_bytes"),
]


@pytest.mark.parametrize(("first", "second", "headers", "body", "a", "b"), SHARED)
def test_a_second_read_waits_for_the_first_and_shares_what_it_keeps(
    make_client: MakeClient,
    interface: str,
    first: Any,
    second: Any,
    headers: dict[str, str],
    body: bytes,
    a: Any,
    b: Any,
) -> None:
    client = make_client(_app(first, second))
    response = client.post("/", content=_pieces(interface, body), headers=headers)
    assert response.status_code == 200, response.text
    assert response.json() == {"a": a, "b": b}


REFUSED = [
    pytest.param(
        _form_x, _parts, MULTIPART, PART, "aiter_parts()", "aform()", id="aform+aiter_parts"
    ),
    pytest.param(
        _form_x, _length, URLENCODED, b"x=1&y=2&z=3", "aread()", "aform()", id="aform+aread"
    ),
    pytest.param(
        _form_x,
        _bytes_length,
        URLENCODED,
        b"x=1&y=2&z=3",
        "aiter_bytes()",
        "aform()",
        id="aform+aiter_bytes",
    ),
]


@pytest.mark.parametrize(("first", "second", "headers", "body", "call", "reader"), REFUSED)
def test_a_second_read_that_cannot_share_is_refused_naming_the_concurrent_read(
    first: Any,
    second: Any,
    headers: dict[str, str],
    body: bytes,
    call: str,
    reader: str,
) -> None:
    # NOTE: under ASGI only: the WSGI side reads a small body without a turn of the loop, so
    # the second read starts once the first has ended ("already consumed", or the kept body).
    with TestClient(_app(first, second), interface="asgi") as client:
        response = client.post("/", content=_apieces(body), headers=headers)
    assert response.status_code == 500
    assert (
        f"request.{call}: the body is being read by request.{reader} at the same time"
        in response.text
    )


def test_a_large_body_is_shared_or_refused_the_same_under_both_interfaces(
    make_client: MakeClient, interface: str
) -> None:
    # NOTE: a body of several reads of wsgi.input, which under WSGI an async read awaits in a
    # thread: the second read starts while the first waits, as under ASGI.
    body = b"x=" + b"1" * 300_000
    shared = make_client(_app(_length, _form_x))
    answer = shared.post("/", content=_pieces_of(interface, body), headers=URLENCODED)
    assert (answer.status_code, answer.json()) == (200, {"a": 300_002, "b": "1" * 300_000})
    refused = make_client(_app(_form_x, _bytes_length))
    answer = refused.post("/", content=_pieces_of(interface, body), headers=URLENCODED)
    assert answer.status_code == 500
    assert "request.aiter_bytes(): the body is being read by request.aform()" in answer.text


def _pieces_of(interface: str, body: bytes) -> Any:
    if interface == "wsgi":
        return body
    return _apieces_of(body)


async def _apieces_of(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 65536):
        await asyncio.sleep(0)  # NOTE: a turn of the loop, no wait.
        yield body[start : start + 65536]


@pytest.mark.parametrize(
    "second", [_text, _form_x, _bytes_length], ids=["atext", "aform", "aiter_bytes"]
)
def test_a_read_that_waited_gets_the_error_of_the_read_it_waited_for(
    make_client: MakeClient, interface: str, second: Any
) -> None:
    app = App()

    @app.post("/", limits={"max_body_size": 10})
    async def both(request: Request) -> dict[str, Any]:
        results = await asyncio.gather(_length(request), second(request), return_exceptions=True)
        return {"errors": [str(result) for result in results]}

    answer = make_client(app).post(
        "/", content=_pieces(interface, b"x=" + b"1" * 30), headers=URLENCODED
    )
    error = str(HTTPError(413, "request body is larger than 10 bytes"))
    assert answer.json() == {"errors": [error, error]}


@pytest.mark.parametrize("cut", [False, True], ids=["413", "client gone"])
def test_reads_that_share_an_error_leave_no_cycle(interface: str, cut: bool) -> None:
    # NOTE: the second aform() raised the first's 413 (or ClientDisconnect) from a local of its
    # frame, which went into the error's traceback: a cycle that kept the request until a
    # full collection.
    app = App()

    @app.post("/", limits={"max_form_memory": 1000})
    async def both(request: Request) -> str:
        await asyncio.gather(_form_x(request), _form_x(request), return_exceptions=True)
        return "read"

    body = b"x=" + b"1" * (100 if cut else 200_000)
    content_type = URLENCODED["content-type"]
    kept = requests_left_in_cycles(app, interface, "POST", "/", body, content_type, cut=cut)
    assert kept == 0


@pytest.mark.parametrize("read", [_length, _form_x], ids=["aread", "aform"])
def test_a_read_whose_shared_read_was_cancelled_is_told_so(read: Any) -> None:
    # NOTE: the read that waited was refused naming itself, "request.aform(): the body was
    # already consumed by request.aform()", when the one it waited for was cancelled midway.
    app = App(debug=True)

    @app.post("/")
    async def cancelled(request: Request) -> dict[str, str]:
        first = asyncio.ensure_future(read(request))
        second = asyncio.ensure_future(read(request))
        await asyncio.sleep(0)  # NOTE: a turn of the loop: both wait, the first for the body.
        first.cancel()
        results = await asyncio.gather(first, second, return_exceptions=True)
        return {"first": type(results[0]).__name__, "second": str(results[1])}

    with TestClient(app, interface="asgi") as client:
        answer = client.post("/", content=_apieces(b"x=1&y=2&z=3"), headers=URLENCODED)
    call = "aread()" if read is _length else "aform()"
    assert answer.json() == {
        "first": "CancelledError",
        "second": f"request.{call}: the body was already consumed by request.{call}, which "
        "was cancelled before it ended: a request's body is read from the network once",
    }


def _read_in_colour(kind: str, sync: bool) -> Any:
    """The read ``kind`` ("read", "form", "json") in the sync or the async colour, as a
    function of the request that gives what the read kept, or its error's text."""

    def shown(value: Any) -> Any:
        return dict(value) if kind == "form" else value if kind == "json" else len(value)

    if sync:

        def read(request: Request) -> Any:
            try:
                return shown(getattr(request, kind)())
            except Exception as exc:
                return str(exc)

        return read

    async def aread(request: Request) -> Any:
        try:
            return shown(await getattr(request, f"a{kind}")())
        except Exception as exc:
            return str(exc)

    return aread


def _turn(started: threading.Event, first: bool) -> None:
    """Start a read first, or a little after the other read has started (claimed the body,
    with no await before: the body still comes then)."""
    if not first:
        started.wait(10)
        time.sleep(0.002)
    started.set()


async def _aturn(started: threading.Event, first: bool) -> None:
    """``_turn()`` on the loop."""
    if not first:
        while not started.is_set():
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.002)
    started.set()


def _across_threads_app(
    on_loop: str, in_thread: str, loop_first: bool, thread_of_flow: bool
) -> tuple[App, dict[str, Any]]:
    """One read on the loop and one in a thread at once: a task of an async flow beside a def
    handler (under ASGI in the pool, under WSGI in the server's thread); or, with
    ``thread_of_flow``, a thread a sync flow started beside an async def handler (under WSGI
    on the app loop)."""
    # NOTE: app flows run before routing, with the app's limits.
    app = App(debug=True, limits=Limits(max_field_size=1_000_000))
    loop_read, thread_read = _read_in_colour(on_loop, False), _read_in_colour(in_thread, True)
    started = threading.Event()
    kept: dict[str, Any] = {}
    if thread_of_flow:
        _thread_beside_async_handler(app, kept, loop_read, thread_read, started, loop_first)
        return app, kept

    @app.middleware
    async def reads_in_a_task(request: Request) -> AsyncIterator[None]:
        async def in_turn() -> None:
            await _aturn(started, loop_first)
            kept["loop"] = await loop_read(request)

        task = asyncio.ensure_future(in_turn())
        yield
        await task

    @app.post("/")
    def handler(request: Request) -> dict[str, Any]:
        _turn(started, not loop_first)
        return {"thread": thread_read(request)}

    return app, kept


def _thread_beside_async_handler(
    app: App,
    kept: dict[str, Any],
    loop_read: Any,
    thread_read: Any,
    started: threading.Event,
    loop_first: bool,
) -> None:
    @app.middleware
    def reads_in_a_thread(request: Request) -> Iterator[None]:
        def in_turn() -> None:
            request.state.go.wait(10)  # NOTE: once this flow has passed on: not inline.
            _turn(started, not loop_first)
            kept["thread"] = thread_read(request)

        request.state.go = threading.Event()
        request.state.thread = threading.Thread(target=in_turn)
        request.state.thread.start()
        yield

    @app.post("/")
    async def handler(request: Request) -> dict[str, Any]:
        request.state.go.set()
        await _aturn(started, loop_first)
        loop = await loop_read(request)
        # NOTE: the flow runs inline again once this returns: the thread's read ends first.
        await asyncio.to_thread(request.state.thread.join)
        return {"loop": loop}


# NOTE: the second read shares what the first keeps (a form keeps no body: refused then).
ACROSS = [
    pytest.param("read", "read", {}, 42, 42, id="aread+read"),
    pytest.param("json", "json", JSON, {"k": "1" * 33}, {"k": "1" * 33}, id="ajson+json"),
    pytest.param("form", "form", URLENCODED, {"x": "1" * 40}, {"x": "1" * 40}, id="aform+form"),
    pytest.param("read", "form", URLENCODED, 42, {"x": "1" * 40}, id="aread+form"),
    pytest.param("form", "read", URLENCODED, {"x": "1" * 40}, 42, id="aform+read"),
]


@pytest.mark.parametrize("thread_of_flow", [False, True], ids=["def-handler", "sync-flow"])
@pytest.mark.parametrize("loop_first", [True, False], ids=["loop-first", "thread-first"])
@pytest.mark.parametrize(("on_loop", "in_thread", "headers", "a", "b"), ACROSS)
def test_reads_in_a_thread_and_on_the_loop_at_once_share_what_is_kept(
    interface: str,
    thread_of_flow: bool,
    loop_first: bool,
    on_loop: str,
    in_thread: str,
    headers: dict[str, str],
    a: Any,
    b: Any,
) -> None:
    # NOTE: the sync read did not say it was in progress: the async one was refused, "already
    # consumed by request.read()" while it was not (or each could take part of the body, both
    # past the check before either set it); a sync read started while an async one was in
    # progress was refused where an async one shared what it kept (review269).
    app, kept = _across_threads_app(on_loop, in_thread, loop_first, thread_of_flow)
    # NOTE: under WSGI, a body past 64 KiB, which aread() reads in a worker thread.
    size = 100_000 if interface == "wsgi" else (33 if on_loop == "json" else 40)
    body = b'{"k": "' + b"1" * size + b'"}' if on_loop == "json" else b"x=" + b"1" * size
    if interface == "wsgi":
        a, b = _longer(a), _longer(b)
    with TestClient(app, interface=interface) as client:
        content = _slow_pieces(body) if interface == "asgi" else _slow_wsgi_pieces(body)
        answer = client.post("/", content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    kept.update(answer.json())
    refused = "loop" if (on_loop, loop_first) == ("read", False) else "thread"
    if on_loop != in_thread and (on_loop == "form") == loop_first:
        # NOTE: a form's read keeps no body: the read after it is refused, naming both.
        assert kept[refused].startswith(f"request.{'a' * (refused == 'loop')}read(): the body ")
        del kept[refused]
        assert kept == ({"loop": a} if refused == "thread" else {"thread": b})
        return
    assert kept == {"loop": a, "thread": b}


def _longer(value: Any) -> Any:
    if isinstance(value, int):
        return 100_002
    if isinstance(value, dict):
        return {name: "1" * 100_000 for name in value}
    return value


def _slow_wsgi_pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), 8192):
        time.sleep(0.001)  # NOTE: a slow wsgi.input, as the ASGI side's pieces.
        yield body[start : start + 8192]


async def _slow_pieces(body: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(body), 8):
        await asyncio.sleep(0.002)  # NOTE: the first read waits for more while the other starts.
        yield body[start : start + 8]


def _post_slowly(app: App, interface: str, body: bytes) -> Any:
    """POST ``body`` as a urlencoded form that comes 8 KiB every 10 ms; the answer's JSON."""
    if interface == "asgi":

        async def pieces() -> AsyncIterator[bytes]:
            for start in range(0, len(body), 8192):
                await asyncio.sleep(0.01)
                yield body[start : start + 8192]

        with TestClient(app, interface="asgi") as client:
            answer = client.post("/", content=pieces(), headers=URLENCODED)
        assert answer.status_code == 200, answer.text
        return answer.json()
    slowly = ShortReads(body, 8192, wait=0.01)
    status, content = wsgi_post(app, slowly, URLENCODED["content-type"], len(body))
    assert status == "200 OK", content
    return json.loads(content)


@pytest.mark.parametrize("later", ["aread", "ajson-silent"])
def test_a_form_read_that_waits_and_is_cancelled_leaves_the_reads_error_kept(
    interface: str, later: str
) -> None:
    # NOTE: an aform() that waited for another task's aform() and was cancelled there marked
    # the body as consumed by a cancelled aform(): the read under way then failed with a 413,
    # which was not kept, and a later read was a RuntimeError (a 500), "already consumed by
    # request.aform(), which was cancelled", or json(silent=True) gave None, where after a
    # lone aform() both get its 413.
    app = App()

    @app.post("/")
    async def both(request: Request) -> dict[str, Any]:
        reading = asyncio.ensure_future(request.aform())
        await asyncio.sleep(0.005)  # NOTE: the first read has begun, and waits for the body.
        waiting = asyncio.ensure_future(request.aform())
        await asyncio.sleep(0.005)  # NOTE: the second waits for the first.
        waiting.cancel()
        results = await asyncio.gather(reading, waiting, return_exceptions=True)
        try:
            if later == "aread":
                after: Any = len(await request.aread())
            else:
                after = await request.ajson(silent=True, force=True)
        except Exception as exc:
            after = str(exc)
        return {"read": str(results[0]), "waited": type(results[1]).__name__, "after": after}

    # NOTE: the field goes past max_field_size (64 KiB) in the body's eighth piece.
    answer = _post_slowly(app, interface, b"x=" + b"1" * 100_000)
    error = str(HTTPError(413, "form field 'x' is larger than 65536 bytes"))
    assert answer == {"read": error, "waited": "CancelledError", "after": error}


def test_a_thread_a_sync_flow_started_reads_while_the_flow_still_runs(interface: str) -> None:
    # NOTE: request._inline said "inline" for the request, not for the thread that runs inline:
    # a thread that a sync flow started, reading while the flow still ran, was refused ("this
    # code runs inline") though it was not the flow's thread (review272).
    app = App(debug=True)

    @app.middleware
    def reads_in_a_thread(request: Request) -> Iterator[None]:
        done = threading.Event()

        def read() -> None:
            try:
                request.state.read = len(request.read())
            except RuntimeError as exc:
                request.state.read = str(exc)
            finally:
                done.set()

        request.state.thread = threading.Thread(target=read)
        request.state.thread.start()
        # NOTE: under WSGI the read ends meanwhile; under ASGI it waits for the loop, which
        # this flow holds: the thread has long been past the check when the wait ends.
        done.wait(0.2)
        yield

    @app.post("/")
    async def handler(request: Request) -> dict[str, Any]:
        await asyncio.to_thread(request.state.thread.join)
        return {"read": request.state.read}

    with TestClient(app, interface=interface) as client:
        answer = client.post("/", content=b"x" * 1000)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"read": 1000}


@pytest.mark.parametrize("form", [False, True], ids=["read", "form"])
def test_a_read_in_a_thread_of_an_async_handler_shares_with_one_on_the_loop(
    interface: str, form: bool
) -> None:
    # NOTE: a read in a thread the async handler started (asyncio.to_thread) beside one on the
    # loop: the claim's lock must hold for both under ASGI too, whatever makes it cheaper
    # there (review272).
    app = App(debug=True)

    @app.post("/")
    async def handler(request: Request) -> dict[str, Any]:
        if form:
            a, b = await asyncio.gather(request.aform(), asyncio.to_thread(request.form))
            return {"loop": a["x"], "thread": b["x"]}
        c, d = await asyncio.gather(request.aread(), asyncio.to_thread(request.read))
        return {"loop": len(c), "thread": len(d)}

    body = b"x=" + b"1" * 40
    with TestClient(app, interface=interface) as client:
        answer = client.post(
            "/", content=_slow_pieces(body) if interface == "asgi" else body, headers=URLENCODED
        )
    assert answer.status_code == 200, answer.text
    kept = "1" * 40 if form else 42
    assert answer.json() == {"loop": kept, "thread": kept}


def test_a_sync_read_waiting_for_a_task_of_a_closed_app_loop_ends() -> None:
    # NOTE: a def handler's read that waits for a flow task's read to share what it keeps,
    # the app closed under both (its loop stopped): the wait ends, with the error of a read
    # that waited for a cancelled one, as the loop's stop cancels that task (review276).
    app = App(debug=True)
    waiting, told = threading.Event(), []

    @app.middleware
    async def reads_in_a_task(request: Request) -> AsyncIterator[None]:
        task = asyncio.ensure_future(request.aread())
        await asyncio.sleep(0.05)  # NOTE: the task has claimed the body, and reads slowly.
        yield
        await task

    @app.post("/")
    def handler(request: Request) -> str:
        waiting.set()
        try:
            return str(len(request.read()))
        except Exception as exc:
            told.append(exc)
            raise

    body = b"x" * 1_000_000
    served = app.as_wsgi()
    environ = wsgi_environ(
        "POST", "/", QUERY_STRING="", SCRIPT_NAME="", CONTENT_LENGTH=str(len(body))
    )
    environ["wsgi.input"] = ShortReads(body, 8192, wait=0.05)

    def serve() -> None:
        with contextlib.suppress(Exception):
            result = served(environ, start_response)
            try:
                answered.append(b"".join(result))
            finally:
                getattr(result, "close", lambda: None)()

    answered: list[bytes] = []

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert waiting.wait(10)
    time.sleep(0.05)
    served.close()
    thread.join(10)
    assert not thread.is_alive(), "the sync read still waits for a read of a stopped loop"
    assert len(told) == 1, told
    # NOTE: the loop's stop cancelled the task, whose read, ending, woke the sync one; the
    # request is answered as one cut off by the app's close (its flow ends on the loop).
    assert "consumed by request.aread(), which was cancelled" in str(told[0]), told
    assert len(answered) == 1, answered


_THREAD_READS = {
    "read": lambda request: len(request.read()),
    "json": lambda request: len(request.json()),
    "form": lambda request: len(request.form()["x"]),
    "iter_bytes": lambda request: sum(map(len, request.iter_bytes())),
}


def _stalls(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == "microweb" and "for the event loop, which" in record.getMessage()
    ]


def _check_stalls(caplog: pytest.LogCaptureFixture, count: int, request_line: str) -> list[str]:
    """Check that ``count`` stalls were told, each starting with ``request_line`` (the
    request's method and path); return them."""
    stalls = _stalls(caplog)
    assert len(stalls) == count, stalls
    assert all(stall.startswith(request_line) for stall in stalls), stalls
    return stalls


def _read_by_a_def_handler(body: AsyncIterator[bytes], caplog: pytest.LogCaptureFixture) -> int:
    """Send ``body`` to a ``def`` handler that reads it whole, under ASGI, with the warnings
    of the "microweb" logger captured; return how many bytes it read (answered 200)."""
    app = App(debug=True)

    @app.post("/slow")
    def handler(request: Request) -> dict[str, Any]:
        return {"read": len(request.read())}

    with (
        caplog.at_level(logging.WARNING, logger="microweb"),
        TestClient(app, interface="asgi") as client,
    ):
        answer = client.post("/slow", content=body)
    assert answer.status_code == 200, answer.text
    read: int = answer.json()["read"]
    return read


def _reading_thread(request: Request, threads: list[threading.Thread]) -> threading.Thread:
    """Start (and add to ``threads``) a thread that reads ``request``'s body into
    ``request.state.read``; under ASGI it may find the request ended (ClientDisconnect)."""

    def reading() -> None:
        with contextlib.suppress(ClientDisconnect):
            request.state.read = len(request.read())

    thread = threading.Thread(target=reading)
    threads.append(thread)
    thread.start()
    return thread


def _join(thread: threading.Thread, caplog: pytest.LogCaptureFixture) -> None:
    """Join ``thread`` as inline code would, giving up once the warning came (or after 5 s)."""
    deadline = time.monotonic() + 5
    while thread.is_alive() and not _stalls(caplog) and time.monotonic() < deadline:
        thread.join(0.05)


@pytest.mark.parametrize("call", list(_THREAD_READS))
def test_inline_code_that_joins_a_reading_thread_is_told_in_a_warning(
    interface: str, call: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a def handler with offload=False that joins a thread reading the body holds the
    # loop under ASGI, which the read waits for: a deadlock (here a join that gives up) with
    # no word, where before review272 the read was refused at once. It is logged now, naming
    # the request, and the read still waits (review279). Under WSGI the read just works.
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)
    threads: list[threading.Thread] = []
    read = _THREAD_READS[call]

    @app.post("/upload", offload=False)
    def handler(request: Request) -> dict[str, Any]:
        got: list[Any] = []

        def reading() -> None:
            # NOTE: under ASGI the read goes on once the handler has returned, and finds the
            # request ended: the handler did not wait for it.
            with contextlib.suppress(ClientDisconnect):
                got.append(read(request))

        thread = threading.Thread(target=reading)
        threads.append(thread)
        thread.start()
        _join(thread, caplog)
        return {"joined": not thread.is_alive(), "got": got}

    body = json.dumps({"x": "a" * 91}).encode() if call == "json" else b"x=" + b"1" * 98
    headers = JSON if call == "json" else URLENCODED
    with caplog.at_level(logging.WARNING, logger="microweb"):
        with TestClient(app, interface=interface) as client:
            answer = client.post("/upload", content=body, headers=headers)
        for thread in threads:
            thread.join(5)
    assert answer.status_code == 200, answer.text
    stalls = _stalls(caplog)
    if interface == "wsgi":
        got = {"read": 100, "json": 1, "form": 98, "iter_bytes": 100}[call]
        assert answer.json() == {"joined": True, "got": [got]}
        assert stalls == []
    else:
        assert answer.json() == {"joined": False, "got": []}
        assert len(stalls) == 1, stalls
        assert stalls[0].startswith("POST /upload: ")
        assert "offload=False" in stalls[0]
        assert "join" in stalls[0]


@pytest.mark.parametrize("call", ["read", "form"])
def test_a_thread_inline_code_started_reads_once_it_returns_with_no_warning(
    interface: str, call: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: review272's case: the flow that started the thread returns at once, the loop
    # serves the read, and nothing is logged however small the wait before a warning.
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)
    read = _THREAD_READS[call]

    @app.middleware
    def reads_in_a_thread(request: Request) -> Iterator[None]:
        def reading() -> None:
            request.state.read = read(request)

        request.state.thread = threading.Thread(target=reading)
        request.state.thread.start()
        yield

    @app.post("/")
    async def handler(request: Request) -> dict[str, Any]:
        await asyncio.to_thread(request.state.thread.join)
        return {"read": request.state.read}

    with (
        caplog.at_level(logging.WARNING, logger="microweb"),
        TestClient(app, interface=interface) as client,
    ):
        answer = client.post("/", content=b"x=" + b"1" * 98, headers=URLENCODED)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"read": 100 if call == "read" else 98}
    assert _stalls(caplog) == []


def test_a_sync_flow_that_joins_a_reading_thread_is_told_in_a_warning(
    interface: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a sync flow runs inline as a def handler with offload=False does (review279).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)
    threads: list[threading.Thread] = []

    @app.middleware
    def joins_a_reading_thread(request: Request) -> Iterator[None]:
        thread = _reading_thread(request, threads)
        _join(thread, caplog)
        request.state.joined = not thread.is_alive()
        yield

    @app.put("/flow")
    async def handler(request: Request) -> dict[str, Any]:
        return {"joined": request.state.joined}

    with caplog.at_level(logging.WARNING, logger="microweb"):
        with TestClient(app, interface=interface) as client:
            answer = client.put("/flow", content=b"x" * 100)
        for thread in threads:
            thread.join(5)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"joined": interface == "wsgi"}
    _check_stalls(caplog, interface == "asgi", "PUT /flow: ")


def test_a_reading_thread_held_up_briefly_by_other_work_on_the_loop_is_not_warned_of(
    interface: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a loop held for less than SLOW_START (here by the request's own async handler
    # blocking, as a CPU-bound step would) serves the read once free: nothing to tell of.
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 1.5)
    app = App(debug=True)

    @app.post("/")
    async def handler(request: Request) -> dict[str, Any]:
        got: list[int] = []
        thread = threading.Thread(target=lambda: got.append(len(request.read())))
        thread.start()
        time.sleep(0.3)  # NOTE: blocks the loop under ASGI.
        await asyncio.to_thread(thread.join)
        return {"read": got}

    with (
        caplog.at_level(logging.WARNING, logger="microweb"),
        TestClient(app, interface=interface) as client,
    ):
        answer = client.post("/", content=b"x" * 100)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"read": [100]}
    assert _stalls(caplog) == []


def test_an_async_handler_that_joins_a_reading_thread_is_told_in_a_warning(
    interface: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a blocking join() in async def code holds the loop as inline code does: the same
    # deadlock under ASGI, where only inline code was told of (review286).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)
    threads: list[threading.Thread] = []

    @app.post("/joins")
    async def handler(request: Request) -> dict[str, Any]:
        thread = _reading_thread(request, threads)
        _join(thread, caplog)
        return {"joined": not thread.is_alive()}

    with caplog.at_level(logging.WARNING, logger="microweb"):
        with TestClient(app, interface=interface) as client:
            answer = client.post("/joins", content=b"x" * 100)
        for thread in threads:
            thread.join(5)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"joined": interface == "wsgi"}
    stalls = _check_stalls(caplog, interface == "asgi", "POST /joins: ")
    assert all("async def" in stall and "join" in stall for stall in stalls)


def test_a_read_held_up_by_other_code_on_the_loop_names_its_own_request(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the loop held past SLOW_START by what is no code of the reading request (a callback
    # of another's, here): the warning names the request whose read waits, and says nothing of
    # what holds the loop that may be false; the read ends once the loop is free (ASGI only).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)

    @app.post("/reads")
    async def handler(request: Request) -> dict[str, Any]:
        got: list[int] = []
        thread = threading.Thread(target=lambda: got.append(len(request.read())))
        thread.start()
        asyncio.get_running_loop().call_soon(time.sleep, 0.5)
        await asyncio.to_thread(thread.join)
        return {"read": got}

    with (
        caplog.at_level(logging.WARNING, logger="microweb"),
        TestClient(app, interface="asgi") as client,
    ):
        answer = client.post("/reads", content=b"x" * 100)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"read": [100]}
    stalls = _check_stalls(caplog, 1, "POST /reads: ")
    assert "this request's inline code" not in stalls[0]
    assert "has run nothing else" in stalls[0]


def test_a_request_whose_reads_wait_for_a_held_loop_again_and_again_is_told_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: each hop of iter_bytes() waits on its own: with the loop held past SLOW_START before
    # each, every hop logged the warning again (ASGI only).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)

    @app.middleware
    async def keeps_the_loop(request: Request) -> AsyncIterator[None]:
        request.state.loop = asyncio.get_running_loop()
        yield

    @app.post("/held")
    def handler(request: Request) -> dict[str, Any]:
        sizes = []
        for chunk in request.iter_bytes():
            sizes.append(len(chunk))
            request.state.loop.call_soon_threadsafe(time.sleep, 0.3)
        return {"read": sum(sizes), "chunks": len(sizes)}

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * 10
            await asyncio.sleep(0.05)

    with (
        caplog.at_level(logging.WARNING, logger="microweb"),
        TestClient(app, interface="asgi") as client,
    ):
        answer = client.post("/held", content=pieces())
    assert answer.status_code == 200, answer.text
    assert answer.json()["read"] == 40
    assert answer.json()["chunks"] > 1
    _check_stalls(caplog, 1, "POST /held: ")


def test_a_read_that_began_before_inline_code_joined_its_thread_is_told_too(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the thread's read began on the loop (an async flow let it run) and awaits the rest
    # of the body when the handler, inline, joins the thread: the loop never gets the rest
    # (ASGI only; the body's second piece comes after a sleep on the loop) (review279).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)
    threads: list[threading.Thread] = []

    @app.middleware
    def starts_a_reader(request: Request) -> Iterator[None]:
        _reading_thread(request, threads)
        yield

    @app.middleware
    async def lets_it_begin(request: Request) -> AsyncIterator[None]:
        await asyncio.sleep(0.1)
        yield

    @app.post("/late", offload=False)
    def handler(request: Request) -> dict[str, Any]:
        _join(threads[0], caplog)
        return {"joined": not threads[0].is_alive()}

    async def pieces() -> AsyncIterator[bytes]:
        yield b"x" * 50
        await asyncio.sleep(0.3)
        yield b"x" * 50

    with caplog.at_level(logging.WARNING, logger="microweb"):
        with TestClient(app, interface="asgi") as client:
            answer = client.post("/late", content=pieces())
        threads[0].join(5)  # NOTE: ClientDisconnect once the request ended, caught.
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"joined": False}
    _check_stalls(caplog, 1, "POST /late: ")


def test_a_def_handler_reading_a_slow_body_is_not_warned_of(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a read that awaits a slow client holds nothing up: the loop runs the probes meanwhile
    # (ASGI only: under WSGI nothing waits on a loop).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)

    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.2)
            yield b"x" * 10

    assert _read_by_a_def_handler(pieces(), caplog) == 30
    assert _stalls(caplog) == []


def test_two_threads_whose_reads_wait_for_a_held_loop_at_once_are_told_once(
    interface: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: a read() and an is_disconnected() in two threads wait for the same held loop: the
    # once-a-request flag was read and set with no lock, and both threads, past its check
    # together, each logged the warning. Each thread's first read of the flag waits for the
    # other's, so that both have read it before either goes on, every time (ASGI only: under
    # WSGI neither waits for a loop).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    meet = threading.Barrier(2, timeout=1)
    met: set[str] = set()
    slot = ASGIBody._stall_told

    def told(body: ASGIBody) -> bool:
        value: bool = slot.__get__(body, ASGIBody)
        name = threading.current_thread().name
        if name.startswith("waits-") and name not in met:
            met.add(name)
            with contextlib.suppress(threading.BrokenBarrierError):
                meet.wait()
        return value

    monkeypatch.setattr(ASGIBody, "_stall_told", property(told, slot.__set__))
    app = App(debug=True)

    @app.post("/both")
    async def handler(request: Request) -> dict[str, Any]:
        got: dict[str, Any] = {}
        threads = [
            threading.Thread(target=lambda: got.update(read=len(request.read())), name="waits-r"),
            threading.Thread(
                target=lambda: got.update(gone=request.is_disconnected()), name="waits-d"
            ),
        ]
        for thread in threads:
            thread.start()
        time.sleep(0.5)  # NOTE: holds the loop under ASGI, past SLOW_START for both threads.
        for thread in threads:
            await asyncio.to_thread(thread.join)
        return got

    with (
        caplog.at_level(logging.WARNING, logger="microweb"),
        TestClient(app, interface=interface) as client,
    ):
        answer = client.post("/both", content=b"x" * 100)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"read": 100, "gone": False}
    _check_stalls(caplog, interface == "asgi", "POST /both: ")
    if interface == "asgi":
        assert met == {"waits-r", "waits-d"}


def test_a_read_that_waited_for_a_slow_client_then_a_held_loop_tells_how_long_it_was_held(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the warning says the read "has waited N s for the event loop, which has run nothing
    # else meanwhile": N was the whole wait, here a second for the client while the loop ran
    # the probes, then the loop held; it is how long the loop has run nothing (ASGI only).
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.3)

    async def pieces() -> AsyncIterator[bytes]:
        yield b"x" * 10
        await asyncio.sleep(1.0)  # NOTE: the loop is free: the probes run.
        time.sleep(0.8)  # NOTE: then held, past SLOW_START.
        yield b"x" * 10

    assert _read_by_a_def_handler(pieces(), caplog) == 20
    stalls = _stalls(caplog)
    assert len(stalls) == 1, stalls
    waited = float(stalls[0].split("has waited ")[1].split(" s ")[0])
    assert 0.3 <= waited < 0.8, stalls


def test_inline_code_that_joins_a_thread_whose_read_waits_for_a_tasks_read_is_told(
    interface: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the thread's read waits for a read that a flow's task began (to share what it
    # keeps), which needs the loop that a sync flow holds as it joins the thread: the same
    # deadlock as a read of its own (review279), but that wait was no hop to the loop, and
    # nothing was logged. Under WSGI the task reads on the app loop, which nothing holds.
    monkeypatch.setattr("microweb._app_loop.SLOW_START", 0.05)
    app = App(debug=True)
    threads: list[threading.Thread] = []

    @app.middleware
    async def reads_in_a_task(request: Request) -> AsyncIterator[None]:
        task = asyncio.ensure_future(request.aread())
        await asyncio.sleep(0.05)  # NOTE: the task has claimed the body, and waits for more.
        yield
        await task

    @app.middleware
    def joins_a_reading_thread(request: Request) -> Iterator[None]:
        thread = _reading_thread(request, threads)
        _join(thread, caplog)
        request.state.joined = not thread.is_alive()
        yield

    @app.put("/shared")
    async def handler(request: Request) -> dict[str, Any]:
        return {"joined": request.state.joined}

    async def pieces() -> AsyncIterator[bytes]:
        yield b"x" * 50
        await asyncio.sleep(0.3)
        yield b"x" * 50

    with caplog.at_level(logging.WARNING, logger="microweb"):
        with TestClient(app, interface=interface) as client:
            content = pieces() if interface == "asgi" else b"x" * 100
            answer = client.put("/shared", content=content)
        for thread in threads:
            thread.join(5)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"joined": interface == "wsgi"}
    _check_stalls(caplog, interface == "asgi", "PUT /shared: ")
