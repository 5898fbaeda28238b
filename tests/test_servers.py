"""End-to-end checks against real servers: Waitress (WSGI) and Uvicorn (ASGI) in subprocesses.

Each server runs ``examples/mixed_colours.py`` unchanged, started with its own command line (not the
``microweb`` CLI), and is spoken to over real HTTP with ``httpx`` or a raw socket.
"""

from __future__ import annotations

import functools
import json
import re
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import pytest
from servers import (
    HAS_UVLOOP,
    HOST,
    plain_command,
    serving_module,
    serving_plainly,
    uvicorn_command,
    waitress_command,
)

pytestmark = pytest.mark.servers

APP = "examples.mixed_colours:app"


@dataclass(frozen=True)
class Server:
    """A running server: its name, the interface it drives and where it listens."""

    name: str
    interface: str
    port: int

    @property
    def base_url(self) -> str:
        """Return the URL of the server's root."""
        return f"http://{HOST}:{self.port}"


def _uvloop_command(port: int) -> list[str]:
    return [*plain_command("uvicorn", APP, port), "--loop", "uvloop"]


@pytest.fixture(
    scope="module",
    params=[
        "waitress",
        "uvicorn",
        # NOTE: Uvicorn on uvloop too (every other real server of the suite runs on asyncio's
        # loop: servers.TEST_LOOP), for this set of requests.
        pytest.param(
            "uvicorn-uvloop",
            marks=pytest.mark.skipif(not HAS_UVLOOP, reason="uvloop is not installed"),
        ),
    ],
)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """Run the example app under one real server for the whole module."""
    name = str(request.param)
    if name == "uvicorn-uvloop":
        with serving_module(name, _uvloop_command, tmp_path_factory) as (port, _):
            yield Server(name, "asgi", port)
        return
    with serving_plainly(name, APP, tmp_path_factory) as (port, _):
        yield Server(name, "wsgi" if name == "waitress" else "asgi", port)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[httpx.Client]:
    """An HTTP client bound to the running server."""
    with httpx.Client(base_url=server.base_url, timeout=5.0) as http:
        yield http


# --- raw socket helpers ----------------------------------------------------------------------


def _read_until_end_of_head(sock: socket.socket, buffer: bytes = b"") -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed inside a response head: {buffer!r}")
        buffer += chunk
    head, _, rest = buffer.partition(b"\r\n\r\n")
    return head, rest


def _read_to_eof(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _header_fields(head: bytes) -> dict[str, str]:
    lines = head.decode("latin-1").split("\r\n")[1:]
    fields = (line.split(":", 1) for line in lines)
    return {name.strip().lower(): value.strip() for name, value in fields}


# --- tests -----------------------------------------------------------------------------------


def test_hello_text(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.text == "Hello, World!"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["content-length"] == str(len(b"Hello, World!"))


def test_json_get(client: httpx.Client) -> None:
    response = client.get("/items")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == [{"id": 1}, {"id": 2}]


def test_path_param_int_converter(client: httpx.Client) -> None:
    response = client.get("/users/42")
    assert response.status_code == 200
    assert response.json() == {"id": 42, "name": "user-42"}


def test_path_param_not_an_int_is_404(client: httpx.Client) -> None:
    assert client.get("/users/abc").status_code == 404


def test_not_found_plain_and_json(client: httpx.Client) -> None:
    plain = client.get("/nowhere", headers={"accept": "text/html"})
    assert plain.status_code == 404
    assert plain.headers["content-type"].startswith("text/plain")
    assert plain.text == "Not Found"

    as_json = client.get("/nowhere", headers={"accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json() == {"status": 404, "detail": "Not Found"}


def test_method_not_allowed_lists_methods(client: httpx.Client) -> None:
    response = client.delete("/items")
    assert response.status_code == 405
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed
    assert "DELETE" not in allowed


def test_options_answers_with_allow(client: httpx.Client) -> None:
    response = client.options("/items")
    assert response.status_code in (200, 204)
    allowed = {method.strip() for method in response.headers["allow"].split(",")}
    assert {"GET", "POST"} <= allowed


def test_head_has_get_headers_and_no_body(client: httpx.Client) -> None:
    get = client.get("/")
    head = client.head("/")
    assert head.status_code == 200
    assert head.content == b""
    varying = {"date", "server-timing"}
    assert set(head.headers.keys()) == set(get.headers.keys())
    for name in set(get.headers.keys()) - varying:
        assert head.headers[name] == get.headers[name], name


def test_head_then_get_on_one_kept_alive_connection(server: Server) -> None:
    # NOTE: Waitress would send a body for HEAD (TRAPS.md 7); those stray bytes would then sit in
    # front of the second response's status line on the same connection.
    with socket.create_connection((HOST, server.port), timeout=5.0) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: testserver\r\n\r\n")
        first_head, leftover = _read_until_end_of_head(sock)
        sock.sendall(b"GET /users/7 HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n\r\n")
        rest = leftover + _read_to_eof(sock)

    assert first_head.startswith(b"HTTP/1.1 200 ")
    assert _header_fields(first_head)["content-length"] == str(len(b"Hello, World!"))
    assert rest.startswith(b"HTTP/1.1 200 "), rest[:120]
    second_head, _, body = rest.partition(b"\r\n\r\n")
    fields = _header_fields(second_head)
    assert int(fields["content-length"]) == len(body)
    assert json.loads(body) == {"id": 7, "name": "user-7"}


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_post_json_is_echoed(client: httpx.Client, colour: str) -> None:
    payload = {"name": "Zoë", "tags": ["a", "b"], "n": 3, "ok": True, "none": None}
    response = client.post(f"/echo/{colour}", json=payload)
    assert response.status_code == 200
    assert response.json() == {"colour": colour, "echo": payload}


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_invalid_json_is_400(client: httpx.Client, colour: str) -> None:
    response = client.post(
        f"/echo/{colour}", content=b'{"unterminated', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400


def test_post_creates_with_status(client: httpx.Client) -> None:
    response = client.post("/items", json={"id": 3})
    assert response.status_code == 201
    assert response.json() == {"id": 3}


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_handler_colours_under_server(client: httpx.Client, server: Server, colour: str) -> None:
    response = client.get(f"/colour/{colour}")
    assert response.status_code == 200
    assert response.json() == {"colour": colour, "interface": server.interface}
    assert response.headers["x-served-by"] == server.interface


def test_sync_flow_adds_server_timing(client: httpx.Client) -> None:
    for path in ("/", "/colour/async", "/users/1"):
        response = client.get(path)
        assert re.fullmatch(r"app;dur=\d+\.\d+", response.headers["server-timing"]), path


def test_startup_lock_shared_by_concurrent_requests(server: Server) -> None:
    def visit(_: int) -> int:
        with httpx.Client(base_url=server.base_url, timeout=5.0) as http:
            response = http.post("/visits")
            assert response.status_code == 200, response.text
            count: int = response.json()["count"]
            return count

    with ThreadPoolExecutor(max_workers=8) as pool:
        counts = sorted(pool.map(visit, range(16)))
    assert counts == list(range(counts[0], counts[0] + 16))


@pytest.mark.parametrize("path", ["/%ff", "/users/%ff", "/hello/%C3%28"])
def test_invalid_utf8_in_path_is_400(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.request.url.raw_path.lower() == path.lower().encode("ascii")
    assert response.status_code == 400


# --- request targets, Host and framing, as each server hands them on ---------------------------
# NOTE: measured with Waitress 3.0.2, Uvicorn 0.54.0 (h11 0.16.0, httptools 0.9.0). For
# "GET http://example.com/x", Waitress gives PATH_INFO "/x" (REQUEST_URI whole), h11 a path of
# "http://example.com/x" and httptools "/x". For "GET //evil.example/x", Waitress gives PATH_INFO
# "/evil.example/x", both Uvicorn parsers "//evil.example/x". "@evil/x" and "x" reach the app
# under Waitress and h11; httptools refuses them itself. Waitress decodes a chunked body and
# replaces Content-Length with its real length; h11 hands both headers on; httptools refuses.

TARGET_APP = "target_app:app"


@dataclass(frozen=True)
class TargetServer:
    """A server running ``tests/target_app.py``: its name and port."""

    name: str
    port: int


def _target_command(name: str, port: int) -> list[str]:
    if name == "waitress":
        return waitress_command(f"{TARGET_APP}.as_wsgi", port)
    parser = name.partition("-")[2]
    return [*uvicorn_command(f"{TARGET_APP}.as_asgi", port), "--http", parser]


@pytest.fixture(scope="module", params=["waitress", "uvicorn-h11", "uvicorn-httptools"])
def target_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TargetServer]:
    """Run the target app under one real server (Uvicorn with each HTTP parser)."""
    name = str(request.param)
    command = functools.partial(_target_command, name)
    with serving_module(name, command, tmp_path_factory) as (port, _):
        yield TargetServer(name, port)


def _exchange(server: TargetServer, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request as raw bytes (``Connection: close`` added); return status and body."""
    with socket.create_connection((HOST, server.port), timeout=5.0) as sock:
        sock.sendall(head + b"\r\nConnection: close\r\n\r\n" + body)
        response = _read_to_eof(sock)
    status_line, _, rest = response.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        ("http://example.com/x?q=1", "/x", "/x", "?q=1"),
        ("//x", "/x", "/x", ""),
        ("//evil.example/x", "/evil.example/x", "/evil.example/x", ""),
        ("/%2F%2Fevil.example/x", "/evil.example/x", "/%2F%2Fevil.example/x", ""),
    ],
)
def test_absolute_form_and_leading_slashes_give_one_path(
    target_server: TargetServer, target: str, path: str, raw_path: str, query: str
) -> None:
    head = f"GET {target} HTTP/1.1\r\nHost: testserver".encode()
    status, body = _exchange(target_server, head)
    assert status == 200, body
    assert json.loads(body) == {
        "path": path,
        "raw_path": raw_path,
        "host": "testserver",
        "url": f"http://testserver{path}{query}",
    }


@pytest.mark.parametrize(
    "target", ["@evil.example/x", "x", "*", "*%41", "x%41", "@evil.example/x%41", "*%2F"]
)
def test_a_target_that_is_not_a_path_is_400(target_server: TargetServer, target: str) -> None:
    status, body = _exchange(target_server, f"GET {target} HTTP/1.1\r\nHost: t".encode())
    assert status == 400, body


def test_options_asterisk_lists_the_methods_of_the_app(target_server: TargetServer) -> None:
    with socket.create_connection((HOST, target_server.port), timeout=5.0) as sock:
        sock.sendall(b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        head, _ = _read_until_end_of_head(sock)
    assert head.startswith(b"HTTP/1.1 204 "), head
    assert _header_fields(head)["allow"] == "GET, HEAD, OPTIONS, POST"


@pytest.mark.parametrize(
    "host", [b"user@evil.example", b"evil.example/x", b"evil.example?x", b"evil.example#x"]
)
def test_a_host_that_is_not_host_and_port_is_400(target_server: TargetServer, host: bytes) -> None:
    status, body = _exchange(target_server, b"GET /x HTTP/1.1\r\nHost: " + host)
    assert (status, body) == (400, b"invalid Host header")


def test_more_than_one_host_is_400(target_server: TargetServer) -> None:
    # NOTE: h11 refuses it itself; Waitress joins the two, httptools hands both on.
    status, _ = _exchange(target_server, b"GET /x HTTP/1.1\r\nHost: a\r\nHost: b")
    assert status == 400


@pytest.mark.parametrize("colour", ["sync", "async"])
@pytest.mark.parametrize("length", [b"3", b"300"])
def test_content_length_beside_transfer_encoding_is_ignored(
    target_server: TargetServer, colour: str, length: bytes
) -> None:
    head = (
        f"POST /read/{colour} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n".encode()
        + b"Content-Length: "
        + length
    )
    status, body = _exchange(target_server, head, b"5\r\nhello\r\n0\r\n\r\n")
    if target_server.name == "uvicorn-httptools":
        assert status == 400  # NOTE: refused by httptools itself, before the app.
    else:
        assert (status, body) == (200, b"hello")


@pytest.mark.parametrize("colour", ["sync", "async"])
def test_a_transfer_coding_other_than_chunked_is_refused(
    target_server: TargetServer, colour: str
) -> None:
    # NOTE: Waitress answers 501 and h11 400 themselves; httptools hands the body on still
    # gzip-coded, which the app read as the body (200) until it answered 501 too.
    head = f"POST /read/{colour} HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked".encode()
    status, body = _exchange(target_server, head, b"5\r\nhello\r\n0\r\n\r\n")
    assert status == (400 if target_server.name == "uvicorn-h11" else 501), body
    assert body != b"hello"
