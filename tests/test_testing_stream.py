"""TestClient.stream(): a response read as the app sends it, under both interfaces."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import itertools
import threading
import time
import weakref
from collections.abc import AsyncIterator, Iterator

import pytest
from conftest import MakeClient, stream_in_colour

from microweb import App, Limits, Request, Response
from microweb.testing import TestClient

# NOTE: seconds a generator waits for the test; the buffered client waited this long, then
# sent both chunks at once.
PATIENCE = 5


def paced_app(colour: str, release: threading.Event, produced: list[str]) -> App:
    """``/events`` sends one event, then a second once the test sets ``release``."""
    app = App()

    def sync_events() -> Iterator[str]:
        produced.append("one")
        yield "one"
        release.wait(PATIENCE)
        produced.append("two")
        yield "two"

    async def async_events() -> AsyncIterator[str]:
        produced.append("one")
        yield "one"
        deadline = time.monotonic() + PATIENCE
        while not release.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        produced.append("two")
        yield "two"

    @app.get("/events")
    def events(request: Request) -> Response:
        return Response.sse(sync_events() if colour == "sync" else async_events())

    return app


def endless_app(colour: str, ended: list[str]) -> App:
    """``/ticks`` streams for ever; ``ended`` records the generator's finally and the
    after-response callback."""
    app = App()

    def sync_ticks() -> Iterator[str]:
        try:
            for number in range(10**9):
                yield f"tick {number}\n"
                time.sleep(0.001)
        finally:
            ended.append("finally")

    async def async_ticks() -> AsyncIterator[str]:
        try:
            for number in range(10**9):
                yield f"tick {number}\n"
                await asyncio.sleep(0.001)
        finally:
            ended.append("finally")

    @app.get("/ticks")
    def ticks(request: Request) -> Response:
        request.after_response(ended.append, "after response")
        return Response.stream(sync_ticks() if colour == "sync" else async_ticks())

    return app


def test_stream_gives_each_event_before_the_next_is_made(
    make_client: MakeClient, colour: str
) -> None:
    release, produced = threading.Event(), []
    client = make_client(paced_app(colour, release, produced))
    started = time.monotonic()
    with client.stream("GET", "/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/event-stream"
        lines = response.iter_lines()
        assert next(lines) == "data: one"
        assert produced == ["one"]
        release.set()
        assert [next(lines), next(lines), next(lines)] == ["", "data: two", ""]
        assert list(lines) == []
    assert time.monotonic() - started < PATIENCE


def test_stream_left_early_ends_the_apps_stream(make_client: MakeClient, colour: str) -> None:
    ended: list[str] = []
    client = make_client(endless_app(colour, ended))
    with client.stream("GET", "/ticks") as response:
        lines = response.iter_lines()
        assert [next(lines) for _ in range(3)] == ["tick 0", "tick 1", "tick 2"]
        assert ended == []
    # NOTE: as a client that goes away under a server: the generator is closed, and the
    # request's after-response work has run by the time the block is left.
    assert ended == ["finally", "after response"]


def test_a_client_closed_while_a_stream_is_read_says_so(interface: str, colour: str) -> None:
    # NOTE: under ASGI the read said "Event loop is closed", and so did the block's exit.
    ended: list[str] = []
    client = TestClient(endless_app(colour, ended), interface=interface)
    with client.stream("GET", "/ticks") as response:
        lines = response.iter_lines()
        assert next(lines) == "tick 0"
        client.close()
        with pytest.raises(RuntimeError, match="TestClient was closed while this response"):
            list(lines)
    # NOTE: the block's exit is quiet: the client's close cut the answer off already.


def test_a_client_closed_by_another_thread_while_a_read_waits_says_so(
    interface: str, colour: str
) -> None:
    # NOTE: under ASGI the waiting read raised CancelledError.
    # NOTE: the stream waits for the closing thread to have begun before its 0.5 s: a busy
    # machine started that thread late, and the read had ended by then (review386).
    app, closing = App(), threading.Event()

    def sync_chunks() -> Iterator[str]:
        yield "first\n"
        closing.wait(10)
        time.sleep(0.5)
        yield "second\n"

    async def async_chunks() -> AsyncIterator[str]:
        yield "first\n"
        await asyncio.to_thread(closing.wait, 10)
        await asyncio.sleep(0.5)
        yield "second\n"

    @app.get("/slow")
    def slow(request: Request) -> Response:
        return Response.stream(sync_chunks() if colour == "sync" else async_chunks())

    client = TestClient(app, interface=interface)
    with client.stream("GET", "/slow") as response:
        lines = response.iter_lines()
        assert next(lines) == "first"

        def close() -> None:
            closing.set()
            client.close()

        closer = threading.Thread(target=close)
        closer.start()
        with pytest.raises(RuntimeError, match="TestClient was closed while this response"):
            list(lines)
        closer.join()


def test_a_request_waits_for_after_response_work_however_long(
    make_client: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the bound on a client that left applied to a body read to its end: past it, the
    # work was cancelled and request() raised "did not end within 10 s of the client leaving".
    monkeypatch.setattr("microweb._testing_http.WAIT", 0.1)
    done: list[str] = []
    app = App()

    async def slow_work(name: str) -> None:
        await asyncio.sleep(0.3)
        done.append(name)

    @app.get("/work")
    def work(request: Request) -> Response:
        request.after_response(slow_work, request.query["name"])
        return Response.stream(iter(["queued"]))

    client = make_client(app)
    assert client.get("/work?name=request").text == "queued"
    assert done == ["request"]
    with client.stream("GET", "/work?name=stream") as response:
        assert response.read() == b"queued"
    assert done == ["request", "stream"]


def test_stream_left_early_gives_a_stuck_app_a_bounded_wait(
    make_client: MakeClient, interface: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the app's own CLOSE_WAIT ends a stream stuck in its step (a def generator blocked
    # in the pool, which no disconnect reaches); the test client's WAIT after it bounds what
    # follows, after-response work that never returns.
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.1)
    monkeypatch.setattr("microweb._testing_http.WAIT", 0.1)
    app, sleeping = App(), threading.Event()

    def stuck() -> Iterator[str]:
        yield "first\n"
        sleeping.set()
        time.sleep(0.5)  # NOTE: in the pool under ASGI, where no disconnect reaches it
        yield "second\n"

    async def stuck_work() -> None:
        await asyncio.sleep(PATIENCE)

    @app.get("/stuck")
    def stuck_route(request: Request) -> Response:
        if interface == "asgi":
            request.after_response(stuck_work)
        return Response.stream(stuck())

    client = make_client(app)
    if interface == "wsgi":
        # NOTE: the iterable is only read when the test reads, so it is closed at once.
        with client.stream("GET", "/stuck") as response:
            assert next(response.iter_lines()) == "first"
        return
    with (
        pytest.raises(TimeoutError, match=r"within 0\.2 s of the client leaving"),
        client.stream("GET", "/stuck") as response,
    ):
        assert next(response.iter_lines()) == "first"
        # NOTE: left before the app asks for the next chunk, the generator is closed at once.
        assert sleeping.wait(PATIENCE)


def test_stream_of_a_whole_response(make_client: MakeClient) -> None:
    app = App()

    @app.get("/item")
    async def item(request: Request) -> dict[str, int]:
        return {"id": 7}

    client = make_client(app)
    with client.stream("GET", "/item") as response:
        assert not response.is_stream_consumed
        assert response.read() == b'{"id":7}'
        assert response.json() == {"id": 7}
    with client.stream("GET", "/missing") as response:
        assert response.status_code == 404
        assert b"".join(response.iter_bytes()) == client.get("/missing").content


def test_stream_raises_an_error_of_the_body_after_the_chunks_before_it(
    make_client: MakeClient, colour: str
) -> None:
    app = App()

    def sync_chunks() -> Iterator[str]:
        yield "first\n"
        raise ZeroDivisionError("mid-stream")

    async def async_chunks() -> AsyncIterator[str]:
        yield "first\n"
        raise ZeroDivisionError("mid-stream")

    @app.get("/broken")
    def broken(request: Request) -> Response:
        return Response.stream(sync_chunks() if colour == "sync" else async_chunks())

    client = make_client(app)
    received: list[bytes] = []
    with (
        pytest.raises(ZeroDivisionError, match="mid-stream"),
        client.stream("GET", "/broken") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            received.append(chunk)
    assert received == [b"first\n"]
    assert client.get("/missing").status_code == 404  # the client goes on


def test_stream_left_early_raises_an_error_of_the_streams_close_from_the_exit(
    make_client: MakeClient, colour: str
) -> None:
    app = App()

    def sync_chunks() -> Iterator[str]:
        try:
            while True:
                yield "chunk\n"
        finally:
            raise ZeroDivisionError("while closing")

    async def async_chunks() -> AsyncIterator[str]:
        try:
            while True:
                yield "chunk\n"
                await asyncio.sleep(0)
        finally:
            raise ZeroDivisionError("while closing")

    @app.get("/closing")
    def closing(request: Request) -> Response:
        return Response.stream(sync_chunks() if colour == "sync" else async_chunks())

    client = make_client(app)  # NOTE: raise_server_exceptions is off: raised all the same.
    with (
        pytest.raises(ZeroDivisionError, match="while closing"),
        client.stream("GET", "/closing") as response,
    ):
        assert next(response.iter_lines()) == "chunk"
    assert client.get("/missing").status_code == 404  # the client goes on


def test_stream_sends_and_keeps_the_clients_cookies_and_headers(interface: str) -> None:
    app = App()

    @app.get("/login")
    def login(request: Request) -> Response:
        seen = f"{request.url} {request.headers.get('x-team')} {request.cookies.get('theme')}"
        response = Response.stream(iter([seen]))
        response.set_cookie("session", "s-1")
        return response

    base = "https://example.com"
    with TestClient(app, interface, base, headers={"x-team": "blue"}) as client:
        client.cookies.set("theme", "dark")
        with client.stream("GET", "/login") as response:
            assert client.cookies["session"] == "s-1"  # kept once the head is in
            assert response.read() == b"https://example.com/login blue dark"


def test_stream_raises_what_no_error_handler_answered(interface: str) -> None:
    app = App()

    @app.get("/fails")
    def fails(request: Request) -> Response:
        raise KeyError("before the stream")

    @app.get("/after")
    def after(request: Request) -> Response:
        request.after_response(int, "not a number")
        return Response.stream(iter(["body"]))

    with TestClient(app, interface, raise_server_exceptions=True) as client:
        with pytest.raises(KeyError, match="before the stream"), client.stream("GET", "/fails"):
            raise AssertionError("the block must not run")
        with (
            pytest.raises(ValueError, match="not a number"),
            client.stream("GET", "/after") as response,
        ):
            assert response.read() == b"body"
        client.raise_server_exceptions = False
        with client.stream("GET", "/fails") as response:
            assert response.status_code == 500


def test_stream_follows_redirects_as_requests_do(make_client: MakeClient) -> None:
    app = App()

    @app.get("/old")
    def old(request: Request) -> Response:
        return Response.redirect("/new")

    @app.get("/new")
    def new(request: Request) -> Response:
        return Response.stream(iter(["new ", "page"]))

    client = make_client(app)
    with client.stream("GET", "/old") as response:
        assert response.status_code == 307
    with client.stream("GET", "/old", follow_redirects=True) as response:
        assert [r.status_code for r in response.history] == [307]
        assert response.read() == b"new page"


def test_stream_sends_a_streamed_request_body(make_client: MakeClient) -> None:
    app = App()

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response.stream(request.aiter_bytes())

    client = make_client(app)
    with client.stream("POST", "/echo", content=iter([b"a", b"bc"])) as response:
        assert response.read() == b"abc"


def test_stream_left_early_stops_sending_the_request_body(
    make_client: MakeClient, interface: str, colour: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the app's receive() went on handing out an endless upload after the client left,
    # so an echo never saw the disconnect: the block's exit cancelled it after the bound and
    # raised TimeoutError. Under WSGI the body is read whole before the app runs (as Waitress
    # does), so it is finite there.
    monkeypatch.setattr("microweb._testing_http.WAIT", 0.5)
    ended: list[str] = []
    app = App(limits=Limits(max_body_size=10**12))

    def sync_echo(request: Request) -> Iterator[bytes]:
        try:
            yield from request.iter_bytes()
        finally:
            ended.append("finally")

    async def async_echo(request: Request) -> AsyncIterator[bytes]:
        try:
            async for chunk in request.aiter_bytes():
                yield chunk
        finally:
            ended.append("finally")

    @app.post("/echo")
    def echo(request: Request) -> Response:
        return Response.stream(sync_echo(request) if colour == "sync" else async_echo(request))

    def upload() -> Iterator[bytes]:
        for number in itertools.count() if interface == "asgi" else range(100):
            yield b"%d\n" % number

    client = make_client(app)
    with client.stream("POST", "/echo", content=upload()) as response:
        assert next(response.iter_lines()) == "0"
    assert ended == ["finally"]


def test_stream_is_refused_under_both() -> None:
    app = App()
    with (
        TestClient(app, interface="both") as client,
        pytest.raises(RuntimeError, match=r"TestClient\(app, 'asgi'\)"),
        client.stream("GET", "/"),
    ):
        raise AssertionError("the block must not run")


HELD: contextvars.ContextVar[object] = contextvars.ContextVar("held_by_a_stream")


class Held:
    """An object a handler holds (in a ContextVar, its request's state and its generator)."""


def holding_app(colour: str, kept: list[weakref.ref[Held]], ended: list[str]) -> App:
    """``/held`` holds a ``Held`` in a ContextVar and in its body's generator; ``kept`` gets a
    weak reference to it, ``ended`` the generator's start and finally, and the after-response
    work."""
    app = App()

    def chunks(held: Held) -> Iterator[str]:
        ended.append("started")
        try:
            yield "one\n"
            yield "two\n"
        finally:
            ended.append("finally")

    @app.get("/held")
    def held_route(request: Request) -> Response:
        held = Held()
        kept.append(weakref.ref(held))
        HELD.set(held)
        request.state.held = held  # NOTE: and the request, with it.
        request.after_response(ended.append, "after response")
        return Response.stream(stream_in_colour(colour, lambda: chunks(held)))

    return app


def test_stream_lets_go_of_the_request_at_the_blocks_exit(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: under ASGI the app's task, kept by the response, kept the request's context (a
    # ContextVar the handler set) until the response itself was dropped; under WSGI the app
    # loop, started by the request, kept it for the app's life.
    kept: list[weakref.ref[Held]] = []
    ended: list[str] = []
    client = make_client(holding_app(colour, kept, ended))
    with client.stream("GET", "/held") as response:
        assert response.read() == b"one\ntwo\n"
    gc.collect()
    assert kept[0]() is None
    assert ended == ["started", "finally", "after response"]
    assert response.status_code == 200  # NOTE: the response is kept, and its body.
    assert response.text == "one\ntwo\n"


def test_stream_left_unread_closes_the_apps_stream_and_lets_go(
    make_client: MakeClient, colour: str
) -> None:
    kept: list[weakref.ref[Held]] = []
    ended: list[str] = []
    client = make_client(holding_app(colour, kept, ended))
    with client.stream("GET", "/held") as response:
        assert response.status_code == 200
    gc.collect()
    assert kept[0]() is None  # NOTE: the generator too: closed, and let go.
    # NOTE: under WSGI the body is read only as the test reads, so a generator left unread
    # never started: it has no finally to run. Under ASGI the app may have run ahead.
    assert ended in (["after response"], ["started", "finally", "after response"])


def test_stream_runs_after_response_work_once_however_it_is_closed(
    make_client: MakeClient, colour: str
) -> None:
    kept: list[weakref.ref[Held]] = []
    ended: list[str] = []
    client = make_client(holding_app(colour, kept, ended))
    with client.stream("GET", "/held") as response:
        assert list(response.iter_lines()) == ["one", "two"]
        response.close()
    response.close()
    assert ended == ["started", "finally", "after response"]


def test_a_whole_request_lets_go_of_the_app_once_answered(
    make_client: MakeClient, colour: str
) -> None:
    # NOTE: request() reads and closes the body as stream() does, and kept the task too.
    kept: list[weakref.ref[Held]] = []
    ended: list[str] = []
    response = make_client(holding_app(colour, kept, ended)).get("/held")
    gc.collect()
    assert kept[0]() is None
    assert response.text == "one\ntwo\n"
    assert ended == ["started", "finally", "after response"]
