"""WebSockets through a real Uvicorn process, spoken to with the ``websockets`` client.

Uvicorn serves ``examples/chat.py`` unchanged (broadcast between two clients) and
``tests/ws_app.py`` (subprotocols, close codes, the message size limit, refused handshakes),
each started with Uvicorn's own command line.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import (
    HOST,
    SERVER_LOOPS,
    UVICORN_SENDS_DENIAL,
    Uvicorn,
    run_served,
    run_uvicorn,
)
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.http11 import Response
from websockets.sync.client import ClientConnection, connect
from ws_app import ALLOWED_ORIGIN, MAX_MESSAGE

from microweb._serve_run import UVICORN_WS

pytestmark = pytest.mark.servers

TIMEOUT = 5.0


@pytest.fixture(scope="module")
def chat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """Uvicorn serving the chat example for the whole module."""
    with run_uvicorn("examples.chat:app.as_asgi", tmp_path_factory.mktemp("chat")) as server:
        yield server


# NOTE: Uvicorn's WebSocket implementations: two built on the websockets package ("auto" picks
# the sans-I/O one; "websockets" is the older one, deprecated but still chosen by some
# deployments), and the one built on wsproto (`uvicorn --ws wsproto`). They differ in what they
# accept from an app, so the app is run under each.
WS_IMPLEMENTATIONS = ["websockets-sansio", "websockets", "wsproto"]


@pytest.fixture(scope="module", params=WS_IMPLEMENTATIONS)
def ws_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Uvicorn]:
    """Uvicorn serving ``tests/ws_app.py`` for the whole module, under each implementation."""
    if request.param == "wsproto":
        pytest.importorskip("wsproto")
    options = ["--ws", request.param]
    with run_uvicorn("ws_app:app.as_asgi", tmp_path_factory.mktemp("ws"), options) as server:
        yield server


def _connect(
    url: str, subprotocols: list[str] | None = None, origin: str | None = None
) -> ClientConnection:
    # NOTE: proxy=None, so that a proxy configured in the environment is never asked for localhost.
    return connect(
        url,
        origin=origin,  # type: ignore[arg-type]
        subprotocols=subprotocols,  # type: ignore[arg-type]
        proxy=None,
        open_timeout=TIMEOUT,
        close_timeout=TIMEOUT,
    )


def _receive_json(ws: ClientConnection) -> object:
    return json.loads(ws.recv(timeout=TIMEOUT))


def _closed_by_server(ws: ClientConnection) -> ConnectionClosed:
    with pytest.raises(ConnectionClosed) as closed:
        ws.recv(timeout=TIMEOUT)
    return closed.value


def _close_code(closed: ConnectionClosed) -> int | None:
    return closed.rcvd.code if closed.rcvd is not None else None


# --- the chat example ------------------------------------------------------------------------


def test_chat_page_is_served(chat_server: Uvicorn) -> None:
    response = httpx.get(chat_server.http_url + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "new WebSocket(" in response.text


def test_chat_two_clients_exchange_broadcasts(chat_server: Uvicorn) -> None:
    with _connect(chat_server.ws_url + "/ws?name=alice") as alice:
        # NOTE: a client is in the room once its own message has come back to it.
        alice.send("hello")
        assert _receive_json(alice) == {"name": "alice", "text": "hello"}
        with _connect(chat_server.ws_url + "/ws?name=bob") as bob:
            bob.send("hi alice")
            assert _receive_json(bob) == {"name": "bob", "text": "hi alice"}
            assert _receive_json(alice) == {"name": "bob", "text": "hi alice"}
            alice.send("héllo bob ✓")
            assert _receive_json(alice) == {"name": "alice", "text": "héllo bob ✓"}
            assert _receive_json(bob) == {"name": "alice", "text": "héllo bob ✓"}
        # Bob has left: the room goes on without him.
        alice.send("still here")
        assert _receive_json(alice) == {"name": "alice", "text": "still here"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"upgrade": "websocket"}, {"connection": "keep-alive, upgrade"}],
    ids=["plain", "upgrade-without-connection", "connection-without-upgrade"],
)
def test_chat_plain_http_to_the_websocket_route_is_426(
    chat_server: Uvicorn, headers: dict[str, str]
) -> None:
    # NOTE: a handshake needs both Upgrade and Connection: upgrade; with one of them, Uvicorn
    # hands the app a plain HTTP request. SPEC: RFC 9110 15.5.22, a 426 sends Upgrade.
    response = httpx.get(chat_server.http_url + "/ws", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 426
    assert response.headers["upgrade"].lower() == "websocket"


# --- ws_app: subprotocols, close codes, limits, refusals -------------------------------------


@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        (["echo.v1", "echo.v2"], "echo.v2"),
        (["other", "echo.v1"], "echo.v1"),
        (["other"], None),
        (None, None),
    ],
)
def test_subprotocol_negotiation(
    ws_server: Uvicorn, offered: list[str] | None, chosen: str | None
) -> None:
    with _connect(ws_server.ws_url + "/echo", subprotocols=offered) as ws:
        assert ws.subprotocol == chosen
        ws.send("ping")
        assert ws.recv(timeout=TIMEOUT) == "ping"


def _check_binary_echo(server: Uvicorn) -> None:
    """Send bytes to ``/echo-bytes``; check that they come back as they went."""
    with _connect(server.ws_url + "/echo-bytes") as ws:
        ws.send(b"\x00\xffdata")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\xffdata"


def test_binary_echo(ws_server: Uvicorn) -> None:
    _check_binary_echo(ws_server)


@pytest.mark.parametrize("code", [1000, 4000, 4999])
def test_app_close_code_reaches_the_client(ws_server: Uvicorn, code: int) -> None:
    with _connect(ws_server.ws_url + f"/close/{code}") as ws:
        closed = _closed_by_server(ws)
    assert _close_code(closed) == code
    assert closed.rcvd is not None and closed.rcvd.reason == "bye"


@pytest.mark.parametrize(
    ("query", "code", "reason"),
    [
        ("?reason=" + "é" * 61, 1000, "é" * 61),  # 122 bytes: fits
        ("?reason=" + "é" * 62, 1011, ""),  # 124 bytes: the close frame would be too long
    ],
    ids=["122-bytes", "124-bytes"],
)
def test_a_close_reason_over_123_bytes_fails_the_handler_with_1011(
    ws_server: Uvicorn, query: str, code: int, reason: str
) -> None:
    with _connect(ws_server.ws_url + "/close/1000" + query) as ws:
        closed = _closed_by_server(ws)
    # NOTE: before the check, Uvicorn's WebSocket library raised from send(), and the client
    # got no close frame at all (an abnormal closure, 1006).
    assert closed.rcvd is not None, ws_server.log_text()
    assert (closed.rcvd.code, closed.rcvd.reason) == (code, reason)
    if code == 1011:
        assert "at most 123 bytes" in ws_server.log_text()


@pytest.mark.parametrize("code", [999, 1005, 1006, 1015, 2000, 5000])
def test_a_close_code_that_cannot_be_sent_fails_the_handler_with_1011(
    ws_server: Uvicorn, code: int
) -> None:
    with _connect(ws_server.ws_url + f"/close/{code}") as ws:
        closed = _closed_by_server(ws)
    assert _close_code(closed) == 1011, ws_server.log_text()
    assert f"close code {code} cannot be sent" in ws_server.log_text()


def _closed_past_the_limit(server: Uvicorn) -> ConnectionClosed:
    """Send ``/echo`` a message at the limit, check that it comes back, then send one past
    it; return how the server closed."""
    with _connect(server.ws_url + "/echo") as ws:
        ws.send("x" * MAX_MESSAGE)
        assert ws.recv(timeout=TIMEOUT) == "x" * MAX_MESSAGE
        ws.send("x" * (MAX_MESSAGE + 1))
        return _closed_by_server(ws)


def test_message_at_the_limit_passes_over_it_closes_1009(ws_server: Uvicorn) -> None:
    assert _close_code(_closed_past_the_limit(ws_server)) == 1009


@pytest.fixture(scope="module")
def served_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Uvicorn]:
    """``microweb serve ws_app --server uvicorn``, which sets Uvicorn's message cap itself."""
    with run_served("uvicorn", "ws_app", tmp_path_factory.mktemp("served")) as server:
        yield server


@pytest.mark.parametrize("loop", SERVER_LOOPS)
def test_messages_are_echoed_under_microweb_serve_on_each_loop(tmp_path: Path, loop: str) -> None:
    with run_served("uvicorn", "ws_app", tmp_path, ["--loop", loop]) as server:
        _check_binary_echo(server)
        closed = _closed_past_the_limit(server)
    assert _close_code(closed) == 1009


def test_a_flow_refusal_reaches_the_client_under_microweb_serve(served_ws: Uvicorn) -> None:
    expected = (401, "Bearer", b'{"error":"a token is required"}')
    assert _refused_with(served_ws, "/guarded") == expected
    assert _refused_with(served_ws, "/guarded?token=odd") == (403, "", b"")
    # NOTE: Uvicorn's own protocol logged this error for every refusal it sent.
    assert "without completing handshake" not in served_ws.log_text()


def test_a_handlers_http_error_before_accept_reaches_the_client_under_microweb_serve(
    served_ws: Uvicorn,
) -> None:
    # NOTE: the 400 of a header the handler reads before accept() (ws.headers["x-token"]),
    # which went out as a 403; under a plain Uvicorn before 0.55 it still does (test_a_
    # handshake_without_a_header_the_handler_reads_is_refused_and_not_logged).
    answer = _refusal(served_ws, "/token")
    assert (answer.status_code, bytes(answer.body)) == (400, b"missing header 'x-token'")
    # NOTE: the guard flow's header, set on the handshake's answer before the handler refused
    # it: it went out with the acceptance and a flow's refusal, not with the handler's.
    assert answer.headers["x-served-by"] == "ws_app"
    assert "Traceback" not in served_ws.log_text()


def test_a_close_before_accept_carries_the_flows_headers_under_microweb_serve(
    served_ws: Uvicorn,
) -> None:
    # NOTE: the server's bare 403 of a close, without the guard flow's header that the
    # handler's HTTPError carries.
    answer = _refusal(served_ws, "/unwelcome")
    assert (answer.status_code, bytes(answer.body)) == (403, b"")
    assert answer.headers["x-served-by"] == "ws_app"


def test_a_handshake_no_route_takes_carries_the_flows_headers_under_microweb_serve(
    served_ws: Uvicorn,
) -> None:
    # NOTE: refused before any flow ran, with the server's bare 403; then an empty 403 that
    # no error handler saw, where an HTTP request gets the 404 it now gets too.
    answer = _refusal(served_ws, "/nowhere")
    assert (answer.status_code, bytes(answer.body)) == (404, b"Not Found")
    assert answer.headers["x-served-by"] == "ws_app"


def test_a_refusal_without_a_body_gets_no_length_under_microweb_serve(served_ws: Uvicorn) -> None:
    # SPEC: RFC 9110 8.6: a 304 has no Content-Length of its own (Uvicorn's protocol added "0").
    answer = _refusal(served_ws, "/guarded?token=none")
    assert answer.status_code == 304
    assert "content-length" not in answer.headers
    assert "content-type" not in answer.headers


def test_a_2xx_refusal_reaches_the_client_as_403_under_microweb_serve(served_ws: Uvicorn) -> None:
    # NOTE: the flow's 200 went out as the handshake's refusal: a status that says all is well.
    answer = _refusal(served_ws, "/guarded?token=fine")
    assert (answer.status_code, bytes(answer.body)) == (403, b"fine")


@pytest.mark.parametrize("fragments", [1, 7])
def test_a_compressed_message_at_the_limit_passes_under_microweb_serve(
    served_ws: Uvicorn, fragments: int
) -> None:
    # NOTE: the websockets client offers permessage-deflate, and random bytes deflate to a
    # few bytes more than they are. Uvicorn's ws_max_size bounds each frame as it comes,
    # compressed: set to the app's limit exactly, it refused with 1009 a message within it
    # (review57). The app's own limit applies to the message received, inflated.
    at_limit = os.urandom(MAX_MESSAGE)
    size = -(-MAX_MESSAGE // fragments)
    pieces = [at_limit[i : i + size] for i in range(0, MAX_MESSAGE, size)]
    with _connect(served_ws.ws_url + "/echo-bytes") as ws:
        ws.send(pieces if fragments > 1 else at_limit)
        assert ws.recv(timeout=TIMEOUT) == at_limit
        ws.send(os.urandom(MAX_MESSAGE + 1))
        closed = _closed_by_server(ws)
    assert _close_code(closed) == 1009
    assert "Traceback" not in served_ws.log_text()


@pytest.fixture(scope="module", params=["uvicorn", "uvicorn-h11"])
def served_ws_ways(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Uvicorn]:
    """``ws_app`` under microweb's two Uvicorn protocols: httptools (``microweb serve``) and h11."""
    options: list[str] = []
    if request.param == "uvicorn-h11":
        # NOTE: with the WebSocket protocol `microweb serve` runs beside h11 (where httptools
        # is missing), as beside httptools: Uvicorn's own pick fails on some frames sent
        # with a handshake (see test_bad_frames_sent_with_the_handshake_log_no_traceback).
        options = ["--ws", UVICORN_WS]
    log_dir = tmp_path_factory.mktemp(request.param)
    with run_served(request.param, "ws_app:app", log_dir, options) as server:
        yield server


def _text_frame(text: str) -> bytes:
    """A client's text frame of ``text`` (under 126 bytes): FIN, masked."""
    payload, mask = text.encode("utf-8"), os.urandom(4)
    assert len(payload) < 126
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def _handshake(path: str, extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode("ascii")
    return (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode("ascii")


# NOTE: header lines that make a handshake's head longer than the 16 KiB slice the WebSocket
# protocol parses a turn: its last slice was parsed with the frames after it (review342).
_LONG_HEAD = "".join(f"X-Pad-{index}: {'a' * 7000}\r\n" for index in range(3))


def _read_until(sock: socket.socket, end: bytes) -> bytes:
    """What ``sock`` gives until it has given ``end`` (all it gave, if it never does)."""
    received = b""
    deadline = time.monotonic() + TIMEOUT
    while not received.endswith(end) and time.monotonic() < deadline:
        sock.settimeout(max(deadline - time.monotonic(), 0.01))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        received += chunk
    return received


@pytest.mark.parametrize("count", [1, 2, 150])
def test_frames_sent_with_the_handshake_reach_the_handler(
    served_ws_ways: Uvicorn, count: int
) -> None:
    # NOTE: RFC 6455 4.1 asks a client to wait for the 101 before it sends, but frames sent
    # with the handshake are on the connection: Uvicorn handed the WebSocket protocol the
    # handshake alone, and they were lost (the client waited for its echoes for ever). 150
    # frames pass the 16 KiB slices that microweb's httptools protocol parses a read in.
    texts = [f"message {index:03} " + "x" * 100 for index in range(count)]
    frames = b"".join(_text_frame(text) for text in texts)
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo") + frames)
        received = _read_until(sock, texts[-1].encode())
    assert received.startswith(b"HTTP/1.1 101 ")
    echoed = received.partition(b"\r\n\r\n")[2]
    assert echoed == b"".join(bytes([0x81, len(text)]) + text.encode() for text in texts)


def test_a_frame_cut_after_the_handshake_is_joined_with_its_rest(served_ws_ways: Uvicorn) -> None:
    frame = _text_frame("cut in two")
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo") + frame[:3])
        assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        sock.sendall(frame[3:])
        assert _read_until(sock, b"cut in two") == b"\x81\x0acut in two"


def test_frames_after_a_handshake_pipelined_behind_a_request_reach_the_handler(
    served_ws_ways: Uvicorn,
) -> None:
    plain = f"GET /plain HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode("ascii")
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(plain + _handshake("/echo") + _text_frame("after a request"))
        received = _read_until(sock, b"after a request")
    answer, _, rest = received.partition(b"HTTP/1.1 101 ")
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"plain")
    assert rest.endswith(b"\r\n\r\n\x81\x0fafter a request")


_CLOSE_FRAME = bytes([0x88, 0x82]) + bytes(4) + (1000).to_bytes(2, "big")  # masked, zero mask


@pytest.mark.parametrize(
    "sent",
    [
        _CLOSE_FRAME,
        b"\xff\xff not a frame",
        f"GET /plain HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode(),
    ],
    ids=["close", "garbage", "http-request"],
)
@pytest.mark.parametrize("extra", ["", _LONG_HEAD], ids=["head", "long-head"])
def test_bad_frames_sent_with_the_handshake_log_no_traceback(
    served_ws_ways: Uvicorn, sent: bytes, extra: str
) -> None:
    # NOTE: the WebSocket protocol parsed them before the app had accepted: websockets failed
    # the connection while it was still connecting, and Uvicorn's protocol raised on that
    # (AssertionError: "Fatal error: protocol.data_received() call failed", and a second
    # traceback from its task). They wait for accept() now, and are handled as after it.
    logged = len(served_ws_ways.log_text())
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo", extra) + sent)
        received = _read_until(sock, b"never sent")
    assert received.startswith(b"HTTP/1.1 101 ")
    assert b"\x88" in received.partition(b"\r\n\r\n")[2]  # a close frame of the server's
    time.sleep(0.2)  # NOTE: for a traceback logged after the close, if any.
    log = served_ws_ways.log_text()[logged:]
    assert "Traceback" not in log, log


def test_frames_sent_with_the_handshake_are_dropped_for_uvicorns_own_protocol(
    tmp_path: Path,
) -> None:
    # NOTE: Uvicorn's own WebSocket protocol (beside microweb's h11 protocol, which no
    # `microweb serve` pairs it with) parses what it is given at once: a close frame handed
    # over with the handshake made it raise. It is given the handshake alone, as by Uvicorn.
    with run_served("uvicorn-h11", "ws_app:app", tmp_path) as server:
        with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as sock:
            sock.sendall(_handshake("/echo") + _CLOSE_FRAME)
            assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
            sock.sendall(_text_frame("after the 101"))
            assert _read_until(sock, b"after the 101").endswith(b"after the 101")
        time.sleep(0.2)  # NOTE: for a traceback logged after the close, if any.
        log = server.log_text()
    assert "Traceback" not in log, log


@pytest.mark.parametrize("extra", ["", _LONG_HEAD], ids=["head", "long-head"])
def test_a_ping_sent_with_the_handshake_is_answered_after_the_101(
    served_ws_ways: Uvicorn, extra: str
) -> None:
    # NOTE: websockets answered it while still connecting, and the pong went out before the
    # 101's status line: the client could not read the answer to its handshake.
    ping = bytes([0x89, 0x80]) + bytes(4)  # FIN, ping, masked, empty
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo", extra) + ping + _text_frame("after the ping"))
        received = _read_until(sock, b"after the ping")
    assert received.startswith(b"HTTP/1.1 101 "), received
    assert received.partition(b"\r\n\r\n")[2] == b"\x8a\x00\x81\x0eafter the ping"


def test_a_ping_read_with_the_clients_close_is_answered_before_the_close(
    served_ws_ways: Uvicorn,
) -> None:
    # SPEC: RFC 6455 5.5.2: a ping is answered unless a close frame came before it; the pong,
    # kept for the end of the slice, was dropped once the close after it was read (review342).
    ping = bytes([0x89, 0x82]) + bytes(4) + b"hi"  # FIN, ping, masked, "hi"
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo"))
        assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        sock.sendall(ping + _CLOSE_FRAME)
        received = _read_until(sock, b"never sent")
    assert received == b"\x8a\x02hi\x88\x02\x03\xe8"


def test_a_read_of_pings_is_answered_and_the_message_after_it_too(served_ws_ways: Uvicorn) -> None:
    # NOTE: parsed a slice an event loop turn (review339), each slice's last ping answered:
    # the pongs are fewer than the pings, and the message behind them is echoed.
    pings = (bytes([0x89, 0x80]) + bytes(4)) * (256 * 1024 // 6)
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo"))
        assert _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101 ")
        sock.sendall(pings + _text_frame("after the pings"))
        received = _read_until(sock, b"after the pings")
    assert received.endswith(b"\x81\x0fafter the pings"), received[-40:]
    pongs = received[: -len(b"\x81\x0fafter the pings")]
    # NOTE: a pong a slice, 16 of 16 KiB at least (and one more for each read that cut a
    # slice short); a pong a ping was 43,690 of them.
    assert 1 <= len(pongs) // 2 <= 256 and pongs == b"\x8a\x00" * (len(pongs) // 2)


@pytest.mark.parametrize("name", ["Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions"])
def test_a_handshake_offering_thousands_of_elements_is_431(
    served_ws_ways: Uvicorn, name: str
) -> None:
    # NOTE: websockets parsed each in Python: 120,000 extensions took 220 ms (review339).
    offers = f"{name}: " + ",".join(["x"] * 3000) + "\r\n"
    head = _handshake("/echo")[:-2] + offers.encode("ascii") * 10 + b"\r\n"
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        received = _read_until(sock, b"never sent")
    assert received.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), received
    assert received.endswith(f"{name} offers more than 256 elements and parameters.\n".encode())


@pytest.mark.parametrize("path", ["/token", "/guarded", "/nowhere"])
def test_frames_sent_with_a_refused_handshake_reach_nothing(
    served_ws_ways: Uvicorn, path: str
) -> None:
    logged = len(served_ws_ways.log_text())
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake(path) + _text_frame("let me in") + _CLOSE_FRAME)
        received = _read_until(sock, b"never sent")
    status = received.partition(b"\r\n")[0]
    assert status in (
        b"HTTP/1.1 400 Bad Request",
        b"HTTP/1.1 401 Unauthorized",
        b"HTTP/1.1 403 Forbidden",
        b"HTTP/1.1 404 Not Found",
    ), received
    assert b"let me in" not in received
    time.sleep(0.2)
    log = served_ws_ways.log_text()[logged:]
    assert "Traceback" not in log, log


@pytest.mark.parametrize("path", ["/%65cho", "/echo?q=%%41%"])
def test_a_handshake_whose_path_holds_escapes_reaches_its_route(
    served_ws_ways: Uvicorn, path: str
) -> None:
    # NOTE: microweb's h11 protocol reads a request whose path holds escapes with a stand-in
    # target (review325): the handshake it hands the WebSocket protocol is the client's own.
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake(path) + _text_frame("escaped"))
        received = _read_until(sock, b"escaped")
    assert received.startswith(b"HTTP/1.1 101 "), received
    assert received.partition(b"\r\n\r\n")[2] == b"\x81\x07escaped"


def test_frames_sent_later_to_a_handshake_pipelined_behind_a_stream_reach_the_handler(
    served_ws_ways: Uvicorn,
) -> None:
    # NOTE: the handshake waits for the stream before it; the stream's watch for its client's
    # departure lets the connection be read meanwhile, and microweb's httptools protocol
    # dropped what it read then: the frame sent after the handshake never reached the handler.
    held = f"GET /held HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode("ascii")
    logged = len(served_ws_ways.log_text())
    with socket.create_connection((HOST, served_ws_ways.port), timeout=TIMEOUT) as sock:
        sock.sendall(held + _handshake("/echo"))
        assert b"first " in _read_until(sock, b"first \r\n")
        sock.sendall(_text_frame("sent while held"))
        time.sleep(0.3)  # NOTE: time for the server to read it while the stream goes on.
        released = httpx.get(served_ws_ways.http_url + "/release", timeout=TIMEOUT)
        assert released.text == "released"
        received = _read_until(sock, b"sent while held")
    answer, _, rest = received.partition(b"HTTP/1.1 101 ")
    assert b"last" in answer
    assert rest.endswith(b"\r\n\r\n\x81\x0fsent while held"), received
    assert "Traceback" not in served_ws_ways.log_text()[logged:]


def test_a_memoryview_goes_out_as_a_binary_message(ws_server: Uvicorn) -> None:
    with _connect(ws_server.ws_url + "/send/memoryview") as ws:
        assert ws.recv(timeout=TIMEOUT) == b"view"
        assert ws.recv(timeout=TIMEOUT) == "after"


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("text-none", "send_text() takes a str, not NoneType"),
        ("bytes-str", "send_bytes() takes bytes, not str: send_text() sends a str"),
        # NOTE: the server's own error, which the test client raises too (test_websockets).
        ("surrogate", "surrogates not allowed"),
    ],
)
def test_a_message_of_the_wrong_type_fails_the_handler_with_1011(
    ws_server: Uvicorn, case: str, error: str
) -> None:
    # NOTE: before the check, websockets-sansio sent nothing for None and the legacy
    # implementation sent the str as a text message: no error, and "after" went out.
    with _connect(ws_server.ws_url + f"/send/{case}") as ws:
        closed = _closed_by_server(ws)
    assert _close_code(closed) == 1011, ws_server.log_text()
    assert error in ws_server.log_text()


def test_handler_error_closes_1011(ws_server: Uvicorn) -> None:
    with _connect(ws_server.ws_url + "/boom") as ws:
        ws.send("go")
        closed = _closed_by_server(ws)
    assert _close_code(closed) == 1011
    assert "boom (expected by the test)" in ws_server.log_text()


@pytest.mark.parametrize("path", ["/plain", "/nowhere"])
def test_handshake_without_a_websocket_route_is_404(ws_server: Uvicorn, path: str) -> None:
    # NOTE: the 404 of an HTTP request for a path no route takes, where the server sends it
    # (it was an empty 403 that no error handler saw); the 403 of a close where it cannot.
    with pytest.raises(InvalidStatus) as refused:
        _connect(ws_server.ws_url + path)
    assert refused.value.response.status_code == (404 if UVICORN_SENDS_DENIAL else 403)
    assert httpx.get(ws_server.http_url + "/plain", timeout=TIMEOUT).text == "plain"


def test_a_websocket_disconnect_raised_before_accept_is_a_403_not_logged(
    ws_server: Uvicorn,
) -> None:
    # NOTE: the app sent nothing: Uvicorn answered 500 and logged "ASGI callable returned
    # without completing handshake."
    with pytest.raises(InvalidStatus) as refused:
        _connect(ws_server.ws_url + "/unwelcome")
    assert refused.value.response.status_code == 403
    assert "without completing handshake" not in ws_server.log_text()


def test_a_websocket_disconnect_raised_after_accept_closes_with_1000(ws_server: Uvicorn) -> None:
    # NOTE: the app sent no close: the client saw the connection drop with no close frame.
    with _connect(ws_server.ws_url + "/unwelcome?late=1") as ws:
        assert _close_code(_closed_by_server(ws)) == 1000


def test_a_handshake_without_a_header_the_handler_reads_is_refused_and_not_logged(
    ws_server: Uvicorn,
) -> None:
    # NOTE: the handler's 400, where the server sends it (Uvicorn 0.55 on); else a 403.
    with pytest.raises(InvalidStatus) as refused:
        _connect(ws_server.ws_url + "/token")
    assert refused.value.response.status_code == (400 if UVICORN_SENDS_DENIAL else 403)
    if UVICORN_SENDS_DENIAL:
        # NOTE: the guard flow's header, on the acceptance and now on the handler's refusal.
        assert refused.value.response.headers["x-served-by"] == "ws_app"
    assert "error in WebSocket handler for /token" not in ws_server.log_text()
    with connect(
        ws_server.ws_url + "/token", additional_headers={"X-Token": "t0k"}, proxy=None
    ) as ws:
        assert ws.recv(timeout=TIMEOUT) == "t0k"


def test_client_leaving_during_sends_is_a_websocket_disconnect(ws_server: Uvicorn) -> None:
    with _connect(ws_server.ws_url + "/ticker") as ws:
        assert ws.recv(timeout=TIMEOUT) == "0"
        assert ws.recv(timeout=TIMEOUT) == "1"
    deadline = time.monotonic() + TIMEOUT
    while "ticker: client left" not in ws_server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = ws_server.log_text()
    assert "error in WebSocket handler for /ticker" not in log, log
    assert "ticker: client left" in log, log


def test_the_apps_close_ends_a_receive_pending_in_another_task(ws_server: Uvicorn) -> None:
    # NOTE: the server sends websocket.disconnect with the app's own close, as the test client
    # does (tests/test_websockets_hostile.py): a watchdog's close ends the handler's receive.
    with _connect(ws_server.ws_url + "/watched") as ws:
        assert _close_code(_closed_by_server(ws)) == 4000
    deadline = time.monotonic() + TIMEOUT
    while "watched: receive ended" not in ws_server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "watched: receive ended (4000)" in ws_server.log_text()


def _send_and_vanish(server: Uvicorn, path: str, text: str) -> None:
    """Open a WebSocket on ``path``, send one short text frame and drop the TCP connection."""
    with socket.create_connection((HOST, server.port), timeout=TIMEOUT) as sock:
        key = base64.b64encode(os.urandom(16)).decode("ascii")
        handshake = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        sock.sendall(handshake.encode("ascii"))
        assert sock.recv(4096).startswith(b"HTTP/1.1 101 ")
        payload, mask = text.encode("utf-8"), os.urandom(4)
        assert len(payload) < 126
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)  # FIN, text, masked


def test_a_departure_seen_by_a_send_ends_the_receiving_loop(ws_server: Uvicorn) -> None:
    # NOTE: the client leaves while the handler is busy; the echo notices it first and skips
    # that client, as a broadcast does. The loop's next receive then ended with a
    # RuntimeError ("receive on a closed WebSocket"), logged as an error in the handler.
    _send_and_vanish(ws_server, "/relay", "hello, and goodbye")
    deadline = time.monotonic() + TIMEOUT
    while "relay: loop ended" not in ws_server.log_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = ws_server.log_text()
    assert "error in WebSocket handler for /relay" not in log, log
    assert "relay: loop ended" in log, log


def _refusal(server: Uvicorn, path: str) -> Response:
    with pytest.raises(InvalidStatus) as refused:
        _connect(server.ws_url + path)
    return refused.value.response


def _refused_with(server: Uvicorn, path: str) -> tuple[int, str, bytes]:
    answer = _refusal(server, path)
    return answer.status_code, answer.headers.get("www-authenticate", ""), bytes(answer.body)


def test_flow_refuses_or_stamps_the_handshake(ws_server: Uvicorn) -> None:
    # NOTE: plain Uvicorn announces the denial-response extension; before 0.55 its protocols
    # logged an error for each refusal sent that way (and 0.51's garbled its head): a close, a
    # 403. From 0.55 on they send it whole, and the client gets the app's answer, where it got
    # the 403 too.
    if UVICORN_SENDS_DENIAL:
        body = b'{"error":"a token is required"}'
        assert _refused_with(ws_server, "/guarded") == (401, "Bearer", body)
    else:
        assert _refused_with(ws_server, "/guarded") == (403, "", b"")
    assert _refused_with(ws_server, "/guarded?token=odd") == (403, "", b"")
    assert "Exception in ASGI application" not in ws_server.log_text()
    assert "without completing handshake" not in ws_server.log_text()
    with _connect(ws_server.ws_url + "/guarded?token=s3cret") as ws:
        assert ws.response is not None
        assert ws.response.headers["x-served-by"] == "ws_app"
        ws.send("let me in")
        assert ws.recv(timeout=TIMEOUT) == "let me in"


def test_a_flow_reading_the_handshake_body_leaves_the_socket_to_the_handler(
    ws_server: Uvicorn,
) -> None:
    with _connect(ws_server.ws_url + "/peeked") as ws:
        assert _receive_json(ws) == [False, ""]
        ws.send("still here")
        assert ws.recv(timeout=TIMEOUT) == "still here"


def test_wrong_message_type_closes_1003(ws_server: Uvicorn) -> None:
    with _connect(ws_server.ws_url + "/echo") as ws:
        ws.send(b"binary where text is expected")
        closed = _closed_by_server(ws)
    assert _close_code(closed) == 1003


def test_cors_refuses_a_handshake_from_another_origin(ws_server: Uvicorn) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _connect(ws_server.ws_url + "/echo", origin="https://evil.example")
    assert refused.value.response.status_code == 403
    with _connect(ws_server.ws_url + "/echo", origin=ALLOWED_ORIGIN) as ws:
        assert ws.response is not None
        assert ws.response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        ws.send("from the app's own page")
        assert ws.recv(timeout=TIMEOUT) == "from the app's own page"


def test_a_handshake_whose_path_is_not_utf8_gets_400_under_microweb_serve(
    served_ws: Uvicorn,
) -> None:
    # NOTE: refused with the 403 of a close, as a path with no WebSocket route, where an HTTP
    # request for it gets 400 (RFC 6455 4.2.1: a handshake the server cannot read).
    with socket.create_connection((HOST, served_ws.port), timeout=TIMEOUT) as sock:
        sock.sendall(_handshake("/echo%ff"))
        answer = _read_until(sock, b"request path is not valid UTF-8")
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert answer.endswith(b"\r\n\r\nrequest path is not valid UTF-8")
    assert "Traceback" not in served_ws.log_text()
