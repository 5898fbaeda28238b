"""Hostile requests, round ten: an absolute-form target with an empty path (and port), many
small chunk lines in one read, and what follows a target that is no path, at the three ways
of ``microweb serve``.

``tests/hostile_app.py`` runs under Waitress, Uvicorn with httptools (``BoundedHttpTools``) and
Uvicorn with h11 (``BoundedH11``), one server start each for the module. Each test sends raw
bytes and reads the answer.
"""

from __future__ import annotations

import pytest
from servers import NEXT, ServedWay, exchange, module_server, statuses

pytestmark = pytest.mark.servers

server = module_server("hostile_app:app", ("waitress", "uvicorn-httptools", "uvicorn-h11"))


@pytest.mark.parametrize(
    ("target", "url"),
    [
        (b"http://h:", b"http://x/"),
        (b"http://h", b"http://x/"),
        (b"http://h?q=1", b"http://x/?q=1"),
        (b"http://h:?q=1", b"http://x/?q=1"),
        (b"http://h:80", b"http://x/"),
        (b"HTTPS://h:443?q", b"http://x/?q"),
    ],
)
def test_an_absolute_form_target_with_an_empty_path_is_the_root_under_every_server(
    server: ServedWay, target: bytes, url: bytes
) -> None:
    # SPEC: RFC 9110 4.2.3, an empty path in an absolute-form target is "/" (the query
    # kept); RFC 3986 3.2.3, an empty port is the scheme's default. hostile_app answers "/"
    # with request.url (review411 read the 404 of an app without "/" as a miss).
    answer = exchange(server, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n" + NEXT)
    assert statuses(answer) == [b"200", b"200"], answer[-300:]
    first = answer.partition(b"HTTP/1.1 200 ")[2].partition(b"HTTP/1.1 ")[0]
    assert first.endswith(b"\r\n\r\n" + url), answer[-300:]
