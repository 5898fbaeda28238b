"""An app for the file-system tests through real servers: ``Static`` over ``FILES_APP_DIR``,
and ``/direct/{name}``, which sends a file of that folder with ``Response.file`` and handles no
error (an ordinary mistake: the file can't be read)."""

from __future__ import annotations

import os

from microweb import App, Request, Response
from microweb.plugins import Static

FOLDER = os.environ["FILES_APP_DIR"]

app = App()
app.install(Static(FOLDER))


@app.get("/direct/{name}")
def direct(request: Request, name: str) -> Response:
    return Response.file(os.path.join(FOLDER, name))
