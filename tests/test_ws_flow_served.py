"""What a real websockets client negotiates through ``microweb serve``'s WebSocket protocol,
which accepts the handshake itself (``FlowControlledWebSockets.handle_connect``) and hands
Uvicorn's ``handle_connect`` that acceptance: the subprotocol the app chose, permessage-deflate
offered or not, a percent-encoded path, ``--root-path``; and a close before accept answered
with 403, with Uvicorn's default fields, under both HTTP protocols (review351)."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator

import pytest
from servers import HOST, read_until_closed, serving_module, uvicorn_command
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.servers

TIMEOUT = 5.0
PROTOCOLS = {
    "httptools": "microweb._httptools:BoundedHttpTools",
    "h11": "microweb._h11:BoundedH11",
}
WS = "microweb._ws_flow:FlowControlledWebSockets"


@pytest.fixture(scope="module", params=list(PROTOCOLS))
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    http = request.param

    def command(port: int) -> list[str]:
        line = [*uvicorn_command("ws_app:app.as_asgi", port), "--http", PROTOCOLS[http]]
        return [*line, "--ws", WS, "--no-date-header", "--header", "x-extra:1"]

    with serving_module(f"ws-served-{http}", command, tmp_path_factory) as (found, _):
        yield found


def _connect(url: str, subprotocols: list[str] | None, compression: str | None) -> ClientConnection:
    # NOTE: proxy=None, so that a proxy configured in the environment is never asked for localhost.
    return connect(
        url,
        subprotocols=subprotocols,  # type: ignore[arg-type]
        compression=compression,
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


@pytest.mark.parametrize("compression", ["deflate", None])
@pytest.mark.parametrize(
    ("offered", "chosen"), [(["other", "echo.v1"], "echo.v1"), (["other"], None), (None, None)]
)
def test_the_handshake_negotiates_as_uvicorns(
    port: int, compression: str | None, offered: list[str] | None, chosen: str | None
) -> None:
    with _connect(f"ws://{HOST}:{port}/echo", offered, compression) as ws:
        assert ws.subprotocol == chosen
        extensions = ws.response.headers.get_all("Sec-WebSocket-Extensions")
        if compression:
            assert [name.split(";")[0] for name in extensions] == ["permessage-deflate"]
            assert len(ws.protocol.extensions) == 1
        else:
            assert extensions == []
            assert ws.protocol.extensions == []
        assert ws.response.headers.get_all("Date") == []  # NOTE: --no-date-header.
        assert ws.response.headers.get_all("Server") == ["uvicorn"]
        ws.send("ping " * 200)
        assert ws.recv(timeout=TIMEOUT) == "ping " * 200


def test_a_percent_encoded_path_reaches_its_route(port: int) -> None:
    # NOTE: /close/{code:int}, which closes with ?reason=: the scope's path is the decoded one.
    url = f"ws://{HOST}:{port}/clos%65/4001?reason=r"
    with _connect(url, None, "deflate") as ws, pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=TIMEOUT)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "r")


def _handshake(path: bytes) -> bytes:
    return (
        b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: "
        + base64.b64encode(b"k" * 16)
        + b"\r\n\r\n"
    )


def test_a_close_before_accept_has_uvicorns_fields(port: int) -> None:
    # NOTE: a 499, a status with no name, is refused with a close before accept (a 403): it had
    # websockets' Date (under --no-date-header), no Server and no --header field.
    with socket.create_connection((HOST, port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake(b"/guarded?token=odd"))
        answer = read_until_closed(sock)
    head = answer.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")
    assert head[0] == b"http/1.1 403 forbidden", answer
    names = [line.partition(b":")[0] for line in head[1:]]
    assert names.count(b"date") == 0, answer
    assert names.count(b"server") == 1, answer
    assert names.count(b"x-extra") == 1, answer


def test_the_client_sees_the_403(port: int) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _connect(f"ws://{HOST}:{port}/guarded?token=odd", None, None)
    assert refused.value.response.status_code == 403
