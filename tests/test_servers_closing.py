"""A streamed response's close that does not return in time, through real servers: each says so
in its log, naming the request; Uvicorn (ASGI) ends the response after ``CLOSE_WAIT``, Waitress
(WSGI) only once the close has returned, in the thread it held (see ``closing_app.py``)."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

import httpx
import pytest
from closing_app import SLOW_CLOSE
from servers import (
    HOST,
    free_port,
    plain_command,
    read_log,
    running,
    serve_command,
    wait_for_server_to_close,
)

pytestmark = pytest.mark.servers


@pytest.mark.parametrize("server", ["waitress", "uvicorn"])
def test_a_close_that_does_not_return_in_time_is_in_the_servers_log(
    server: str, tmp_path: Path
) -> None:
    # NOTE: under Waitress such a close held one of its 4 threads with no word in any log: four
    # of them stopped the server, and nothing said why.
    port, log = free_port(), tmp_path / "server.log"
    with running(plain_command(server, "closing_app:app", port), port=port, log=log):
        started = time.monotonic()
        response = httpx.get(f"http://{HOST}:{port}/slow-close", timeout=10)
        took = time.monotonic() - started
        told = "GET /slow-close: the close of its streamed response, closing_app.SlowClose, "
        deadline = time.monotonic() + 5
        while read_log(log).count(told) < (2 if server == "waitress" else 1):
            assert time.monotonic() < deadline, read_log(log)
            time.sleep(0.05)
    assert response.content == b"nene"
    text = read_log(log)
    assert f"{told}has not returned in time" in text, text
    if server == "waitress":
        # NOTE: the end of the chunked response came once the close returned.
        assert took >= SLOW_CLOSE
        assert "it runs in the WSGI server's thread, which it holds" in text, text
        assert f"{told}returned after" in text, text
    else:
        assert took < SLOW_CLOSE
        assert "the response is ended, and the close runs on" in text, text


@pytest.mark.parametrize("way", ["uvicorn-h11", "uvicorn-httptools"])
def test_a_client_that_leaves_while_a_finally_awaits_past_close_wait(
    way: str, tmp_path: Path
) -> None:
    # NOTE: the client leaves as the async generator awaits: its finally runs in the cut
    # sending task and outlasts CLOSE_WAIT. Said once, the connection closed, the finally and
    # the after-response work each run once, the after-response work first (review418).
    if way.endswith("httptools"):
        pytest.importorskip("httptools")
    port, log = free_port(), tmp_path / "server.log"
    with running(serve_command(way, "closing_app:app", port), port=port, log=log):
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(f"GET /slow-finally HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            received = b""
            while b"first" not in received:
                piece = sock.recv(4096)
                assert piece, received
                received += piece
            # NOTE: reset, not a FIN, which the server takes for a half-close: an idle stream
            # hears of a client that closed outright at its next write only.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        wait_for_server_to_close(port, log)
        deadline = time.monotonic() + SLOW_CLOSE + 5
        while "slow-finally: finally ended" not in read_log(log):
            assert time.monotonic() < deadline, read_log(log)
            time.sleep(0.05)
        time.sleep(0.3)  # NOTE: for anything said twice, or late.
        text = read_log(log)
    told = "GET /slow-finally: the close of its streamed response, "
    assert text.count(told) == 1, text
    assert "has not returned in time" in text, text
    assert text.count("slow-finally: after response") == 1, text
    assert text.count("slow-finally: finally ended") == 1, text
    assert text.index("slow-finally: after response") < text.index("finally ended"), text
    assert "Traceback" not in text, text
