"""Hostile values through real servers: both give the same answer, never a dropped connection.

Waitress (WSGI) and Uvicorn with h11 (ASGI) run ``tests/hostile_app.py`` in subprocesses.
"""

from __future__ import annotations

import gzip
import socket
from collections.abc import Iterator

import httpx
import pytest
from servers import HOST, serving_plainly

pytestmark = pytest.mark.servers

APP = "hostile_app:app"


@pytest.fixture(scope="module", params=["waitress", "uvicorn"])
def client(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    """An HTTP client bound to the app under one real server, for the whole module."""
    with (
        serving_plainly(str(request.param), APP, tmp_path_factory) as (port, _),
        httpx.Client(base_url=f"http://{HOST}:{port}", timeout=5.0) as http,
    ):
        yield http


@pytest.mark.parametrize("value", [" padded", "padded ", "\tpadded", "a\x01b", "a\x7fb"])
def test_header_value_refused_by_one_server_is_500_under_both(
    client: httpx.Client, value: str
) -> None:
    # NOTE: h11 refused these inside send(), so Uvicorn's client got no answer at all (TRAPS.md 23)
    # while Waitress sent them; now setting one raises ValueError in the handler.
    response = client.get("/header", params={"v": value})
    assert response.status_code == 500
    assert "x-echo" not in response.headers


def test_header_value_with_inner_spaces_is_sent(client: httpx.Client) -> None:
    response = client.get("/header", params={"v": "a \t b"})
    assert response.status_code == 200
    assert response.headers["x-echo"] == "a \t b"


def test_redirect_to_a_url_with_surrounding_spaces(client: httpx.Client) -> None:
    response = client.get("/redirect", params={"to": "  /somewhere?q=1 \t"})
    assert response.status_code == 307
    assert response.headers["location"] == "/somewhere?q=1"


def test_cookie_round_trip(client: httpx.Client) -> None:
    value = 'José, "x"; \\ 100% € 😀'
    client.cookies.clear()
    assert client.get("/cookie/set", params={"v": value}).status_code == 200
    assert client.get("/cookie/get").json() == {"v": value}


def test_a_cookie_sent_as_raw_utf8_is_text(client: httpx.Client) -> None:
    # NOTE: as a browser sends a value a script set; both servers hand it over as latin-1 text.
    client.cookies.clear()
    headers = {"cookie": "v=José €".encode()}
    answer = client.get("/cookie/get", headers=headers)  # type: ignore[arg-type]
    assert answer.json() == {"v": "José €"}


@pytest.mark.parametrize("space", ["\xa0", "\u2000", "\u3000"])
def test_a_cookie_name_after_a_unicode_space_is_not_the_prefixed_name(
    client: httpx.Client, space: str
) -> None:
    # NOTE: as a browser sends a cookie that a sibling subdomain's script set as
    # "\u2000__Host-id": its name's UTF-8 bytes, which both servers hand over as latin-1 text;
    # the same cookies as the test client gives (tests/test_cookies_prefixes.py).
    client.cookies.clear()
    header = f"{space}__Host-id=planted; __Host-id=own".encode()
    answer = client.get("/cookie/get", headers={"cookie": header})  # type: ignore[dict-item]
    assert answer.json() == {f"{space}__Host-id": "planted", "__Host-id": "own"}


def test_punycode_body_is_400(client: httpx.Client) -> None:
    body = b"a" * 300_000 + b"-" + b"9" * 300_000
    headers = {"content-type": "text/plain; charset=punycode"}
    response = client.post("/text", content=body, headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize(("version", "status"), [("1.1", b"400"), ("1.0", b"200")])
def test_a_request_without_host_is_400_in_http_1_1_only(
    client: httpx.Client, version: str, status: bytes
) -> None:
    # NOTE: Uvicorn's h11 parser refuses it itself; Waitress and httptools (the parser here)
    # passed it on, and request.url had the server's address for a host (hostile137).
    port = client.base_url.port
    assert port is not None
    with socket.create_connection((HOST, port), timeout=5) as conn:
        conn.sendall(f"GET /url HTTP/{version}\r\nConnection: close\r\n\r\n".encode())
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    assert received.split(b" ", 2)[1] == status, received


CODED_TYPES = {
    "/text": "text/plain; charset=latin-1",
    "/form": "application/x-www-form-urlencoded",
    "/aform": "application/x-www-form-urlencoded",
    "/parts": "multipart/form-data; boundary=b",
    "/aparts": "multipart/form-data; boundary=b",
}


@pytest.mark.parametrize("path", list(CODED_TYPES))
def test_a_gzip_body_is_415_with_accept_encoding(client: httpx.Client, path: str) -> None:
    # NOTE: both servers hand Content-Encoding to the app as it came; the reads that parse the
    # body refuse it rather than parse gzip's bytes (text() gave them as latin-1 text).
    headers = {"content-type": CODED_TYPES[path], "content-encoding": "gzip"}
    answer = client.post(path, content=gzip.compress(b"a=1"), headers=headers)
    assert (answer.status_code, answer.text) == (
        415,
        "unsupported Content-Encoding (send the body uncompressed)",
    )
    assert answer.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("path", ["/text", "/form"])
def test_a_body_longer_than_its_content_length_is_read_to_the_length(
    client: httpx.Client, path: str
) -> None:
    # SPEC: RFC 9112 6.3, the length ends the message: what the client sends past it is not
    # the body's (on a connection it closes, nothing; else the next request).
    port = client.base_url.port
    assert port is not None
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 4\r\n\r\n"
    )
    with socket.create_connection((HOST, port), timeout=5) as conn:
        conn.sendall(head.encode() + b"a=bc&d=e")
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    first, _, rest = received.partition(b"\r\n")
    assert first == b"HTTP/1.1 200 OK", received
    answer = b"a=bc" if path == "/text" else b'{"a":"bc"}'
    assert answer in rest.split(b"HTTP/1.1")[0], received
    assert b" 500 " not in received, received
