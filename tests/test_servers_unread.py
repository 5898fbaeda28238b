"""A client that asks and reads none of its answer, under ``microweb serve`` with a tiny
``--client-timeout``, under Waitress and Uvicorn alike (review331).

A small answer goes whole into the kernel's queues: for the server it is sent, and the
connection is idle, closed after ``--keep-alive`` (at once after ``Connection: close``), not
held for ever. A large one stays partly in the server's buffer, and the connection is closed
after ``--client-timeout``. (An answer whose end stays in Uvicorn's transport buffer below its
high-water mark, which needs the sockets' buffers set small, is in ``test_stall.py``.)
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import HOST, ServedWay, serve_command, serving_module, wait_for

pytestmark = pytest.mark.servers

APP = "unread_app:app"
CLIENT_TIMEOUT = 1
KEEP_ALIVE = 5.0
# NOTE: /proc/net/tcp's states of a connection the server has not closed yet.
_HELD = {"01", "08"}  # ESTABLISHED, CLOSE_WAIT


def _command(way: str, port: int) -> list[str]:
    options = ("--client-timeout", str(CLIENT_TIMEOUT), "--keep-alive", str(KEEP_ALIVE))
    return [*serve_command(way, APP, port), *options]


@pytest.fixture(scope="module", params=["waitress", "uvicorn-httptools"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWay]:
    """Run the app under one server, for the whole module."""
    if not Path("/proc/net/tcp").exists():
        pytest.skip("the server's side of a connection is read from /proc/net/tcp (Linux)")
    way = str(request.param)
    with serving_module(way, functools.partial(_command, way), tmp_path_factory) as (port, log):
        yield ServedWay(way, port, log)


def _held_by_server(port: int, client: socket.socket) -> bool:
    """Whether the server still holds its side of ``client``'s connection to ``port``."""
    peer = f":{client.getsockname()[1]:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        row = line.split()
        if row[1].endswith(f":{port:04X}") and row[2].endswith(peer):
            return row[3] in _HELD
    return False  # NOTE: gone: closed, and all it had was sent.


def _seconds_held(server: ServedWay, size: int, connection: str) -> float:
    """Ask for ``size`` bytes and read none of them; return how long the server held the
    connection (15 s at most)."""
    with socket.socket() as client:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.connect((HOST, server.port))
        request = f"GET /answer/{size} HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n"
        client.sendall(request.encode())
        began = time.monotonic()
        held = functools.partial(_held_by_server, server.port, client)
        wait_for(lambda: not held(), "close by the server", server.log, timeout=15)
        return time.monotonic() - began


def test_a_small_answer_unread_is_sent_and_its_connection_closed_after_keep_alive(
    server: ServedWay,
) -> None:
    # NOTE: not after --client-timeout: the client owes nothing, and the server nothing more.
    assert KEEP_ALIVE - 0.5 < _seconds_held(server, 1000, "keep-alive") < KEEP_ALIVE + 3


def test_a_small_answer_unread_with_connection_close_is_closed_at_once(
    server: ServedWay,
) -> None:
    assert _seconds_held(server, 1000, "close") < 1


@pytest.mark.parametrize("connection", ["keep-alive", "close"])
def test_a_large_answer_unread_is_closed_after_client_timeout(
    server: ServedWay, connection: str
) -> None:
    # NOTE: megabytes stay in the server's buffer, past what the kernel's queues take.
    assert _seconds_held(server, 16 << 20, connection) < CLIENT_TIMEOUT + 3
