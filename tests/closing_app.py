"""An app whose streamed response's close takes ``SLOW_CLOSE`` seconds, for
``test_servers_closing.py``; ``CLOSE_WAIT`` is cut to ``CLOSE_WAIT`` here, in the server."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator

import microweb._close_wait
from microweb import App, Request, Response

CLOSE_WAIT = 0.3
SLOW_CLOSE = 1.5
microweb._close_wait.CLOSE_WAIT = CLOSE_WAIT


class SlowClose:
    """Two chunks, then a sync ``close()`` that takes ``SLOW_CLOSE`` seconds (a close blocked
    on a connection that does not answer)."""

    def __iter__(self) -> Iterator[bytes]:
        return iter([b"ne", b"ne"])

    def close(self) -> None:
        time.sleep(SLOW_CLOSE)


app = App()


@app.get("/slow-close")
def slow_close(request: Request) -> Response:
    return Response.stream(SlowClose(), "text/plain")


@app.get("/slow-finally")
async def slow_finally(request: Request) -> Response:
    # NOTE: cut where it awaits as the client leaves: its finally runs in the sending task's
    # cancelled step, and awaits past CLOSE_WAIT (review416, review418).
    async def chunks() -> AsyncIterator[bytes]:
        yield b"first\n"
        try:
            await asyncio.sleep(60)
            yield b"never\n"
        finally:
            await asyncio.sleep(SLOW_CLOSE)
            print("slow-finally: finally ended", file=sys.stderr, flush=True)

    request.after_response(print, "slow-finally: after response", file=sys.stderr, flush=True)
    return Response.stream(chunks(), "text/plain")
