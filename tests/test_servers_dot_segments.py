"""Dot segments sent as they are reach the app through real servers, unresolved: the startup
check keeps a custom converter's route that takes them behind a ``{name}`` parameter."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from servers import HOST, serving_plainly

pytestmark = pytest.mark.servers


@pytest.fixture(scope="module", params=["waitress", "uvicorn"])
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    server = str(request.param)
    with serving_plainly(
        server, "dot_segments_app:app", tmp_path_factory, f"dots-{server}"
    ) as served:
        yield served[0]


def _get(port: int, target: str) -> bytes:
    # NOTE: a raw request: httpx resolves dot segments before it asks.
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    ("target", "body"),
    [("/u/..", b"dots .."), ("/u/.", b"dots ."), ("/u/%2E%2e", b"dots .."), ("/u/a.", b"name a.")],
)
def test_a_dot_segment_reaches_the_custom_converter_behind_a_name(
    port: int, target: str, body: bytes
) -> None:
    answer = _get(port, target)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"\r\n\r\n" + body)
