"""Waitress's lingering close after a refusal, attacked: pipelined requests behind a refused
one, and the orderly stop with such a connection still lingering.

``tests/hostile_app.py`` runs under ``microweb serve --server waitress``: once for the module,
and once more for a test that stops it with SIGTERM.
"""

from __future__ import annotations

import functools
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import (
    HOST,
    free_port,
    read_log,
    read_until_closed,
    serve_command,
    serving_module,
    start,
    statuses,
    stop,
)

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
]

APP = "hostile_app:app"
# NOTE: a head Waitress refuses (400: a coding not ending in chunked).
REFUSED = b"GET /url HTTP/1.1\r\nHost: bad\r\nTransfer-Encoding: gzip\r\n\r\n"
GOOD = b"GET /url HTTP/1.1\r\nHost: good\r\n\r\n"


@pytest.fixture(scope="module")
def waitress_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """The port of the hostile app under Waitress, for the whole module."""
    command = functools.partial(serve_command, "waitress", APP)
    with serving_module("waitress", command, tmp_path_factory) as (port, _):
        yield port


def test_requests_pipelined_around_a_refused_one(waitress_port: int) -> None:
    # NOTE: the one before is answered whole, the one after not at all, and the connection
    # ends (lingering, the server shuts its side down: the client reads to the end).
    with socket.create_connection((HOST, waitress_port), timeout=5) as sock:
        sock.sendall(GOOD + REFUSED + GOOD)
        answer = read_until_closed(sock)
    assert statuses(answer) == [b"200", b"400"], answer
    assert answer.count(b"http://good/url") == 1, answer


def test_a_stop_does_not_wait_for_a_request_pipelined_behind_a_refused_one(
    tmp_path: Path,
) -> None:
    # NOTE: the head of a request pipelined after the refused one, its body still to come, was
    # counted in flight while its connection lingered: the stop waited out the whole grace
    # period for a request that is never answered, and logged it as cut off.
    port = free_port()
    log = tmp_path / "server.log"
    command = [*serve_command("waitress", APP, port), "--graceful-timeout", "8"]
    process = start(command, port=port, log=log)
    try:
        pending = b"POST /text HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab"
        with socket.create_connection((HOST, port), timeout=5) as sock:
            sock.sendall(REFUSED + pending)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = sock.recv(65536)
                assert chunk, received
                received += chunk
            assert statuses(received) == [b"400"], received
            began = time.monotonic()
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=10)
            took = time.monotonic() - began
    finally:
        stop(process)
    assert took < 3, read_log(log)
    assert "cut off" not in read_log(log), read_log(log)
