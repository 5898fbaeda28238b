"""``microweb serve --keep-alive S``: how long a kept-alive connection may stay idle between
requests, the same under Waitress and Uvicorn.

An idle connection (its answer sent, no byte of a next request) is closed after about ``S``
seconds; one with a request in flight, or one that keeps asking, is not; and a new connection
that has sent nothing yet is left to ``--client-timeout``, as its first head is due.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from servers import HOST, ServedWay, module_server, serving_way

from microweb import App, Request
from microweb._waitress import OrderlyWaitress, _in_flight

pytestmark = pytest.mark.servers

APP = "serving_app:app"
KEEP_ALIVE = 1.5


server = module_server(APP, ["waitress", "uvicorn-httptools"], ["--keep-alive", str(KEEP_ALIVE)])


def _ask(conn: socket.socket, path: str = "/where") -> int:
    """Send a GET for ``path`` on ``conn`` and read its whole answer; return its status."""
    conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = conn.recv(65536)
        assert chunk, f"closed before the answer's head: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(
        int(value) for name, _, value in (line.partition(b":") for line in lines[1:])
        if name.strip().lower() == b"content-length"
    )  # fmt: skip
    while len(body) < length:
        chunk = conn.recv(65536)
        assert chunk, "closed in the middle of the answer's body"
        body += chunk
    assert len(body) == length, "more than one answer came"
    return int(lines[0].split(b" ", 2)[1])


def _seconds_until_closed(conn: socket.socket) -> float:
    """Wait (10 s at most) for the server to close ``conn``; return how long that took."""
    began = time.monotonic()
    conn.settimeout(10)
    with contextlib.suppress(ConnectionResetError):
        assert conn.recv(100) == b""
    return time.monotonic() - began


def test_an_idle_kept_alive_connection_is_closed_after_keep_alive(server: ServedWay) -> None:
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        assert _ask(conn) == 200
        # NOTE: Waitress looks at its connections a few times within the keep-alive.
        assert KEEP_ALIVE - 0.2 < _seconds_until_closed(conn) < KEEP_ALIVE + 2


def test_a_connection_that_keeps_asking_stays_open(server: ServedWay) -> None:
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        began = time.monotonic()
        while time.monotonic() - began < 3 * KEEP_ALIVE:
            assert _ask(conn) == 200
            time.sleep(KEEP_ALIVE / 3)
        assert _ask(conn) == 200


def test_a_request_in_flight_longer_than_keep_alive_is_answered(server: ServedWay) -> None:
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        assert _ask(conn) == 200
        # NOTE: the handler takes twice the keep-alive; the connection is in use all along.
        assert _ask(conn, f"/slow?seconds={2 * KEEP_ALIVE}") == 200
        assert _ask(conn) == 200


def test_a_new_connection_is_left_to_the_client_timeout(server: ServedWay) -> None:
    # NOTE: its first head is due (--client-timeout, 120 s): not idle between requests.
    with socket.create_connection((HOST, server.port), timeout=10) as conn:
        time.sleep(2 * KEEP_ALIVE)
        assert _ask(conn) == 200


@pytest.mark.parametrize("way", ["waitress", "uvicorn-httptools"])
def test_keep_alive_0_closes_a_connection_once_its_answer_is_sent(
    way: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    with (
        serving_way(way, APP, tmp_path_factory, ["--keep-alive", "0"]) as served,
        socket.create_connection((HOST, served.port), timeout=10) as conn,
    ):
        assert _ask(conn) == 200
        # NOTE: Uvicorn at its loop's next turn, Waitress at its next look (every 0.05 s).
        assert _seconds_until_closed(conn) < 1


def _step_until(server: OrderlyWaitress, done: Callable[[], bool]) -> None:
    """Run ``server``'s loop, one poll at a time, until ``done()`` (5 s at most)."""
    deadline = time.monotonic() + 5
    while not done():
        assert time.monotonic() < deadline, "the server never got there"
        server._step(0.01)


def test_a_request_come_while_the_answer_went_out_is_no_idle_keep_alive_0() -> None:
    # NOTE: Waitress reads no more of a connection while an answer is still to go out: a
    # pipelined request waited unread in the socket. Taken for idle once the answer had gone
    # (--keep-alive 0), the connection was closed with it unread, which sends a reset: the
    # request was never answered, and the client lost the end of the answer before it (a
    # 4 MB answer cut at 3 MB, one in 30 tries).
    app = App()

    @app.get("/")
    def home(request: Request) -> str:
        return "home"

    wsgi = app.as_wsgi()
    server = OrderlyWaitress(wsgi, 1.0, keep_alive=0, host=HOST, port=0)
    port = server.listeners[0].effective_port
    try:
        with socket.create_connection((HOST, port), timeout=5) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            channels: list[Any] = []

            def answered() -> bool:
                channels[:] = list(server._channels())
                return bool(channels) and channels[0].answered and not _in_flight(channels[0])

            _step_until(server, answered)
            # NOTE: the next request is in the socket, not yet read by the server.
            conn.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            time.sleep(0.1)
            server.next_stall_check = 0.0
            server._close_stalled()
            received = b""

            def both() -> bool:
                nonlocal received
                conn.setblocking(False)
                try:
                    received += conn.recv(65536)
                except BlockingIOError:
                    pass
                except ConnectionResetError:
                    return True
                return received.count(b"HTTP/1.1 200") == 2 or not channels[0].connected

            _step_until(server, both)
            assert received.count(b"HTTP/1.1 200") == 2, received
    finally:
        server.signal = 15
        server.hurry = True
        server._drain()
        wsgi.close()


def test_a_keep_alive_past_the_client_timeout_holds_under_waitress() -> None:
    # NOTE: Waitress's own look for idle connections closed a kept-alive one after
    # channel_timeout (--client-timeout): --keep-alive 4 --client-timeout 1 closed it after
    # 1 s, where Uvicorn held it 4 s. A connection that owes its first head still has 1 s.
    app = App()

    @app.get("/")
    def home(request: Request) -> str:
        return "home"

    wsgi = app.as_wsgi()
    server = OrderlyWaitress(
        wsgi, 1.0, keep_alive=30, host=HOST, port=0, channel_timeout=1, cleanup_interval=1
    )
    port = server.listeners[0].effective_port
    try:
        with (
            socket.create_connection((HOST, port), timeout=5) as kept,
            socket.create_connection((HOST, port), timeout=5) as owing,
        ):
            kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            kept.setblocking(False)
            received = b""

            def answered() -> bool:
                nonlocal received
                with contextlib.suppress(BlockingIOError):
                    received += kept.recv(65536)
                return received.endswith(b"home")

            _step_until(server, answered)
            began = time.monotonic()
            while time.monotonic() - began < 2.5:
                server._step(0.05)
                server._close_stalled()
            channels = list(server._channels())
            assert [channel.answered for channel in channels] == [True], channels
            assert channels[0].connected
            owing.settimeout(1)
            assert owing.recv(10) == b""
    finally:
        server.signal = 15
        server.hurry = True
        server._drain()
        wsgi.close()
