"""The app and the loop factory that ``test_servers_eager.py`` runs Uvicorn with: each task
of the loop starts eagerly (Python 3.12's ``asyncio.eager_task_factory``), as under
``uvicorn --loop eager_app:factory``; ``test_cli_options.py`` serves it with ``microweb
serve --loop`` and asks ``/loop`` which loop runs it.
"""

from __future__ import annotations

import asyncio

from microweb import App, Request

app = App()


def factory() -> asyncio.AbstractEventLoop:
    """Return a new event loop whose tasks start eagerly (Python 3.12 on)."""
    loop = asyncio.new_event_loop()
    loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined,unused-ignore]
    return loop


@app.get("/sync")
async def sync(request: Request) -> str:
    """Answer with the path the app was given, and whether its task was started eagerly."""
    eager = asyncio.get_running_loop().get_task_factory() is not None
    return f"{request.path} eager={eager}"


@app.get("/loop")
async def loop(request: Request) -> str:
    """Answer with the class of the event loop that runs the app, as module.name."""
    running = type(asyncio.get_running_loop())
    return f"{running.__module__}.{running.__qualname__}"


@app.post("/echo")
async def echo(request: Request) -> bytes:
    """Send the body back."""
    return await request.aread()
