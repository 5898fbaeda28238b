"""The smallest microweb app: one static route and one route with a path parameter."""

from __future__ import annotations

from microweb import App, Request

app = App()


@app.get("/")
def index(request: Request) -> str:
    """Greet the world in plain text."""
    return "Hello, World!"


@app.get("/hello/{name}")
def hello(request: Request, name: str) -> str:
    """Greet ``name``, taken from the last path segment."""
    return f"Hello, {name}!"


# Serve the same app under either server, from the repository root:
#
#   microweb serve examples/hello.py                      # ASGI, Uvicorn (the default)
#   microweb serve examples/hello.py --server waitress    # WSGI, Waitress
#
# `--host` and `--port` choose the address (`python -m microweb serve ...` works too). The server
# commands take a module path, not a file path, so `uvicorn --factory examples/hello.py:...` is
# not valid; `microweb serve` accepts both spellings.
