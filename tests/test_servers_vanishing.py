"""Clients that vanish in the middle of a streamed answer, through ``microweb serve``.

``tests/vanishing_app.py`` runs under Waitress and under Uvicorn with its httptools protocol,
as ``microweb serve`` runs them. Each client asks for an endless stream, reads a little of it
and resets the connection. And, at Waitress's connection limit, clients that go quiet for a
while with a request in flight, which must be answered whole, while idle ones are closed.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest
from servers import (
    HOST,
    ServedWay,
    module_server,
    read_log,
    serve_command,
    serving_module,
    wait_for,
)
from vanishing_app import BIG

pytestmark = pytest.mark.servers

APP = "vanishing_app:app"
CLIENTS = 40


server = module_server(APP, ["waitress", "uvicorn-httptools"])


def _leave_mid_stream(server: ServedWay, path: str) -> None:
    """Ask for ``path``, read a little of its stream, and reset the connection."""
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(65536)
        # NOTE: a reset (linger 0), not a close: the server's next write fails at once.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _held(server: ServedWay) -> dict[str, int]:
    held: dict[str, int] = httpx.get(f"http://{HOST}:{server.port}/held").json()
    return held


def _leave_many(server: ServedWay, path: str) -> None:
    for _ in range(CLIENTS):
        _leave_mid_stream(server, path)


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_clients_leaving_mid_stream_log_nothing(server: ServedWay, colour: str) -> None:
    # NOTE: Uvicorn's send() writes to a connection whose write has failed, until the loop
    # next turns and tells it the client left; asyncio logged "socket.send() raised
    # exception." for each such write past the fifth: 40 clients of /fast/async made 900
    # lines, with nothing in them to act on.
    _leave_many(server, f"/fast/{colour}")
    log = read_log(server.log)
    assert "raised exception" not in log, log[-2000:]
    assert "Traceback" not in log, log[-2000:]


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_clients_leaving_mid_stream_leave_nothing_open(server: ServedWay, colour: str) -> None:
    # NOTE: a first round starts the threads the streams need (Uvicorn's pool grows as needed).
    _leave_many(server, f"/fast/{colour}")
    before = _held(server)
    _leave_many(server, f"/fast/{colour}")

    def settled() -> bool:
        # NOTE: a leak holds one of each a client (CLIENTS); a thread pool may start a thread
        # or two more in the second round when the machine is busy (the full suite beside it
        # failed an exact comparison once), and keeps them.
        held = _held(server)
        return held["fds"] <= before["fds"] and held["threads"] <= before["threads"] + 4

    wait_for(settled, f"{before} held again", server.log)


def _closed_after_leaving(server: ServedWay, colour: str) -> float:
    """Leave a ``/timed`` stream mid-way with a reset; return how long after that the app's
    stream was closed (seconds)."""
    token = uuid.uuid4().hex
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(f"GET /timed/{colour}/{token} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        sock.recv(65536)
        # NOTE: the socket's buffers fill, and the server waits to write on.
        time.sleep(0.05)
        sock.recv(65536)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        left = time.monotonic()
    url = f"http://{HOST}:{server.port}/closed-at/{token}"
    deadline = time.monotonic() + 10
    while (at := httpx.get(url).json()["at"]) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert at is not None, f"the stream ran on 10 s after its client left\n{read_log(server.log)}"
    return float(at) - left


def test_an_async_stream_stops_soon_after_its_client_left(server: ServedWay) -> None:
    # NOTE: under Uvicorn, an async stream that awaits nothing of its own ran on for about
    # 20 ms (15 at best) after the reset: the driver's watcher heard of it some turns of the
    # loop later, each after a TURN (5 ms) of the stream's sending. The driver now asks the
    # protocol at each turn (SENDS_DROPPED): under 1 ms here, as under Waitress (a reset
    # while the writes go through takes a TURN or so, 5 to 8 ms, where it took 15 to 30).
    # The bound lies between the two (not at 8 ms): the suite runs beside other tests.
    best = min(_closed_after_leaving(server, "async") for _ in range(5))
    assert best < 0.012, f"{best * 1000:.1f} ms"


# NOTE: the connections Waitress serves at once in the test below (--connection-limit).
LIMIT = 8


@pytest.fixture(scope="module")
def waitress_at_a_small_limit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedWay]:
    """Waitress as ``microweb serve --connection-limit 8 --keep-alive 30`` runs it."""

    # NOTE: a keep-alive longer than the 5 s after which, at the limit, an idle connection is
    # closed all the same (IDLE_AT_LIMIT), as behind a proxy that keeps its connections.
    def command(port: int) -> list[str]:
        limit = ["--connection-limit", str(LIMIT), "--keep-alive", "30"]
        return [*serve_command("waitress", APP, port), *limit]

    with serving_module("waitress-limit", command, tmp_path_factory) as found:
        yield ServedWay("waitress", *found)


def test_idle_kept_alive_connections_at_the_limit_let_a_new_client_in(
    waitress_at_a_small_limit: ServedWay,
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


# NOTE: seconds a client below stays silent: past the 5 s after which Waitress, at its
# connection limit, closes a connection that owes nothing (IDLE_AT_LIMIT).
QUIET = 6.5


def _answers(sock: socket.socket) -> bytes:
    """Read what the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def _slow_upload(sock: socket.socket) -> bytes:
    sock.sendall(
        b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\na"
    )
    time.sleep(QUIET)
    sock.sendall(b"bcde")
    return _answers(sock)


def _long_handler(sock: socket.socket) -> bytes:
    sock.sendall(f"GET /sleep?s={QUIET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return _answers(sock)


def _slow_reader(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(QUIET)
    return _answers(sock)


def _paused_stream(sock: socket.socket) -> bytes:
    sock.sendall(f"GET /paused?s={QUIET} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return _answers(sock)


def _expecting_continue(sock: socket.socket) -> bytes:
    head = b"POST /size HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n"
    sock.sendall(head + b"Connection: close\r\n\r\n")
    told = sock.recv(65536)
    time.sleep(QUIET)
    sock.sendall(b"abc")
    return told + _answers(sock)


def _pipelined(sock: socket.socket) -> bytes:
    first = f"GET /sleep?s={QUIET} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    sock.sendall(first + b"GET /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    return _answers(sock)


def _kept_alive(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = sock.recv(65536)
    return answer + _answers(sock)


def _half_a_head(sock: socket.socket) -> bytes:
    sock.sendall(b"GET /held HTTP/1.1\r\nHo")
    return _answers(sock)


# NOTE: each client with what it must receive; the last two owe nothing, so are closed.
AT_THE_LIMIT = {
    _slow_upload: [b"HTTP/1.1 200", b'{"size":5}'],
    _long_handler: [b"HTTP/1.1 200", b'"slept":6.5'],
    _slow_reader: [b"HTTP/1.1 200", b"y" * 65536],
    _paused_stream: [b"HTTP/1.1 200", b"first;", b"last;", b"\r\n0\r\n\r\n"],
    _expecting_continue: [b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", b'{"size":3}'],
    _pipelined: [b"HTTP/1.1 200", b'"slept":6.5', b'"threads"'],
    _kept_alive: [b"HTTP/1.1 200"],
    _half_a_head: [],
}


def _run_client(
    client: Callable[[socket.socket], bytes], sock: socket.socket, results: dict[str, bytes]
) -> None:
    try:
        results[client.__name__] = client(sock)
    except OSError as exc:  # NOTE: a timeout (20 s) too: the connection was held.
        results[client.__name__] = f"failed: {exc!r}".encode()


def test_at_the_limit_only_connections_owing_nothing_are_closed(
    waitress_at_a_small_limit: ServedWay,
) -> None:
    # NOTE: a connection with a request in flight sends or receives nothing for a while in
    # each of these; each must be answered whole. The kept-alive one and the one that sent
    # part of a head are closed after 5 s.
    server = waitress_at_a_small_limit
    clients = list(AT_THE_LIMIT)
    socks = [socket.create_connection((HOST, server.port), timeout=20) for _ in range(LIMIT)]
    results: dict[str, bytes] = {}
    try:
        threads = [
            threading.Thread(target=_run_client, args=(client, sock, results))
            for client, sock in zip(clients, socks, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        for sock in socks:
            sock.close()
    log = read_log(server.log)
    for client, parts in AT_THE_LIMIT.items():
        received = results[client.__name__]
        for part in [b"", *parts]:
            assert part in received, f"{client.__name__}: {received[:300]!r}\n{log}"
    assert len(results["_slow_reader"].partition(b"\r\n\r\n")[2]) == len(BIG)


def test_below_the_limit_idle_connections_are_kept(waitress_at_a_small_limit: ServedWay) -> None:
    # NOTE: below the limit, an idle one is closed after --keep-alive only (30 s here).
    server = waitress_at_a_small_limit
    with socket.create_connection((HOST, server.port), timeout=10) as sock:
        sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(65536)  # NOTE: the head at least; its body may come apart.
        time.sleep(QUIET)
        sock.sendall(b"GET /held HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = first + _answers(sock)
    assert received.count(b"HTTP/1.1 200 OK") == 2, f"{received!r}\n{read_log(server.log)}"
