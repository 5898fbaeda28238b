"""Hostile requests, round seven: folded header lines, odd absolute-form targets, and what
else is sent at the three ways of ``microweb serve``.

``tests/hostile_app.py`` runs under Waitress, Uvicorn with httptools (``BoundedHttpTools``) and
Uvicorn with h11 (``BoundedH11``), one server start each for the module. Each test sends raw
bytes and reads the answer.
"""

from __future__ import annotations

import pytest
from servers import ServedWay, exchange, module_server, statuses

pytestmark = pytest.mark.servers

APP = "hostile_app:app"
SERVERS = ("waitress", "uvicorn-httptools", "uvicorn-h11")
NEXT = b"GET /url HTTP/1.1\r\nHost: next\r\nConnection: close\r\n\r\n"

server = module_server(APP, SERVERS)


@pytest.mark.parametrize(
    "head",
    [
        b"X-A: 1\r\n 2\r\n",
        b"X-A: 1\r\n\t2\r\n",
        b"X-A:\r\n 2\r\n",
        b"Cookie: a=1\r\n b=2\r\n",
        b"X-A: 1\r\n 2\r\n " + b"a" * 100 + b"\r\n",
    ],
    ids=["space", "tab", "empty-first", "cookie", "two-folds"],
)
def test_a_folded_header_line_is_400_under_every_server(server: ServedWay, head: bytes) -> None:
    # SPEC: RFC 9112 5.2, a server refuses obs-fold with 400 or replaces it with spaces.
    # NOTE: httptools answers 400; Waitress and h11 joined the lines (Waitress in time in
    # the square of the folded lines).
    answer = exchange(server, b"GET /url HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + NEXT)
    assert statuses(answer) == [b"400"], answer[-300:]
    assert b"next" not in answer
