"""``FlowControlledWebSockets``: the WebSocket protocol ``microweb serve`` gives Uvicorn.

The protocol is fed by hand, with a transport that pauses writing past asyncio's default
high-water mark, as a socket whose client reads nothing does.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import zlib
from typing import Any, TypeVar
from urllib.parse import unquote

import pytest
import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.server import ServerProtocol

from microweb import App, WebSocket, WebSocketDisconnect
from microweb._asgi_request import DENIAL_SENT_WHOLE
from microweb._ws_flow import MAX_FRAGMENTS, READ_SLICE, FlowControlledWebSockets
from microweb._ws_flow_handshake import MAX_OFFERS

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# NOTE: asyncio's default high-water mark for a transport's write buffer.
HIGH_WATER = 64 * 1024
P = TypeVar("P", bound=WebSocketsSansIOProtocol)


def _ping(payload: bytes) -> bytes:
    """A masked ping frame from the client."""
    return _masked(0x9, payload)


class _Unread(asyncio.Transport):
    """A socket whose client reads nothing: every write stays buffered."""

    def __init__(self, protocol: Any) -> None:
        super().__init__()
        self.protocol = protocol
        self.buffered = 0
        self.reading = True
        self.write_paused = False
        self.aborted = False
        self.closed = False
        self.written = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buffered += len(data)
        self.written += data
        if self.buffered > HIGH_WATER and not self.write_paused:
            self.write_paused = True
            self.protocol.pause_writing()

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """Note the close: the test ends the connection."""
        self.closed = True

    def abort(self) -> None:
        """Drop the connection, as asyncio does: the protocol hears of it soon."""
        self.aborted = True
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_protocol(self) -> Any:
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


def _protocol(
    protocol_class: type[P], app: Any, state: ServerState | None = None, **settings: Any
) -> P:
    """``protocol_class`` serving the ASGI ``app`` as Uvicorn makes it (``settings`` go to its
    ``Config``), on the running loop, with no transport yet."""
    config = uvicorn.Config(app, lifespan="off", log_level="critical", **settings)
    config.load()
    return protocol_class(config, state or ServerState(), {}, asyncio.get_running_loop())


def _connected(protocol_class: type[P], app: App) -> tuple[P, _Unread]:
    """``protocol_class`` serving ``app``, connected to a client that reads nothing."""
    protocol = _protocol(protocol_class, app.as_asgi())
    transport = _Unread(protocol)
    protocol.connection_made(transport)
    return protocol, transport


def _idle_app() -> App:
    """An app that accepts a WebSocket at ``/ws`` and waits for a text message."""
    app = App()

    @app.websocket("/ws")
    async def idle(ws: WebSocket) -> None:
        await ws.accept()
        await ws.receive_text()

    return app


def _echoing_app() -> App:
    """An app that accepts a WebSocket at ``/ws`` and sends each text message back."""
    app = App()

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(text)

    return app


async def _accepted(
    protocol_class: type[WebSocketsSansIOProtocol],
    app: App,
    until_writes_wait: bool = False,
    offer: bytes = b"",
) -> tuple[WebSocketsSansIOProtocol, _Unread]:
    """A WebSocket connection to ``app`` over ``protocol_class``, its handshake done (and,
    with ``until_writes_wait``, the app's first sends past the high-water mark); ``offer``
    is the client's ``Sec-WebSocket-Extensions`` header, if any."""
    protocol, transport = _connected(protocol_class, app)
    extensions = b"Sec-WebSocket-Extensions: " + offer + b"\r\n" if offer else b""
    protocol.data_received(HANDSHAKE[:-2] + extensions + b"\r\n")
    for _ in range(100):
        if transport.write_paused if until_writes_wait else protocol.handshake_complete:
            break
        await asyncio.sleep(0.01)
    return protocol, transport


def _pings_read(protocol_class: type[WebSocketsSansIOProtocol]) -> tuple[int, int]:
    """Feed pings, 1 MiB at most, while the transport reads; return (bytes fed, buffered)."""

    async def connection() -> tuple[int, int]:
        protocol, transport = await _accepted(protocol_class, _echoing_app())
        fed = 0
        read = _ping(b"p" * 100) * 100
        while transport.reading and fed < 1024 * 1024:
            protocol.data_received(read)
            fed += len(read)
        protocol.connection_lost(None)
        return fed, transport.buffered

    return asyncio.run(connection())


def test_a_client_that_reads_no_pongs_gets_no_more_of_them_buffered() -> None:
    # NOTE: Uvicorn's own protocol read on and buffered every pong: a client that sent pings
    # and read nothing made the server hold 120 MB in 15 s, growing as it sent (hunt46).
    fed, buffered = _pings_read(FlowControlledWebSockets)
    assert fed >= 1024 * 1024
    assert buffered < 2 * HIGH_WATER


def test_uvicorns_own_protocol_buffers_every_pong() -> None:
    # NOTE: what FlowControlledWebSockets is for; if Uvicorn stops reading itself one day, the
    # protocol can go.
    fed, buffered = _pings_read(WebSocketsSansIOProtocol)
    assert fed >= 1024 * 1024
    assert buffered > 900 * 1024  # NOTE: a pong is 4 bytes shorter than its masked ping.


def _masked(opcode: int, payload: bytes, fin: bool = True, compressed: bool = False) -> bytes:
    """A masked frame from the client, of any length (a fragment unless ``fin``; with
    ``compressed``, the first frame of a permessage-deflate message)."""
    mask = b"abcd"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    size = len(payload)
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 65536:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    first = (0x80 if fin else 0) | (0x40 if compressed else 0) | opcode
    return bytes([first]) + length + mask + masked


def test_the_pong_to_the_last_ping_goes_once_the_client_reads() -> None:
    async def connection() -> bytes:
        protocol, transport = await _accepted(FlowControlledWebSockets, _idle_app())
        while not transport.write_paused:
            protocol.data_received(_ping(b"early"))
        written: list[bytes] = []
        transport.write = written.append  # type: ignore[method-assign]
        protocol.data_received(_ping(b"one") + _ping(b"two"))
        protocol.data_received(_ping(b"three"))
        assert written == []
        transport.write_paused = False
        protocol.resume_writing()  # NOTE: the client has read what was buffered.
        protocol.data_received(_ping(b"four"))
        protocol.connection_lost(None)
        return b"".join(written)

    # NOTE: RFC 6455 5.5.3: an endpoint may answer only the most recent ping.
    assert asyncio.run(connection()) == b"\x8a\x05three\x8a\x04four"


def test_a_client_that_sends_a_message_whole_before_reading_is_read() -> None:
    # NOTE: the app sent more than the client had read, then waited for the client's message;
    # the client sends it whole before it reads (a blocking client does). Stopping reading
    # while answers wait deadlocked both: the protocol must read on (review48).
    received: list[int] = []

    async def connection() -> int:
        app = App()

        @app.websocket("/ws")
        async def push_then_read(ws: WebSocket) -> None:
            await ws.accept()
            await ws.send_bytes(b"s" * (4 * HIGH_WATER))
            received.append(len(await ws.receive_bytes()))

        protocol, transport = await _accepted(FlowControlledWebSockets, app, True)
        message = _masked(0x2, b"c" * (8 * HIGH_WATER))
        fed = 0
        while fed < len(message):
            # NOTE: a read is parsed a slice a turn, reading paused meanwhile; reading that
            # stays paused is the deadlock.
            for _ in range(100):
                if transport.reading:
                    break
                await asyncio.sleep(0)
            if not transport.reading:
                break
            protocol.data_received(message[fed : fed + HIGH_WATER])
            fed += HIGH_WATER
        for _ in range(100):
            if received:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return fed

    assert asyncio.run(connection()) >= 8 * HIGH_WATER
    assert received == [8 * HIGH_WATER]


def _closed_with(transport: _Unread) -> int | None:
    """The code of the close frame the server wrote last, if any."""
    at = transport.written.rfind(b"\x88")
    if at < 0 or at + 4 > len(transport.written):
        return None
    return int.from_bytes(transport.written[at + 2 : at + 4], "big")


def _echo_app(received: list[str]) -> App:
    app = App()

    @app.websocket("/ws")
    async def collect(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            received.append(text)

    return app


def test_a_text_message_that_is_not_utf8_closes_1007_with_nothing_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # NOTE: Uvicorn's protocol closed it with 1007 too, but logged the UnicodeDecodeError's
    # traceback at ERROR: any client wrote tracebacks into the log at will (hunt56).
    received: list[str] = []

    async def connection() -> int | None:
        protocol, transport = await _accepted(FlowControlledWebSockets, _echo_app(received))
        # NOTE: Uvicorn's logging config stops its records short of the root logger, and
        # log_level="critical" drops errors.
        logger = logging.getLogger("uvicorn.error")
        level = logger.level
        logger.addHandler(caplog.handler)
        logger.setLevel(logging.INFO)
        try:
            protocol.data_received(_masked(0x1, b"fine"))
            await asyncio.sleep(0.01)
            protocol.data_received(_masked(0x1, "café".encode()[:-1], fin=False))
            protocol.data_received(_masked(0x0, b"!"))
            await asyncio.sleep(0.01)
        finally:
            logger.removeHandler(caplog.handler)
            logger.setLevel(level)
        protocol.connection_lost(None)
        return _closed_with(transport)

    assert asyncio.run(connection()) == 1007
    assert received == ["fine"]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []


def test_a_message_in_too_many_fragments_closes_1009() -> None:
    # NOTE: websockets counts a fragmented message's bytes, not its fragments: empty ones
    # went on for ever, each costing 3 us of CPU and 8 bytes of Uvicorn's list (5 million
    # held 39 MB and took 30 s, and the message never ended; hunt56).
    received: list[str] = []

    async def connection() -> tuple[int | None, bool]:
        protocol, transport = await _accepted(FlowControlledWebSockets, _echo_app(received))
        protocol.data_received(_masked(0x1, b"a", fin=False))
        empty = _masked(0x0, b"", fin=False)
        for _ in range(100):
            protocol.data_received(empty * 100)
        protocol.data_received(_masked(0x0, b"z"))
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return _closed_with(transport), len(protocol.frames) <= MAX_FRAGMENTS

    assert asyncio.run(connection()) == (1009, True)
    assert received == []


def test_a_message_in_as_many_fragments_as_allowed_is_received() -> None:
    received: list[str] = []

    async def connection() -> int | None:
        protocol, transport = await _accepted(FlowControlledWebSockets, _echo_app(received))
        fragments = [_masked(0x0, b"b", fin=False)] * (MAX_FRAGMENTS - 2)
        protocol.data_received(b"".join([_masked(0x1, b"a", fin=False), *fragments]))
        protocol.data_received(_masked(0x0, b"c"))
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return _closed_with(transport)

    assert asyncio.run(connection()) is None
    assert received == ["a" + "b" * (MAX_FRAGMENTS - 2) + "c"]


def _deflated(data: bytes) -> bytes:
    """``data`` compressed as a permessage-deflate client does (RFC 7692 7.2.1)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -12)
    return (compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]


def test_messages_wait_compressed_until_the_app_takes_the_one_before() -> None:
    # NOTE: Uvicorn's protocol inflated every message of a read before it stopped reading:
    # 1 MiB of zeros deflates to 1 KiB, so one 256 KiB read queued 250 MiB for an app that
    # had not received yet; three such clients took a server from 31 MB to 543 MB (hunt56).
    taken: list[int] = []
    queued: list[int] = []

    async def connection() -> None:
        app = App()

        @app.websocket("/ws")
        async def slow(ws: WebSocket) -> None:
            await ws.accept()
            async for data in ws.iter_bytes():
                taken.append(len(data))

        protocol, _ = await _accepted(
            FlowControlledWebSockets, app, offer=b"permessage-deflate; client_max_window_bits"
        )
        message = _masked(0x2, _deflated(bytes(1000 * 1024)), compressed=True)
        protocol.data_received(message * 20)
        queued.append(sum(len(item.get("bytes") or b"") for item in protocol.queue._queue))  # type: ignore[attr-defined]
        for _ in range(200):
            if len(taken) == 20:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)

    asyncio.run(connection())
    assert queued[0] <= 5 * 1024 * 1024  # NOTE: 4 KiB inflates to 4 MiB at most.
    assert taken == [1000 * 1024] * 20


def test_a_client_that_reads_nothing_the_app_sends_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: the app's send waited for the buffer to drain for ever: Uvicorn's keepalive ping
    # timed out and closed the transport, but close() waits for the buffer too, so the
    # connection and the app's task stayed for good (95 s and counting; hunt56).
    monkeypatch.setattr(FlowControlledWebSockets, "stall_timeout", 0.2)
    ended: list[int] = []

    async def connection() -> bool:
        app = App()

        @app.websocket("/ws")
        async def push(ws: WebSocket) -> None:
            await ws.accept()
            try:
                while True:
                    await ws.send_bytes(bytes(HIGH_WATER))
            except WebSocketDisconnect as exc:
                ended.append(exc.code)

        protocol, transport = await _accepted(FlowControlledWebSockets, app, True)
        for _ in range(200):
            if ended:
                break
            await asyncio.sleep(0.01)
        if not ended:
            protocol.connection_lost(None)
        return transport.aborted

    assert asyncio.run(connection())
    assert ended == [1006]


@pytest.mark.parametrize(
    ("head", "status"),
    [
        # NOTE: websockets allows 128 header lines and 8 KiB a line; Uvicorn's HTTP protocol
        # passes such a head on (microweb's caps a head at 256 KiB).
        (HANDSHAKE[:-2] + b"X-Many: 1\r\n" * 130 + b"\r\n", b"431"),
        (HANDSHAKE[:-2] + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n", b"431"),
        (HANDSHAKE[:-2] + b"X-Bad: a\x01b\r\n\r\n", b"400"),
    ],
)
def test_a_handshake_websockets_refuses_is_answered_and_closed(head: bytes, status: bytes) -> None:
    # NOTE: websockets refused it, but Uvicorn's protocol never wrote the refusal: the
    # connection stayed open, and at shutdown Uvicorn's 500 for it raised AssertionError
    # (websockets had ended its output already), so the server crashed with a traceback
    # before the app's shutdown hooks ran (hunt56).
    async def connection() -> tuple[bytes, bool]:
        protocol = _protocol(FlowControlledWebSockets, App().as_asgi())
        transport = _Unread(protocol)
        closed: list[bool] = []
        transport.close = lambda: closed.append(True)  # type: ignore[method-assign]
        protocol.connection_made(transport)
        protocol.data_received(head)
        written = bytes(transport.written)
        protocol.shutdown()
        protocol.connection_lost(None)
        return written, bool(closed)

    written, closed = asyncio.run(connection())
    assert written.startswith(b"HTTP/1.1 " + status + b" ")
    assert b"\r\n\r\n" in written
    assert closed
    # NOTE: one answer: Uvicorn 0.55's protocol answers such a handshake itself, and this
    # one's answer followed it (review342; asyncio dropped it, once the first was sent).
    assert written.count(b"HTTP/1.1 ") == 1


@pytest.mark.parametrize("own", [True, False], ids=["websockets", "fallback"])
@pytest.mark.parametrize(
    ("head", "status"),
    [
        (HANDSHAKE[:-2] + b"X-Many: 1\r\n" * 130 + b"\r\n", b"431"),
        (HANDSHAKE[:-2] + b"X-Bad: a\x01b\r\n\r\n", b"400"),
    ],
)
def test_a_refused_handshake_carries_date_and_server_once(
    head: bytes, status: bytes, own: bool
) -> None:
    # SPEC: RFC 9110 6.6.1, an origin server with a clock MUST send Date in a 4xx or 5xx.
    # NOTE: the HTTP protocols' own refusals carry Uvicorn's Date and Server (review330);
    # websockets' refusal had its Date alone, and the protocol's own (when websockets wrote
    # none) neither (review338).
    async def connection() -> bytes:
        state = ServerState()
        state.default_headers = [(b"date", b"Mon, 07 Dec 2026 09:00:00 GMT"), (b"server", b"x")]
        protocol = _protocol(FlowControlledWebSockets, App().as_asgi(), state)
        if not own:
            protocol.conn.data_to_send = list  # type: ignore[method-assign]
        transport = _Unread(protocol)
        transport.close = lambda: None  # type: ignore[method-assign]
        protocol.connection_made(transport)
        protocol.data_received(head)
        written = bytes(transport.written)
        protocol.connection_lost(None)
        return written

    written = asyncio.run(connection())
    # NOTE: the protocol's own 431 is for websockets 15's cause alone (refuse_handshake()).
    assert written.startswith(b"HTTP/1.1 " + (status if own else b"4")), written
    fields = written.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")[1:]
    names = [field.partition(b":")[0] for field in fields]
    assert names.count(b"date") == 1, written
    assert names.count(b"server") == 1, written
    assert b"server: x" in fields, written
    assert written.count(b"HTTP/1.1 ") == 1, written


def test_the_apps_refusal_of_a_handshake_carries_the_servers_fields_once() -> None:
    # NOTE: the app's 404 to a handshake no route takes had Date (set here) but no Server,
    # where its 404 to any other request has both (review338).
    app = App()

    async def connection(path: bytes) -> bytes:
        state = ServerState()
        state.default_headers = [(b"date", b"Mon, 07 Dec 2026 09:00:00 GMT"), (b"server", b"x")]
        protocol = _protocol(FlowControlledWebSockets, app.as_asgi(), state)
        transport = _Unread(protocol)
        protocol.connection_made(transport)
        protocol.data_received(HANDSHAKE.replace(b" /ws ", b" " + path + b" ", 1))
        for _ in range(100):
            if b"\r\n\r\n" in transport.written:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        protocol.connection_lost(None)
        return bytes(transport.written)

    for path, server in ((b"/nowhere", b"x"),):
        written = asyncio.run(connection(path))
        fields = written.partition(b"\r\n\r\n")[0].lower().split(b"\r\n")[1:]
        names = [field.partition(b":")[0] for field in fields]
        assert names.count(b"date") == 1, written
        assert names.count(b"server") == 1, written
        assert b"server: " + server in fields, written


def test_the_apps_sends_wait_while_the_client_reads_nothing() -> None:
    # NOTE: under Uvicorn 0.51 and 0.52 (pyproject's floor is 0.51) the protocol had no
    # pause_writing(): every send went into the buffer, which grew without a bound for a
    # client that read nothing, and a loop of sends never yielded to the event loop.
    sent: list[int] = []

    async def connection() -> tuple[list[int], int]:
        app = App()

        @app.websocket("/ws")
        async def push(ws: WebSocket) -> None:
            await ws.accept()
            # NOTE: bounded, so that a failure is a failure, not the machine's memory gone.
            for count in range(1, 33):
                await ws.send_bytes(bytes(HIGH_WATER // 4))
                sent.append(count)

        protocol, transport = await _accepted(FlowControlledWebSockets, app, True)
        await asyncio.sleep(0.1)
        held = list(sent)
        protocol.connection_lost(None)
        await asyncio.sleep(0.05)
        return held, transport.buffered

    held, buffered = asyncio.run(connection())
    # NOTE: the send that crossed the high-water mark returned; the next one waits.
    assert held and held[-1] <= 5
    assert buffered <= 2 * HIGH_WATER


class _Reset(_Unread):
    """A socket whose client has read everything so far; ``reset()`` makes it vanish, as
    asyncio's transport does when a write fails: closing at once, the protocol told soon."""

    def __init__(self, protocol: Any) -> None:
        super().__init__(protocol)
        self.closing = False
        self.writes_after_reset = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.closing:
            # NOTE: asyncio drops a write to a lost transport (with a warning past 5 of them).
            self.writes_after_reset += 1
            return
        self.written += data

    def reset(self) -> None:
        self.closing = True
        asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        """Close once the buffer is sent: the client still reads what comes before it."""
        self.closing = True


def test_a_loop_of_sends_hears_at_once_that_the_connection_is_lost() -> None:
    # NOTE: a send that finds the socket gone (asyncio's write fails) closes the transport at
    # once, but tells the protocol only on the next turn of the event loop; a loop of sends
    # to a client that kept up never yields to it, so it went on writing to nothing, with
    # the event loop held (100,000 messages of 60 KB: 3.4 s of CPU and 200,000 warnings in
    # the log, under Uvicorn 0.51 and 0.54 alike; review57).
    ended: list[tuple[int, int]] = []

    async def connection() -> int:
        app = App()

        @app.websocket("/ws")
        async def push(ws: WebSocket) -> None:
            await ws.accept()
            count = 0
            try:
                # NOTE: bounded, so that a failure is a failure, not the test hung.
                for count in range(1, 1001):
                    await ws.send_bytes(b"x")
                    if count == 10:
                        transport.reset()
            except WebSocketDisconnect as exc:
                ended.append((exc.code, count))

        protocol = _protocol(FlowControlledWebSockets, app.as_asgi())
        transport = _Reset(protocol)
        protocol.connection_made(transport)
        protocol.data_received(HANDSHAKE)
        for _ in range(100):
            if ended:
                break
            await asyncio.sleep(0.01)
        return transport.writes_after_reset

    assert asyncio.run(connection()) == 0
    assert ended == [(1006, 11)]


@pytest.mark.parametrize(
    "frame",
    [
        b"\x81\x81abcd" + bytes([0xFF ^ ord("a")]),  # NOTE: text that is not UTF-8: 1007.
        b"\x81\x01x",  # NOTE: an unmasked frame: 1002, from websockets.
    ],
)
def test_a_send_after_the_server_closed_on_a_bad_frame_is_a_disconnect(
    frame: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # NOTE: the server closes on a bad frame while the app's send waits for the client to
    # read; the client reads on, writing resumes before the connection ends, and Uvicorn
    # raised RuntimeError ("Unexpected ASGI message 'websocket.send', after sending
    # 'websocket.close'") into the app: any client wrote a traceback into the log (60 KB
    # messages sent to a client that read them: 2 runs in 4 under Uvicorn 0.51; review57).
    ended: list[int] = []

    async def connection() -> None:
        app = App()

        @app.websocket("/ws")
        async def push(ws: WebSocket) -> None:
            await ws.accept()
            try:
                for _ in range(100):
                    await ws.send_bytes(bytes(HIGH_WATER))
            except WebSocketDisconnect as exc:
                ended.append(exc.code)

        protocol, transport = await _accepted(FlowControlledWebSockets, app, True)
        protocol.data_received(frame)
        transport.write_paused = False
        protocol.resume_writing()
        for _ in range(100):
            if ended:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.sleep(0.01)

    with caplog.at_level(logging.ERROR):
        asyncio.run(connection())
    assert ended == [1006]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_a_handshake_the_app_has_not_answered_gets_503_at_shutdown() -> None:
    # NOTE: Uvicorn's protocol answered 500 Internal Server Error: no error, the server stops.
    ended: list[str] = []
    app = App()
    go = asyncio.Event()

    @app.websocket("/ws")
    async def slow(ws: WebSocket) -> None:
        await go.wait()
        try:
            await ws.accept()
        except WebSocketDisconnect as exc:
            ended.append(f"disconnect {exc.code}")
            raise

    async def connection() -> bytes:
        protocol, transport = _connected(FlowControlledWebSockets, app)
        protocol.data_received(HANDSHAKE)
        await asyncio.sleep(0.05)
        protocol.shutdown()
        # NOTE: closed at once, as Uvicorn's shutdown waits for its connections to close
        # (review355: no test saw it left open).
        assert transport.closed
        go.set()
        for _ in range(100):
            if ended:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return bytes(transport.written)

    written = asyncio.run(connection())
    assert written.startswith(b"HTTP/1.1 503 Service Unavailable\r\n")
    assert written.endswith(b"\r\n\r\nThe server is stopping.\n")
    assert ended == ["disconnect 1006"]


def _close_frame(payload: bytes) -> bytes:
    """A masked close frame from the client."""
    return _masked(0x8, payload)


@pytest.mark.parametrize(
    ("protocol_class", "ending", "code"),
    [
        # SPEC: RFC 6455 7.1.5: a connection that ended with no close frame received ends
        # with 1006; 1005 is a close frame that held no code (7.4.1).
        (FlowControlledWebSockets, b"", 1006),
        (FlowControlledWebSockets, _close_frame(b""), 1005),
        (FlowControlledWebSockets, _close_frame((4000).to_bytes(2, "big") + b"bye"), 4000),
        # NOTE: Uvicorn's own protocol (0.55 still) says 1005 for a dropped connection, which
        # made a client's vanishing (a network lost) read as a clean close without a code.
        (WebSocketsSansIOProtocol, b"", 1005),
    ],
)
def test_a_connection_dropped_without_a_close_frame_ends_with_1006(
    protocol_class: type[WebSocketsSansIOProtocol], ending: bytes, code: int
) -> None:
    ended: list[int] = []

    async def connection() -> None:
        app = App()

        @app.websocket("/ws")
        async def wait(ws: WebSocket) -> None:
            await ws.accept()
            try:
                await ws.receive_text()
            except WebSocketDisconnect as exc:
                ended.append(exc.code)

        protocol, _ = await _accepted(protocol_class, app)
        if ending:
            protocol.data_received(ending)
        protocol.connection_lost(None)
        for _ in range(100):
            if ended:
                break
            await asyncio.sleep(0.01)

    asyncio.run(connection())
    assert ended == [code]


@pytest.mark.parametrize("eager", [False, True], ids=["tasks", "eager-tasks"])
@pytest.mark.parametrize(
    "path",
    [b"/" + b"%" * 8_000, b"/a%2Fb%41%zz%C3%A9%ff%%4?q=%41%", b"/ws?q=%%", b"/ws"],
    ids=["lone", "mixed", "query-only", "none"],
)
def test_a_handshake_path_of_escapes_is_decoded_in_c_as_uvicorn_decodes_it(
    path: bytes, eager: bool
) -> None:
    # NOTE: Uvicorn decodes a handshake's path with urllib.parse.unquote(), a Python loop that
    # raises and catches a KeyError for each "%" that starts no escape, in the event loop:
    # 8 KB of "%" (websockets' cap on a line) took 3 ms of CPU a handshake (review325).
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        # NOTE: a copy: what the app finds as it starts (under an eager task factory, inside
        # handle_connect(), review351).
        seen.append({**scope, "extensions": dict(scope["extensions"])})
        await receive()
        await send({"type": "websocket.close", "code": 1000})

    raised: list[type[BaseException]] = []

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "exception" and arg[0] is KeyError:
            raised.append(arg[0])
        return tracer

    async def connection() -> None:
        if eager:
            # NOTE: Python 3.12's; Uvicorn runs a custom loop factory given to --loop.
            factory = getattr(asyncio, "eager_task_factory", None)
            if factory is None:
                pytest.skip("no eager task factory before Python 3.12")
            asyncio.get_running_loop().set_task_factory(factory)
        protocol = _protocol(FlowControlledWebSockets, app, root_path="/r%20")
        transport = _Unread(protocol)
        protocol.connection_made(transport)
        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            protocol.data_received(HANDSHAKE.replace(b"/ws", path, 1))
        finally:
            sys.settrace(previous)
        for _ in range(100):
            if seen:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.sleep(0.01)

    asyncio.run(connection())
    raw_path, _, query = path.partition(b"?")
    assert (seen[0]["path"], seen[0]["raw_path"], seen[0]["query_string"]) == (
        "/r%20" + unquote(raw_path.decode("ascii")),
        b"/r%20" + raw_path,
        query,
    )
    # NOTE: that this protocol sends an app's refusal whole, there as the app starts.
    assert DENIAL_SENT_WHOLE in seen[0]["extensions"]
    assert len(raised) < 10


def test_a_read_of_pings_is_parsed_a_slice_a_turn_with_reading_paused_meanwhile() -> None:
    # NOTE: control frames wait for no app: one 256 KiB read of empty pings (43,690 frames,
    # 3 to 4 us each) was parsed in one callback, holding the event loop 170 ms, and a client
    # that sent them on kept every other connection waiting (an echo on another took 460 ms;
    # review339). A slice's worth is parsed a turn, and reading waits for the rest.
    pings = _ping(b"") * (256 * 1024 // 6)

    async def connection() -> tuple[int, bool, int, bool, bytes]:
        protocol, transport = await _accepted(FlowControlledWebSockets, _idle_app())
        start = len(transport.written)
        protocol.data_received(pings)
        first_turn = len(pings) - len(protocol.unparsed)
        reading_meanwhile = transport.reading
        for _ in range(200):
            if not protocol.unparsed and transport.reading:
                break
            await asyncio.sleep(0)
        answered = transport.written[start:].count(b"\x8a\x00")
        left = protocol.unparsed
        reading = transport.reading
        protocol.connection_lost(None)
        return first_turn, reading_meanwhile, answered, reading, left

    first_turn, reading_meanwhile, answered, reading, left = asyncio.run(connection())
    assert first_turn <= READ_SLICE
    assert not reading_meanwhile
    # NOTE: a pong a slice, to its last ping.
    assert answered == -(-len(pings) // READ_SLICE)
    assert (reading, left) == (True, b"")


def _handshake_answered(extra: bytes) -> tuple[bytes, int]:
    """The status line the handshake with ``extra`` header lines got, and the subprotocols
    the app was offered (-1 if it was not called)."""
    offered: list[int] = []
    app = App()

    @app.websocket("/ws")
    async def accept(ws: WebSocket) -> None:
        offered.append(len(ws.subprotocols))
        await ws.accept()

    async def connection() -> bytes:
        protocol, transport = _connected(FlowControlledWebSockets, app)
        protocol.data_received(HANDSHAKE[:-2] + extra + b"\r\n")
        for _ in range(200):
            if protocol.handshake_complete:
                break
            await asyncio.sleep(0.001)
        protocol.connection_lost(None)
        return bytes(transport.written).split(b"\r\n", 1)[0]

    status = asyncio.run(connection())
    return status, offered[0] if offered else -1


@pytest.mark.parametrize("name", [b"Sec-WebSocket-Extensions", b"Sec-WebSocket-Protocol"])
def test_a_handshake_offering_too_many_extensions_or_subprotocols_is_431(name: bytes) -> None:
    # NOTE: websockets parses each offer in Python: a handshake of 120,000 extensions (within
    # the 256 KiB head) took 220 ms of CPU and 13 MB, 120,000 subprotocols 100 ms, with the
    # event loop held (review339). Past MAX_OFFERS, elements and parameters, it is refused
    # before any is parsed.
    line = name + b": " + b",".join([b"x"] * 100) + b"\r\n"
    assert _handshake_answered(line * 30)[0] == b"HTTP/1.1 431 Request Header Fields Too Large"
    params = name + b": x" + b";a" * MAX_OFFERS + b"\r\n"
    assert _handshake_answered(params)[0] == b"HTTP/1.1 431 Request Header Fields Too Large"


def test_a_handshake_offering_as_many_subprotocols_as_allowed_is_accepted() -> None:
    line = b"Sec-WebSocket-Protocol: " + b", ".join([b"chat"] * (MAX_OFFERS // 2)) + b"\r\n"
    assert _handshake_answered(line * 2) == (b"HTTP/1.1 101 Switching Protocols", MAX_OFFERS)
    # NOTE: each line, comma and semicolon counts: 1 + 1 + 127 * 2 = MAX_OFFERS.
    offers = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"
    offers += b", x; a=1" * ((MAX_OFFERS - 2) // 2) + b"\r\n"
    assert _handshake_answered(offers)[0] == b"HTTP/1.1 101 Switching Protocols"


def test_the_pings_of_a_slice_get_one_pong_the_last_ones() -> None:
    # NOTE: a pong written as each ping was parsed cost a write (a send() call) each: a
    # slice of empty pings took 1.5 times as long as one of pongs (review339). RFC 6455 5.5.3
    # lets an endpoint answer only the most recent of the pings it has not answered yet.
    async def connection() -> tuple[bytes, bytes]:
        protocol, transport = await _accepted(FlowControlledWebSockets, _idle_app())
        start = len(transport.written)
        protocol.data_received(_ping(b"one") + _ping(b"two") + _ping(b"three"))
        pongs = bytes(transport.written[start:])
        # NOTE: a ping, then a bad frame (a text message that is not UTF-8): no pong after
        # the close frame.
        start = len(transport.written)
        protocol.data_received(_ping(b"four") + _masked(0x1, b"\xff"))
        closing = bytes(transport.written[start:])
        protocol.connection_lost(None)
        return pongs, closing

    pongs, closing = asyncio.run(connection())
    assert pongs == b"\x8a\x05three"
    assert closing.startswith(b"\x88") and b"\x8a" not in closing


# NOTE: a handshake's head past a slice (READ_SLICE): parsed a slice a turn, with what came
# after it (the frames the HTTP protocol hands over) joined to its last slice.
_LONG_HEAD = b"".join(b"X-Pad-%d: %s\r\n" % (index, b"a" * 7000) for index in range(3))


@pytest.mark.parametrize(
    ("sent", "answer"),
    [
        (_ping(b"p1"), b"\x8a\x02p1"),
        (_close_frame((1000).to_bytes(2, "big")), b"\x88\x02\x03\xe8"),
        (_masked(0x1, b"hello"), b"\x81\x05hello"),
    ],
    ids=["ping", "close", "text"],
)
def test_frames_after_a_handshake_longer_than_a_slice_wait_for_its_answer(
    sent: bytes, answer: bytes
) -> None:
    # NOTE: the head's last slice went to websockets with the frames after it, which it
    # parsed while still connecting: a ping's pong was dropped (the client waited for it),
    # and a close frame got no answer, the handshake none either, and an AssertionError was
    # logged from Uvicorn's task (review342).
    async def connection() -> tuple[bytes, bool]:
        protocol, transport = _connected(FlowControlledWebSockets, _echoing_app())
        protocol.data_received(HANDSHAKE[:-2] + _LONG_HEAD + b"\r\n")
        protocol.data_received(sent)  # NOTE: as _uvicorn_shared.hand_over gives it.
        for _ in range(100):
            if transport.written.endswith(answer):
                break
            await asyncio.sleep(0.001)
        reading = transport.reading
        protocol.connection_lost(None)
        return bytes(transport.written), reading

    written, reading = asyncio.run(connection())
    assert written.startswith(b"HTTP/1.1 101 ")
    assert written.partition(b"\r\n\r\n")[2] == answer
    # NOTE: and reading goes on, for what the client sends next (the close ends it).
    assert reading or answer.startswith(b"\x88")


@pytest.mark.parametrize("writes_wait", [False, True])
def test_a_ping_before_the_clients_close_is_answered_before_the_servers_close(
    writes_wait: bool,
) -> None:
    # SPEC: RFC 6455 5.5.2: a ping is answered unless a close frame came before it. The
    # pong, kept for the end of the slice (or until writes go on), was dropped once the
    # client's close had been read after the ping (review342).
    async def connection() -> bytes:
        protocol, transport = await _accepted(FlowControlledWebSockets, _idle_app())
        if writes_wait:
            while not transport.write_paused:
                protocol.data_received(_ping(b"early"))
        start = len(transport.written)
        protocol.data_received(_ping(b"last") + _close_frame((1000).to_bytes(2, "big")))
        protocol.connection_lost(None)
        return bytes(transport.written[start:])

    assert asyncio.run(connection()) == b"\x8a\x04last\x88\x02\x03\xe8"


@pytest.mark.parametrize("answered", ["accepted", "refusal-started"])
def test_an_app_that_fails_after_its_handshakes_answer_gets_no_500(answered: str) -> None:
    # NOTE: the 500 goes to a handshake the app had not answered: one accepted (101 sent), or
    # whose refusal's start the app sent (written once whole), gets none after (review355).
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if answered == "accepted":
            await send({"type": "websocket.accept"})
        else:
            start = {"type": "websocket.http.response.start", "status": 403, "headers": []}
            await send(start)
        raise RuntimeError("after the handshake's answer")

    async def connection() -> bytes:
        protocol = _protocol(FlowControlledWebSockets, app)
        transport = _Unread(protocol)
        protocol.connection_made(transport)
        protocol.data_received(HANDSHAKE)
        for _ in range(100):
            if not protocol.tasks:
                break
            await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        return bytes(transport.written)

    written = asyncio.run(connection())
    assert b"500" not in written, written
    if answered == "accepted":
        assert written.startswith(b"HTTP/1.1 101 "), written


def test_a_handshake_is_accepted_once_and_websockets_accept_is_left_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # NOTE: Uvicorn's handle_connect() accepted it again (the key hashed, the offers read a
    # second time); the stand-in for it is gone once the handshake is answered (review355).
    accepted: list[object] = []
    accept = ServerProtocol.accept

    def counted(self: ServerProtocol, request: Any) -> Any:
        accepted.append(request)
        return accept(self, request)

    monkeypatch.setattr(ServerProtocol, "accept", counted)

    async def connection() -> tuple[WebSocketsSansIOProtocol, _Unread]:
        protocol, transport = await _accepted(FlowControlledWebSockets, _idle_app())
        protocol.connection_lost(None)
        await asyncio.sleep(0.01)
        return protocol, transport

    protocol, transport = asyncio.run(connection())
    assert bytes(transport.written).startswith(b"HTTP/1.1 101 ")
    assert len(accepted) == 1
    assert "accept" not in vars(protocol.conn)


@pytest.mark.parametrize(
    ("handshake", "path", "status"),
    [
        (HANDSHAKE.replace(b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", b""), "/ws", 400),
        (HANDSHAKE.replace(b"/ws", b"/a%zz%41", 1), "/a%zz%41", 101),
    ],
    ids=["refused", "escaped-path"],
)
def test_the_protocol_keeps_the_handshake_and_its_answer_as_uvicorns_does(
    handshake: bytes, path: str, status: int
) -> None:
    # NOTE: Uvicorn's handle_connect() keeps both (request, response): a handshake websockets
    # refuses, and one whose path Uvicorn read a stand-in for, keep theirs too (review355).
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    async def connection() -> tuple[FlowControlledWebSockets, _Unread]:
        protocol = _protocol(FlowControlledWebSockets, app)
        transport = _Unread(protocol)
        protocol.connection_made(transport)
        protocol.data_received(handshake)
        await asyncio.sleep(0.01)
        protocol.connection_lost(None)
        await asyncio.sleep(0.01)
        return protocol, transport

    protocol, transport = asyncio.run(connection())
    assert bytes(transport.written).startswith(b"HTTP/1.1 %d " % status)
    assert (protocol.request.path, protocol.response.status_code) == (path, status)
