"""An app whose handlers read one body in several tasks at once, and whose flow reads a form
before routing, for ``test_servers_shared_reads``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from microweb import App, Request

app = App()


@app.middleware
async def early(request: Request) -> AsyncIterator[None]:
    if request.path == "/kept":
        await request.aform()  # NOTE: under the app's limits, before routing.
    yield


# NOTE: max_field_size holds for a urlencoded field too (review261): the test's field of
# 300,000 bytes was a 413 under the default 64 KiB.
@app.post("/forms", limits={"max_field_size": 1_000_000})
async def forms(request: Request) -> dict[str, Any]:
    found = await asyncio.gather(request.aform(), request.aform(), request.aform())
    return {"x": [form["x"] for form in found]}


@app.post("/whole")
async def whole(request: Request) -> dict[str, Any]:
    body, text, data = await asyncio.gather(request.aread(), request.atext(), request.ajson())
    return {"sizes": [len(body), len(text)], "data": data}


@app.post("/kept", limits={"max_form_files": 1})
def kept(request: Request) -> dict[str, int]:
    return {"items": len(request.form().multi_items())}
