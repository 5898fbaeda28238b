"""The app that ``test_servers_unread.py`` runs under ``microweb serve``: an answer of the size
the path asks for, to a client that reads none of it."""

from __future__ import annotations

from microweb import App, Request, Response

app = App()


@app.get("/answer/{size:int}")
def answer(request: Request, size: int) -> Response:
    """Answer ``size`` bytes in one body."""
    return Response(b"x" * size)
