"""A server's own command given the App instead of its entrypoint: the log says what to write.

``uvicorn mymod:app`` and ``waitress-serve mymod:app`` are Starlette and Flask habits. A
microweb ``App`` is neither a WSGI nor an ASGI application (``as_wsgi()`` and ``as_asgi()``
make those), so each request is a 500; the server logs the reason, which names both
entrypoints and ``microweb serve``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from servers import HOST, free_port, read_log, running

from microweb import App
from microweb._app import NOT_A_SERVER_APP

COMMANDS = {
    "uvicorn": lambda port: [
        *(sys.executable, "-m", "uvicorn", "serving_app:app"),
        *("--host", HOST, "--port", str(port), "--log-level", "warning"),
    ],
    "waitress": lambda port: [
        *(sys.executable, "-m", "waitress", "--host", HOST, "--port", str(port)),
        "serving_app:app",
    ],
}


@pytest.mark.servers
@pytest.mark.parametrize("server", sorted(COMMANDS))
def test_the_server_command_given_the_app_logs_what_to_serve(tmp_path: Path, server: str) -> None:
    port = free_port()
    log = tmp_path / f"{server}.log"
    with running(COMMANDS[server](port), port=port, log=log):
        response = httpx.get(f"http://{HOST}:{port}/", timeout=10)
    assert response.status_code == 500
    assert NOT_A_SERVER_APP in read_log(log)


def test_calling_the_app_as_wsgi_says_what_to_serve() -> None:
    with pytest.raises(TypeError) as caught:
        App()({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, lambda status, headers: None)
    assert str(caught.value) == NOT_A_SERVER_APP


def test_calling_the_app_as_asgi_says_what_to_serve() -> None:
    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        raise AssertionError(f"nothing is sent: {message}")

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    with pytest.raises(TypeError) as caught:
        App()(scope, receive, send)
    assert str(caught.value) == NOT_A_SERVER_APP
    # NOTE: Uvicorn takes a callable that is not a coroutine function for ASGI 2: app(scope).
    with pytest.raises(TypeError, match="not itself a WSGI or ASGI application"):
        App()(scope)
