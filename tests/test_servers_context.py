"""A ContextVar one request sets is unset in the next one, pipelined on its connection, under
``microweb serve``'s Uvicorn protocols (``test_httptools.py`` feeds them read by read).

Uvicorn starts a queued request's app inside the send() that ends the answer before it, and
its task copied that request's context (CPython issue 140947).
"""

from __future__ import annotations

import re
import socket

import pytest
from servers import HOST, ServedWay, module_server, read_until_closed

pytestmark = pytest.mark.servers

server = module_server("context_app:app", ("uvicorn-h11", "uvicorn-httptools"))


def _bodies(server: ServedWay, paths: list[bytes]) -> list[bytes]:
    """GET each of ``paths`` in one write on one connection; return the answers' bodies."""
    heads = [b"GET %s HTTP/1.1\r\nHost: x\r\n" % path for path in paths]
    heads[-1] += b"Connection: close\r\n"
    with socket.create_connection((HOST, server.port), timeout=5) as sock:
        sock.sendall(b"".join(head + b"\r\n" for head in heads))
        answer = read_until_closed(sock)
    return re.findall(rb"\r\n\r\n([^H]*)", answer)


def test_a_context_variable_set_by_a_request_is_unset_in_the_one_pipelined_after_it(
    server: ServedWay,
) -> None:
    paths = [b"/set", b"/get", b"/set-in-def", b"/get"]
    assert _bodies(server, paths) == [b"set", b"unset", b"set", b"unset"]
