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

    async def serve() -> list[dict[str, Any]]:
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
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            message = next(messages, None)
            if message is None:
                await done.wait()
                return {"type": "http.disconnect"}
            return message

        async def send(message: dict[str, Any]) -> None:
            pass

        while not replies:
            await asyncio.sleep(0)
        request = asyncio.ensure_future(asgi(http_scope(path="/slow"), receive, send))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait)
        request.cancel()  # NOTE: as Uvicorn does at the end of its grace period.
        await asyncio.gather(request, return_exceptions=True)
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
        return replies

    try:
        replies = asyncio.run(serve())
    finally:
        release.set()  # NOTE: the handler's thread ends, whatever failed.
    assert [reply["type"] for reply in replies] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    assert hooks_saw == [True]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 call of def code still running" in line for line in warnings), warnings


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

    async def serve() -> list[dict[str, Any]]:
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
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            message = next(messages, None)
            if message is None:
                await done.wait()
                return {"type": "http.disconnect"}
            return message

        async def send(message: dict[str, Any]) -> None:
            pass

        while not replies:
            await asyncio.sleep(0)
        request = asyncio.ensure_future(asgi(http_scope(path="/stream"), receive, send))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait)
        # NOTE: as Uvicorn does at the end of its grace period; the request's task then waits
        # for the stream's step, which goes on in its thread, and Uvicorn shuts down meanwhile.
        request.cancel()
        for _ in range(100):
            await asyncio.sleep(0)  # NOTE: loop turns, for the cancellation to be taken.
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan
        release.set()
        await asyncio.gather(request, return_exceptions=True)
        return replies

    replies = asyncio.run(serve())
    assert [reply["type"] for reply in replies][-1] == "lifespan.shutdown.complete"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("1 call of def code still running" in line for line in warnings), warnings
