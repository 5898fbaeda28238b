"""Clients that vanish in the middle of a streamed answer, through ``microweb serve``.

``tests/vanishing_app.py`` runs under Waitress and under Uvicorn with its httptools protocol,
as ``microweb serve`` runs them. Each client asks for an endless stream, reads a little of it
and resets the connection.
"""

from __future__ import annotations

import functools
import socket
import struct
import time
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


# NOTE: the connections Waitress serves at once in the test below (--connection-limit).
LIMIT = 4


@pytest.fixture(scope="module")
def waitress_at_a_small_limit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Waitress as ``microweb serve --connection-limit 4`` runs it."""

    def command(port: int) -> list[str]:
        return [*serve_command("waitress", APP, port), "--connection-limit", str(LIMIT)]

    with serving_module("waitress-limit", command, tmp_path_factory) as found:
        yield Server("waitress", *found)


def test_idle_kept_alive_connections_at_the_limit_let_a_new_client_in(
    waitress_at_a_small_limit: Server,
) -> None:
    # NOTE: Waitress accepts no connection past its limit, and closed a kept-alive one only
    # once idle for --client-timeout (120 s): 98 browsers' idle connections, or as many
    # sockets a client opened and left, held every new client off for two minutes.
    server = waitress_at_a_small_limit
    held = []
    try:
        for _ in range(LIMIT):
            sock = socket.create_connection((HOST, server.port), timeout=5)
            held.append(sock)
            sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200"), read_log(server.log)
        started = time.monotonic()
        answer = httpx.get(f"http://{HOST}:{server.port}/held", timeout=30)
        waited = time.monotonic() - started
    finally:
        for sock in held:
            sock.close()
    assert answer.status_code == 200
    assert waited < 10, f"{waited:.1f} s\n{read_log(server.log)}"
