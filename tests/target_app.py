"""The app that the request-target section of ``test_servers.py`` runs under real servers.

Every path answers with what the app sees of the request line and the Host; ``POST /read/sync``
and ``/read/async`` answer with the body they read, in each colour.
"""

from __future__ import annotations

from typing import Any

from microweb import App, Request

app = App()


@app.route("/", methods=["GET"])
@app.route("/{rest:path}", methods=["GET"])
def describe(request: Request, rest: str = "") -> dict[str, Any]:
    return {
        "path": request.path,
        "raw_path": request.raw_path.decode("latin-1"),
        "host": request.host,
        "url": request.url,
    }


@app.post("/read/sync")
def read_sync(request: Request) -> bytes:
    return request.read()


@app.post("/read/async")
async def read_async(request: Request) -> bytes:
    return await request.aread()
