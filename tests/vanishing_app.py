"""The app that ``test_servers_vanishing.py`` runs under ``microweb serve``: streams that send
as fast as the client takes them, and what the server process holds open.
"""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator, Iterator

from microweb import App, Request, Response

app = App()

CHUNK = b"x" * 1024 * 1024
# NOTE: a bound, should a client's leaving never be seen: 20 GiB.
STEPS = 20_000


def _sync_chunks() -> Iterator[bytes]:
    for _ in range(STEPS):
        yield CHUNK


async def _async_chunks() -> AsyncIterator[bytes]:
    for _ in range(STEPS):
        yield CHUNK  # NOTE: no await of its own: the server's send() gives the loop its turns.


@app.get("/fast/sync")
def fast_sync(request: Request) -> Response:
    """Stream 1 MiB chunks as fast as the client reads them."""
    return Response.stream(_sync_chunks(), media_type="application/octet-stream")


@app.get("/fast/async")
async def fast_async(request: Request) -> Response:
    """The async twin of ``/fast/sync``."""
    return Response.stream(_async_chunks(), media_type="application/octet-stream")


@app.get("/held")
def held(request: Request) -> dict[str, int]:
    """What the server process holds: its open file descriptors and threads."""
    return {
        "fds": len(os.listdir(f"/proc/{os.getpid()}/fd")),
        "threads": threading.active_count(),
    }
