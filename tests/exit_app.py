"""An app whose background task calls ``sys.exit(4)``: served by test_servers_exit.py."""

from __future__ import annotations

import asyncio
import sys

from microweb import App, Request

app = App()
# NOTE: kept, as an app keeps its background tasks.
TASKS: list[asyncio.Task[None]] = []


async def _leave() -> None:
    await asyncio.sleep(0)
    sys.exit(4)


@app.get("/task")
async def task(request: Request) -> str:
    """Start a task that calls ``sys.exit(4)``, and answer at once."""
    TASKS.append(asyncio.get_running_loop().create_task(_leave()))
    return "started"


@app.get("/handler")
async def handler(request: Request) -> str:
    """Call ``sys.exit(3)`` in the handler itself."""
    sys.exit(3)


@app.get("/fine")
async def fine(request: Request) -> str:
    """Answer after one turn of the loop."""
    await asyncio.sleep(0)
    return "fine"


async def _leave_as_cancelled() -> None:
    try:
        await asyncio.sleep(1000)
    finally:
        sys.exit(9)


@app.get("/at-stop")
async def at_stop(request: Request) -> str:
    """Start a task that calls ``sys.exit(9)`` as the app loop's stop cancels it."""
    TASKS.append(asyncio.get_running_loop().create_task(_leave_as_cancelled()))
    return "waiting"
