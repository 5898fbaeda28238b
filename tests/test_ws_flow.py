"""``FlowControlledWebSockets``: the WebSocket protocol ``microweb serve`` gives Uvicorn.

The protocol is fed by hand, with a transport that pauses writing past asyncio's default
high-water mark, as a socket whose client reads nothing does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState

from microweb import App, WebSocket
from microweb._ws_flow import FlowControlledWebSockets

HANDSHAKE = (
    b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
# NOTE: asyncio's default high-water mark for a transport's write buffer.
HIGH_WATER = 64 * 1024


def _ping(payload: bytes) -> bytes:
    """A masked ping frame from the client."""
    mask = b"abcd"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    return bytes([0x89, 0x80 | len(payload)]) + mask + masked


class _Unread(asyncio.Transport):
    """A socket whose client reads nothing: every write stays buffered."""

    def __init__(self, protocol: Any) -> None:
        super().__init__()
        self.protocol = protocol
        self.buffered = 0
        self.reading = True
        self.write_paused = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.write_paused:
            self.write_paused = True
            self.protocol.pause_writing()

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        """Nothing to close: the test ends the connection."""

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name)

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


async def _accepted(
    protocol_class: type[WebSocketsSansIOProtocol], app: App, until_writes_wait: bool = False
) -> tuple[WebSocketsSansIOProtocol, _Unread]:
    """A WebSocket connection to ``app`` over ``protocol_class``, its handshake done (and,
    with ``until_writes_wait``, the app's first sends past the high-water mark)."""
    config = uvicorn.Config(app.as_asgi(), lifespan="off", log_level="critical")
    config.load()
    protocol = protocol_class(config, ServerState(), {}, asyncio.get_running_loop())
    transport = _Unread(protocol)
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    for _ in range(100):
        if transport.write_paused if until_writes_wait else protocol.handshake_complete:
            break
        await asyncio.sleep(0.01)
    return protocol, transport


def _pings_read(protocol_class: type[WebSocketsSansIOProtocol]) -> tuple[int, int]:
    """Feed pings, 1 MiB at most, while the transport reads; return (bytes fed, buffered)."""
    app = App()

    @app.websocket("/ws")
    async def echo(ws: WebSocket) -> None:
        await ws.accept()
        async for text in ws.iter_text():
            await ws.send_text(text)

    async def connection() -> tuple[int, int]:
        protocol, transport = await _accepted(protocol_class, app)
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


def _masked(opcode: int, payload: bytes) -> bytes:
    """A masked frame from the client, of any length."""
    mask = b"abcd"
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    size = len(payload)
    if size < 126:
        length = bytes([0x80 | size])
    elif size < 65536:
        length = bytes([0x80 | 126]) + size.to_bytes(2, "big")
    else:
        length = bytes([0x80 | 127]) + size.to_bytes(8, "big")
    return bytes([0x80 | opcode]) + length + mask + masked


def test_the_pong_to_the_last_ping_goes_once_the_client_reads() -> None:
    async def connection() -> bytes:
        app = App()

        @app.websocket("/ws")
        async def idle(ws: WebSocket) -> None:
            await ws.accept()
            await ws.receive_text()

        protocol, transport = await _accepted(FlowControlledWebSockets, app)
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
        while transport.reading and fed < len(message):
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
