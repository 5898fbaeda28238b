"""A ``def`` handler still running in the ASGI thread pool when the lifespan shuts down.

Uvicorn cancels the requests still running at the end of its grace period, then sends
``lifespan.shutdown``; a ``def`` handler of a cancelled request goes on in its thread, while
the shutdown hooks close what it may use, and it ends with the process. The log says so.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from drive import body_messages, http_scope

from microweb import App, Request


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
