"""The app that ``test_servers_stalled_body.py`` runs under ``microweb serve``: a handler that
reads its request's body only after a while, as one that checks something first does."""

from __future__ import annotations

import asyncio

from microweb import App, Request

# NOTE: past the tests' --client-timeout (1 s), with room for a loaded machine's timer.
READ_AFTER = 4.0

app = App()


@app.post("/late")
async def late(request: Request) -> str:
    """Wait ``READ_AFTER`` seconds, then read the body; answer its length."""
    await asyncio.sleep(READ_AFTER)
    return str(len(await request.aread()))
