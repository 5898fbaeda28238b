"""``microweb serve``'s Uvicorn protocols under an eager task factory (Python 3.12's, given to
Uvicorn as a loop factory: ``uvicorn --loop eager_app:factory``), where the app's first steps
run inside the protocol's ``create_task()`` (review362).

The protocols complete each request's cycle (its scope's path, the wrappers of its receive and
send) before its task is made; ``test_httptools.py`` checks each of them fed read by read.
"""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from collections.abc import Iterator

import pytest
from servers import HOST, read_until_closed, serving_module, statuses

pytestmark = [
    pytest.mark.servers,
    pytest.mark.skipif(
        not hasattr(asyncio, "eager_task_factory"), reason="no eager task factory before 3.12"
    ),
]

PROTOCOLS = {
    "uvicorn-h11": "microweb._h11:BoundedH11",
    "uvicorn-httptools": "microweb._httptools:BoundedHttpTools",
}


def _command(protocol: str, port: int) -> list[str]:
    return [
        *(sys.executable, "-m", "uvicorn", "--factory", "eager_app:app.as_asgi"),
        *("--host", HOST, "--port", str(port), "--log-level", "warning"),
        *("--http", protocol, "--loop", "eager_app:factory"),
    ]


@pytest.fixture(scope="module", params=sorted(PROTOCOLS))
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    name = str(request.param)
    command = lambda port: _command(PROTOCOLS[name], port)  # noqa: E731
    with serving_module(name, command, tmp_path_factory) as (found, _):
        yield found


def _half_closed(port: int, sent: bytes) -> tuple[bytes, float]:
    """Send ``sent``, end the sending side; return what came until the server closed, and
    how long that took."""
    with socket.create_connection((HOST, port), timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(sent)
        sock.shutdown(socket.SHUT_WR)
        return read_until_closed(sock), time.monotonic() - started


def test_a_path_of_escapes_is_routed_as_its_decoded_path(port: int) -> None:
    # NOTE: the scope's path was completed after the app's task was made: under an eager task
    # factory the app had already routed the stand-in "/" (a 404; review351).
    answer, _ = _half_closed(port, b"GET /syn%63 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(answer) == [b"200"]
    assert answer.endswith(b"\r\n\r\n/sync eager=True")


def test_a_body_cut_off_by_the_clients_end_ends_at_once(port: int) -> None:
    # NOTE: the handler waited for the rest of the body until the stall timer (120 s) closed
    # the connection, its receive not the protocol's watched one (review351).
    cut = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello"
    answer, took = _half_closed(port, cut)
    assert answer == b""
    assert took < 3


def test_a_request_expecting_100_continue_read_whole_keeps_its_connection(port: int) -> None:
    # NOTE: answered inside create_task(), before the parser had read the request's end, it
    # was taken for one whose body the client still owed: its answer closed the connection,
    # and the request pipelined after it was dropped (h11) or answered past the close.
    head = b"GET /sync HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n"
    answer, _ = _half_closed(port, head + b"GET /sync HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(answer) == [b"200", b"200"]
    assert b"connection: close" not in answer.lower()
