"""An app whose handlers set a ContextVar and read it, for test_servers_context.py."""

from __future__ import annotations

import contextvars

from microweb import App, Request

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")

app = App()


@app.get("/set")
async def set_it(request: Request) -> str:
    SEEN.set("an earlier request's")
    return "set"


@app.get("/set-in-def")
def set_in_def(request: Request) -> str:
    SEEN.set("an earlier request's")
    return "set"


@app.get("/get")
async def get_it(request: Request) -> str:
    return SEEN.get()


@app.post("/set-and-read")
async def set_and_read(request: Request) -> str:
    # NOTE: set before the body is read: a read of a body past Uvicorn's high-water mark
    # resumes the connection's reading from this request's task.
    SEEN.set("an earlier request's")
    return str(len(await request.aread()))
