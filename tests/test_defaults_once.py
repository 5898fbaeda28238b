"""Uvicorn's default fields (Date, Server: ``server_state.default_headers``) on the refusals
``microweb serve``'s Uvicorn protocols write themselves, under httptools, h11 and the WebSocket
protocol: added by one function (``_uvicorn_shared.with_default_fields``), obeying
``--no-date-header`` and ``--no-server-header`` as Uvicorn's answers do."""

from __future__ import annotations

import asyncio
import base64
import email.utils
import re
import socket
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import uvicorn
from servers import HOST, read_until_closed, serving_module, uvicorn_command
from uvicorn.server import ServerState

from microweb import App, Request, Response
from microweb._conn_end import AnswersAfterEnd
from microweb._uvicorn_shared import with_default_fields

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


def test_a_field_is_found_in_any_case_and_spacing() -> None:
    # NOTE: a field name is matched without its case, on both sides, and without the
    # whitespace around it (review355: no test held either).
    refusal = b"HTTP/1.1 404 Not Found\r\nSERVER : app\r\n\r\n"
    answer = with_default_fields(_state([(b"Server", b"uvicorn")]), refusal)
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


def test_a_body_that_looks_like_a_head_is_left_as_it_is() -> None:
    refusal = b"HTTP/1.1 400 Bad Request\r\nDate: own\r\n\r\nx\r\n\r\ndate: body\r\n\r\n"
    answer = with_default_fields(_state(DEFAULTS), refusal, own_date=True)
    assert answer == (
        b"HTTP/1.1 400 Bad Request\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT\r\n"
        b"server: uvicorn\r\n\r\nx\r\n\r\ndate: body\r\n\r\n"
    )


def test_only_a_date_field_gives_way() -> None:
    # NOTE: a field whose name merely starts with "date" is not websockets' Date; names in any
    # case are matched.
    refusal = b"HTTP/1.1 400 Bad Request\r\nDate-X: 1\r\nSERVER: app\r\nDATE: own\r\n\r\n"
    answer = with_default_fields(_state(DEFAULTS), refusal, own_date=True)
    assert answer == (
        b"HTTP/1.1 400 Bad Request\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT\r\n"
        b"Date-X: 1\r\nSERVER: app\r\n\r\n"
    )


def test_headers_options_fields_go_as_uvicorn_has_them() -> None:
    # NOTE: --header's fields, in their order: an empty value, a name given twice; one the
    # answer has already (the app's, in a denial) is not added.
    defaults = [*DEFAULTS, (b"x-empty", b""), (b"x-twice", b"1"), (b"x-twice", b"2")]
    defaults.append((b"x-app", b"cli"))
    refusal = b"HTTP/1.1 404 Not Found\r\nX-App: app\r\n\r\n"
    answer = with_default_fields(_state(defaults), refusal)
    assert answer == (
        b"HTTP/1.1 404 Not Found\r\ndate: Mon, 07 Dec 2026 12:00:00 GMT\r\n"
        b"server: uvicorn\r\nx-empty: \r\nx-twice: 1\r\nx-twice: 2\r\nX-App: app\r\n\r\n"
    )


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


@pytest.mark.servers
def test_the_http_protocols_refusal(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: a transfer coding before chunked: refused by the protocol itself, with 501.
    request = b"POST /echo/sync HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    _assert_defaults(_answer(port, request), option, b"501")


@pytest.mark.servers
def test_the_websocket_protocols_refusal_of_a_head(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: a line over websockets' 8 KiB: its 431 had its own Date, and no Server.
    handshake = _handshake(b"/sync").replace(b"Host: x", b"Host: x\r\nX-Long: " + b"a" * 9000)
    _assert_defaults(_answer(port, handshake), option, b"431")


# NOTE: what websockets refuses a handshake for, once Uvicorn's HTTP protocol has upgraded it:
# the field it needs, and the status it refuses with.
_KEY = b"Sec-WebSocket-Key: " + base64.b64encode(b"k" * 16) + b"\r\n"
REFUSED_HANDSHAKES = {
    "no-key": (lambda handshake: handshake.replace(_KEY, b""), b"400"),
    "bad-key": (lambda handshake: handshake.replace(_KEY, b"Sec-WebSocket-Key: abc\r\n"), b"400"),
    "two-keys": (lambda handshake: handshake.replace(_KEY, _KEY + _KEY), b"400"),
    "bad-version": (lambda handshake: handshake.replace(b"Version: 13", b"Version: 8"), b"400"),
    "no-version": (
        lambda handshake: handshake.replace(b"Sec-WebSocket-Version: 13\r\n", b""),
        b"400",
    ),
    "two-upgrades": (
        lambda handshake: handshake.replace(_KEY, _KEY + b"Upgrade: websocket\r\n"),
        b"426",
    ),
}


@pytest.mark.servers
@pytest.mark.parametrize("reason", list(REFUSED_HANDSHAKES))
def test_the_websocket_protocols_refusal_of_a_handshake(
    served: tuple[int, str], reason: str
) -> None:
    port, option = served
    # NOTE: websockets refuses the handshake, the protocol writes its refusal: one Date (none
    # under --no-date-header) and one Server.
    change, status = REFUSED_HANDSHAKES[reason]
    _assert_defaults(_answer(port, change(_handshake(b"/sync"))), option, status)


@pytest.mark.servers
def test_the_websocket_protocols_refusal_of_offers(served: tuple[int, str]) -> None:
    port, option = served
    offers = b"Sec-WebSocket-Protocol: " + b",".join([b"p"] * 300) + b"\r\n\r\n"
    handshake = _handshake(b"/sync")[:-2] + offers
    _assert_defaults(_answer(port, handshake), option, b"431")


@pytest.mark.servers
def test_the_apps_refusal_of_a_handshake(served: tuple[int, str]) -> None:
    port, option = served
    # NOTE: a handshake no route takes: the app's 404, sent by the WebSocket protocol.
    _assert_defaults(_answer(port, _handshake(b"/nowhere")), option, b"404")


def _watch_app() -> App:
    app = App()

    @app.get("/")
    def index(request: Request) -> str:
        return "index"

    @app.post("/refuse")
    def refuse(request: Request) -> Response:
        # NOTE: answers without reading the body, as a 413 for its Content-Length does.
        return Response("too large", status=413)

    return app


def _watched_requests(protocol_class: Any, sent: list[bytes]) -> tuple[list[bytes], list[bool]]:
    """Serve ``_watch_app()`` with ``protocol_class``; send each of ``sent`` on a connection of
    its own (a half-close after it), and return the status of each answer, and whether each
    request's ``receive`` was wrapped by ``watch_for_cut()``."""
    cycles: list[Any] = []

    class Recording(protocol_class):  # type: ignore[misc,valid-type]
        def tell_sends_dropped(self, cycle: Any) -> None:
            cycles.append(cycle)
            super().tell_sends_dropped(cycle)

    async def run() -> list[bytes]:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(_watch_app().as_asgi(), lifespan="off", log_level="critical")
        state = ServerState()
        server = await loop.create_server(
            lambda: Recording(config, state, {}, loop), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        answers = []
        try:
            for data in sent:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(data)
                await writer.drain()
                writer.write_eof()
                answers.append(await asyncio.wait_for(reader.read(), 5))
                writer.close()
        finally:
            server.close()
            await server.wait_closed()
        return answers

    answers = asyncio.run(run())
    wrapped = [getattr(cycle.receive, "__name__", "") == "receive_unless_cut" for cycle in cycles]
    return [answer[9:12] for answer in answers], wrapped


HTTP_PROTOCOLS = ["httptools", "h11"]


def _protocol(name: str) -> Any:
    if name == "httptools":
        pytest.importorskip("httptools")
        from microweb._httptools import BoundedHttpTools

        return BoundedHttpTools
    from microweb._h11 import BoundedH11

    return BoundedH11


@pytest.mark.parametrize("http", HTTP_PROTOCOLS)
def test_only_a_request_with_a_body_to_come_is_watched(http: str) -> None:
    sent = [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        # NOTE: cut off by the end: answered without its body.
        b"POST /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",
        b"POST /refuse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    ]
    statuses, wrapped = _watched_requests(_protocol(http), sent)
    assert statuses == [b"200", b"413", b"413", b"413"]
    assert wrapped == [False, False, True, True]


async def _receive() -> Any:
    return {"type": "http.request", "body": b"", "more_body": False}


@pytest.mark.parametrize(
    ("headers", "watched"),
    [
        ([(b"host", b"x")], False),
        ([(b"content-length", b"0")], False),
        ([(b"content-length", b"5")], True),
        ([(b"transfer-encoding", b"chunked")], True),
    ],
)
def test_watch_for_cut_watches_a_body_to_come_only(
    headers: list[tuple[bytes, bytes]], watched: bool
) -> None:
    # NOTE: the end of a request not parsed yet (more_body), as httptools has it after the
    # head of every request: a GET's receive() is left as it is.
    cycle = SimpleNamespace(more_body=True, scope={"headers": headers}, receive=_receive)
    protocol = AnswersAfterEnd()
    protocol.watch_for_cut(cycle)
    assert (cycle.receive is not _receive) is watched
    assert (protocol.watched is cycle) is watched


def test_watch_for_cut_leaves_a_body_read_whole() -> None:
    headers = [(b"content-length", b"5")]
    cycle = SimpleNamespace(more_body=False, scope={"headers": headers}, receive=_receive)
    protocol = AnswersAfterEnd()
    protocol.watch_for_cut(cycle)
    assert cycle.receive is _receive


class _Written(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close: the test ends the connection."""

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        """Reading is the test's."""

    def resume_reading(self) -> None:
        """Reading is the test's."""


WS_HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


async def _raising(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("before the handshake's answer")


async def _waiting(scope: Any, receive: Any, send: Any) -> None:
    await asyncio.sleep(10)


async def _closing(scope: Any, receive: Any, send: Any) -> None:
    # NOTE: a close before accept, which microweb sends for a refusal the server cannot send
    # as it is (a streamed one, a status with no name): the server answers it with 403.
    await receive()
    await send({"type": "websocket.close", "code": 1008})


async def _never_run(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("a handshake over the concurrency limit reached the app")


@pytest.mark.parametrize(
    "app",
    [_raising, _waiting, _closing, _never_run],
    ids=["500", "503-at-shutdown", "403-for-a-close", "503-over-the-limit"],
)
def test_the_websocket_protocols_own_answers_take_uvicorns_fields(app: Any) -> None:
    # NOTE: Uvicorn's 500 for an app that failed before answering the handshake, its 403 for
    # a close before accept, and the protocol's 503 at the server's stop, were websockets'
    # refusals: its Date (kept under --no-date-header), no Server. The 503 over
    # --limit-concurrency (this connection is the one the limit allows) is the protocol's.
    from microweb._ws_flow import FlowControlledWebSockets

    async def connection() -> bytes:
        limit = 1 if app is _never_run else None
        config = uvicorn.Config(app, lifespan="off", log_level="critical", limit_concurrency=limit)
        config.load()
        state = ServerState()
        # NOTE: as under --no-date-header.
        state.default_headers = [(b"server", b"x")]
        protocol = FlowControlledWebSockets(config, state, {}, asyncio.get_running_loop())
        transport = _Written()
        protocol.connection_made(transport)
        protocol.data_received(WS_HANDSHAKE)
        for _ in range(5):
            await asyncio.sleep(0)
        if app is _waiting:
            protocol.shutdown()
        for _ in range(100):
            if b"\r\n\r\n" in transport.written:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        for task in list(state.tasks):
            task.cancel()
        await asyncio.sleep(0)
        return bytes(transport.written)

    written = asyncio.run(connection())
    status = {_raising: b"500", _waiting: b"503", _closing: b"403", _never_run: b"503"}[app]
    assert written.startswith(b"HTTP/1.1 " + status), written
    fields = _fields(written)
    assert [name for name, _ in fields].count(b"date") == 0, written
    assert (b"server", b"x") in fields, written
