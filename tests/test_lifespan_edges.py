"""Startup and shutdown at their edges: messages out of order, steps that end the process."""

from __future__ import annotations

import asyncio

import pytest
from drive import drive_lifespan

from microweb import App


def test_an_asgi_shutdown_without_a_startup_runs_no_shutdown_step() -> None:
    events: list[str] = []
    app = App()

    @app.on_shutdown
    def shutdown() -> None:
        events.append("shutdown")

    sent = asyncio.run(drive_lifespan(app.as_asgi(), ["shutdown"]))
    assert [m["type"] for m in sent] == ["lifespan.shutdown.complete"]
    assert events == []


def test_an_asgi_second_shutdown_runs_the_shutdown_steps_once() -> None:
    events: list[str] = []
    app = App()

    @app.on_shutdown
    def shutdown() -> None:
        events.append("shutdown")

    asgi = app.as_asgi()

    async def serve() -> None:
        await drive_lifespan(asgi, ["startup", "shutdown"])
        sent = await drive_lifespan(asgi, ["shutdown"])
        assert [m["type"] for m in sent] == ["lifespan.shutdown.complete"]

    asyncio.run(serve())
    assert events == ["shutdown"]


@pytest.mark.parametrize("steps", [["shutdown"], ["startup", "shutdown", "shutdown"]])
def test_an_asgi_shutdown_without_a_startup_leaves_a_wsgi_callable_serving(
    steps: list[str],
) -> None:
    app = App()
    wsgi = app.as_wsgi()
    try:
        asgi = app.as_asgi()

        async def serve() -> None:
            if steps[0] == "startup":
                await drive_lifespan(asgi, steps[:2])
            await drive_lifespan(asgi, ["shutdown"])

        asyncio.run(serve())
        # NOTE: the WSGI callable's startup ran: a hook registered now would never run in it.
        with pytest.raises(RuntimeError, match="would never run"):
            app.on_startup(lambda: None)
    finally:
        wsgi.close()
