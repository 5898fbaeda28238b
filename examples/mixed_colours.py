"""One app mixing ``def`` and ``async def`` code, served unchanged by Waitress or Uvicorn.

It shows every place where colour matters: handlers of both colours, a sync and an async
middleware flow, an async startup hook whose ``asyncio.Lock`` is shared by async handlers, and the
body twins (``request.json()`` in ``def`` code, ``await request.ajson()`` in ``async def`` code).

Serve it from the repository root with either server::

    microweb serve examples/mixed_colours.py                    # ASGI, Uvicorn
    microweb serve examples/mixed_colours.py --server waitress  # WSGI, Waitress
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from microweb import App, HTTPError, Request, Response

app = App()


@dataclass
class Visits:
    """A counter guarded by a lock; both are made by the startup hook, on the app's event loop."""

    lock: asyncio.Lock | None = None
    count: int = 0


visits = Visits()


@app.on_startup
async def open_resources() -> None:
    """Create the lock that async handlers share, on the loop they will run on."""
    visits.lock = asyncio.Lock()
    visits.count = 0


@app.on_shutdown
def close_resources() -> None:
    """Forget the lock; a sync hook is fine here since it does no I/O."""
    visits.lock = None


@app.middleware
def timing(request: Request) -> Generator[None, Response, None]:
    """Add a ``server-timing`` header with the time spent in the rest of the stack."""
    started = perf_counter()
    response = yield
    elapsed_ms = (perf_counter() - started) * 1000
    response.headers["server-timing"] = f"app;dur={elapsed_ms:.3f}"


@app.middleware
async def served_by(request: Request) -> AsyncGenerator[None, Response]:
    """Name the interface that served the request; an async flow may await."""
    await asyncio.sleep(0)
    response = yield
    response.headers["x-served-by"] = request.interface


@app.get("/")
def index(request: Request) -> str:
    """Answer in plain text from a ``def`` handler."""
    return "Hello, World!"


@app.get("/colour/sync")
def sync_colour(request: Request) -> dict[str, Any]:
    """Report the handler colour and interface from a ``def`` handler."""
    return {"colour": "sync", "interface": request.interface}


@app.get("/colour/async")
async def async_colour(request: Request) -> dict[str, Any]:
    """Report the handler colour and interface from an ``async def`` handler."""
    await asyncio.sleep(0)
    return {"colour": "async", "interface": request.interface}


@app.get("/users/{user_id:int}")
async def user(request: Request, user_id: int) -> dict[str, Any]:
    """Return a user by its integer id; a non-integer id does not match (404)."""
    return {"id": user_id, "name": f"user-{user_id}"}


@app.route("/items", methods=["GET", "POST"])
def items(request: Request) -> Response:
    """List items on GET, create one on POST; other methods get 405 with ``Allow``."""
    if request.method == "POST":
        return Response.json(request.json(), status=201)
    return Response.json([{"id": 1}, {"id": 2}])


@app.post("/echo/sync")
def echo_sync(request: Request) -> dict[str, Any]:
    """Echo a JSON body, read with the sync twin in a ``def`` handler."""
    return {"colour": "sync", "echo": request.json()}


@app.post("/echo/async")
async def echo_async(request: Request) -> dict[str, Any]:
    """Echo a JSON body, read with the async twin in an ``async def`` handler."""
    return {"colour": "async", "echo": await request.ajson()}


@app.post("/visits")
async def visit(request: Request) -> dict[str, Any]:
    """Count a visit under the lock that the startup hook created."""
    if visits.lock is None:
        raise HTTPError(503, "startup has not run")
    async with visits.lock:
        visits.count += 1
        return {"count": visits.count}
