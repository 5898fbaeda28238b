"""Uvicorn's default fields (Date, Server: ``server_state.default_headers``) on the refusals
``microweb serve``'s Uvicorn protocols write themselves, under httptools, h11 and the WebSocket
protocol: added by one function (``_stall.with_default_fields``), obeying ``--no-date-header``
and ``--no-server-header`` as Uvicorn's answers do."""

from __future__ import annotations

import base64
import email.utils
import re
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from servers import HOST, read_until_closed, serving_module, uvicorn_command

from microweb._stall import with_default_fields

DEFAULTS = [(b"date", b"Mon, 07 Dec 2026 12:00:00 GMT"), (b"server", b"uvicorn")]
REFUSAL = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"


def _state(defaults: list[tuple[bytes, bytes]]) -> SimpleNamespace:
    return SimpleNamespace(default_headers=defaults)


def test_defaults_go_after_the_status_line() -> None:
    answer = with_default_fields(_state(DEFAULTS), REFUSAL)
    assert answer == (
        b"HTTP/1.1 400 Bad Request\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT\r\n"
        b"server: uvicorn\r\ncontent-length: 2\r\nconnection: close\r\n\r\nno"
    )


def test_no_defaults_leave_the_answer_as_it_is() -> None:
    assert with_default_fields(_state([]), REFUSAL) == REFUSAL


def test_a_field_the_head_has_is_not_added_twice() -> None:
    refusal = b"HTTP/1.1 404 Not Found\r\nServer: app\r\nDate: x\r\n\r\n"
    answer = with_default_fields(_state(DEFAULTS), refusal)
    assert answer == refusal


def test_an_own_date_gives_way_to_uvicorns() -> None:
    refusal = b"HTTP/1.1 400 Bad Request\r\nDate: websockets'\r\nContent-Length: 0\r\n\r\n"
    answer = with_default_fields(_state(DEFAULTS), refusal, own_date=True)
    assert answer == (
        b"HTTP/1.1 400 Bad Request\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT\r\n"
        b"server: uvicorn\r\nContent-Length: 0\r\n\r\n"
    )
    # NOTE: under --no-date-header, none.
    answer = with_default_fields(_state(DEFAULTS[1:]), refusal, own_date=True)
    assert answer == b"HTTP/1.1 400 Bad Request\r\nserver: uvicorn\r\nContent-Length: 0\r\n\r\n"


def test_a_head_of_the_status_line_alone() -> None:
    answer = with_default_fields(_state(DEFAULTS[1:]), b"HTTP/1.1 400 Bad Request\r\n\r\nbody")
    assert answer == b"HTTP/1.1 400 Bad Request\r\nserver: uvicorn\r\n\r\nbody"


PROTOCOLS = {
    "httptools": "microweb._httptools:BoundedHttpTools",
    "h11": "microweb._h11:BoundedH11",
}
WS = "microweb._ws_flow:FlowControlledWebSockets"
OPTIONS = ("", "--no-date-header", "--no-server-header")


@pytest.fixture(
    scope="module",
    params=[(http, option) for http in PROTOCOLS for option in OPTIONS],
    ids=lambda param: f"{param[0]}{param[1] or '-defaults'}",
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[int, str]]:
    http, option = request.param
    if http == "httptools":
        pytest.importorskip("httptools")

    def command(port: int) -> list[str]:
        line = [*uvicorn_command("halfclose_app:app.as_asgi", port), "--http", PROTOCOLS[http]]
        return [*line, "--ws", WS, *([option] if option else [])]

    with serving_module(f"defaults-{http}", command, tmp_path_factory) as (port, _):
        yield port, option


def _answer(port: int, data: bytes) -> bytes:
    with socket.create_connection((HOST, port), timeout=5) as sock:
        sock.sendall(data)
        return read_until_closed(sock)


def _fields(answer: bytes) -> list[tuple[bytes, bytes]]:
    head = answer.partition(b"\r\n\r\n")[0]
    return [
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    ]


def _assert_defaults(answer: bytes, option: str, status: bytes) -> None:
    assert re.match(rb"HTTP/1\.1 " + status + rb" ", answer), answer
    fields = _fields(answer)
    dates = [value for name, value in fields if name == b"date"]
    servers = [value for name, value in fields if name == b"server"]
    if option == "--no-date-header":
        assert dates == [], answer
    else:
        assert len(dates) == 1, answer
        sent = email.utils.parsedate_to_datetime(dates[0].decode())
        assert abs(sent.timestamp() - time.time()) < 5
    if option == "--no-server-header":
        assert servers == [], answer
    else:
        assert servers == [b"uvicorn"], answer


def _handshake(path: bytes, *, key: bool = True) -> bytes:
    fields = b"Host: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    fields += b"Sec-WebSocket-Version: 13\r\n"
    if key:
        fields += b"Sec-WebSocket-Key: " + base64.b64encode(b"k" * 16) + b"\r\n"
    return b"GET " + path + b" HTTP/1.1\r\n" + fields + b"\r\n"


def test_the_http_protocols_refusal(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: a transfer coding before chunked: refused by the protocol itself, with 501.
    request = b"POST /echo/sync HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    _assert_defaults(_answer(port, request), option, b"501")


def test_the_websocket_protocols_refusal_of_a_head(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: a line over websockets' 8 KiB: its 431 had its own Date, and no Server.
    handshake = _handshake(b"/sync").replace(b"Host: x", b"Host: x\r\nX-Long: " + b"a" * 9000)
    _assert_defaults(_answer(port, handshake), option, b"431")


def test_the_websocket_protocols_refusal_of_a_handshake(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: no Sec-WebSocket-Key: websockets refuses the handshake, Uvicorn writes its refusal.
    _assert_defaults(_answer(port, _handshake(b"/sync", key=False)), option, b"400")


def test_the_websocket_protocols_refusal_of_offers(served: tuple[int, str]) -> None:
    port, option = served
    offers = b"Sec-WebSocket-Protocol: " + b",".join([b"p"] * 300) + b"\r\n\r\n"
    handshake = _handshake(b"/sync")[:-2] + offers
    _assert_defaults(_answer(port, handshake), option, b"431")


def test_the_apps_refusal_of_a_handshake(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: a handshake no route takes: the app's 404, sent by the WebSocket protocol.
    _assert_defaults(_answer(port, _handshake(b"/nowhere")), option, b"404")
