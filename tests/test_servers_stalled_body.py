"""A body that stops coming before the app reads it, under ``microweb serve`` with a tiny
``--client-timeout``: cut as a stalled body, with or without ``Expect: 100-continue``, under
Waitress and Uvicorn alike (review380). Read by read, under both of Uvicorn's protocols, in
``test_httptools.py``."""

from __future__ import annotations

import time

import pytest
from servers import ServedWay, exchange, module_server
from stalled_body_app import READ_AFTER

pytestmark = pytest.mark.servers

APP = "stalled_body_app:app"
CLIENT_TIMEOUT = 1

server = module_server(
    APP, ["waitress", "uvicorn-httptools"], ["--client-timeout", str(CLIENT_TIMEOUT)]
)


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
    began = time.monotonic()
    received = exchange(server, head + b"ab", timeout=READ_AFTER + 5)
    held = time.monotonic() - began
    assert held < READ_AFTER - 1, (held, received)
    # NOTE: no answer: the connection is closed as the client stalled (Waitress may have sent
    # its 100 Continue first, as it does at once).
    assert received.replace(b"HTTP/1.1 100 Continue\r\n\r\n", b"") == b""
