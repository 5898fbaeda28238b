"""An app whose handlers set a ContextVar and read it: served by test_servers_context.py,
fed read by read to Uvicorn's protocols by test_httptools.py."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator

from microweb import App, Request, Response

SEEN: contextvars.ContextVar[str] = contextvars.ContextVar("seen", default="unset")


def context_app() -> App:
    """``/set``, ``/set-in-def`` (a ``def`` handler), ``/set-slowly`` (which answers after a
    pause) and ``POST /set-and-read`` (which then reads the body) set ``SEEN``; ``/get``
    answers with its value; ``/empties`` streams empty chunks among others, and sets ``SEEN``
    as it streams; ``/closes-setting`` streams an object that sets it as it streams and as it
    is closed, sent or not (a HEAD)."""
    app = App()

    @app.get("/set")
    async def set_it(request: Request) -> str:
        SEEN.set("an earlier request's")
        return "set"

    @app.get("/set-in-def")
    def set_in_def(request: Request) -> str:
        SEEN.set("an earlier request's")
        return "set"

    @app.get("/set-slowly")
    async def set_slowly(request: Request) -> str:
        SEEN.set("an earlier request's")
        await asyncio.sleep(0.01)
        return "set"

    @app.get("/empties")
    def empties(request: Request) -> Response:
        def chunks() -> Iterator[object]:
            yield b"a"
            for empty in (b"", "", bytearray(), memoryview(b"")):
                SEEN.set("an earlier stream's")
                yield empty
                yield "b"
            yield bytearray(b"c")

        return Response.stream(chunks())

    @app.route("/closes-setting", methods=["GET", "HEAD"])
    def closes_setting(request: Request) -> Response:
        class Chunks:
            def __iter__(self) -> Iterator[bytes]:
                SEEN.set("an earlier stream's")
                yield b"a"

            def close(self) -> None:
                SEEN.set("an earlier stream's close")

        return Response.stream(Chunks())

    @app.get("/get")
    async def get_it(request: Request) -> str:
        return SEEN.get()

    @app.post("/set-and-read")
    async def set_and_read(request: Request) -> str:
        # NOTE: set before the body is read: a read of a body past Uvicorn's high-water mark
        # resumes the connection's reading from this request's task.
        SEEN.set("an earlier request's")
        return str(len(await request.aread()))

    return app


app = context_app()
