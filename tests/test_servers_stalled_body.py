"""A body that stops coming before the app reads it, under ``microweb serve`` with a tiny
``--client-timeout``: cut as a stalled body, with or without ``Expect: 100-continue``, under
Waitress and Uvicorn alike (review380). Read by read, under both of Uvicorn's protocols, in
``test_httptools.py``."""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Iterator

import pytest
from servers import HOST, ServedWay, read_until_closed, serve_command, serving_module
from stalled_body_app import READ_AFTER

pytestmark = pytest.mark.servers

APP = "stalled_body_app:app"
CLIENT_TIMEOUT = 1


def _command(way: str, port: int) -> list[str]:
    return [*serve_command(way, APP, port), "--client-timeout", str(CLIENT_TIMEOUT)]


@pytest.fixture(scope="module", params=["waitress", "uvicorn-httptools"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServedWay]:
    """Run the app under one server, for the whole module."""
    way = str(request.param)
    with serving_module(way, functools.partial(_command, way), tmp_path_factory) as (port, log):
        yield ServedWay(way, port, log)


@pytest.mark.parametrize(
    "expect", [b"", b"Expect: 100-continue\r\n"], ids=["plain", "100-continue"]
)
def test_a_body_begun_that_stops_coming_is_cut_after_the_client_timeout(
    server: ServedWay, expect: bytes
) -> None:
    # NOTE: 2 of 8 bytes sent with the head, without waiting for any 100 Continue (RFC 9110
    # 10.1.1 does not ask the client to wait), then nothing. Under Uvicorn, the client was
    # taken for one waiting for its 100 Continue while the app had not read, and was held
    # until the app's read, or for as long as the app ran.
    head = b"POST /late HTTP/1.1\r\nHost: x\r\nContent-Length: 8\r\n" + expect + b"\r\n"
    with socket.create_connection((HOST, server.port), timeout=READ_AFTER + 5) as client:
        client.sendall(head + b"ab")
        began = time.monotonic()
        received = read_until_closed(client)
        held = time.monotonic() - began
    assert held < READ_AFTER - 1, (held, received)
    # NOTE: no answer: the connection is closed as the client stalled (Waitress may have sent
    # its 100 Continue first, as it does at once).
    assert received.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"") == b""
