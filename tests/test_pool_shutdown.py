"""A ``def`` handler still running in the ASGI thread pool when the lifespan shuts down.

Uvicorn cancels the requests still running at the end of its grace period, then sends
``lifespan.shutdown``; a ``def`` handler of a cancelled request goes on in its thread, while
the shutdown hooks close what it may use, and it ends with the process. The log says so.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from drive import body_messages, http_scope

from microweb import App, Request, Response


async def _started(
    app: App, path: str
) -> tuple[
    asyncio.Future[Any],
    asyncio.Queue[dict[str, Any]],
    list[dict[str, Any]],
    asyncio.Future[Any],
    asyncio.Event,
]:
    """Start the lifespan of ``app``, then a request to ``path`` whose client stays until the
    event returned is set; return the lifespan's task, its inbox and replies, the request's
    task, and that event."""
    asgi = app.as_asgi()
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    replies: list[dict[str, Any]] = []

    async def reply(message: dict[str, Any]) -> None:
        replies.append(message)

    lifespan = asyncio.ensure_future(
        asgi({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, inbox.get, reply)
    )
    await inbox.put({"type": "lifespan.startup"})
    messages = iter(body_messages(b""))
    left = asyncio.Event()

    async def receive() -> dict[str, Any]:
        message = next(messages, None)
        if message is None:
            await left.wait()
            return {"type": "http.disconnect"}
        return message

    async def send(message: dict[str, Any]) -> None:
        pass

    while not replies:
        await asyncio.sleep(0)
    request = asyncio.ensure_future(asgi(http_scope(path=path), receive, send))
    return lifespan, inbox, replies, request, left


async def _cut_off_then_shut_down(
    app: App, path: str, entered: threading.Event, release: threading.Event
) -> list[dict[str, Any]]:
    """Start the lifespan, cancel a request to ``path`` once its ``def`` code has ``entered``
    (as Uvicorn does at the end of its grace period), shut down, then ``release`` that code;
    return the lifespan's replies."""
    lifespan, inbox, replies, request, _ = await _started(app, path)
    await asyncio.get_running_loop().run_in_executor(None, entered.wait)
    # NOTE: a sync stream's request then waits for the stream's step, which goes on in its
    # thread, and Uvicorn shuts down meanwhile.
    request.cancel()
    for _ in range(100):
        await asyncio.sleep(0)  # NOTE: loop turns, for the cancellation to be taken.
    await inbox.put({"type": "lifespan.shutdown"})
    try:
        await lifespan
    finally:
        release.set()  # NOTE: the code's thread ends, whatever failed.
    await asyncio.gather(request, return_exceptions=True)
    return replies


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_shutdown_with_def_calls_still_running_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="microweb")
    entered, release = threading.Event(), threading.Event()
    hooks_saw: list[bool] = []
    app = App()

    @app.get("/slow")
    def slow(request: Request) -> str:
        entered.set()
        release.wait()
        return "done"

    @app.on_shutdown
    def closing() -> None:
        hooks_saw.append(entered.is_set() and not release.is_set())

    try:
        replies = asyncio.run(_cut_off_then_shut_down(app, "/slow", entered, release))
    finally:
        release.set()
    assert [reply["type"] for reply in replies] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert hooks_saw == [True]
    assert any("1 call of def code still running" in line for line in _warnings(caplog))


def test_a_shutdown_with_a_sync_stream_still_running_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: only a cancelled def handler's call marked the pool cut off: a sync stream whose
    # step ran on in its thread after the server cancelled its request was not counted, and
    # the shutdown hooks ran under it with no word.
    caplog.set_level(logging.WARNING, logger="microweb")
    entered, release = threading.Event(), threading.Event()
    app = App()

    @app.get("/stream")
    def stream(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            entered.set()
            release.wait()
            yield b"late"

        return Response.stream(chunks())

    try:
        replies = asyncio.run(_cut_off_then_shut_down(app, "/stream", entered, release))
    finally:
        release.set()
    assert [reply["type"] for reply in replies][-1] == "lifespan.shutdown.complete"
    assert any("1 call of def code still running" in line for line in _warnings(caplog))


async def _left_then_shut_down(
    app: App, path: str, entered: threading.Event, release: threading.Event
) -> tuple[list[dict[str, Any]], bool]:
    """Start the lifespan, have the client of a request to ``path`` leave once its ``def``
    code has ``entered``, wait for the request to end (``CLOSE_WAIT`` gives up on its stream),
    shut down, then ``release`` that code; return the lifespan's replies, and whether the
    request had ended before the shutdown."""
    lifespan, inbox, replies, request, left = await _started(app, path)
    try:
        await asyncio.get_running_loop().run_in_executor(None, entered.wait)
        left.set()
        await asyncio.wait({request}, timeout=5)
        ended = request.done()
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
    finally:
        release.set()  # NOTE: the code's thread ends, whatever failed.
    await asyncio.gather(request, return_exceptions=True)
    return replies, ended


def _assert_given_up_then_counted(
    app: App,
    path: str,
    entered: threading.Event,
    release: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Check that the request to ``path``, whose client left while its ``def`` code ran,
    ended (``CLOSE_WAIT`` gave up on it, not the code's end), and that the shutdown then
    counted the code still running."""
    try:
        replies, ended = asyncio.run(_left_then_shut_down(app, path, entered, release))
    finally:
        release.set()
    assert ended
    assert [reply["type"] for reply in replies][-1] == "lifespan.shutdown.complete"
    assert any("has not returned in time" in line for line in _warnings(caplog))
    assert any("1 call of def code still running" in line for line in _warnings(caplog))


def test_a_shutdown_with_a_sync_stream_given_up_on_still_running_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: the client left while the stream's step ran in its thread: the request's task
    # gives up on it after CLOSE_WAIT (review416), with no cancellation, and the pool was
    # not marked cut off: the shutdown hooks ran under the step with no word (review418).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    caplog.set_level(logging.WARNING, logger="microweb")
    entered, release = threading.Event(), threading.Event()
    app = App()

    @app.get("/stream")
    def stream(request: Request) -> Response:
        def chunks() -> Iterator[bytes]:
            yield b"first"
            entered.set()
            release.wait()
            yield b"late"

        return Response.stream(chunks())

    _assert_given_up_then_counted(app, "/stream", entered, release, caplog)


def test_a_shutdown_with_an_unsent_streams_close_given_up_on_still_running_says_so(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NOTE: a 204's stream is closed, not sent; its sync close, in the pool, given up on after
    # CLOSE_WAIT, ran on uncounted at the shutdown (review418).
    monkeypatch.setattr("microweb._close_wait.CLOSE_WAIT", 0.2)
    caplog.set_level(logging.WARNING, logger="microweb")
    entered, release = threading.Event(), threading.Event()
    app = App()

    class SlowClose:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"never"])

        def close(self) -> None:
            entered.set()
            release.wait()

    @app.get("/none")
    def none(request: Request) -> Response:
        return Response.stream(SlowClose(), status=204)

    _assert_given_up_then_counted(app, "/none", entered, release, caplog)
