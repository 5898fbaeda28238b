"""Clients that vanish in the middle of a streamed answer, through ``microweb serve``.

``tests/vanishing_app.py`` runs under Waitress and under Uvicorn with its httptools protocol,
as ``microweb serve`` runs them. Each client asks for an endless stream, reads a little of it
and resets the connection.
"""

from __future__ import annotations

import functools
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from servers import HOST, read_log, serve_command, serving_module, wait_for

pytestmark = pytest.mark.servers

APP = "vanishing_app:app"
CLIENTS = 40


@dataclass(frozen=True)
class Server:
    """A running server: its name, port and log."""

    name: str
    port: int
    log: Path


@pytest.fixture(scope="module", params=["waitress", "uvicorn-httptools"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Run the app under one server, for the whole module."""
    name = str(request.param)
    with serving_module(
        name, functools.partial(serve_command, name, APP), tmp_path_factory
    ) as found:
        yield Server(name, *found)


def _leave_mid_stream(server: Server, path: str) -> None:
    """Ask for ``path``, read a little of its stream, and reset the connection."""
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(65536)
        # NOTE: a reset (linger 0), not a close: the server's next write fails at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _held(server: Server) -> dict[str, int]:
    held: dict[str, int] = httpx.get(f"http://{HOST}:{server.port}/held").json()
    return held


def _leave_many(server: Server, path: str) -> None:
    for _ in range(CLIENTS):
        _leave_mid_stream(server, path)


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_clients_leaving_mid_stream_log_nothing(server: Server, colour: str) -> None:
    # NOTE: Uvicorn's send() writes to a connection whose write has failed, until the loop
    # next turns and tells it the client left; asyncio logged "socket.send() raised
    # exception." for each such write past the fifth: 40 clients of /fast/async made 900
    # lines, with nothing in them to act on.
    _leave_many(server, f"/fast/{colour}")
    log = read_log(server.log)
    assert "raised exception" not in log, log[-2000:]
    assert "Traceback" not in log, log[-2000:]


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_clients_leaving_mid_stream_leave_nothing_open(server: Server, colour: str) -> None:
    # NOTE: a first round starts the threads the streams need (Uvicorn's pool grows as needed).
    _leave_many(server, f"/fast/{colour}")
    before = _held(server)
    _leave_many(server, f"/fast/{colour}")
    wait_for(lambda: _held(server) == before, f"{before} held again", server.log)
